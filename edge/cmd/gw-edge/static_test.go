package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestStandaloneStaticModifier runs gw-edge on a config with martian's
// static.Modifier, as KrakenD's users write it, against a backend that
// counts its calls. The expected answers are what KrakenD CE 2.12.1 gave
// for the same config, files and backend on loopback, except where the
// edge is deliberately safer (a link leaving rootPath, a directory).
func TestStandaloneStaticModifier(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	outside := filepath.Join(dir, "outside")
	for _, d := range []string{filepath.Join(root, "sub"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{
		"root/data.json": "{\"a\":1,\"b\":\"x\"}\n", "root/hello.txt": "hello world\n", "root/noext": "noext",
		"root/sub/page.html": "<p>hi</p>\n", "root/mapped.json": "{\"m\":\"mapped\"}\n", "outside/secret.txt": "secret\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(root, "link.txt")); err != nil {
		t.Fatal(err)
	}

	var hits atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Backend", "yes")
		json.NewEncoder(w).Encode(map[string]any{"backend": true, "path": r.URL.Path})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	host := "http://" + ln.Addr().String()

	static := func(scope, extra string) string {
		return fmt.Sprintf(`"extra_config": {"modifier/martian": {"static.Modifier": {%s"rootPath": %q%s}}}`, scope, root, extra)
	}
	both := `"scope": ["request", "response"], `
	cfg := fmt.Sprintf(`{"version": 3, "host": [%q], "endpoints": [
	  {"endpoint": "/noop/{f}", "output_encoding": "no-op", "input_headers": ["Range"],
	   "backend": [{"url_pattern": "/{f}", "encoding": "no-op", %s}]},
	  {"endpoint": "/noop2/{a}/{b}", "output_encoding": "no-op",
	   "backend": [{"url_pattern": "/{a}/{b}", "encoding": "no-op", %s}]},
	  {"endpoint": "/json/{f}", "backend": [{"url_pattern": "/{f}", %s}]},
	  {"endpoint": "/resp/{f}", "output_encoding": "no-op",
	   "backend": [{"url_pattern": "/{f}", "encoding": "no-op", %s}]},
	  {"endpoint": "/req/{f}", "output_encoding": "no-op",
	   "backend": [{"url_pattern": "/{f}", "encoding": "no-op", %s}]}
	]}`, host,
		static(both, `, "explicitPaths": {"/alias": "/mapped.json", "/gone": "/nope.json"}`),
		static(both, ""), static(both, ""), static(`"scope": ["response"], `, ""), static(`"scope": ["request"], `, ""))
	p := filepath.Join(dir, "krakend.json")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, "run", "-c", p, "--listen", "127.0.0.1:0", "--log-format", "json")

	c := &http.Client{Timeout: 5 * time.Second}
	fetch := func(path, rng string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+r.addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	for _, tc := range []struct {
		path, rng   string
		code        int
		ctype, body string
		called      bool
	}{
		{path: "/noop/data.json", code: 200, ctype: "application/json", body: "{\"a\":1,\"b\":\"x\"}\n"},
		{path: "/noop/hello.txt", code: 200, ctype: "text/plain; charset=utf-8", body: "hello world\n"},
		{path: "/noop2/sub/page.html", code: 200, ctype: "text/html; charset=utf-8", body: "<p>hi</p>\n"},
		{path: "/noop/alias", code: 200, ctype: "application/json", body: "{\"m\":\"mapped\"}\n"},
		{path: "/noop/noext", code: 200, body: "noext"}, // KrakenD: "Content-Type: " (empty)
		{path: "/noop/missing", code: 404},
		{path: "/noop/gone", code: 404},
		{path: "/noop/hello.txt", rng: "bytes=0-4", code: 206, ctype: "text/plain; charset=utf-8", body: "hello"},
		{path: "/noop/hello.txt", rng: "bytes=6-", code: 206, ctype: "text/plain; charset=utf-8", body: "world\n"},
		{path: "/noop/hello.txt", rng: "bytes=3-1", code: 416, ctype: "text/plain; charset=utf-8"},
		// Safer than KrakenD (it serves the secret, and answers 200 empty
		// for a directory).
		{path: "/noop/link.txt", code: 404},
		{path: "/noop/sub", code: 404},
		// Decoded as the backend's JSON; a file that is not JSON, or
		// missing, fails the call (500), as in KrakenD.
		{path: "/json/data.json", code: 200, ctype: "application/json; charset=utf-8", body: `{"a":1,"b":"x"}`},
		{path: "/json/hello.txt", code: 500},
		{path: "/json/missing", code: 500},
		// Response scope: the backend is called, its body replaced.
		{path: "/resp/data.json", code: 200, ctype: "application/json", body: "{\"a\":1,\"b\":\"x\"}\n", called: true},
		{path: "/resp/missing", code: 404, ctype: "application/json", body: "{\"backend\":true,\"path\":\"/missing\"}\n", called: true},
		// Request scope: not called, nothing read.
		{path: "/req/data.json", code: 200},
	} {
		before := hits.Load()
		code, h, body := fetch(tc.path, tc.rng)
		if code != tc.code || h.Get("Content-Type") != tc.ctype || body != tc.body {
			t.Errorf("GET %s (Range %q) = %d %q %q, want %d %q %q", tc.path, tc.rng, code, h.Get("Content-Type"), body, tc.code, tc.ctype, tc.body)
		}
		if called := hits.Load() > before; called != tc.called {
			t.Errorf("GET %s: backend called %v, want %v", tc.path, called, tc.called)
		}
		if tc.path == "/noop/hello.txt" && tc.rng == "bytes=0-4" && h.Get("Content-Range") != "bytes 0-4/12" {
			t.Errorf("Content-Range %q", h.Get("Content-Range"))
		}
		if strings.HasPrefix(tc.path, "/resp/") && h.Get("X-Backend") != "yes" {
			t.Errorf("GET %s lost the backend's headers: %v", tc.path, h)
		}
	}
}
