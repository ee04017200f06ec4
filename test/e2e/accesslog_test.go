package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// accessLogConfig has a good endpoint, an aggregate with a failing backend
// and the health path skipped; extra goes into the router namespace.
func accessLogConfig(backendURL, extra string) string {
	return fmt.Sprintf(`{
  "version": 3,
  "extra_config": {"router": {"logger_skip_paths": ["/__health"]%s}},
  "endpoints": [
    {"endpoint": "/ok", "backend": [{"host": [%[2]q], "url_pattern": "/up"}]},
    {"endpoint": "/agg", "backend": [
      {"host": [%[2]q], "url_pattern": "/up", "group": "a"},
      {"host": [%[2]q], "url_pattern": "/fail", "group": "b"}
    ]}
  ]
}`, extra, backendURL)
}

func accessBackend(t *testing.T) *testenv.Backend {
	return testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}))
}

// accessLines waits until n lines of the process start with prefix and
// returns them with the line that follows each.
func accessLines(t *testing.T, e *testenv.Edge, prefix string, n int) [][2]string {
	t.Helper()
	var got [][2]string
	testenv.Eventually(t, 10*time.Second, func() error {
		lines := e.Lines()
		got = got[:0]
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				next := ""
				if i+1 < len(lines) {
					next = lines[i+1]
				}
				got = append(got, [2]string{l, next})
			}
		}
		if len(got) < n {
			return errorf("%d access lines, want %d", len(got), n)
		}
		return nil
	})
	return got
}

// TestAccessLogKrakenDFormat: a real gw-edge writes KrakenD's access line
// per request on stdout, with the backend errors after it, and skips
// router.logger_skip_paths.
func TestAccessLogKrakenDFormat(t *testing.T) {
	bins := testenv.Build(t)
	b := accessBackend(t)
	cfg := testenv.WriteFile(t, t.TempDir(), "krakend.json", accessLogConfig(b.URL, ""))
	e := testenv.StartStandalone(t, bins, cfg)

	testenv.Get(t, e.URL()+"/__health")
	testenv.Get(t, e.URL()+"/ok?x=1")
	testenv.Get(t, e.URL()+"/agg")
	testenv.Get(t, e.URL()+"/nope")
	got := accessLines(t, e, "[GIN] ", 3)
	if len(got) != 3 {
		t.Fatalf("access lines %q, want 3 (health skipped)", got)
	}
	line := regexp.MustCompile(`^\[GIN\] \d{4}/\d\d/\d\d - \d\d:\d\d:\d\d \| (\d{3}) \| +[0-9.]+(ns|µs|ms|s) \|       127\.0\.0\.1 \| GET      (".*")$`)
	want := []struct{ status, path string }{{"200", `"/ok?x=1"`}, {"200", `"/agg"`}, {"404", `"/nope"`}}
	for i, w := range want {
		m := line.FindStringSubmatch(got[i][0])
		if m == nil || len(got[i][0]) != len(strings.TrimRight(got[i][0], " ")) {
			t.Errorf("line %d %q: not KrakenD's shape", i, got[i][0])
			continue
		}
		if m[1] != w.status || m[3] != w.path {
			t.Errorf("line %d: status %s path %s, want %s %s", i, m[1], m[3], w.status, w.path)
		}
	}
	// The failed backend of the aggregate: KrakenD's error text after the line.
	if want := "Error #01: invalid status code 500 [GET /fail]: " + b.URL + "/fail"; got[1][1] != want {
		t.Errorf("after the aggregate's line: %q, want %q", got[1][1], want)
	}
}

// TestAccessLogJSON: --access-log json writes every field, the route, the
// backend count, completeness and the client's trace id.
func TestAccessLogJSON(t *testing.T) {
	bins := testenv.Build(t)
	b := accessBackend(t)
	cfg := testenv.WriteFile(t, t.TempDir(), "krakend.json", accessLogConfig(b.URL, ""))
	e := testenv.StartStandalone(t, bins, cfg, "--access-log", "json")

	req, _ := http.NewRequest("GET", e.URL()+"/agg?q=2", nil)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var m map[string]any
	testenv.Eventually(t, 10*time.Second, func() error {
		for _, l := range e.Lines() {
			if json.Unmarshal([]byte(l), &m) == nil && m["component"] == "access" {
				return nil
			}
		}
		return errorf("no JSON access line")
	})
	want := map[string]any{"method": "GET", "path": "/agg", "query": "q=2", "route": "/agg", "backends": 2.0,
		"status": 200.0, "client_ip": "127.0.0.1", "complete": false, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if d, ok := m["duration_ms"].(float64); !ok || d <= 0 {
		t.Errorf("duration_ms = %v", m["duration_ms"])
	}
	if n, ok := m["bytes"].(float64); !ok || n <= 0 {
		t.Errorf("bytes = %v", m["bytes"])
	}
	if errs, _ := m["errors"].([]any); len(errs) != 1 || !strings.Contains(fmt.Sprint(errs[0]), "invalid status code 500") {
		t.Errorf("errors = %v", m["errors"])
	}
}

// TestAccessLogDisabled: router.disable_access_log writes no line.
func TestAccessLogDisabled(t *testing.T) {
	bins := testenv.Build(t)
	b := accessBackend(t)
	cfg := testenv.WriteFile(t, t.TempDir(), "krakend.json", accessLogConfig(b.URL, `, "disable_access_log": true`))
	e := testenv.StartStandalone(t, bins, cfg)
	for range 3 {
		testenv.Get(t, e.URL()+"/ok")
	}
	// Stopped and reaped: everything it printed has been read.
	e.Stop()
	if exited, _ := e.Exited(); !exited {
		t.Fatal("edge did not stop")
	}
	for _, l := range e.Lines() {
		if strings.HasPrefix(l, "[GIN]") {
			t.Errorf("access line with disable_access_log: %q", l)
		}
	}
}
