//go:build !race

package plan_test

import (
	"bytes"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/apigw/gateway/edge/accesslog"
	"github.com/apigw/gateway/edge/auth"
	"github.com/apigw/gateway/edge/internal/certtest"
	"github.com/apigw/gateway/edge/plan"
	"github.com/apigw/gateway/edge/stats"
	"github.com/apigw/gateway/edge/tracing"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func allocsOfServe(t *testing.T, ep *gatewayv1.Endpoint, method, uri, body string) float64 {
	t.Helper()
	return allocsOfServeWith(t, plan.Deps{}, ep, method, uri, body, nil)
}

// allocsOfServeWith serves the request through a plan built with deps,
// with extra request headers.
func allocsOfServeWith(t *testing.T, deps plan.Deps, ep *gatewayv1.Endpoint, method, uri, body string, hdr map[string]string) float64 {
	t.Helper()
	p := mustBuild(t, snapshot(ep), deps)
	ctx := newCtx(method, uri, body)
	for k, v := range hdr {
		ctx.Request.Header.Set(k, v)
	}
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

// TestJWTProxyAllocs: a JWT-protected route with a cached token (signature
// verified once), the revocation check, claim propagation into request
// headers and a {JWT.sub} placeholder allocates nothing.
func TestJWTProxyAllocs(t *testing.T) {
	addr := fastBackend(t, nil)
	i := startIDP(t)
	deps := protectDeps(t, nil)
	rev := auth.NewRevocations(auth.RevocationsConfig{RebuildPeriod: -1})
	t.Cleanup(rev.Close)
	deps.Revocations = rev
	ep := endpoint("GET", "/users/{id}", backend(addr, "/users/{JWT.sub}/{id}"))
	ep.Jwt = i.spec(func(s *gatewayv1.JWTValidator) {
		s.PropagateClaims = []*gatewayv1.ClaimHeader{{Claim: "sub", Header: "X-User"}, {Claim: "tenant", Header: "X-Tenant"}}
		s.Roles = []string{"reader"}
	})
	ep.InputHeaders = []string{"X-User", "X-Tenant"}
	tok := i.token(t, map[string]any{"tenant": "acme", "roles": []string{"reader"}})
	if n := allocsOfServeWith(t, deps, ep, "GET", "/users/42", "", map[string]string{"Authorization": "Bearer " + tok}); n != 0 {
		t.Errorf("JWT proxy: %v allocs per request, want 0", n)
	}
}

// TestProtectedProxyAllocs: a route behind a router rate limit (existing
// client key), a backend rate limit and a closed circuit breaker allocates
// nothing, on the json pipe and on the no-op pass-through.
func TestProtectedProxyAllocs(t *testing.T) {
	addr := fastBackend(t, nil)
	protect := func(ep *gatewayv1.Endpoint) *gatewayv1.Endpoint {
		ep.RateLimit = &gatewayv1.RouterRateLimit{MaxRate: 1e9, ClientMaxRate: 1e9, Strategy: "ip"}
		for _, be := range ep.Backends {
			be.RateLimit = &gatewayv1.BackendRateLimit{MaxRate: 1e9}
			be.CircuitBreaker = &gatewayv1.CircuitBreaker{MaxErrors: 5, TimeoutMs: 10_000, IntervalMs: 60_000}
		}
		return ep
	}
	tests := []struct {
		name string
		ep   *gatewayv1.Endpoint
	}{
		{"json", protect(endpoint("GET", "/users/{id}", backend(addr, "/users/{id}")))},
		{"no-op", protect(with(endpoint("GET", "/users/{id}", with(backend(addr, "/users/{id}"), func(b *gatewayv1.Backend) {
			b.Encoding = "no-op"
		})), func(e *gatewayv1.Endpoint) { e.OutputEncoding = "no-op" }))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if n := allocsOfServeWith(t, protectDeps(t, nil), tc.ep, "GET", "/users/42", "", nil); n != 0 {
				t.Errorf("%s protected proxy: %v allocs per request, want 0", tc.name, n)
			}
		})
	}
}

// TestCacheHitAllocs: a backend response served from the HTTP cache
// allocates nothing, on the json pipe and on the no-op pass-through.
func TestCacheHitAllocs(t *testing.T) {
	addr := fastBackend(t, nil)
	cached := func(ep *gatewayv1.Endpoint) *gatewayv1.Endpoint {
		for _, be := range ep.Backends {
			be.HttpCache = &gatewayv1.HTTPCache{}
		}
		return ep
	}
	tests := []struct {
		name string
		ep   *gatewayv1.Endpoint
	}{
		{"json", cached(endpoint("GET", "/users/{id}", backend(addr, "/cached/{id}")))},
		{"no-op", cached(with(endpoint("GET", "/users/{id}", with(backend(addr, "/cached/{id}"), func(b *gatewayv1.Backend) {
			b.Encoding = "no-op"
		})), func(e *gatewayv1.Endpoint) { e.OutputEncoding = "no-op" }))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := cachedCalls.Load()
			if n := allocsOfServeWith(t, protectDeps(t, nil), tc.ep, "GET", "/users/42", "", nil); n != 0 {
				t.Errorf("%s cache hit: %v allocs per request, want 0", tc.name, n)
			}
			if calls := cachedCalls.Load() - before; calls != 1 {
				t.Errorf("%s: the backend was called %d times, want once (then cache hits)", tc.name, calls)
			}
		})
	}
}

