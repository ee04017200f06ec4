package service

import (
	"testing"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func TestNackReason(t *testing.T) {
	t.Parallel()
	v := func(path, kind string) *gatewayv1.FieldViolation {
		return &gatewayv1.FieldViolation{Path: path, Kind: kind}
	}
	tests := []struct {
		name string
		vs   []*gatewayv1.FieldViolation
		want string
	}{
		{"feature", []*gatewayv1.FieldViolation{v("endpoints[0]", "invalid"), v("features[2]", "unsupported")}, "feature"},
		{"schema", []*gatewayv1.FieldViolation{v("schema_version", "unsupported")}, "schema"},
		{"first kind", []*gatewayv1.FieldViolation{v("endpoints[0].backend[0].url_pattern", "invalid")}, "invalid"},
		{"none", nil, "other"},
	}
	for _, tc := range tests {
		if got := nackReason(tc.vs); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
