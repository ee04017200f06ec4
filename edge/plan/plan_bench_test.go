package plan_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/apigw/gateway/edge/accesslog"
	"github.com/apigw/gateway/edge/auth"
	"github.com/apigw/gateway/edge/plan"
	"github.com/apigw/gateway/edge/stats"
	"github.com/apigw/gateway/edge/tracing"
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

// canonicalUser is fastBackend's default body as KrakenD would render it:
// keys sorted, compact. Served as is, it passes through without a copy.
const canonicalUser = `{"address":{"city":"Paris","zip":"75001"},"email":"a@example.com","id":1,"name":"alice","tags":["x","y"]}`

// BenchmarkProxy: one backend, through a real loopback backend. "json" is
// the plain proxy figure (an unsorted backend body re-encoded to KrakenD's
// bytes); "json-canonical" a body already in KrakenD's form (zero copy);
// "json-gzip" and "no-op-gzip" the same bodies gzip-encoded by the backend
// (decoded, then re-encoded or passed through).
func BenchmarkProxy(b *testing.B) {
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write([]byte(`{"id":1,"name":"alice","email":"a@example.com","tags":["x","y"],"address":{"city":"Paris","zip":"75001"}}`))
	zw.Close()
	addr := fastBackend(b, map[string]string{"/canonical/42": canonicalUser, "/gz/42": zb.String()})
	b.Run("json", func(b *testing.B) {
		benchServe(b, endpoint("GET", "/users/{id}", backend(addr, "/users/{id}")), "GET", "/users/42")
	})
	b.Run("json-canonical", func(b *testing.B) {
		benchServe(b, endpoint("GET", "/users/{id}", backend(addr, "/canonical/{id}")), "GET", "/users/42")
	})
	b.Run("json-gzip", func(b *testing.B) {
		benchServe(b, endpoint("GET", "/users/{id}", backend(addr, "/gz/{id}")), "GET", "/users/42")
	})
	b.Run("no-op-gzip", func(b *testing.B) {
		ep := endpoint("GET", "/users/{id}", with(backend(addr, "/gz/{id}"), func(b *gatewayv1.Backend) { b.Encoding = "no-op" }))
		ep.OutputEncoding = "no-op"
		benchServe(b, ep, "GET", "/users/42")
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

// BenchmarkLayers measures what each protection layer costs on top of the
// same plain json proxy route, in one run: plain, plain + JWT (cached
// token, revocation check, claim propagation), plain + validation/cel
// (request check; response check), plain + router rate limit +
// backend rate limit + circuit breaker. Each layered case also reports
// its throughput as a percentage of the plain route's measured just
// before it (%plain-rps; 100 = free). lua-backend-pre and lua-proxy-pre
// are the plain route with a trivial modifier/lua-* pre script;
// lua-endpoint-pre and lua-service-pre the same with krakend-lua's ctx
// object, at the endpoint and at the service level.
func BenchmarkLayers(b *testing.B) {
	addr := fastBackend(b, nil)
	i := startIDP(b)
	tok := i.token(b, map[string]any{"tenant": "acme"})
	var plainNs float64
	layers := []struct {
		name string
		ep   func() *gatewayv1.Endpoint
		hdr  map[string]string
		svc  *gatewayv1.LuaScript // the service's modifier/lua-endpoint
	}{
		{"plain", func() *gatewayv1.Endpoint { return endpoint("GET", "/users/{id}", backend(addr, "/users/{id}")) }, nil, nil},
		{"jwt", func() *gatewayv1.Endpoint {
			ep := endpoint("GET", "/users/{id}", backend(addr, "/users/{id}"))
			ep.Jwt = i.spec(func(s *gatewayv1.JWTValidator) {
				s.PropagateClaims = []*gatewayv1.ClaimHeader{{Claim: "sub", Header: "X-User"}}
			})
			return ep
		}, map[string]string{"Authorization": "Bearer " + tok}, nil},
		// validation/cel: an endpoint request check on a header and the
		// parameter (KrakenD's fixture check), and a response check
		// reading the decoded data (built as CEL values per request).
		{"cel", func() *gatewayv1.Endpoint {
			ep := endpoint("GET", "/users/{id}", backend(addr, "/users/{id}"))
			ep.InputHeaders = []string{"X-Header"}
			ep.Cel = &gatewayv1.CelChecks{Request: []string{"'something' in req_headers['X-Header'] && int(req_params.Id) % 2 == 0"}}
			return ep
		}, map[string]string{"X-Header": "something"}, nil},
		{"cel-response", func() *gatewayv1.Endpoint {
			ep := endpoint("GET", "/users/{id}", backend(addr, "/users/{id}"))
			ep.Cel = &gatewayv1.CelChecks{Response: []string{"resp_data.address.city == 'Paris'"}}
			return ep
		}, nil, nil},
		// A trivial modifier/lua-backend pre (a pooled Lua state, the
		// request copied in and out), and the same at the proxy level.
		{"lua-backend-pre", func() *gatewayv1.Endpoint {
			return endpoint("GET", "/users/{id}", with(backend(addr, "/users/{id}"), func(be *gatewayv1.Backend) {
				be.LuaBackend = &gatewayv1.LuaScript{Pre: "local r = request.load()"}
			}))
		}, nil, nil},
		{"lua-proxy-pre", func() *gatewayv1.Endpoint {
			ep := endpoint("GET", "/users/{id}", backend(addr, "/users/{id}"))
			ep.LuaProxy = &gatewayv1.LuaScript{Pre: "local r = request.load()"}
			return ep
		}, nil, nil},
		{"lua-endpoint-pre", func() *gatewayv1.Endpoint {
			ep := endpoint("GET", "/users/{id}", backend(addr, "/users/{id}"))
			ep.LuaEndpoint = &gatewayv1.LuaScript{Pre: "local c = ctx.load()"}
			return ep
		}, nil, nil},
		{"lua-service-pre", func() *gatewayv1.Endpoint { return endpoint("GET", "/users/{id}", backend(addr, "/users/{id}")) },
			nil, &gatewayv1.LuaScript{Pre: "local c = ctx.load()"}},
		{"ratelimit+breaker", func() *gatewayv1.Endpoint {
			ep := endpoint("GET", "/users/{id}", with(backend(addr, "/users/{id}"), func(be *gatewayv1.Backend) {
				be.RateLimit = &gatewayv1.BackendRateLimit{MaxRate: 1e9}
				be.CircuitBreaker = &gatewayv1.CircuitBreaker{MaxErrors: 5, TimeoutMs: 10_000, IntervalMs: 60_000}
			}))
			ep.RateLimit = &gatewayv1.RouterRateLimit{MaxRate: 1e9, ClientMaxRate: 1e9, Strategy: "ip"}
			return ep
		}, nil, nil},
	}
	for _, l := range layers {
		b.Run(l.name, func(b *testing.B) {
			deps := protectDeps(b, nil)
			rev := auth.NewRevocations(auth.RevocationsConfig{RebuildPeriod: -1})
			defer rev.Close()
			deps.Revocations = rev
			snap := snapshot(l.ep())
			snap.Service.LuaEndpoint = l.svc
			p, err := plan.Build(snap, deps)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Release()
			mk := func() *fasthttp.RequestCtx {
				ctx := newCtx("GET", "/users/42", "")
				for k, v := range l.hdr {
					ctx.Request.Header.Set(k, v)
				}
				return ctx
			}
			if st := serveOnce(p.Serve, mk()); st != 200 {
				b.Fatalf("status %d", st)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := mk()
				for pb.Next() {
					if st := serveOnce(p.Serve, ctx); st != 200 {
						b.Errorf("status %d", st)
						return
					}
				}
			})
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if l.name == "plain" {
				plainNs = ns
			} else if plainNs > 0 {
				b.ReportMetric(100*plainNs/ns, "%plain-rps")
			}
		})
	}
}

// BenchmarkAccessLog is BenchmarkProxy/json with the access log: "off"
// (the plain proxy), and a line per request in KrakenD's format and in
// JSON, written to io.Discard (the formatting cost, not the output's).
func BenchmarkAccessLog(b *testing.B) {
	addr := fastBackend(b, nil)
	ep := endpoint("GET", "/users/{id}", backend(addr, "/users/{id}"))
	run := func(b *testing.B, l *accesslog.Log) {
		p, err := plan.Build(snapshot(ep), plan.Deps{})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Release()
		serve := func(ctx *fasthttp.RequestCtx) {
			e := l.Start(ctx.Path(), time.Now())
			if e == nil {
				p.Serve(ctx)
				return
			}
			p.ServeLogged(ctx, e, nil)
			r := accesslog.Request{Method: ctx.Method(), Path: ctx.Path(), ClientIP: e.ClientIP,
				Status: ctx.Response.StatusCode(), Bytes: len(ctx.Response.Body())}
			e.Finish(&r, time.Now())
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := newCtx("GET", "/users/42", "")
			for pb.Next() {
				if st := serveOnce(serve, ctx); st != 200 {
					b.Errorf("status %d", st)
					return
				}
			}
		})
	}
	b.Run("off", func(b *testing.B) { run(b, nil) })
	for _, f := range []accesslog.Format{accesslog.FormatKrakenD, accesslog.FormatJSON} {
		l, err := accesslog.New(accesslog.Config{Out: io.Discard, Format: f})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(f.String(), func(b *testing.B) { run(b, l) })
	}
}

// BenchmarkTracing is the cost of telemetry/opentelemetry on the
// single-backend JSON proxy: "off" is the plain proxy, "unsampled" tracing
// on with trace_sample_rate 0 (trace context still written to the backend),
// "sampled" every request recorded (server, proxy and backend spans)
// into an exporter that drops them.
func BenchmarkTracing(b *testing.B) {
	addr := fastBackend(b, nil)
	traced := func(rate float64) *gatewayv1.Snapshot {
		snap := snapshot(endpoint("GET", "/users/{id}", backend(addr, "/users/{id}")))
		snap.Service.Opentelemetry = &gatewayv1.OpenTelemetry{ServiceName: "bench", TraceSampleRate: rate, Global: &gatewayv1.TraceLayer{}}
		snap.Endpoints[0].Trace = &gatewayv1.TraceLayer{}
		snap.Endpoints[0].Backends[0].Trace = &gatewayv1.TraceLayer{}
		snap.Features = []string{"telemetry.opentelemetry"}
		return snap
	}
	metered := func() *gatewayv1.Snapshot {
		snap := traced(0)
		snap.Service.Opentelemetry.GlobalMetrics = &gatewayv1.MetricsLayer{}
		snap.Endpoints[0].Metrics = &gatewayv1.MetricsLayer{}
		snap.Endpoints[0].Backends[0].Metrics = &gatewayv1.MetricsLayer{RoundTrip: true, ReadPayload: true}
		snap.Features = append(snap.Features, "telemetry.opentelemetry.metrics")
		return snap
	}
	run := func(b *testing.B, snap *gatewayv1.Snapshot) {
		opts := tracing.Options{Exporter: tracetest.NewNoopExporter()}
		if snap.Service.GetOpentelemetry().GetGlobalMetrics() != nil {
			opts.MetricReader = sdkmetric.NewManualReader()
		}
		reg := tracing.NewRegistry(opts)
		defer reg.Close()
		p, err := plan.Build(snap, plan.Deps{Tracers: reg})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Release()
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := newCtx("GET", "/users/42", "")
			for pb.Next() {
				if st := serveOnce(p.Serve, ctx); st != 200 {
					b.Errorf("status %d", st)
					return
				}
			}
		})
	}
	b.Run("off", func(b *testing.B) { run(b, snapshot(endpoint("GET", "/users/{id}", backend(addr, "/users/{id}")))) })
	b.Run("unsampled", func(b *testing.B) { run(b, traced(0)) })
	b.Run("sampled", func(b *testing.B) { run(b, traced(1)) })
	// OpenTelemetry metrics on every layer (krakend-otel's instruments),
	// traces unsampled.
	b.Run("metrics", func(b *testing.B) { run(b, metered()) })
}

// BenchmarkStats: telemetry/metrics' /__stats series (router, pipe and
// backend layers) against the same plan without them.
func BenchmarkStats(b *testing.B) {
	addr := fastBackend(b, nil)
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			snap := snapshot(endpoint("GET", "/users/{id}", backend(addr, "/users/{id}")))
			deps := plan.Deps{}
			if on {
				snap.Service.Metrics = &gatewayv1.Metrics{Enabled: true}
				deps.Stats = stats.New()
			}
			p, err := plan.Build(snap, deps)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Release()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := newCtx("GET", "/users/42", "")
				for pb.Next() {
					if st := serveOnce(p.Serve, ctx); st != 200 {
						b.Errorf("status %d", st)
						return
					}
				}
			})
		})
	}
}
