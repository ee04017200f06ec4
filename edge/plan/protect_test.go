package plan_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/apigw/gateway/edge/auth"
	"github.com/apigw/gateway/edge/plan"
	"github.com/apigw/gateway/edge/qos"
	"github.com/apigw/gateway/edge/qos/clock"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// step is one request of a scenario and what the client must see.
type step struct {
	method  string // GET when empty
	path    string
	headers map[string]string

	wantStatus  int
	wantBody    string            // exact body, when set
	wantHeaders map[string]string // absent marks a header that must be missing
	check       func(t *testing.T, g got)
}

func runSteps(t *testing.T, addr string, steps []step) {
	t.Helper()
	for i, s := range steps {
		method := s.method
		if method == "" {
			method = "GET"
		}
		g := do(t, addr, method, s.path, s.headers, "")
		if g.Status != s.wantStatus {
			t.Errorf("step %d %s %s: status %d, want %d (body %q)", i, method, s.path, g.Status, s.wantStatus, g.Body)
		}
		if s.wantBody != "" && g.Body != s.wantBody {
			t.Errorf("step %d %s: body %q, want %q", i, s.path, g.Body, s.wantBody)
		}
		for k, want := range s.wantHeaders {
			v, ok := g.Headers[k]
			switch {
			case want == absent && ok:
				t.Errorf("step %d %s: header %s = %q, want none", i, s.path, k, v)
			case want != absent && v != want:
				t.Errorf("step %d %s: header %s = %q, want %q", i, s.path, k, v, want)
			}
		}
		if s.check != nil {
			s.check(t, g)
		}
	}
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

func TestJWT(t *testing.T) {
	t.Parallel()
	b := startBackends(t)
	i := startIDP(t)
	var revOffset atomic.Int64 // revocation clock skew: expires entries without sleeping
	rev := auth.NewRevocations(auth.RevocationsConfig{
		RebuildPeriod: -1,
		Logger:        zerolog.Nop(),
		Clock:         func() time.Time { return time.Now().Add(time.Duration(revOffset.Load())) },
	})
	t.Cleanup(rev.Close)
	reg := prometheus.NewRegistry()
	m, err := plan.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	deps := protectDeps(t, nil)
	deps.Revocations, deps.Metrics = rev, m

	me := endpoint("GET", "/me", backend(b.host, "/echo/u/{JWT.sub}/org/{JWT.org.id}"))
	me.Jwt = i.spec(func(s *gatewayv1.JWTValidator) {
		s.PropagateClaims = []*gatewayv1.ClaimHeader{{Claim: "sub", Header: "X-User"}, {Claim: "tenant", Header: "X-Tenant"}}
	})
	me.InputHeaders = []string{"X-User", "X-Tenant"}
	admin := endpoint("GET", "/admin", backend(b.host, "/small"))
	admin.Jwt = i.spec(func(s *gatewayv1.JWTValidator) { s.Roles = []string{"admin"} })
	snap := snapshot(me, admin)
	snap.Service.Revoker = &gatewayv1.Revoker{TokenKeys: []string{"jti", "sub"}}
	e := startEdge(t, mustBuild(t, snap, deps))

	valid := i.token(t, map[string]any{"tenant": "acme", "org": map[string]any{"id": "o-7"}})
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + parts[1][:len(parts[1])-2] + "AA." + parts[2]
	unauthorized := ``

	tests := []struct {
		name string
		step step
	}{
		{"valid token: claims propagated, placeholders filled", step{
			path: "/me", headers: bearer(valid), wantStatus: 200,
			check: func(t *testing.T, g got) {
				m := echoed(t, g.Body, "")
				if m["path"] != "/echo/u/alice/org/o-7" {
					t.Errorf("backend path %v, want /echo/u/alice/org/o-7", m["path"])
				}
				for k, want := range map[string]string{"X-User": "alice", "X-Tenant": "acme"} {
					if v, _ := echoHeader(m, k); v != want {
						t.Errorf("backend header %s = %q, want %q", k, v, want)
					}
				}
				if v, ok := echoHeader(m, "Authorization"); ok {
					t.Errorf("Authorization forwarded without input_headers: %q", v)
				}
			},
		}},
		{"a claim-less propagated header cannot be smuggled by the client", step{
			path: "/me", headers: map[string]string{"Authorization": "Bearer " + i.token(t, map[string]any{"jti": "t-2"}), "X-Tenant": "evil"},
			wantStatus: 200,
			check: func(t *testing.T, g got) {
				m := echoed(t, g.Body, "")
				if v, ok := echoHeader(m, "X-Tenant"); ok {
					t.Errorf("backend got client's X-Tenant %q", v)
				}
				if m["path"] != "/echo/u/alice/org/%7BJWT.org.id%7D" {
					t.Errorf("missing claim: backend path %v, want the placeholder kept (KrakenD)", m["path"])
				}
			},
		}},
		{"missing token", step{path: "/me", wantStatus: 401, wantBody: unauthorized,
			wantHeaders: map[string]string{"Content-Type": ""}}},
		{"expired token", step{path: "/me", wantStatus: 401, wantBody: unauthorized,
			headers: bearer(i.token(t, map[string]any{"jti": "t-3", "exp": time.Now().Add(-time.Hour).Unix()}))}},
		{"tampered payload", step{path: "/me", headers: bearer(tampered), wantStatus: 401, wantBody: unauthorized}},
		{"wrong issuer", step{path: "/me", wantStatus: 401, wantBody: unauthorized,
			headers: bearer(i.token(t, map[string]any{"jti": "t-4", "iss": "https://evil.test"}))}},
		{"not a JWT", step{path: "/me", headers: bearer("abc.def"), wantStatus: 401, wantBody: unauthorized}},
		{"missing role", step{path: "/admin", headers: bearer(i.token(t, map[string]any{"jti": "t-5", "roles": []string{"user"}})),
			wantStatus: 403, wantBody: ``}},
		{"role present", step{path: "/admin", headers: bearer(i.token(t, map[string]any{"jti": "t-6", "roles": []string{"user", "admin"}})),
			wantStatus: 200}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runSteps(t, e.addr, []step{tc.step})
		})
	}

	t.Run("revocation, then expiry of the revocation", func(t *testing.T) {
		tok := i.token(t, map[string]any{"jti": "t-revoked", "sub": "mallory"})
		other := i.token(t, map[string]any{"jti": "t-other", "sub": "mallory"})
		runSteps(t, e.addr, []step{{path: "/me", headers: bearer(tok), wantStatus: 200}}) // cached as valid
		exp := time.Now().Add(time.Duration(revOffset.Load()) + time.Minute).UnixMilli()
		if err := rev.ApplyDelta([]*gatewayv1.RevocationEntry{
			{Seq: rev.Seq() + 1, Claim: "jti", Value: "t-revoked", ExpiresUnixMs: exp},
		}, rev.Seq(), rev.Seq()+1); err != nil {
			t.Fatal(err)
		}
		runSteps(t, e.addr, []step{
			{path: "/me", headers: bearer(tok), wantStatus: 401, wantBody: unauthorized},
			{path: "/me", headers: bearer(other), wantStatus: 200}, // another jti of the same sub
			{path: "/me", headers: bearer(valid), wantStatus: 200},
		})
		// Revoke every token of a subject (token_keys includes sub).
		if err := rev.ApplyDelta([]*gatewayv1.RevocationEntry{
			{Seq: rev.Seq() + 1, Claim: "sub", Value: "mallory", ExpiresUnixMs: exp},
		}, rev.Seq(), rev.Seq()+1); err != nil {
			t.Fatal(err)
		}
		runSteps(t, e.addr, []step{{path: "/me", headers: bearer(other), wantStatus: 401}})
		revOffset.Add(int64(2 * time.Minute)) // both revocations expire; the tokens are still valid
		runSteps(t, e.addr, []step{
			{path: "/me", headers: bearer(tok), wantStatus: 200},
			{path: "/me", headers: bearer(other), wantStatus: 200},
		})
	})

	if n := counterValue(t, reg, "gw_edge_auth_rejections_total", `reason="missing"`); n < 1 {
		t.Errorf("gw_edge_auth_rejections_total{reason=missing} = %v", n)
	}
}

