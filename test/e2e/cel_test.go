package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// celConfig is a validation/cel config: KrakenD's harness endpoint
// /cel/req-resp/{id} and checks on numbers, error details, backend
// responses, the query string, a partial merge, and a JWT rejecter
// (/jwt/{id}, /jwt-num, on issuer's tokens).
func celConfig(backendURL, validator string) string {
	return fmt.Sprintf(`{
  "version": 3,
  "timeout": "2s",
  "host": [%q],
  "extra_config": {"router": {"return_error_msg": true}},
  "endpoints": [
    {"endpoint": "/cel/req-resp/{id}", "input_headers": ["X-Header"],
     "extra_config": {"validation/cel": [{"check_expr": "'something' in req_headers['X-Header']"}, {"check_expr": "int(req_params.Id) %% 2 == 0"}]},
     "backend": [
       {"url_pattern": "/b1/{id}", "group": "backend1", "extra_config": {"validation/cel": [{"check_expr": "int(req_params.Id) %% 3 == 0"}]}},
       {"url_pattern": "/b2/{id}", "group": "backend2", "extra_config": {"validation/cel": [{"check_expr": "int(req_params.Id) %% 5 == 0"}]}}]},
    {"endpoint": "/num", "extra_config": {"validation/cel": [{"check_expr": "resp_data.n == '42' && resp_completed"}]}, "backend": [{"url_pattern": "/x"}]},
    {"endpoint": "/num-int", "extra_config": {"validation/cel": [{"check_expr": "resp_data.n == 42"}]}, "backend": [{"url_pattern": "/x"}]},
    {"endpoint": "/details", "extra_config": {"validation/cel": [{"check_expr": "resp_metadata_status == 500"}]},
     "backend": [{"url_pattern": "/fail", "extra_config": {"backend/http": {"return_error_details": "bk"}}}]},
    {"endpoint": "/bresp", "backend": [{"url_pattern": "/x"},
       {"url_pattern": "/y", "group": "g", "extra_config": {"validation/cel": [{"check_expr": "resp_data.g.message == 'nope'"}]}}]},
    {"endpoint": "/query", "input_query_strings": ["a"],
     "extra_config": {"validation/cel": [{"check_expr": "req_querystring.a[0] == '1' && !('b' in req_querystring)"}]}, "backend": [{"url_pattern": "/x"}]},
    {"endpoint": "/bq", "input_query_strings": ["a"], "backend": [{"url_pattern": "/x?z=1",
       "extra_config": {"validation/cel": [{"check_expr": "req_path == '/x?z=1' && req_querystring == {'a': ['2']}"}]}}]},
    {"endpoint": "/partial", "extra_config": {"validation/cel": [{"check_expr": "false && resp_completed"}]},
     "backend": [{"url_pattern": "/x"}, {"url_pattern": "/fail", "group": "g"}]},
    {"endpoint": "/jwt/{id}", "extra_config": {"auth/validator": %s, "validation/cel": [{"check_expr": "size(JWT.roles) > 1"}]},
     "backend": [{"url_pattern": "/x"}]},
    {"endpoint": "/jwt-num", "extra_config": {"auth/validator": %s, "validation/cel": [{"check_expr": "type(JWT.n) == double && JWT.n == 42 && JWT.o.x == 1"}]},
     "backend": [{"url_pattern": "/x"}]},
    {"endpoint": "/jwt-roles", "extra_config": {"auth/validator": %s, "validation/cel": [{"check_expr": "size(JWT.roles) > 2"}]},
     "backend": [{"url_pattern": "/x"}]},
    {"endpoint": "/jwt-roles2", "extra_config": {"auth/validator": %[4]s, "validation/cel": [{"check_expr": "size(JWT.roles) > 1"}]},
     "backend": [{"url_pattern": "/x"}]}
  ]
}`, backendURL, validator, validator, strings.TrimSuffix(validator, "}")+`, "roles_key": "roles", "roles": ["admin"]}`)
}

