package plan_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/apigw/gateway/edge/plan"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func martianHeader(scope, name, value string) *gatewayv1.MartianModifier {
	return &gatewayv1.MartianModifier{Scope: []string{scope}, Kind: &gatewayv1.MartianModifier_HeaderModifier{
		HeaderModifier: &gatewayv1.MartianHeader{Name: name, Value: value}}}
}

func martianBody(scope, ct, body string) *gatewayv1.MartianModifier {
	return &gatewayv1.MartianModifier{Scope: []string{scope}, Kind: &gatewayv1.MartianModifier_BodyModifier{
		BodyModifier: &gatewayv1.MartianBody{ContentType: ct, Body: []byte(body)}}}
}

func martianGroup(mods ...*gatewayv1.MartianModifier) *gatewayv1.MartianModifier {
	return &gatewayv1.MartianModifier{Kind: &gatewayv1.MartianModifier_FifoGroup{
		FifoGroup: &gatewayv1.MartianGroup{Modifiers: mods}}}
}

// TestServiceSecurity: CORS answers preflights for every path before
// routing; security/http checks the host and sets its headers on every
// answer.
func TestServiceSecurity(t *testing.T) {
	t.Parallel()
	b := startBackends(t)
	snap := snapshot(
		endpoint("GET", "/small", backend(b.host, "/small")),
		endpoint("POST", "/small", backend(b.host, "/created")),
	)
	snap.Service.Cors = &gatewayv1.CORS{
		AllowOrigins:  []string{"https://app.example", "https://*.trusted.example"},
		AllowMethods:  []string{"GET", "POST"},
		AllowHeaders:  []string{"Authorization", "Content-Type"},
		ExposeHeaders: []string{"X-Krakend-Completed"},
		MaxAgeMs:      600_000,
	}
	snap.Service.Security = &gatewayv1.SecurityHTTP{
		AllowedHosts:       []string{"api.example"},
		FrameDeny:          true,
		ContentTypeNosniff: true,
		StsSeconds:         3600,
		ForceStsHeader:     true,
		ReferrerPolicy:     "no-referrer",
	}
	e := startEdge(t, mustBuild(t, snap, plan.Deps{}))
	host := "api.example"
	preflight := func(path, origin, method string) map[string]string {
		return map[string]string{"Host": host, "Origin": origin, "Access-Control-Request-Method": method,
			"Access-Control-Request-Headers": "authorization"}
	}
	secureHeaders := map[string]string{
		"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
		"Strict-Transport-Security": "max-age=3600", "Referrer-Policy": "no-referrer",
	}
	merge := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	tests := []struct {
		name string
		step step
	}{
		{"preflight on an unknown path is answered before routing", step{
			method: "OPTIONS", path: "/nowhere", headers: preflight("/nowhere", "https://app.example", "POST"),
			wantStatus: 204, wantHeaders: map[string]string{
				"Access-Control-Allow-Origin": "https://app.example", "Access-Control-Allow-Methods": "POST",
				"Access-Control-Allow-Headers": "authorization", "Access-Control-Max-Age": "600",
				"X-Frame-Options": absent, // nothing after CORS runs for a preflight
			}}},
		{"preflight from a wildcard origin", step{
			method: "OPTIONS", path: "/small", headers: preflight("/small", "https://a.trusted.example", "GET"),
			wantStatus: 204, wantHeaders: map[string]string{"Access-Control-Allow-Origin": "https://a.trusted.example"}}},
		{"preflight from another origin gets no CORS grant", step{
			method: "OPTIONS", path: "/small", headers: preflight("/small", "https://evil.example", "GET"),
			wantStatus: 204, wantHeaders: map[string]string{"Access-Control-Allow-Origin": absent}}},
		{"actual cross-origin request: CORS and security headers", step{
			path: "/small", headers: map[string]string{"Host": host, "Origin": "https://app.example"},
			wantStatus: 200, wantHeaders: merge(secureHeaders, map[string]string{
				"Access-Control-Allow-Origin": "https://app.example", "Vary": "Origin",
				"Access-Control-Expose-Headers": "X-Krakend-Completed", "X-Krakend-Completed": "true",
			})}},
		{"security headers on a 404 too", step{
			path: "/nowhere", headers: map[string]string{"Host": host},
			wantStatus: 404, wantHeaders: secureHeaders}},
		{"host not allowed", step{
			path: "/small", headers: map[string]string{"Host": "evil.example"},
			wantStatus: 400, wantBody: ``}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runSteps(t, e.addr, []step{tc.step}) })
	}
}

