package plan_test

import (
	"encoding/json"
	"testing"

	"github.com/apigw/gateway/edge/plan"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// luaServicePre is the service-level script of TestLuaService: it reads
// the request through krakend-lua's ctx object, fails on demand, and makes
// one change per marker found in the URL.
const luaServicePre = `local r = ctx.load(); local u = r:url()
if string.find(u, 'err418') then custom_error('boom', 418) end
if string.find(u, 'rterr') then local x = nil; x.y = 1 end
r:headers('X-Order', svc_tag()); r:headers('X-Svc-Url', u); r:headers('X-Svc-Method', r:method())
r:headers('X-Svc-Param', r:params('id')); r:headers('X-Svc-Body', r:body()); r:headers('X-Client', nil)
if string.find(u, 'setq') then r:query('added', 'yes') end
if string.find(u, 'setp') then r:params('id', 'changed') end
if string.find(u, 'seturl') then r:url('/other/path?z=9') end`

// TestLuaService serves a plan whose service has a modifier/lua-endpoint
// pre (with a source file) in front of a real HTTP backend, and checks
// what KrakenD CE v2.12.1 answered for the same configuration: the script
// runs before the endpoint's own lua-endpoint, for routes and for the
// 404/405 answers, not for the trailing-slash redirect; its changes reach
// the backend through the endpoint's filters; every error, custom_error's
// included, is an empty 500.
func TestLuaService(t *testing.T) {
	t.Parallel()
	be := startBackends(t)
	a := endpoint("GET", "/a/{id}", backend(be.host, "/echo/{id}"))
	a.InputHeaders = []string{"X-Order", "X-Svc-Url", "X-Svc-Method", "X-Svc-Param", "X-Svc-Body", "X-Client"}
	a.InputQueryStrings = []string{"added", "z", "q"}
	b := endpoint("GET", "/b/{id}", backend(be.host, "/echo/{id}"))
	b.InputHeaders = []string{"X-Order"}
	b.LuaEndpoint = &gatewayv1.LuaScript{Pre: `local r = ctx.load(); r:headers('X-Order', r:headers('X-Order') .. ',ep')`}
	c := endpoint("POST", "/c", backend(be.host, "/echo/c"))
	c.InputHeaders = []string{"X-Order", "X-Svc-Body"}
	snap := snapshot(a, b, c)
	snap.Service.LuaEndpoint = &gatewayv1.LuaScript{
		Sources:       []*gatewayv1.LuaSource{{Name: "h.lua", Text: "function svc_tag()\n  return 'svc'\nend\n"}},
		Pre:           luaServicePre,
		AllowOpenLibs: true,
	}
	e := startEdge(t, mustBuild(t, snap, plan.Deps{}))

	const none = "\x00absent"
	type echo struct {
		Method, Path, Query, Body string
		Headers                   map[string]string
	}
	tests := []struct {
		name, method, uri, body string
		status                  int
		path, query             string            // what the backend saw (status 200)
		headers                 map[string]string // a subset of the backend's request headers; none: absent
		respBody, contentType   string            // the client's answer (status != 200)
	}{
		{"headers read and set, a client header deleted", "GET", "/a/1", "", 200, "/echo/1", "",
			map[string]string{"X-Order": "svc", "X-Svc-Url": "/a/1", "X-Svc-Method": "GET", "X-Svc-Param": "1", "X-Svc-Body": "", "X-Client": none}, "", ""},
		{"url is the request URI; the query is filtered by the endpoint", "GET", "/a/1?q=x&other=1", "", 200, "/echo/1", "q=x",
			map[string]string{"X-Svc-Url": "/a/1?q=x&other=1"}, "", ""},
		{"query added", "GET", "/a/setq?q=1", "", 200, "/echo/setq", "added=yes&q=1", map[string]string{"X-Svc-Param": "setq"}, "", ""},
		{"param changed", "GET", "/a/setp", "", 200, "/echo/changed", "", map[string]string{"X-Svc-Param": "setp"}, "", ""},
		{"url changed: no re-routing, its query reaches the backend", "GET", "/a/seturl?q=2", "", 200, "/echo/seturl", "z=9",
			map[string]string{"X-Svc-Url": "/a/seturl?q=2"}, "", ""},
		{"body read", "POST", "/c", "hello", 200, "/echo/c", "", map[string]string{"X-Order": "svc", "X-Svc-Body": "hello"}, "", ""},
		{"service script before the endpoint's", "GET", "/b/2", "", 200, "/echo/2", "", map[string]string{"X-Order": "svc,ep"}, "", ""},
		{"custom_error's status is ignored: an empty 500", "GET", "/a/err418", "", 500, "", "", nil, "", ""},
		{"runtime error in the script: an empty 500", "GET", "/a/rterr", "", 500, "", "", nil, "", ""},
		{"runs for the 404 handler", "GET", "/nf/err418", "", 500, "", "", nil, "", ""},
		{"404 when it passes", "GET", "/nf", "", 404, "", "", nil, "404 page not found", "text/plain"},
		{"runs for the 405 handler", "GET", "/c/rterr", "", 500, "", "", nil, "", ""},
		{"405 when it passes", "GET", "/c", "", 405, "", "", nil, "405 method not allowed", "text/plain"},
		{"not run for the trailing-slash redirect", "GET", "/a/err418/", "", 301, "", "", nil, `<a href="/a/err418">Moved Permanently</a>.` + "\n\n", "text/html; charset=utf-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := do(t, e.addr, tc.method, tc.uri, map[string]string{"X-Client": "c"}, tc.body)
			if g.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", g.Status, tc.status, g.Body)
			}
			if tc.status != 200 {
				if g.Body != tc.respBody || g.Headers["Content-Type"] != tc.contentType {
					t.Errorf("answer %q (Content-Type %q), want %q (%q)", g.Body, g.Headers["Content-Type"], tc.respBody, tc.contentType)
				}
				if tc.status == 500 && g.Headers["X-Krakend"] != "" {
					t.Errorf("X-KrakenD %q on the middleware's abort, want none", g.Headers["X-Krakend"])
				}
				return
			}
			var got echo
			if err := json.Unmarshal([]byte(g.Body), &got); err != nil {
				t.Fatalf("backend echo %q: %v", g.Body, err)
			}
			if got.Method != tc.method || got.Path != tc.path || got.Query != tc.query {
				t.Errorf("backend saw %s %s?%s, want %s %s?%s", got.Method, got.Path, got.Query, tc.method, tc.path, tc.query)
			}
			for k, want := range tc.headers {
				v, ok := got.Headers[k]
				if want == none {
					if ok {
						t.Errorf("backend header %s = %q, want none", k, v)
					}
					continue
				}
				if !ok || v != want {
					t.Errorf("backend header %s = %q, want %q", k, v, want)
				}
			}
		})
	}
}

// TestLuaServiceOff: a plan without the service script does not run any:
// the same routes answer without its headers.
func TestLuaServiceOff(t *testing.T) {
	t.Parallel()
	be := startBackends(t)
	a := endpoint("GET", "/a/{id}", backend(be.host, "/echo/{id}"))
	a.InputHeaders = []string{"X-Order"}
	e := startEdge(t, mustBuild(t, snapshot(a), plan.Deps{}))
	g := do(t, e.addr, "GET", "/a/err418", nil, "")
	if g.Status != 200 {
		t.Fatalf("status %d: %s", g.Status, g.Body)
	}
	var got struct{ Headers map[string]string }
	if err := json.Unmarshal([]byte(g.Body), &got); err != nil {
		t.Fatal(err)
	}
	if v, ok := got.Headers["X-Order"]; ok {
		t.Errorf("X-Order %q reached the backend without a script", v)
	}
}
