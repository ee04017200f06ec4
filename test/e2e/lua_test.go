package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// luaEcho is the backend of the Lua tests: /coll answers a collection,
// anything else a JSON echo of the request (method, path with query, body,
// the X-* and User-Agent headers) plus fixed fields.
func luaEcho(t *testing.T) *testenv.Backend {
	return testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Back", "b1")
		if strings.HasPrefix(r.URL.Path, "/coll") {
			io.WriteString(w, `[{"path":"/a","n":1},{"path":"/b","n":2.5}]`)
			return
		}
		var body []byte
		if r.ContentLength > 0 { // as the recording backend: chunked bodies are not read
			body, _ = io.ReadAll(r.Body)
		}
		h := map[string]string{}
		for k := range r.Header {
			if strings.HasPrefix(k, "X-") || k == "User-Agent" {
				h[k] = r.Header.Get(k)
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "path": r.URL.RequestURI(), "body": string(body),
			"h": h, "num": json.Number("1.5"), "list": []any{1, "a", true}})
	}))
}

// luaConfig is the configuration the Lua cases were recorded with on
// KrakenD CE v2.12.1 (one backend per endpoint unless said otherwise).
func luaConfig(backend, source string, returnErrorMsg bool) string {
	lb := func(js string) string { return `"extra_config": {"modifier/lua-backend": ` + js + `}` }
	lp := func(js string) string { return `"extra_config": {"modifier/lua-proxy": ` + js + `}` }
	ep := func(path, backendExtra, extra string) string {
		b := `{"url_pattern": "/echo"`
		if backendExtra != "" {
			b += ", " + backendExtra
		}
		s := `{"endpoint": "` + path + `", "backend": [` + b + `}]`
		if extra != "" {
			s += ", " + extra
		}
		return s + "}"
	}
	eps := []string{
		ep("/teapot", lb(`{"pre": "custom_error('{\"msg\":\"tea\"}', 418)"}`), ""),
		ep("/ct", lb(`{"pre": "custom_error('<b>no</b>', 401, 'text/html')"}`), ""),
		ep("/plain", lb(`{"pre": "custom_error('just text')"}`), ""),
		ep("/boom", lb(fmt.Sprintf(`{"sources": [%q], "pre": "boom()"}`, source)), ""),
		ep("/nofn", lb(`{"pre": "nope()"}`), ""),
		`{"endpoint": "/ppre/{id}", "method": "POST", "backend": [{"url_pattern": "/echo/{id}"}], ` +
			lp(`{"pre": "local r = request.load(); r:headers('X-Added', 'yes'); r:query('q=1&z=' .. r:params('Id')); r:params('Id', 'changed'); r:body('B')"}`) + `}`,
		ep("/ppost", "", lp(`{"post": "local r = response.load(); local d = r:data(); d:set('added', {1,2,{a=1}}); d:del('h'); r:headers('X-Lua', 'p'); d:set('c', r:isComplete()); d:set('s', r:statusCode())"}`)),
		ep("/bpost", lb(`{"post": "local r = response.load(); local d = r:data(); d:set('n', d:get('num') * 2); r:headers('X-Lua', 'b'); d:set('l', d:get('list'):len())"}`), ""),
		ep("/bpre", lb(`{"pre": "local r = request.load(); r:headers('X-Pre', r:method() .. ' ' .. r:path() .. ' ' .. r:url()); r:url(r:url() .. '/more?x=1')"}`), ""),
		ep("/skip", "", lp(`{"skip_next": true, "post": "local r = response.load(); r:data():set('skipped', true)"}`)),
		ep("/bskip", lb(`{"skip_next": true, "post": "local r = response.load(); r:data():set('skipped', true)"}`), ""),
		ep("/keys", lb(`{"post": "local d = response.load():data(); local k = d:keys(); d:set('k', k:len()); d:set('e', d:keyExists('num')); d:set('empty', {})"}`), ""),
		`{"endpoint": "/agg", "backend": [{"url_pattern": "/echo", ` + lb(`{"pre": "custom_error('x', 418)"}`) + `}, {"url_pattern": "/echo2", "group": "g"}]}`,
		`{"endpoint": "/seq", "extra_config": {"proxy": {"sequential": true, "sequential_propagated_params": ["resp0_list", "resp0_num", "resp0"]}},
		  "backend": [{"url_pattern": "/echo"}, {"url_pattern": "/echo2", "group": "second",
		    ` + lb(`{"pre": "local r = request.load(); r:headers('X-P', r:params('Resp0_list') .. '|' .. r:params('Resp0_num') .. '|' .. r:params('Resp0'))"}`) + `}]}`,
		ep("/slow", lb(`{"pre": "while true do end"}`), `"timeout": "300ms"`),
		`{"endpoint": "/ep/{id}", "input_headers": ["X-Ep", "X-Client"], "input_query_strings": ["a", "b"], "backend": [{"url_pattern": "/echo/{id}"}], ` +
			`"extra_config": {"modifier/lua-endpoint": {"pre": "local c = ctx.load(); c:headers('X-Ep', c:method() .. ' ' .. c:url() .. ' ' .. c:host() .. ' ' .. c:params('id') .. ' ' .. c:query('a')); c:query('b', '2'); c:params('id', 'p2'); c:headers('X-Client', nil)"}}}`,
		ep("/eperr", "", `"extra_config": {"modifier/lua-endpoint": {"pre": "custom_error('no', 403, 'text/plain')"}}`),
		ep("/eperr2", "", `"extra_config": {"modifier/lua-endpoint": {"pre": "nope()"}}`),
		ep("/eperr3", "", `"extra_config": {"modifier/lua-endpoint": {"pre": "custom_error('teapot', 418)"}}`),
	}
	return fmt.Sprintf(`{"version": 3, "timeout": "2s", "host": [%q], "extra_config": {"router": {"return_error_msg": %t}},
  "endpoints": [%s]}`, backend, returnErrorMsg, strings.Join(eps, ",\n"))
}