// TestMartian: request modifiers change what the backend receives;
// response modifiers change what the gateway decodes and, on a no-op
// endpoint, the headers the client gets.
func TestMartian(t *testing.T) {
	t.Parallel()
	b := startBackends(t)
	reqMods := endpoint("POST", "/m/req", with(backend(b.host, "/echo/m"), func(be *gatewayv1.Backend) {
		be.Martian = martianGroup(
			martianHeader("request", "X-Martian", "yes"),
			&gatewayv1.MartianModifier{Scope: []string{"request"}, Kind: &gatewayv1.MartianModifier_QuerystringModifier{
				QuerystringModifier: &gatewayv1.MartianQueryString{Name: "injected", Value: "1"}}},
			martianBody("request", "text/plain", "replaced body"),
			&gatewayv1.MartianModifier{Scope: []string{"request"}, Kind: &gatewayv1.MartianModifier_HeaderBlacklist{
				HeaderBlacklist: &gatewayv1.MartianHeaderList{Names: []string{"X-Secret"}}}},
		)
	}))
	reqMods.InputHeaders = []string{"X-Secret", "Content-Type"}
	respBody := endpoint("GET", "/m/resp", with(backend(b.host, "/small"), func(be *gatewayv1.Backend) {
		be.Martian = martianBody("response", "application/json", `{"patched":true}`)
	}))
	respHeader := with(endpoint("GET", "/m/noop", with(backend(b.host, "/noop"), func(be *gatewayv1.Backend) {
		be.Encoding = "no-op"
		be.Martian = martianGroup(martianHeader("response", "X-From-Martian", "1"), martianHeader("request", "X-Req", "r"))
	})), func(e *gatewayv1.Endpoint) { e.OutputEncoding = "no-op" })
	e := startEdge(t, mustBuild(t, snapshot(reqMods, respBody, respHeader), plan.Deps{}))

	runSteps(t, e.addr, []step{
		{method: "POST", path: "/m/req?x=1", headers: map[string]string{"X-Secret": "s", "Content-Type": "application/json"},
			wantStatus: 200, check: func(t *testing.T, g got) {
				m := echoed(t, g.Body, "")
				if m["body"] != "replaced body" || m["query"] != "injected=1" {
					t.Errorf("backend saw body %q query %q", m["body"], m["query"])
				}
				for k, want := range map[string]string{"X-Martian": "yes", "Content-Type": "text/plain"} {
					if v, _ := echoHeader(m, k); v != want {
						t.Errorf("backend header %s = %q, want %q", k, v, want)
					}
				}
				if v, ok := echoHeader(m, "X-Secret"); ok {
					t.Errorf("blacklisted header reached the backend: %q", v)
				}
			}},
		{path: "/m/resp", wantStatus: 200, wantBody: `{"patched":true}`},
		{path: "/m/noop", wantStatus: 202, wantHeaders: map[string]string{"X-From-Martian": "1", "X-Backend": "yes"}},
	})
}

