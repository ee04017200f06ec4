package plan

import (
	"testing"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// TestEndpointTimeoutPrecision: the endpoint deadline is timeout_ns when
// the snapshot carries it (a sub-millisecond KrakenD timeout such as
// "150us"), timeout_ms otherwise (snapshots compiled before timeout_ns).
func TestEndpointTimeoutPrecision(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		ms, ns int64
		want   time.Duration
	}{
		{name: "150us", ms: 1, ns: 150_000, want: 150 * time.Microsecond},
		{name: "whole ms", ms: 1500, want: 1500 * time.Millisecond},
		{name: "unset", want: DefaultTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			snap := &gatewayv1.Snapshot{SchemaVersion: SchemaVersion, Endpoints: []*gatewayv1.Endpoint{{
				Name: "GET /a", Path: "/a", Method: "GET", TimeoutMs: tc.ms, TimeoutNs: tc.ns, OutputEncoding: "json",
				Backends: []*gatewayv1.Backend{{Name: "GET /a backend[0]", Hosts: []string{"http://127.0.0.1:1"},
					UrlPattern: "/x", Method: "GET", Encoding: "json"}},
			}}}
			p, err := Build(snap, Deps{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Release()
			if got := p.endpoints[0].timeout; got != tc.want {
				t.Errorf("endpoint timeout = %v, want %v", got, tc.want)
			}
		})
	}
}