type luaCase struct {
	method, path, body string
	status             int
	headers            string // sorted "Name: value" lines of the headers KrakenD sends, Date and Content-Length aside
	want               string // the body, with HOST for the edge's address and VERSION for its version
}

// luaCases are KrakenD CE v2.12.1's answers, recorded with the same
// configuration and backend (its version string and address replaced).
func luaCases(returnErrorMsg bool) []luaCase {
	const json = "Content-Type: application/json; charset=utf-8\n"
	const text = "Content-Type: text/plain; charset=utf-8\n"
	echo := func(path string) string {
		return `{"body":"","h":{"User-Agent":"KrakenD Version VERSION","X-Forwarded-For":"127.0.0.1","X-Forwarded-Host":"HOST"},"list":[1,"a",true],"method":"GET","num":1.5,"path":"` + path + `"}`
	}
	errCase := func(path string, status int, ct, body string) luaCase {
		if !returnErrorMsg {
			return luaCase{"GET", path, "", status, "X-Krakend: Version VERSION\nX-Krakend-Completed: false", ""}
		}
		return luaCase{"GET", path, "", status, ct + "X-Krakend: Version VERSION\nX-Krakend-Completed: false", body}
	}
	return []luaCase{
		// modifier/lua-endpoint: the changes reach the backend through the
		// endpoint's filters; an error is gin's bare abort.
		{"GET", "/ep/7?a=1&z=3", "", 200, json + "X-Krakend: Version VERSION\nX-Krakend-Completed: true",
			`{"body":"","h":{"User-Agent":"KrakenD Version VERSION","X-Ep":"GET /ep/7?a=1\u0026z=3 HOST 7 1","X-Forwarded-For":"127.0.0.1","X-Forwarded-Host":"HOST"},"list":[1,"a",true],"method":"GET","num":1.5,"path":"/echo/p2?a=1\u0026b=2"}`},
		{"GET", "/eperr", "", 403, "Content-Type: text/plain", ""},
		{"GET", "/eperr2", "", 500, "", ""},
		{"GET", "/eperr3", "", 418, "", ""},
		errCase("/teapot", 418, text, `{"msg":"tea"}`),
		errCase("/ct", 401, "Content-Type: text/html\n", "<b>no</b>"),
		errCase("/plain", 500, text, "just text"),
		errCase("/boom", 500, text, "attempt to index a non-table object(nil) with key 'x' (h.lua:L3)"),
		errCase("/nofn", 500, text, "attempt to call a non-function object (pre-script:L1)"),
		errCase("/slow", 500, text, "context deadline exceeded"), // KrakenD does not stop the script, but answers at the timeout with this text
		{"POST", "/ppre/7?q=9&keep=1", "orig", 200, json + "X-Krakend: Version VERSION\nX-Krakend-Completed: true",
			`{"body":"","h":{"User-Agent":"KrakenD Version VERSION","X-Added":"yes","X-Forwarded-For":"127.0.0.1","X-Forwarded-Host":"HOST"},"list":[1,"a",true],"method":"POST","num":1.5,"path":"/echo/changed?q=1\u0026z=7"}`},
		{"GET", "/ppost", "", 200, json + "X-Krakend: Version VERSION\nX-Krakend-Completed: true\nX-Lua: p",
			`{"added":{"1":1,"2":2,"3":{"a":1}},"body":"","c":true,"list":[1,"a",true],"method":"GET","num":1.5,"path":"/echo","s":0}`},
		{"GET", "/bpost", "", 200, json + "X-Krakend: Version VERSION\nX-Krakend-Completed: true\nX-Lua: b",
			`{"body":"","h":{"User-Agent":"KrakenD Version VERSION","X-Forwarded-For":"127.0.0.1","X-Forwarded-Host":"HOST"},"l":3,"list":[1,"a",true],"method":"GET","n":3,"num":1.5,"path":"/echo"}`},
		{"GET", "/bpre", "", 200, json + "X-Krakend: Version VERSION\nX-Krakend-Completed: true",
			`{"body":"","h":{"User-Agent":"KrakenD Version VERSION","X-Forwarded-For":"127.0.0.1","X-Forwarded-Host":"HOST","X-Pre":"GET /echo BACKEND/echo"},"list":[1,"a",true],"method":"GET","num":1.5,"path":"/echo/more?x=1"}`},
		{"GET", "/skip", "", 200, json + "X-Krakend: Version VERSION\nX-Krakend-Completed: false", `{"skipped":true}`},
		{"GET", "/bskip", "", 200, json + "X-Krakend: Version VERSION\nX-Krakend-Completed: false", `{"skipped":true}`},
		{"GET", "/keys", "", 200, json + "X-Krakend: Version VERSION\nX-Krakend-Completed: true",
			`{"body":"","e":true,"empty":{},"h":{"User-Agent":"KrakenD Version VERSION","X-Forwarded-For":"127.0.0.1","X-Forwarded-Host":"HOST"},"k":6,"list":[1,"a",true],"method":"GET","num":1.5,"path":"/echo"}`},
		{"GET", "/agg", "", 200, json + "X-Krakend: Version VERSION\nX-Krakend-Completed: false",
			`{"g":` + echo("/echo2") + `}`},
		// lura's propagated values: a list joined by commas, a number as
		// written; the whole body only for a no-op backend (none here).
		{"GET", "/seq", "", 200, json + "X-Krakend: Version VERSION\nX-Krakend-Completed: true",
			`{"body":"","h":{"User-Agent":"KrakenD Version VERSION","X-Forwarded-For":"127.0.0.1","X-Forwarded-Host":"HOST"},"list":[1,"a",true],"method":"GET","num":1.5,"path":"/echo",` +
				`"second":{"body":"","h":{"User-Agent":"KrakenD Version VERSION","X-Forwarded-For":"127.0.0.1","X-Forwarded-Host":"HOST","X-P":"1,a,true|1.5|"},"list":[1,"a",true],"method":"GET","num":1.5,"path":"/echo2"}}`},
	}
}

