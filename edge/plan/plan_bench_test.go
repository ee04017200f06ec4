package plan_test

import (
	"strconv"
	"testing"

	"github.com/apigw/gateway/edge/plan"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// benchServe runs Serve in parallel against real loopback backends; each
// goroutine owns its RequestCtx, as fasthttp's workers do.
func benchServe(b *testing.B, ep *gatewayv1.Endpoint, method, uri string) {
	b.Helper()
	p, err := plan.Build(snapshot(ep), plan.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Release()
	if st := serveOnce(p.Serve, newCtx(method, uri, "")); st != 200 {
		b.Fatalf("status %d", st)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := newCtx(method, uri, "")
		for pb.Next() {
			if st := serveOnce(p.Serve, ctx); st != 200 {
				b.Errorf("status %d", st)
				return
			}
		}
	})
}

func BenchmarkProxy(b *testing.B) {
	addr := fastBackend(b, nil)
	b.Run("json", func(b *testing.B) {
		benchServe(b, endpoint("GET", "/users/{id}", backend(addr, "/users/{id}")), "GET", "/users/42")
	})
	b.Run("no-op", func(b *testing.B) {
		ep := endpoint("GET", "/users/{id}", with(backend(addr, "/users/{id}"), func(b *gatewayv1.Backend) { b.Encoding = "no-op" }))
		ep.OutputEncoding = "no-op"
		benchServe(b, ep, "GET", "/users/42")
	})
	b.Run("json-allow", func(b *testing.B) {
		benchServe(b, endpoint("GET", "/users/{id}", with(backend(addr, "/users/{id}"), func(b *gatewayv1.Backend) {
			b.Allow = []string{"id", "name", "address.city"}
		})), "GET", "/users/42")
	})
}

// BenchmarkAggregate fans out to n backends, each with an allow filter and
// a group (no key collisions).
func BenchmarkAggregate(b *testing.B) {
	addr := fastBackend(b, nil)
	for _, n := range []int{1, 3, 8} {
		b.Run("backends="+strconv.Itoa(n), func(b *testing.B) {
			var bes []*gatewayv1.Backend
			for i := 0; i < n; i++ {
				bes = append(bes, with(backend(addr, "/users/{id}"), func(be *gatewayv1.Backend) {
					be.Allow = []string{"id", "name", "address.city"}
					be.Group = "g" + strconv.Itoa(i)
				}))
			}
			benchServe(b, endpoint("GET", "/agg/{id}", bes...), "GET", "/agg/42")
		})
	}
}

func BenchmarkServeNotFound(b *testing.B) {
	addr := fastBackend(b, nil)
	p, err := plan.Build(snapshot(endpoint("GET", "/users/{id}", backend(addr, "/users/{id}"))), plan.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Release()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := newCtx("GET", "/nope/x", "")
		for pb.Next() {
			serveOnce(p.Serve, ctx)
		}
	})
}