// TestAccessLoggedProxyAllocs: with the access log on (JSON, the format
// with every field), a proxied request still allocates nothing: the plan
// fills a pooled entry and the line is appended into its buffer.
func TestAccessLoggedProxyAllocs(t *testing.T) {
	addr := fastBackend(t, nil)
	ep := endpoint("GET", "/users/{id}", backend(addr, "/users/{id}"))
	p := mustBuild(t, snapshot(ep), plan.Deps{})
	var lines lineCounter
	l, err := accesslog.New(accesslog.Config{Out: &lines, Format: accesslog.FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	ctx := newCtx("GET", "/users/42", "")
	serve := func(ctx *fasthttp.RequestCtx) {
		now := time.Now()
		e := l.Start(ctx.Path(), now)
		p.ServeLogged(ctx, e, nil)
		r := accesslog.Request{Method: ctx.Method(), Path: ctx.Path(), ClientIP: e.ClientIP,
			Status: ctx.Response.StatusCode(), Bytes: len(ctx.Response.Body())}
		e.Finish(&r, time.Now())
	}
	for range 50 {
		if st := serveOnce(serve, ctx); st != 200 {
			t.Fatalf("warm-up status %d: %s", st, bodyOf(ctx))
		}
	}
	if n := testing.AllocsPerRun(200, func() { serveOnce(serve, ctx) }); n != 0 {
		t.Errorf("access-logged json proxy: %v allocs per request, want 0", n)
	}
	if lines.n < 250 {
		t.Errorf("%d lines written, want one per request", lines.n)
	}
}

// lineCounter counts the lines written to it and keeps nothing.
type lineCounter struct{ n int }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}

// TestTracingUnsampledAllocs: with telemetry/opentelemetry on, a request
// that is not sampled (rate 0, or a client's unsampled traceparent) costs
// no allocation over the same endpoint untraced: no span is created and
// each backend call gets a traceparent written from per-request scratch.
func TestTracingUnsampledAllocs(t *testing.T) {
	addr := fastBackend(t, nil)
	reg := tracing.NewRegistry(tracing.Options{Exporter: newRecorder()})
	t.Cleanup(reg.Close)
	snap := tracedSnapshot(addr, 0)
	measure := func(p *plan.Plan, traceparent string) float64 {
		ctx := newCtx("GET", "/agg", "")
		if traceparent != "" {
			ctx.Request.Header.Set("Traceparent", traceparent)
		}
		for range 50 {
			if st := serveOnce(p.Serve, ctx); st != 200 {
				t.Fatalf("warm-up status %d: %s", st, bodyOf(ctx))
			}
		}
		return testing.AllocsPerRun(200, func() { serveOnce(p.Serve, ctx) })
	}
	base := measure(mustBuild(t, snapshot(snap.Endpoints[0]), plan.Deps{}), "")
	p := mustBuild(t, snap, plan.Deps{Tracers: reg})
	for _, tc := range []struct{ name, traceparent string }{
		{"root", ""},
		{"client unsampled", "00-" + clientTrace + "-" + clientSpan + "-00"},
	} {
		if n := measure(p, tc.traceparent); n != base {
			t.Errorf("%s: unsampled traced aggregate: %v allocs per request, untraced %v: want the same", tc.name, n, base)
		}
	}
}

// TestTracingUnsampledProxyAllocs: the single-backend JSON proxy, which
// allocates nothing untraced, stays at zero with tracing on and the
// request unsampled.
func TestTracingUnsampledProxyAllocs(t *testing.T) {
	addr := fastBackend(t, nil)
	reg := tracing.NewRegistry(tracing.Options{Exporter: newRecorder()})
	t.Cleanup(reg.Close)
	snap := snapshot(endpoint("GET", "/users/{id}", backend(addr, "/users/{id}")))
	snap.Service.Opentelemetry = &gatewayv1.OpenTelemetry{ServiceName: "t", Global: &gatewayv1.TraceLayer{}}
	snap.Endpoints[0].Trace = &gatewayv1.TraceLayer{}
	snap.Endpoints[0].Backends[0].Trace = &gatewayv1.TraceLayer{}
	snap.Features = []string{"telemetry.opentelemetry"}
	p := mustBuild(t, snap, plan.Deps{Tracers: reg})
	ctx := newCtx("GET", "/users/42", "")
	for range 50 {
		if st := serveOnce(p.Serve, ctx); st != 200 {
			t.Fatalf("warm-up status %d: %s", st, bodyOf(ctx))
		}
	}
	if n := testing.AllocsPerRun(200, func() { serveOnce(p.Serve, ctx) }); n != 0 {
		t.Errorf("unsampled traced json proxy: %v allocs per request, want 0", n)
	}
}

// TestIPKeyRateLimitAllocs: the client address read from a trusted proxy's
// X-Forwarded-For (strategy ip + key) costs no allocation per request.
func TestIPKeyRateLimitAllocs(t *testing.T) {
	addr := fastBackend(t, nil)
	ep := endpoint("GET", "/users/{id}", backend(addr, "/users/{id}"))
	ep.RateLimit = &gatewayv1.RouterRateLimit{MaxRate: 1e9, ClientMaxRate: 1e9, Strategy: "ip", Key: "X-Forwarded-For"}
	snap := snapshot(ep)
	snap.Service.Router.TrustedProxies = []string{"127.0.0.1"}
	p := mustBuild(t, snap, protectDeps(t, nil))
	ctx := newCtx("GET", "/users/42", "")
	ctx.Request.Header.Set("X-Forwarded-For", "198.51.100.7, 203.0.113.9, 127.0.0.1")
	for i := 0; i < 50; i++ {
		if st := serveOnce(p.Serve, ctx); st != 200 {
			t.Fatalf("warm-up status %d: %s", st, bodyOf(ctx))
		}
	}
	if n := testing.AllocsPerRun(200, func() { serveOnce(p.Serve, ctx) }); n != 0 {
		t.Errorf("ip key rate limit: %v allocs per request, want 0", n)
	}
}

// TestOTelMetricsAllocs: OpenTelemetry metrics on every layer of the
// single-backend JSON proxy (unsampled) record without allocating once
// the attribute sets of the route and status are cached; with no metrics
// exporter the same plan allocates nothing either (TestTracingUnsampledProxyAllocs).
func TestOTelMetricsAllocs(t *testing.T) {
	addr := fastBackend(t, nil)
	reg := tracing.NewRegistry(tracing.Options{MetricReader: sdkmetric.NewManualReader()})
	t.Cleanup(reg.Close)
	snap := snapshot(endpoint("GET", "/users/{id}", backend(addr, "/users/{id}")))
	snap.Service.Opentelemetry = &gatewayv1.OpenTelemetry{ServiceName: "t", Global: &gatewayv1.TraceLayer{},
		GlobalMetrics: &gatewayv1.MetricsLayer{}}
	snap.Endpoints[0].Trace = &gatewayv1.TraceLayer{}
	snap.Endpoints[0].Metrics = &gatewayv1.MetricsLayer{}
	snap.Endpoints[0].Backends[0].Trace = &gatewayv1.TraceLayer{}
	snap.Endpoints[0].Backends[0].Metrics = &gatewayv1.MetricsLayer{RoundTrip: true, ReadPayload: true}
	snap.Features = []string{"telemetry.opentelemetry", "telemetry.opentelemetry.metrics"}
	p := mustBuild(t, snap, plan.Deps{Tracers: reg})
	ctx := newCtx("GET", "/users/42", "")
	for range 50 {
		if st := serveOnce(p.Serve, ctx); st != 200 {
			t.Fatalf("warm-up status %d: %s", st, bodyOf(ctx))
		}
	}
	if n := testing.AllocsPerRun(200, func() { serveOnce(p.Serve, ctx) }); n != 0 {
		t.Errorf("metered json proxy: %v allocs per request, want 0", n)
	}
}

// TestStatsAllocs: telemetry/metrics' /__stats series cost the JSON proxy
// no allocation per request.
func TestStatsAllocs(t *testing.T) {
	addr := fastBackend(t, nil)
	snap := snapshot(endpoint("GET", "/users/{id}", backend(addr, "/users/{id}")))
	snap.Service.Metrics = &gatewayv1.Metrics{Enabled: true}
	st := stats.New()
	p := mustBuild(t, snap, plan.Deps{Stats: st})
	ctx := newCtx("GET", "/users/42", "")
	for range 1100 { // past the histograms' 1028-value sample
		if s := serveOnce(p.Serve, ctx); s != 200 {
			t.Fatalf("warm-up status %d: %s", s, bodyOf(ctx))
		}
	}
	if n := testing.AllocsPerRun(200, func() { serveOnce(p.Serve, ctx) }); n != 0 {
		t.Errorf("json proxy with /__stats series: %v allocs per request, want 0", n)
	}
	if !bytes.Contains(st.AppendJSON(nil), []byte(`"krakend.proxy.requests.layer.backend.name./users/{id}.complete.true.error.false": 1301`)) {
		t.Errorf("backend series did not count the 1301 requests")
	}
}

// TestGraphQLQueryAllocs: a backend/graphql query whose variables take a
// path parameter builds its POST body from pieces compiled at plan build:
// no allocation per request.
func TestGraphQLQueryAllocs(t *testing.T) {
	addr := fastBackend(t, nil)
	ep := endpoint("GET", "/hero/{id}", with(backend(addr, "/graphql"), func(b *gatewayv1.Backend) {
		b.Encoding = "no-op"
		b.Graphql = &gatewayv1.GraphQL{Query: "query H($id: ID!) { hero(id: $id) { name } }", OperationName: "H",
			Variables: []byte(`{"id":"{id}","n":1}`)}
	}))
	ep.OutputEncoding = "no-op"
	if n := allocsOfServe(t, ep, "GET", "/hero/42", ""); n != 0 {
		t.Errorf("graphql query: %v allocs per request, want 0", n)
	}
}

// TestCELAllocs: in a plan where another route runs validation/cel, a route
// without it allocates nothing (it pays one nil check per stage).
func TestCELAllocs(t *testing.T) {
	addr := fastBackend(t, nil)
	checked := endpoint("GET", "/checked/{id}", backend(addr, "/users/{id}"))
	checked.Cel = &gatewayv1.CelChecks{Request: []string{"req_params.Id == '42'"}, Response: []string{"resp_completed"}}
	checked.Backends[0].Cel = &gatewayv1.CelChecks{Request: []string{"req_method == 'GET'"}}
	plain := endpoint("GET", "/users/{id}", backend(addr, "/users/{id}"))
	p := mustBuild(t, snapshot(checked, plain), plan.Deps{})
	ctx := newCtx("GET", "/users/42", "")
	for i := 0; i < 50; i++ {
		if st := serveOnce(p.Serve, ctx); st != 200 {
			t.Fatalf("warm-up status %d", st)
		}
	}
	if n := testing.AllocsPerRun(200, func() { serveOnce(p.Serve, ctx) }); n != 0 {
		t.Errorf("route without cel: %v allocs per request, want 0", n)
	}
	cctx := newCtx("GET", "/checked/42", "")
	if st := serveOnce(p.Serve, cctx); st != 200 {
		t.Fatalf("checked route: status %d: %s", st, bodyOf(cctx))
	}
	t.Logf("route with cel: %v allocs per request", testing.AllocsPerRun(100, func() { serveOnce(p.Serve, cctx) }))
}

// TestLuaFreeRouteAllocs: a route without Lua, in a plan where another
// route runs modifier/lua-proxy and modifier/lua-backend scripts, still
// allocates nothing: the Lua stages cost only the routes that have them.
func TestLuaFreeRouteAllocs(t *testing.T) {
	addr := fastBackend(t, nil)
	plain := endpoint("GET", "/users/{id}", backend(addr, "/users/{id}"))
	scripted := endpoint("GET", "/lua/{id}", with(backend(addr, "/users/{id}"), func(b *gatewayv1.Backend) {
		b.LuaBackend = &gatewayv1.LuaScript{Pre: "local r = request.load()", Post: "local d = response.load():data()"}
	}))
	scripted.LuaProxy = &gatewayv1.LuaScript{Pre: "local r = request.load()"}
	p := mustBuild(t, snapshot(plain, scripted), plan.Deps{})
	lua := newCtx("GET", "/lua/42", "")
	if st := serveOnce(p.Serve, lua); st != 200 {
		t.Fatalf("lua route status %d: %s", st, bodyOf(lua))
	}
	ctx := newCtx("GET", "/users/42", "")
	for i := 0; i < 50; i++ {
		if st := serveOnce(p.Serve, ctx); st != 200 {
			t.Fatalf("warm-up status %d: %s", st, bodyOf(ctx))
		}
	}
	if n := testing.AllocsPerRun(200, func() { serveOnce(p.Serve, ctx) }); n != 0 {
		t.Errorf("route without Lua: %v allocs per request, want 0", n)
	}
}

// TestStatsTLSAllocs: over TLS, the /__stats TLS version and cipher
// counters cost no allocation per request either (the state is read from
// the *tls.Conn, not copied to the heap as fasthttp's
// TLSConnectionState does), for TLS 1.2 and 1.3 connections.
func TestStatsTLSAllocs(t *testing.T) {
	addr := fastBackend(t, nil)
	snap := snapshot(endpoint("GET", "/users/{id}", backend(addr, "/users/{id}")))
	snap.Service.Metrics = &gatewayv1.Metrics{Enabled: true}
	st := stats.New()
	p := mustBuild(t, snap, plan.Deps{Stats: st})
	ca := certtest.NewCA(t, "ca")
	pair := ca.Issue(t, "edge.test")
	cert, err := tls.X509KeyPair(pair.CertPEM, pair.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		version uint16
		key     string
	}{
		{"TLS12", tls.VersionTLS12, `"krakend.router.tls_version.VersionTLS12.count": 1301`},
		{"TLS13", tls.VersionTLS13, `"krakend.router.tls_version.VersionTLS13.count": 1301`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := tlsServerConn(t, &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: tc.version},
				&tls.Config{RootCAs: ca.Pool(), ServerName: "edge.test", MinVersion: tc.version, MaxVersion: tc.version})
			ctx := new(fasthttp.RequestCtx)
			ctx.Init2(conn, nil, false)
			newCtx("GET", "/users/42", "").Request.CopyTo(&ctx.Request)
			for range 1100 {
				if s := serveOnce(p.Serve, ctx); s != 200 {
					t.Fatalf("warm-up status %d: %s", s, bodyOf(ctx))
				}
			}
			if n := testing.AllocsPerRun(200, func() { serveOnce(p.Serve, ctx) }); n != 0 {
				t.Errorf("json proxy over %s with /__stats series: %v allocs per request, want 0", tc.name, n)
			}
			if !bytes.Contains(st.AppendJSON(nil), []byte(tc.key)) {
				t.Errorf("no %s in /__stats", tc.key)
			}
		})
	}
}

