package plan

import (
	"slices"
	"testing"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// TestURLPatternClaims: the claims a GraphQL "{JWT.x}" variable may take
// are those the endpoint's url_patterns name, each once, in order.
func TestURLPatternClaims(t *testing.T) {
	t.Parallel()
	e := &gatewayv1.Endpoint{Backends: []*gatewayv1.Backend{
		{UrlPattern: "/gql"},
		{UrlPattern: "/u/{JWT.sub}/t/{JWT.tenant}?x={id}"},
		{UrlPattern: "/again/{JWT.sub}/{JWT.unclosed"},
	}}
	if got, want := urlPatternClaims(e), []string{"sub", "tenant"}; !slices.Equal(got, want) {
		t.Errorf("urlPatternClaims = %q, want %q", got, want)
	}
	if got := urlPatternClaims(&gatewayv1.Endpoint{Backends: []*gatewayv1.Backend{{UrlPattern: "/gql"}}}); got != nil {
		t.Errorf("no placeholder: %q", got)
	}
}