// celBackend answers {"message":"pong","n":42}, and a 500 {"e":1} under /fail.
func celBackend(t *testing.T) *testenv.Backend {
	return testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(r.URL.Path, "/fail") {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"e":1}`)
			return
		}
		io.WriteString(w, `{"message":"pong","n":42}`)
	}))
}

// checkCEL sends the cases whose answers were recorded from KrakenD CE
// 2.12.1 on the same config and backend (the JWT ones are KrakenD's
// harness specs cel-5 and cel-6: an empty 401, or the backend's data).
func checkCEL(t *testing.T, base string, is *testenv.Issuer) {
	t.Helper()
	const text, js = "text/plain; charset=utf-8", "application/json; charset=utf-8"
	two, err := is.Sign(map[string]any{"iss": testenv.IssuerName, "aud": []string{testenv.IssuerAudience}, "sub": "u",
		"exp": time.Now().Add(time.Hour).Unix(), "roles": []string{"a", "b"}, "n": 42, "o": map[string]any{"x": 1}})
	if err != nil {
		t.Fatal(err)
	}
	one, err := is.Sign(map[string]any{"iss": testenv.IssuerName, "aud": []string{testenv.IssuerAudience}, "sub": "u",
		"exp": time.Now().Add(time.Hour).Unix(), "roles": []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		hdr        map[string]string
		status     int
		ct, done   string
		body       string
	}{
		{"cel-1", "/cel/req-resp/1", map[string]string{"X-Header": "something"}, 500, text, "false", "request aborted by evaluator #1"},
		{"cel-2", "/cel/req-resp/30", nil, 500, text, "false", "request aborted by evaluator #0"},
		{"cel-3", "/cel/req-resp/10", map[string]string{"X-Header": "something"}, 200, js, "false", `{"backend2":{"message":"pong","n":42}}`},
		{"cel-4", "/cel/req-resp/6", map[string]string{"X-Header": "something"}, 200, js, "false", `{"backend1":{"message":"pong","n":42}}`},
		{"all pass", "/cel/req-resp/30", map[string]string{"X-Header": "something"}, 200, js, "true", `{"backend1":{"message":"pong","n":42},"backend2":{"message":"pong","n":42}}`},
		{"both backends rejected", "/cel/req-resp/2", map[string]string{"X-Header": "something"}, 500, text, "false", "request aborted by evaluator #0\nrequest aborted by evaluator #0"},
		{"numbers are strings", "/num", nil, 200, js, "true", `{"message":"pong","n":42}`},
		{"a number is not an int", "/num-int", nil, 500, text, "false", "request aborted by evaluator #0"},
		{"error details carry the status", "/details", nil, 200, js, "false", `{"error_bk":{"http_status_code":500,"http_body":"{\"e\":1}","http_body_encoding":"application/json"}}`},
		{"backend response rejected", "/bresp", nil, 200, js, "false", `{"message":"pong","n":42}`},
		{"input_query_strings only", "/query?a=1&b=2", nil, 200, js, "true", `{"message":"pong","n":42}`},
		{"query rejected", "/query?a=2", nil, 500, text, "false", "request aborted by evaluator #0"},
		// lura keeps url_pattern's query in the backend request's path.
		{"backend path and query", "/bq?a=2&b=3", nil, 200, js, "true", `{"message":"pong","n":42}`},
		{"response checks skipped after a backend error", "/partial", nil, 200, js, "false", `{"message":"pong","n":42}`},
		{"cel-5 jwt rejected", "/jwt/1", map[string]string{"Authorization": "Bearer " + one}, 401, "", "", ""},
		{"cel-6 jwt accepted", "/jwt/1", map[string]string{"Authorization": "Bearer " + two}, 200, js, "true", `{"message":"pong","n":42}`},
		// krakend-jose decodes claims with numbers as float64 (observed:
		// type(JWT.n) == double holds, JWT.n == '42' rejects).
		{"jwt numbers are doubles", "/jwt-num", map[string]string{"Authorization": "Bearer " + two}, 200, js, "true", `{"message":"pong","n":42}`},
		{"jwt numbers rejected", "/jwt-num", map[string]string{"Authorization": "Bearer " + one}, 401, "", "", ""},
		// The CEL rejecter runs before the roles check (observed): 401
		// when it rejects, the roles' 403 when it accepts.
		{"jwt rejected before roles", "/jwt-roles", map[string]string{"Authorization": "Bearer " + two}, 401, "", "", ""},
		{"jwt accepted, roles refused", "/jwt-roles2", map[string]string{"Authorization": "Bearer " + two}, 403, "", "", ""},
	}
	for _, tc := range tests {
		req, err := http.NewRequest(http.MethodGet, base+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range tc.hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || string(body) != tc.body {
			t.Errorf("%s: %d %q, want %d %q", tc.name, resp.StatusCode, body, tc.status, tc.body)
		}
		if got := resp.Header.Get("Content-Type"); got != tc.ct {
			t.Errorf("%s: Content-Type %q, want %q", tc.name, got, tc.ct)
		}
		if got := resp.Header.Get("X-Krakend-Completed"); got != tc.done {
			t.Errorf("%s: X-Krakend-Completed %q, want %q", tc.name, got, tc.done)
		}
	}
}

// TestCELStandalone serves validation/cel through `gw-edge run -c`.
func TestCELStandalone(t *testing.T) {
	bins := testenv.Build(t)
	is, err := testenv.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	defer is.Close()
	cfg := testenv.WriteFile(t, t.TempDir(), "krakend.json", celConfig(celBackend(t).URL, is.ValidatorConfig()))
	e := testenv.StartStandalone(t, bins, cfg)
	checkCEL(t, e.URL(), is)
}

// TestCELControlPlane pushes the same config through the control plane to
// an edge; a bad expression is refused at push with its path and CEL's
// message, and the edge keeps serving the good version.
func TestCELControlPlane(t *testing.T) {
	bins := testenv.Build(t)
	is, err := testenv.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	defer is.Close()
	dir := t.TempDir()
	backend := celBackend(t)
	good := testenv.WriteFile(t, dir, "good.json", celConfig(backend.URL, is.ValidatorConfig()))
	bad := testenv.WriteFile(t, dir, "bad.json", strings.Replace(celConfig(backend.URL, is.ValidatorConfig()),
		`"resp_data.n == 42"`, `"resp_status == 200"`, 1))
	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	e := testenv.StartEdge(t, bins, cp, "edge-cel", "eu", filepath.Join(dir, "e"))
	if r := testenv.Gwctl(t, bins, cp, "push", good, "--wait", "--timeout", "20s"); r.Code != 0 {
		t.Fatalf("push: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	e.WaitVersion(t, 1, 5*time.Second)
	checkCEL(t, e.URL(), is)

	r := testenv.Gwctl(t, bins, cp, "push", bad, "--wait")
	if r.Code != 1 {
		t.Fatalf("push bad: exit %d, want 1\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	mustContain(t, "push output", r.Stdout+r.Stderr,
		`endpoints[2].extra_config["validation/cel"][0].check_expr`, "undeclared reference to 'resp_status'")
	checkCEL(t, e.URL(), is)
}
