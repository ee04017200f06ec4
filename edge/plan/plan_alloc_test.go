//go:build !race

package plan_test

import (
	"testing"

	"github.com/apigw/gateway/edge/plan"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func allocsOfServe(t *testing.T, ep *gatewayv1.Endpoint, method, uri, body string) float64 {
	t.Helper()
	p := mustBuild(t, snapshot(ep), plan.Deps{})
	ctx := newCtx(method, uri, body)
	for i := 0; i < 50; i++ { // warm pools and connections
		if st := serveOnce(p.Serve, ctx); st != 200 {
			t.Fatalf("warm-up status %d: %s", st, bodyOf(ctx))
		}
	}
	return testing.AllocsPerRun(200, func() { serveOnce(p.Serve, ctx) })
}

// TestNoOpProxyAllocs: proxying a small body to a single backend on a no-op
// route allocates nothing.
func TestNoOpProxyAllocs(t *testing.T) {
	addr := fastBackend(t, nil)
	ep := endpoint("POST", "/noop/{id}", with(backend(addr, "/items/{id}"), func(b *gatewayv1.Backend) { b.Encoding = "no-op" }))
	ep.OutputEncoding = "no-op"
	ep.InputHeaders = []string{"Content-Type", "X-Request-Id"}
	ep.InputQueryStrings = []string{"page"}
	if n := allocsOfServe(t, ep, "POST", "/noop/42?page=2&skip=1", `{"k":"v"}`); n != 0 {
		t.Errorf("no-op proxy: %v allocs per request, want 0", n)
	}
}

// TestForwardAllAllocs: forwarding every header and the whole query string
// (input_headers and input_query_strings ["*"]) does not allocate either.
func TestForwardAllAllocs(t *testing.T) {
	addr := fastBackend(t, nil)
	ep := endpoint("GET", "/all/*", with(backend(addr, "/items"), func(b *gatewayv1.Backend) { b.Encoding = "no-op" }))
	ep.OutputEncoding = "no-op"
	ep.InputHeaders = []string{"*"}
	ep.InputQueryStrings = []string{"*"}
	if n := allocsOfServe(t, ep, "GET", "/all/a/b?page=2&skip=1", ""); n != 0 {
		t.Errorf("forward-all proxy: %v allocs per request, want 0", n)
	}
}

// TestJSONProxyAllocs: a single json backend passed through (identity
// formatter) allocates nothing either.
func TestJSONProxyAllocs(t *testing.T) {
	addr := fastBackend(t, nil)
	ep := endpoint("GET", "/users/{id}", backend(addr, "/users/{id}"))
	if n := allocsOfServe(t, ep, "GET", "/users/42", ""); n != 0 {
		t.Errorf("json proxy: %v allocs per request, want 0", n)
	}
}

// TestFilteredProxyAllocs reports the allocations of a decoded, filtered
// single backend (response package work included).
func TestFilteredProxyAllocs(t *testing.T) {
	addr := fastBackend(t, nil)
	ep := endpoint("GET", "/users/{id}", with(backend(addr, "/users/{id}"), func(b *gatewayv1.Backend) {
		b.Allow = []string{"id", "name", "address.city"}
	}))
	if n := allocsOfServe(t, ep, "GET", "/users/42", ""); n != 0 {
		t.Errorf("filtered json proxy: %v allocs per request, want 0", n)
	}
}