func TestJWTBuildErrors(t *testing.T) {
	t.Parallel()
	i := startIDP(t)
	type pk struct{ Path, Kind string }
	ep := endpoint("GET", "/a", backend("127.0.0.1:1", "/a"))
	ep.Jwt = i.spec(func(s *gatewayv1.JWTValidator) { s.Alg = "none"; s.DisableJwkSecurity = false })
	snap := snapshot(ep)
	snap.Service.Revoker = &gatewayv1.Revoker{}
	deps := protectDeps(t, nil) // no Revocations
	_, err := plan.Build(snap, deps)
	be, ok := err.(*plan.BuildError)
	if !ok {
		t.Fatalf("Build = %v, want *BuildError", err)
	}
	var gotPK []pk
	for _, v := range be.Violations {
		gotPK = append(gotPK, pk{v.GetPath(), v.GetKind()})
	}
	want := []pk{
		{"service.extra_config.auth/revoker", "unsupported"},
		{"endpoints[0].extra_config.auth/validator.alg", "unsupported"},
		{"endpoints[0].extra_config.auth/validator.jwk_url", "invalid"},
	}
	if d := cmp.Diff(want, gotPK); d != "" {
		t.Errorf("violations (-want +got):\n%s", d)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now())
	ctl := startCtlBackend(t)
	i := startIDP(t)
	deps := protectDeps(t, clk)

	perClient := endpoint("GET", "/client", backend(ctl.host, "/client"))
	perClient.RateLimit = &gatewayv1.RouterRateLimit{ClientMaxRate: 3, EveryMs: 60_000, Strategy: "ip"}
	global := endpoint("GET", "/global", backend(ctl.host, "/global"))
	global.RateLimit = &gatewayv1.RouterRateLimit{MaxRate: 2, EveryMs: 60_000}
	byClaim := endpoint("GET", "/claim", backend(ctl.host, "/claim"))
	byClaim.Jwt = i.spec(func(s *gatewayv1.JWTValidator) {
		s.PropagateClaims = []*gatewayv1.ClaimHeader{{Claim: "sub", Header: "X-User"}}
	})
	byClaim.RateLimit = &gatewayv1.RouterRateLimit{ClientMaxRate: 1, EveryMs: 60_000, Strategy: "header", Key: "X-User"}
	byParam := endpoint("GET", "/p/{id}", backend(ctl.host, "/p/{id}"))
	byParam.RateLimit = &gatewayv1.RouterRateLimit{ClientMaxRate: 1, EveryMs: 60_000, Strategy: "param", Key: "id"}
	byHeader := endpoint("GET", "/h", backend(ctl.host, "/h"))
	byHeader.RateLimit = &gatewayv1.RouterRateLimit{ClientMaxRate: 1, EveryMs: 60_000, Strategy: "header", Key: "X-Api-Key"}
	both := endpoint("GET", "/both", backend(ctl.host, "/both"))
	both.RateLimit = &gatewayv1.RouterRateLimit{MaxRate: 2, ClientMaxRate: 5, EveryMs: 60_000}
	e := startEdge(t, mustBuild(t, snapshot(perClient, global, byClaim, byParam, byHeader, both), deps))

	alice, bob := i.token(t, nil), i.token(t, map[string]any{"sub": "bob", "jti": "t-bob"})
	ok := func(path string, hdr map[string]string) step { return step{path: path, headers: hdr, wantStatus: 200} }
	tooMany := func(path string, hdr map[string]string) step {
		return step{path: path, headers: hdr, wantStatus: 429, wantBody: ``}
	}
	tests := []struct {
		name     string
		steps    []step
		path     string // backend path counted
		wantHits int64
	}{
		{
			name: "client limit: burst then 429 with headers",
			steps: []step{
				{path: "/client", wantStatus: 200, wantHeaders: map[string]string{
					"X-Ratelimit-Limit": "3", "X-Ratelimit-Remaining": "2", "Retry-After": absent}},
				ok("/client", nil), ok("/client", nil),
				{path: "/client", wantStatus: 429, wantBody: ``, wantHeaders: map[string]string{
					"Retry-After": "20", "X-Ratelimit-Limit": "3", "X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": "60",
					"Content-Type": ""}},
				tooMany("/client", nil),
			},
			path: "/client", wantHits: 3,
		},
		{
			name: "global limit: 503",
			steps: []step{
				ok("/global", nil), ok("/global", nil),
				{path: "/global", wantStatus: 503, wantBody: ``, wantHeaders: map[string]string{
					"Retry-After": "30", "X-Ratelimit-Limit": "2", "X-Ratelimit-Remaining": "0"}},
			},
			path: "/global", wantHits: 2,
		},
		{
			name: "client checked before global; a global 503 does not spend the client's quota",
			steps: []step{
				ok("/both", nil), ok("/both", nil),
				{path: "/both", wantStatus: 503},
				{path: "/both", wantStatus: 503},
			},
			path: "/both", wantHits: 2,
		},
		{
			name: "header strategy sees the propagated claim (JWT runs first)",
			steps: []step{
				ok("/claim", bearer(alice)), tooMany("/claim", bearer(alice)),
				ok("/claim", bearer(bob)),
				{path: "/claim", wantStatus: 401}, // no token: JWT rejects before the limiter
			},
			path: "/claim", wantHits: 2,
		},
		{
			name:  "param strategy",
			steps: []step{ok("/p/1", nil), tooMany("/p/1", nil), ok("/p/2", nil)},
		},
		{
			name: "header strategy: an empty key is a 429",
			steps: []step{
				ok("/h", map[string]string{"X-Api-Key": "k1"}), tooMany("/h", map[string]string{"X-Api-Key": "k1"}),
				ok("/h", map[string]string{"X-Api-Key": "k2"}), tooMany("/h", nil),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := ctl.hits.Load()
			runSteps(t, e.addr, tc.steps)
			if tc.path == "" {
				return
			}
			if got := ctl.hits.Load() - before; got != tc.wantHits {
				t.Errorf("backend saw %d calls, want %d (the limit)", got, tc.wantHits)
			}
		})
	}
	// Tokens come back with time.
	clk.Advance(20 * time.Second)
	runSteps(t, e.addr, []step{ok("/client", nil), tooMany("/client", nil)})
}