// TestJSONSchema: an invalid or missing body is a 400 before any backend
// is called, after JWT and rate limiting.
func TestJSONSchema(t *testing.T) {
	t.Parallel()
	ctl := startCtlBackend(t)
	i := startIDP(t)
	deps := protectDeps(t, nil)
	const doc = `{"type":"object","required":["name"],"properties":{"name":{"type":"string","minLength":1},"age":{"type":"integer"}}}`
	ep := endpoint("POST", "/users", backend(ctl.host, "/users"))
	ep.JsonSchema = []byte(doc)
	authed := endpoint("POST", "/authed", backend(ctl.host, "/authed"))
	authed.JsonSchema = []byte(doc)
	authed.Jwt = i.spec()
	e := startEdge(t, mustBuild(t, snapshot(ep, authed), deps))
	badRequest := ``
	tests := []struct {
		name, path, body string
		headers          map[string]string
		wantStatus       int
		wantBody         string
		wantCalled       bool
	}{
		{"valid", "/users", `{"name":"ann","age":3}`, nil, 200, "", true},
		{"missing required property", "/users", `{"age":3}`, nil, 400, badRequest, false},
		{"wrong type", "/users", `{"name":"ann","age":"three"}`, nil, 400, badRequest, false},
		{"empty body", "/users", ``, nil, 400, badRequest, false},
		{"not JSON", "/users", `{"name":`, nil, 400, badRequest, false},
		{"JWT runs first", "/authed", `{}`, nil, 401, ``, false},
		{"JWT then schema", "/authed", `{}`, bearer(i.token(t, nil)), 400, badRequest, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := ctl.hits.Load()
			g := do(t, e.addr, "POST", tc.path, tc.headers, tc.body)
			if g.Status != tc.wantStatus || (tc.wantBody != "" && g.Body != tc.wantBody) {
				t.Errorf("got %d %q, want %d %q", g.Status, g.Body, tc.wantStatus, tc.wantBody)
			}
			if called := ctl.hits.Load() != before; called != tc.wantCalled {
				t.Errorf("backend called: %v, want %v", called, tc.wantCalled)
			}
		})
	}
}

func TestProtectBuildErrors(t *testing.T) {
	t.Parallel()
	const h = "127.0.0.1:1"
	type pk struct{ Path, Kind string }
	tests := []struct {
		name string
		snap func() *gatewayv1.Snapshot
		want []pk
	}{
		{
			name: "rate limit param that is not a parameter",
			snap: func() *gatewayv1.Snapshot {
				ep := endpoint("GET", "/a/{id}", backend(h, "/a"))
				ep.RateLimit = &gatewayv1.RouterRateLimit{ClientMaxRate: 1, Strategy: "param", Key: "user"}
				return snapshot(ep)
			},
			want: []pk{{"endpoints[0].extra_config.qos/ratelimit/router.key", "not_found"}},
		},
		{
			name: "bad limiter, breaker, schema and martian",
			snap: func() *gatewayv1.Snapshot {
				ep := endpoint("GET", "/a", with(backend(h, "/a"), func(be *gatewayv1.Backend) {
					be.CircuitBreaker = &gatewayv1.CircuitBreaker{MaxErrors: 1, IntervalMs: -5}
					be.Martian = martianHeader("request", "bad header", "x")
				}))
				ep.RateLimit = &gatewayv1.RouterRateLimit{ClientMaxRate: 1, Strategy: "cookie"}
				ep.JsonSchema = []byte(`{"type": 12}`)
				return snapshot(ep)
			},
			want: []pk{
				{"endpoints[0].extra_config.qos/ratelimit/router", "invalid"},
				{"endpoints[0].extra_config.validation/json-schema", "invalid"},
				{"endpoints[0].backend[0].extra_config.qos/circuit-breaker", "invalid"},
			},
		},
		{
			name: "bad martian",
			snap: func() *gatewayv1.Snapshot {
				return snapshot(endpoint("GET", "/a", with(backend(h, "/a"), func(be *gatewayv1.Backend) {
					be.Martian = martianHeader("request", "bad header", "x")
				})))
			},
			want: []pk{{"endpoints[0].backend[0].extra_config.modifier/martian", "invalid"}},
		},
		{
			name: "bad CORS and security/http",
			snap: func() *gatewayv1.Snapshot {
				s := snapshot(endpoint("GET", "/a", backend(h, "/a")))
				s.Service.Cors = &gatewayv1.CORS{AllowOrigins: []string{"https://*.*.example"}}
				s.Service.Security = &gatewayv1.SecurityHTTP{StsSeconds: -1}
				return s
			},
			want: []pk{{"service.extra_config.security/cors", "invalid"}, {"service.extra_config.security/http", "invalid"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			deps := protectDeps(t, nil)
			_, err := plan.Build(tc.snap(), deps)
			var be *plan.BuildError
			if !errors.As(err, &be) {
				t.Fatalf("Build = %v, want a *BuildError", err)
			}
			var got []pk
			for _, v := range be.Violations {
				got = append(got, pk{v.GetPath(), v.GetKind()})
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("violations (-want +got):\n%s\n%v", diff, err)
			}
			if n := deps.Upstreams.Len(); n != 0 {
				t.Errorf("a failed Build keeps %d upstream clients", n)
			}
		})
	}
}
