package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/controlplane/config"
	"github.com/apigw/gateway/edge/plan"
	"github.com/apigw/gateway/test/testenv"
)

// dataBackend serves the upstream side of the data-plane table.
func dataBackend(t *testing.T) *testenv.Backend {
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		writeJSON(w, 200, map[string]any{"id": id, "name": "user" + id, "secret": "s3cr3t", "address": map[string]any{"city": "Paris", "zip": "75001"}})
	})
	mux.HandleFunc("GET /posts", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []map[string]any{{"id": 1}, {"id": 2}})
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 500, map[string]any{"boom": true}) })
	mux.HandleFunc("/notfound", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "yes")
		writeJSON(w, 404, map[string]any{"msg": "nope"})
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(400 * time.Millisecond):
		case <-r.Context().Done():
		}
		writeJSON(w, 200, map[string]any{"slow": true})
	})
	mux.HandleFunc("/invalid", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"not": json`)
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"blob":"`)
		chunk := strings.Repeat("x", 1<<20)
		for i := 0; i < 11; i++ { // 11 MiB: over the 10 MiB body limit
			io.WriteString(w, chunk)
		}
		io.WriteString(w, `"}`)
	})
	mux.HandleFunc("POST /created", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 201, map[string]any{"created": true}) })
	mux.HandleFunc("/echo/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hdr := map[string]string{}
		for k := range r.Header {
			hdr[k] = r.Header.Get(k)
		}
		writeJSON(w, 200, map[string]any{"method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery, "headers": hdr, "body": string(body)})
	})
	return testenv.StartBackend(t, mux)
}

func dataConfig(backendURL string) string {
	return fmt.Sprintf(`{
  "version": 3,
  "timeout": "1s",
  "host": [%q],
  "endpoints": [
    {"endpoint": "/users/{id}", "backend": [{"url_pattern": "/users/{id}", "deny": ["secret"]}]},
    {"endpoint": "/profile/{id}", "backend": [
      {"url_pattern": "/users/{id}", "allow": ["name", "address.city"], "group": "user"},
      {"url_pattern": "/posts", "is_collection": true, "mapping": {"collection": "posts"}}
    ]},
    {"endpoint": "/partial", "backend": [{"url_pattern": "/users/1", "allow": ["id"]}, {"url_pattern": "/fail"}]},
    {"endpoint": "/allfail", "backend": [{"url_pattern": "/fail"}, {"url_pattern": "/notfound"}]},
    {"endpoint": "/slow", "timeout": "100ms", "backend": [{"url_pattern": "/slow"}]},
    {"endpoint": "/invalid", "backend": [{"url_pattern": "/invalid"}]},
    {"endpoint": "/notfound", "backend": [{"url_pattern": "/notfound"}]},
    {"endpoint": "/notfound-code", "backend": [{"url_pattern": "/notfound", "extra_config": {"backend/http": {"return_error_code": true}}}]},
    {"endpoint": "/details", "backend": [
      {"url_pattern": "/users/1", "allow": ["id"]},
      {"url_pattern": "/fail", "extra_config": {"backend/http": {"return_error_details": "failing"}}}
    ]},
    {"endpoint": "/noop", "output_encoding": "no-op", "backend": [{"url_pattern": "/notfound"}]},
    {"endpoint": "/cached", "cache_ttl": "30s", "backend": [{"url_pattern": "/users/1", "allow": ["id"]}]},
    {"endpoint": "/echo", "backend": [{"url_pattern": "/echo/x"}]},
    {"endpoint": "/echo-all", "input_headers": ["*"], "input_query_strings": ["a"], "backend": [{"url_pattern": "/echo/y"}]},
    {"endpoint": "/create", "method": "POST", "backend": [{"url_pattern": "/created"}]},
    {"endpoint": "/both", "method": "POST", "input_headers": ["Content-Type"], "backend": [
      {"url_pattern": "/echo/1", "method": "POST", "group": "a", "allow": ["body"]},
      {"url_pattern": "/echo/2", "method": "POST", "group": "b", "allow": ["body"]}
    ]},
    {"endpoint": "/svc/*", "backend": [{"url_pattern": "/echo", "allow": ["path"]}]},
    {"endpoint": "/seq/{id}", "extra_config": {"proxy": {"sequential": true}}, "backend": [
      {"url_pattern": "/users/{id}", "allow": ["name"]},
      {"url_pattern": "/echo/{resp0_name}", "allow": ["path"], "group": "second"}
    ]},
    {"endpoint": "/static", "extra_config": {"proxy": {"static": {"strategy": "errored", "data": {"fallback": true}}}},
     "backend": [{"url_pattern": "/fail"}]},
    {"endpoint": "/coll", "output_encoding": "json-collection", "backend": [{"url_pattern": "/posts", "is_collection": true}]},
    {"endpoint": "/huge", "backend": [{"url_pattern": "/huge"}]}
  ]
}`, backendURL)
}

