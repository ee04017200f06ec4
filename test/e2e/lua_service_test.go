package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// svcEcho is the backend the service-level Lua answers were recorded with:
// a JSON echo of the method, the request URI, the body (when it has a
// Content-Length) and the X-* and User-Agent headers.
func svcEcho(t *testing.T) *testenv.Backend {
	return testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.ContentLength > 0 {
			body, _ = io.ReadAll(r.Body)
		}
		h := map[string]string{}
		for k := range r.Header {
			if strings.HasPrefix(k, "X-") || k == "User-Agent" {
				h[k] = r.Header.Get(k)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "path": r.URL.RequestURI(), "body": string(body), "h": h})
	}))
}

// luaServiceConfig is the configuration of the recording: a service-level
// modifier/lua-endpoint with a source file, whose pre reads the request
// through ctx.load(), fails on demand and changes the request by markers
// in the URL; its post is ignored (KrakenD runs none there). /b/{id} has
// its own lua-endpoint too.
func luaServiceConfig(backend, source string) string {
	pre := "local r = ctx.load(); local u = r:url(); " +
		"if string.find(u, 'err418') then custom_error('boom', 418) end; " +
		"if string.find(u, 'rterr') then local x = nil; x.y = 1 end; " +
		"r:headers('X-Order', svc_tag()); r:headers('X-Svc-Url', u); r:headers('X-Svc-Method', r:method()); " +
		"r:headers('X-Svc-Param', r:params('id')); r:headers('X-Svc-Body', r:body()); r:headers('X-Client', nil); " +
		"if string.find(u, 'setq') then r:query('added', 'yes') end; " +
		"if string.find(u, 'setp') then r:params('id', 'changed') end; " +
		"if string.find(u, 'setm') then r:method('POST') end; " +
		"if string.find(u, 'setb') then r:body('new body') end; " +
		"if string.find(u, 'seturl') then r:url('/other/path?z=9') end"
	return fmt.Sprintf(`{"version": 3, "timeout": "3s", "host": [%q],
  "extra_config": {"modifier/lua-endpoint": {"sources": [%q], "pre": %q, "post": "nope()", "allow_open_libs": true}},
  "endpoints": [
    {"endpoint": "/a/{id}", "input_headers": ["X-Order", "X-Svc-Url", "X-Svc-Method", "X-Svc-Param", "X-Svc-Body", "X-Client"],
     "input_query_strings": ["added", "z", "q"], "backend": [{"url_pattern": "/echo/{id}"}]},
    {"endpoint": "/b/{id}", "input_headers": ["X-Order"],
     "extra_config": {"modifier/lua-endpoint": {"pre": "local r = ctx.load(); r:headers('X-Order', r:headers('X-Order') .. ',ep')"}},
     "backend": [{"url_pattern": "/echo/{id}"}]},
    {"endpoint": "/c", "method": "POST", "input_headers": ["X-Order", "X-Svc-Body"], "backend": [{"url_pattern": "/echo"}]}
  ]}`, backend, source, pre)
}