func TestCircuitBreaker(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now())
	ctl := startCtlBackend(t)
	b := startBackends(t)
	deps := protectDeps(t, clk)
	cb := func() *gatewayv1.CircuitBreaker {
		return &gatewayv1.CircuitBreaker{MaxErrors: 1, TimeoutMs: 10_000, IntervalMs: 60_000}
	}
	single := endpoint("GET", "/cb", with(backend(ctl.host, "/x"), func(be *gatewayv1.Backend) { be.CircuitBreaker = cb() }))
	noop := with(endpoint("GET", "/cb-noop", with(backend(ctl.host, "/y"), func(be *gatewayv1.Backend) {
		be.CircuitBreaker = cb()
		be.Encoding = "no-op"
	})), func(e *gatewayv1.Endpoint) { e.OutputEncoding = "no-op" })
	agg := endpoint("GET", "/cb-agg",
		with(backend(ctl.host, "/z"), func(be *gatewayv1.Backend) { be.CircuitBreaker = cb(); be.Group = "flaky" }),
		with(backend(b.host, "/small"), func(be *gatewayv1.Backend) { be.Group = "good" }))
	e := startEdge(t, mustBuild(t, snapshot(single, noop, agg), deps))

	unavailable := func(path string) step {
		return step{path: path, wantStatus: 503, wantBody: ``,
			wantHeaders: map[string]string{"Retry-After": "10"}}
	}
	for _, path := range []string{"/cb", "/cb-noop"} {
		t.Run(path, func(t *testing.T) {
			ctl.fail.Store(true)
			const wantFail = 500 // json: our fixed 500; no-op: the backend's own 500, passed through
			before := ctl.hits.Load()
			runSteps(t, e.addr, []step{
				{path: path, wantStatus: wantFail},
				{path: path, wantStatus: wantFail}, // 2 consecutive failures > max_errors 1: open
				unavailable(path),
				unavailable(path),
			})
			if got := ctl.hits.Load() - before; got != 2 {
				t.Errorf("backend called %d times, want 2 (an open circuit does not call it)", got)
			}
			clk.Advance(10 * time.Second) // half-open: one probe, which fails and re-opens
			runSteps(t, e.addr, []step{{path: path, wantStatus: wantFail}, unavailable(path)})
			clk.Advance(10 * time.Second)
			ctl.fail.Store(false) // recovered: the probe succeeds and closes the circuit
			runSteps(t, e.addr, []step{{path: path, wantStatus: 200}, {path: path, wantStatus: 200}, {path: path, wantStatus: 200}})
			if got := ctl.hits.Load() - before; got != 6 {
				t.Errorf("backend called %d times, want 6", got)
			}
		})
	}
	t.Run("aggregate: an open circuit is a failed part", func(t *testing.T) {
		ctl.fail.Store(true)
		runSteps(t, e.addr, []step{{path: "/cb-agg", wantStatus: 200}, {path: "/cb-agg", wantStatus: 200}})
		before := ctl.hits.Load()
		runSteps(t, e.addr, []step{{path: "/cb-agg", wantStatus: 200, wantHeaders: map[string]string{"X-Krakend-Completed": "false"},
			check: func(t *testing.T, g got) {
				if d := jsonDiff(`{"good":{"a":1,"b":"two"}}`, g.Body); d != "" {
					t.Errorf("partial body (-want +got):\n%s", d)
				}
			}}})
		if ctl.hits.Load() != before {
			t.Error("open circuit called the backend")
		}
		ctl.fail.Store(false)
	})
}