// dataCase is one request and what the client must see. wantJSON compares
// the body as JSON; check inspects the decoded body further.
type dataCase struct {
	name        string
	method      string
	path        string
	headers     map[string]string
	body        string
	wantStatus  int
	wantHeaders map[string]string
	wantJSON    string
	wantBody    *string // exact bytes
	check       func(t *testing.T, body map[string]any)
}

func text(s string) *string { return &s }

var dataCases = []dataCase{
	{name: "proxy with deny filter", path: "/users/7", wantStatus: 200,
		wantHeaders: map[string]string{"X-Krakend-Completed": "true", "X-Krakend": "Version apigw-1"},
		wantJSON:    `{"id":"7","name":"user7","address":{"city":"Paris","zip":"75001"}}`},
	{name: "aggregate with allow, group, is_collection and mapping", path: "/profile/3", wantStatus: 200,
		wantHeaders: map[string]string{"X-Krakend-Completed": "true"},
		wantJSON:    `{"user":{"name":"user3","address":{"city":"Paris"}},"posts":[{"id":1},{"id":2}]}`},
	{name: "partial failure answers 200 marked incomplete", path: "/partial", wantStatus: 200,
		wantHeaders: map[string]string{"X-Krakend-Completed": "false"}, wantJSON: `{"id":"1"}`},
	{name: "all backends failing answers 500", path: "/allfail", wantStatus: 500,
		wantHeaders: map[string]string{"X-Krakend-Completed": "false"}, wantBody: text("")},
	{name: "slow backend past the endpoint timeout", path: "/slow", wantStatus: 500, wantBody: text("")},
	{name: "invalid backend JSON", path: "/invalid", wantStatus: 500, wantBody: text("")},
	{name: "non-200 backend", path: "/notfound", wantStatus: 500, wantBody: text("")},
	{name: "return_error_code passes the backend status", path: "/notfound-code", wantStatus: 404},
	{name: "return_error_details keeps the failure in the body", path: "/details", wantStatus: 200,
		wantHeaders: map[string]string{"X-Krakend-Completed": "false"},
		check: func(t *testing.T, b map[string]any) {
			d, _ := b["error_failing"].(map[string]any)
			if b["id"] != "1" || d == nil || d["http_status_code"] != float64(500) {
				t.Errorf("body %v", b)
			}
		}},
	{name: "no-op passes status, headers and body", path: "/noop", wantStatus: 404,
		wantHeaders: map[string]string{"X-Backend": "yes"}, wantJSON: `{"msg":"nope"}`},
	{name: "cache_ttl on a complete response", path: "/cached", wantStatus: 200,
		wantHeaders: map[string]string{"Cache-Control": "public, max-age=30"}},
	{name: "default allow-lists forward no client headers or query", path: "/echo?a=1", headers: map[string]string{"X-Secret": "x"}, wantStatus: 200,
		check: func(t *testing.T, b map[string]any) {
			h, _ := b["headers"].(map[string]any)
			if b["query"] != "" || h["X-Secret"] != nil || h["X-Forwarded-For"] != "127.0.0.1" {
				t.Errorf("backend saw query %v headers %v", b["query"], h)
			}
		}},
	{name: "input_headers * and input_query_strings", path: "/echo-all?a=1&b=2", headers: map[string]string{"X-Secret": "x"}, wantStatus: 200,
		check: func(t *testing.T, b map[string]any) {
			h, _ := b["headers"].(map[string]any)
			if b["query"] != "a=1" || h["X-Secret"] != "x" {
				t.Errorf("backend saw query %v headers %v", b["query"], h)
			}
		}},
	{name: "201 is a success", method: "POST", path: "/create", body: `{}`, wantStatus: 200, wantJSON: `{"created":true}`},
	{name: "request body reaches every backend of an aggregate", method: "POST", path: "/both", body: `{"n":1}`, wantStatus: 200,
		wantJSON: `{"a":{"body":"{\"n\":1}"},"b":{"body":"{\"n\":1}"}}`},
	{name: "catch-all forwards the rest of the path", path: "/svc/a/b/c", wantStatus: 200, wantJSON: `{"path":"/echo/a/b/c"}`},
	{name: "sequential uses the first response in the second URL", path: "/seq/9", wantStatus: 200,
		wantJSON: `{"name":"user9","second":{"path":"/echo/user9"}}`},
	{name: "static data masks an errored backend", path: "/static", wantStatus: 200,
		wantHeaders: map[string]string{"X-Krakend-Completed": "false"}, wantJSON: `{"fallback":true}`},
	{name: "json-collection renders a top-level array", path: "/coll", wantStatus: 200, wantJSON: `[{"id":1},{"id":2}]`},
	{name: "body over the max body size", path: "/huge", wantStatus: 500, wantBody: text("")},
	{name: "unknown path", path: "/nope", wantStatus: 404, wantBody: text("404 page not found")},
	{name: "wrong method", method: "DELETE", path: "/users/1", wantStatus: 405, wantBody: text("405 method not allowed")},
}