// noRedirect is a client that reports redirects instead of following them.
var noRedirect = &http.Client{Timeout: 10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func checkLuaCases(t *testing.T, base, backend string, cases []luaCase) {
	t.Helper()
	host := strings.TrimPrefix(base, "http://")
	for _, tc := range cases {
		req, err := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Client", "c")
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var hs []string
		for k, vs := range resp.Header {
			if k == "Date" || k == "Content-Length" {
				continue
			}
			for _, v := range vs {
				hs = append(hs, k+": "+v)
			}
		}
		sort.Strings(hs)
		r := strings.NewReplacer("HOST", host, "VERSION", "apigw-1", "BACKEND", backend)
		want := strings.Split(r.Replace(tc.headers), "\n")
		sort.Strings(want)
		if resp.StatusCode != tc.status || strings.Join(hs, "\n") != strings.Join(want, "\n") || string(body) != r.Replace(tc.want) {
			t.Errorf("%s %s:\n got %d\n%s\n%s\nwant %d\n%s\n%s", tc.method, tc.path, resp.StatusCode, strings.Join(hs, "\n"), body,
				tc.status, strings.Join(want, "\n"), r.Replace(tc.want))
		}
	}
}

const luaHelpers = "function boom()\n  local t = nil\n  return t.x\nend\n"

// TestLua serves modifier/lua-proxy and modifier/lua-backend through
// `gw-edge run -c`, with and without router.return_error_msg, and compares
// every answer with KrakenD CE v2.12.1's for the same configuration.
func TestLua(t *testing.T) {
	bins := testenv.Build(t)
	backend := luaEcho(t)
	dir := t.TempDir()
	src := testenv.WriteFile(t, dir, "h.lua", luaHelpers)
	for _, rem := range []bool{true, false} {
		t.Run(fmt.Sprintf("return_error_msg=%t", rem), func(t *testing.T) {
			cfg := testenv.WriteFile(t, dir, fmt.Sprintf("krakend-%t.json", rem), luaConfig(backend.URL, src, rem))
			e := testenv.StartStandalone(t, bins, cfg)
			checkLuaCases(t, e.URL(), backend.URL, luaCases(rem))
			// A script error is logged with the script's name.
			e.WaitLog(t, 0, 5*time.Second, func(m map[string]any) bool {
				return m["message"] == "lua: script error" && m["script"] == "GET /boom backend[0] lua-backend"
			})
		})
	}
}

// TestLuaThroughControlPlane pushes a Lua configuration with gwctl, which
// reads the sources where it runs and sends them along: the managed edge
// serves them without any file. A source that does not parse is a
// violation with its file and line, refused before any edge sees it.
func TestLuaThroughControlPlane(t *testing.T) {
	bins := testenv.Build(t)
	backend := luaEcho(t)
	dir := t.TempDir()
	src := testenv.WriteFile(t, dir, "h.lua", luaHelpers)
	cfg := testenv.WriteFile(t, dir, "krakend.json", luaConfig(backend.URL, src, true))
	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	e := testenv.StartEdge(t, bins, cp, "edge-1", "eu", filepath.Join(dir, "edge"))
	if r := testenv.Gwctl(t, bins, cp, "push", cfg, "--wait", "--timeout", "20s"); r.Code != 0 {
		t.Fatalf("push: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	checkLuaCases(t, e.URL(), backend.URL, luaCases(true))

	bad := testenv.WriteFile(t, dir, "bad.lua", "function f()\n  return 1\n\nlocal = 2\n")
	badCfg := testenv.WriteFile(t, dir, "bad.json", luaConfig(backend.URL, bad, true))
	r := testenv.Gwctl(t, bins, cp, "push", badCfg)
	if r.Code == 0 {
		t.Fatalf("push of a Lua syntax error succeeded:\n%s", r.Stdout)
	}
	mustContain(t, "push output", r.Stdout+r.Stderr, `endpoints[3].backend[0].extra_config["modifier/lua-backend"].sources[0]`, "bad.lua:4")
	if h, _ := e.Health(); h.Version != 1 {
		t.Errorf("edge serves version %d after a refused push, want 1", h.Version)
	}
}