// TestRateLimitDoesNotTripBreaker: backend rate-limit rejections are
// backend errors for the client but never breaker failures (KrakenD counts
// them), and calls refused by the breaker spend no rate-limit token.
func TestRateLimitDoesNotTripBreaker(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now())
	ctl := startCtlBackend(t)
	deps := protectDeps(t, clk)
	ep := endpoint("GET", "/rl", with(backend(ctl.host, "/rl"), func(be *gatewayv1.Backend) {
		be.RateLimit = &gatewayv1.BackendRateLimit{MaxRate: 1, Capacity: 1, EveryMs: 60_000}
		be.CircuitBreaker = &gatewayv1.CircuitBreaker{MaxErrors: 0, TimeoutMs: 10_000} // trips on the first failure
	}))
	e := startEdge(t, mustBuild(t, snapshot(ep), deps))
	internal := step{path: "/rl", wantStatus: 500, wantBody: ``}
	runSteps(t, e.addr, []step{{path: "/rl", wantStatus: 200}, internal, internal, internal})
	if n := ctl.hits.Load(); n != 1 {
		t.Fatalf("backend saw %d calls, want 1 (max_rate 1)", n)
	}
	clk.Advance(60 * time.Second)
	// Had the rejections counted, the circuit would be open now (503).
	runSteps(t, e.addr, []step{{path: "/rl", wantStatus: 200}})
}