// tlsServerConn returns the server side of a loopback TLS connection whose
// handshake is done.
func tlsServerConn(t *testing.T, srv, cli *tls.Config) *tls.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	var cc *tls.Conn
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			cc = tls.Client(c, cli)
			err = cc.Handshake()
		}
		done <- err
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sc := tls.Server(c, srv)
	if err := sc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); sc.Close() })
	return sc
}

// TestOpenCensusPrometheusAllocs: telemetry/opencensus' Prometheus views,
// every tag on, cost the JSON proxy no allocation per request once a
// route's series exist, whatever its path_aggregation; so does the
// unsampled request's B3 propagation to the backend.
func TestOpenCensusPrometheusAllocs(t *testing.T) {
	addr := fastBackend(t, nil)
	for _, mode := range []string{"pattern", "lastparam", "off"} {
		t.Run(mode, func(t *testing.T) {
			reg := tracing.NewRegistry(tracing.Options{})
			t.Cleanup(reg.Close)
			snap := snapshot(endpoint("GET", "/users/{id}", backend(addr, "/users/{id}")))
			snap.Service.Opentelemetry = &gatewayv1.OpenTelemetry{ServiceName: "t", Global: &gatewayv1.TraceLayer{}, Opencensus: true,
				OcPrometheus: &gatewayv1.OpenCensusPrometheus{Port: 0, TagHost: true, TagPath: true, TagMethod: true, TagStatuscode: true, Router: true, Backend: true}}
			snap.Endpoints[0].Trace = &gatewayv1.TraceLayer{OcPathMode: mode, OcPath: "/users/{id}"}
			snap.Endpoints[0].Backends[0].Trace = &gatewayv1.TraceLayer{OcPathMode: mode, OcPath: "/users/{id}"}
			snap.Features = []string{"telemetry.opentelemetry", "telemetry.opencensus"}
			p := mustBuild(t, snap, plan.Deps{Tracers: reg})
			ctx := newCtx("GET", "/users/42", "")
			for range 50 {
				if st := serveOnce(p.Serve, ctx); st != 200 {
					t.Fatalf("warm-up status %d: %s", st, bodyOf(ctx))
				}
			}
			if n := testing.AllocsPerRun(200, func() { serveOnce(p.Serve, ctx) }); n != 0 {
				t.Errorf("json proxy with the OpenCensus Prometheus views (%s): %v allocs per request, want 0", mode, n)
			}
		})
	}
}