// TestDataPlane runs the same request table against a real `gw-edge run -c`
// process and against the plan built in this process from the same file.
func TestDataPlane(t *testing.T) {
	bins := testenv.Build(t)
	backend := dataBackend(t)
	src := dataConfig(backend.URL)
	file := testenv.WriteFile(t, t.TempDir(), "krakend.json", src)

	targets := map[string]string{
		"process":    testenv.StartStandalone(t, bins, file).URL(),
		"in-process": inProcessEdge(t, src),
	}
	for name, base := range targets {
		t.Run(name, func(t *testing.T) {
			for _, tc := range dataCases {
				t.Run(tc.name, func(t *testing.T) { runDataCase(t, base, tc) })
			}
		})
	}
}

func runDataCase(t *testing.T, base string, tc dataCase) {
	method := tc.method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if tc.body != "" {
		body = strings.NewReader(tc.body)
	}
	req, _ := http.NewRequest(method, base+tc.path, body)
	if tc.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range tc.headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != tc.wantStatus {
		t.Errorf("status %d, want %d (body %s)", resp.StatusCode, tc.wantStatus, raw)
	}
	for k, want := range tc.wantHeaders {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if tc.wantBody != nil && string(raw) != *tc.wantBody {
		t.Errorf("body = %q, want %q", raw, *tc.wantBody)
	}
	if tc.wantJSON != "" {
		var got, want any
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("body %q is not JSON: %v", raw, err)
		}
		json.Unmarshal([]byte(tc.wantJSON), &want)
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("body (-want +got):\n%s", d)
		}
	}
	if tc.check != nil {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("body %q: %v", raw, err)
		}
		tc.check(t, m)
	}
}

// inProcessEdge compiles src with the control plane's compiler, builds the
// plan and serves it from a fasthttp server in this process.
func inProcessEdge(t *testing.T, src string) string {
	t.Helper()
	c, err := config.Compile("krakend.json", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	ups := plan.NewUpstreams()
	p, err := plan.Build(c.Snapshot, plan.Deps{Logger: zerolog.Nop(), Upstreams: ups})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: p.Serve, NoDefaultServerHeader: true, MaxRequestBodySize: 10 << 20}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.ShutdownWithContext(ctx)
		<-done
		p.Release()
		ups.Close()
	})
	return "http://" + ln.Addr().String()
}