// luaServiceCases are KrakenD CE v2.12.1's answers to luaServiceConfig
// (its version string and address replaced).
func luaServiceCases() []luaCase {
	const ok = "Content-Type: application/json; charset=utf-8\nX-Krakend: Version VERSION\nX-Krakend-Completed: true"
	const text = "Content-Type: text/plain\nX-Krakend: Version VERSION\nX-Krakend-Completed: false"
	echo := func(path, hs string) string {
		return `{"body":"","h":{"User-Agent":"KrakenD Version VERSION","X-Forwarded-For":"127.0.0.1","X-Forwarded-Host":"HOST",` + hs + `},"method":"GET","path":"` + path + `"}`
	}
	svc := func(param, url string) string {
		return `"X-Order":"svc","X-Svc-Body":"","X-Svc-Method":"GET","X-Svc-Param":"` + param + `","X-Svc-Url":"` + url + `"`
	}
	return []luaCase{
		// The script's headers reach the backend; X-Client is deleted.
		{"GET", "/a/1", "", 200, ok, echo("/echo/1", svc("1", "/a/1"))},
		{"GET", "/a/1?q=x&other=1", "", 200, ok, echo("/echo/1?q=x", svc("1", `/a/1?q=x\u0026other=1`))},
		{"GET", "/a/setq?q=1", "", 200, ok, echo(`/echo/setq?added=yes\u0026q=1`, svc("setq", "/a/setq?q=1"))},
		{"GET", "/a/setp", "", 200, ok, echo("/echo/changed", svc("setp", "/a/setp"))},
		// Routing is done: a method change is not seen by a GET endpoint,
		// a url change does not re-route (its query is forwarded).
		{"GET", "/a/setm", "", 200, ok, echo("/echo/setm", svc("setm", "/a/setm"))},
		{"GET", "/a/seturl?q=2", "", 200, ok, echo("/echo/seturl?z=9", svc("seturl", "/a/seturl?q=2"))},
		{"GET", "/a/setb", "", 200, ok, echo("/echo/setb", svc("setb", "/a/setb"))},
		{"POST", "/c", "hello", 200, ok,
			`{"body":"","h":{"User-Agent":"KrakenD Version VERSION","X-Forwarded-For":"127.0.0.1","X-Forwarded-Host":"HOST","X-Order":"svc","X-Svc-Body":"hello"},"method":"POST","path":"/echo"}`},
		// The service script runs before the endpoint's.
		{"GET", "/b/2", "", 200, ok, echo("/echo/2", `"X-Order":"svc,ep"`)},
		// Every error is an empty 500, custom_error's status ignored.
		{"GET", "/a/err418", "", 500, "", ""},
		{"GET", "/a/rterr", "", 500, "", ""},
		// It runs for the 404 and 405 handlers, not for the redirect.
		{"GET", "/nf", "", 404, text, "404 page not found"},
		{"GET", "/nf/err418", "", 500, "", ""},
		{"GET", "/", "", 404, text, "404 page not found"},
		{"GET", "/c", "", 405, text, "405 method not allowed"},
		{"GET", "/c/rterr", "", 500, "", ""},
		{"PUT", "/a/1", "", 405, text, "405 method not allowed"},
		{"OPTIONS", "/a/1", "", 405, text, "405 method not allowed"},
		{"GET", "/a/1/", "", 301, "Content-Type: text/html; charset=utf-8\nLocation: /a/1", `<a href="/a/1">Moved Permanently</a>.` + "\n\n"},
	}
}

// TestLuaService serves the service-level modifier/lua-endpoint through
// `gw-edge run -c` and compares every answer with KrakenD CE v2.12.1's.
func TestLuaService(t *testing.T) {
	bins := testenv.Build(t)
	backend := svcEcho(t)
	dir := t.TempDir()
	src := testenv.WriteFile(t, dir, "h.lua", "function svc_tag()\n  return \"svc\"\nend\n")
	cfg := testenv.WriteFile(t, dir, "krakend.json", luaServiceConfig(backend.URL, src))
	e := testenv.StartStandalone(t, bins, cfg)
	checkLuaCases(t, e.URL(), backend.URL, luaServiceCases())
	e.WaitLog(t, 0, 5*time.Second, func(m map[string]any) bool {
		err, _ := m["error"].(string)
		return m["message"] == "lua: script error" && m["script"] == "service lua-endpoint" && strings.Contains(err, "with key 'y'")
	})
}

// TestLuaServiceThroughControlPlane pushes the same configuration with
// gwctl, which sends the service script's source along: the managed edge
// answers as KrakenD does without the file. A service source that is
// missing is refused with its path, and the edge keeps its version.
func TestLuaServiceThroughControlPlane(t *testing.T) {
	bins := testenv.Build(t)
	backend := svcEcho(t)
	dir := t.TempDir()
	src := testenv.WriteFile(t, dir, "h.lua", "function svc_tag()\n  return \"svc\"\nend\n")
	cfg := testenv.WriteFile(t, dir, "krakend.json", luaServiceConfig(backend.URL, src))
	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	e := testenv.StartEdge(t, bins, cp, "edge-1", "eu", filepath.Join(dir, "edge"))
	if r := testenv.Gwctl(t, bins, cp, "push", cfg, "--wait", "--timeout", "20s"); r.Code != 0 {
		t.Fatalf("push: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	checkLuaCases(t, e.URL(), backend.URL, luaServiceCases())

	badCfg := testenv.WriteFile(t, dir, "bad.json", luaServiceConfig(backend.URL, filepath.Join(dir, "missing.lua")))
	r := testenv.Gwctl(t, bins, cp, "push", badCfg)
	if r.Code == 0 {
		t.Fatalf("push with a missing service source succeeded:\n%s", r.Stdout)
	}
	mustContain(t, "push output", r.Stdout+r.Stderr, `extra_config["modifier/lua-endpoint"].sources[0]`, "not_found")
	if h, _ := e.Health(); h.Version != 1 {
		t.Errorf("edge serves version %d after a refused push, want 1", h.Version)
	}
}