func TestHTTPCache(t *testing.T) {
	t.Parallel()
	ctl := startCtlBackend(t)
	ctl.cacheable.Store(true)
	deps := protectDeps(t, nil)
	jsonEP := endpoint("GET", "/c", with(backend(ctl.host, "/c"), func(be *gatewayv1.Backend) { be.HttpCache = &gatewayv1.HTTPCache{} }))
	noop := with(endpoint("GET", "/c-noop", with(backend(ctl.host, "/c-noop"), func(be *gatewayv1.Backend) {
		be.HttpCache = &gatewayv1.HTTPCache{MaxSize: 1 << 20, MaxItems: 10}
		be.Encoding = "no-op"
	})), func(e *gatewayv1.Endpoint) { e.OutputEncoding = "no-op" })
	post := endpoint("POST", "/c-post", with(backend(ctl.host, "/c-post"), func(be *gatewayv1.Backend) { be.HttpCache = &gatewayv1.HTTPCache{} }))
	e := startEdge(t, mustBuild(t, snapshot(jsonEP, noop, post), deps))

	tests := []struct {
		name     string
		method   string
		path     string
		wantHits int64 // backend calls for 3 requests
		wantBody string
	}{
		{"json pipe: hits skip the backend", "GET", "/c", 1, `{"n":1,"ok":true}`},
		{"no-op pipe: hits skip the backend", "GET", "/c-noop", 1, ""},
		{"POST is never cached", "POST", "/c-post", 3, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := ctl.hits.Load()
			var first string
			for n := 0; n < 3; n++ {
				g := do(t, e.addr, tc.method, tc.path, nil, "")
				if g.Status != 200 {
					t.Fatalf("status %d: %s", g.Status, g.Body)
				}
				if n == 0 {
					first = g.Body
				} else if tc.wantHits == 1 && g.Body != first {
					t.Errorf("request %d: body %q, want the cached %q", n, g.Body, first)
				}
				if tc.path == "/c-noop" && n > 0 {
					if g.Headers["Age"] == "" || g.Headers["Cache-Control"] != "public, max-age=60" {
						t.Errorf("cached no-op answer headers %v, want Age and the backend's Cache-Control", g.Headers)
					}
				}
			}
			if got := ctl.hits.Load() - before; got != tc.wantHits {
				t.Errorf("backend saw %d calls for 3 requests, want %d", got, tc.wantHits)
			}
		})
	}
}

// TestStateSurvivesRebuild: QoS state lives in the registry keyed by
// route/backend identity and settings, so a rebuilt plan keeps the
// counters of unchanged routes and a changed setting starts fresh.
func TestStateSurvivesRebuild(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now())
	ctl := startCtlBackend(t)
	deps := protectDeps(t, clk)
	mk := func(rate float64, maxErrors uint32) *gatewayv1.Snapshot {
		rl := endpoint("GET", "/rl", backend(ctl.host, "/rl"))
		rl.RateLimit = &gatewayv1.RouterRateLimit{ClientMaxRate: rate, EveryMs: 60_000}
		fixed := endpoint("GET", "/fixed", backend(ctl.host, "/fixed"))
		fixed.RateLimit = &gatewayv1.RouterRateLimit{ClientMaxRate: 1, EveryMs: 60_000}
		cb := endpoint("GET", "/cb", with(backend(ctl.host, "/cb"), func(be *gatewayv1.Backend) {
			be.CircuitBreaker = &gatewayv1.CircuitBreaker{MaxErrors: maxErrors, TimeoutMs: 60_000}
		}))
		return snapshot(rl, fixed, cb)
	}
	build := func(s *gatewayv1.Snapshot) *plan.Plan {
		p, err := plan.Build(s, deps)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p1 := build(mk(2, 0))
	e := startEdge(t, p1)
	runSteps(t, e.addr, []step{
		{path: "/rl", wantStatus: 200}, {path: "/rl", wantStatus: 200}, {path: "/rl", wantStatus: 429},
		{path: "/fixed", wantStatus: 200}, {path: "/fixed", wantStatus: 429},
	})
	ctl.fail.Store(true)
	runSteps(t, e.addr, []step{
		{path: "/cb", wantStatus: 500}, {path: "/cb", wantStatus: 503},
	})
	ctl.fail.Store(false)

	swap := func(p *plan.Plan) { e.cur.Swap(p).Release() }
	swap(build(mk(2, 0))) // identical snapshot
	before := ctl.hits.Load()
	runSteps(t, e.addr, []step{
		{path: "/rl", wantStatus: 429}, {path: "/fixed", wantStatus: 429}, {path: "/cb", wantStatus: 503},
	})
	if ctl.hits.Load() != before {
		t.Error("the rebuilt plan called the backend behind an open circuit")
	}

	swap(build(mk(3, 1))) // changed settings: fresh limiter and breaker
	runSteps(t, e.addr, []step{
		{path: "/rl", wantStatus: 200},
		{path: "/fixed", wantStatus: 429}, // unchanged route: still exhausted
		{path: "/cb", wantStatus: 200},
	})
	if n := deps.QoS.Len(); n != 5 {
		t.Errorf("registry holds %d components, want 5 (3 in use, 2 replaced ones in their grace period)", n)
	}
	e.cur.Load().Release()
	clk.Advance(qos.DefaultGrace)
	deps.QoS.Sweep()
	if n := deps.QoS.Len(); n != 0 {
		t.Errorf("registry holds %d components after every plan was released and the grace passed, want 0", n)
	}
}

// TestIPKeyNeedsTrustedProxies: plan building refuses strategy ip with a
// header key when router.trusted_proxies is empty (the control plane's
// validator does too), so a hand-made snapshot cannot reopen the bypass.
func TestIPKeyNeedsTrustedProxies(t *testing.T) {
	t.Parallel()
	ep := endpoint("GET", "/a", backend("127.0.0.1:1", "/a"))
	ep.RateLimit = &gatewayv1.RouterRateLimit{ClientMaxRate: 2, EveryMs: 60_000, Strategy: "ip", Key: "X-Forwarded-For"}
	_, err := plan.Build(snapshot(ep), protectDeps(t, nil))
	be, ok := err.(*plan.BuildError)
	if !ok || len(be.Violations) != 1 || be.Violations[0].GetPath() != "endpoints[0].extra_config.qos/ratelimit/router.key" {
		t.Fatalf("Build = %v, want one violation at endpoints[0].extra_config.qos/ratelimit/router.key", err)
	}
	snap := snapshot(ep)
	snap.Service.Router.TrustedProxies = []string{"10.0.0.0/8"}
	mustBuild(t, snap, protectDeps(t, nil))
}
