package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// countingBackend counts hits per path; /flaky fails while failing is set,
// /cached answers with a cacheable Cache-Control.
type countingBackend struct {
	*testenv.Backend
	failing atomic.Bool
	mu      sync.Mutex // guards hits
	hits    map[string]int
}

func newCountingBackend(t *testing.T) *countingBackend {
	b := &countingBackend{hits: map[string]int{}}
	b.Backend = testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.hits[r.URL.Path]++
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/flaky" && b.failing.Load():
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"down":true}`))
			return
		case r.URL.Path == "/cached":
			w.Header().Set("Cache-Control", "public, max-age=60")
		}
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}))
	return b
}

func (b *countingBackend) count(path string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hits[path]
}

func qosConfig(backendURL string, limitedRate int, extraEndpoint string) string {
	return fmt.Sprintf(`{
  "version": 3,
  "host": [%q],
  "extra_config": {
    "security/cors": {"allow_origins": ["https://app.test"], "allow_methods": ["GET", "POST"], "max_age": "1h"}
  },
  "endpoints": [
    {"endpoint": "/limited", "backend": [{"url_pattern": "/limited"}],
     "extra_config": {"qos/ratelimit/router": {"max_rate": %d, "every": "1m"}}},
    {"endpoint": "/per-client", "backend": [{"url_pattern": "/per-client"}],
     "extra_config": {"qos/ratelimit/router": {"client_max_rate": 3, "every": "1m", "strategy": "header", "key": "X-Client"}}},
    {"endpoint": "/flaky", "backend": [{"url_pattern": "/flaky",
     "extra_config": {"qos/circuit-breaker": {"interval": 60, "timeout": 1, "max_errors": 2}}}]},
    {"endpoint": "/cached", "backend": [{"url_pattern": "/cached", "extra_config": {"qos/http-cache": {}}}]}%s
  ]
}`, backendURL, limitedRate, extraEndpoint)
}

// TestTrafficProtection drives real processes through the protections of
// issue 5: a global limit (503) and a per-client limit (429) with their
// headers, a breaker that opens on a failing backend and closes once it
// recovers, a cache that spares the backend, CORS preflights on any path,
// and limiter state that survives a push that does not touch the route but
// resets when its settings change.
func TestTrafficProtection(t *testing.T) {
	bins := testenv.Build(t)
	b := newCountingBackend(t)
	dir := t.TempDir()
	v1 := testenv.WriteFile(t, dir, "v1.json", qosConfig(b.URL, 5, ""))
	v2 := testenv.WriteFile(t, dir, "v2.json", qosConfig(b.URL, 5, `,
    {"endpoint": "/other", "backend": [{"url_pattern": "/other"}]}`))
	v3 := testenv.WriteFile(t, dir, "v3.json", qosConfig(b.URL, 6, ""))

	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	e := testenv.StartEdge(t, bins, cp, "edge-qos", "eu", filepath.Join(dir, "e"))
	push := func(file string, version uint64) {
		t.Helper()
		if r := testenv.Gwctl(t, bins, cp, "push", file, "--wait", "--timeout", "20s"); r.Code != 0 {
			t.Fatalf("push %s: exit %d\n%s%s", file, r.Code, r.Stdout, r.Stderr)
		}
		e.WaitVersion(t, version, 5*time.Second)
	}
	push(v1, 1)

	t.Run("global limit answers 503 and the backend sees no more than the limit", func(t *testing.T) {
		ok, limited := 0, 0
		for i := 0; i < 20; i++ {
			code, h, _ := testenv.Get(t, e.URL()+"/limited")
			switch code {
			case http.StatusOK:
				ok++
			case http.StatusServiceUnavailable:
				limited++
				if h.Get("Retry-After") == "" {
					t.Errorf("503 without Retry-After: %v", h)
				}
			default:
				t.Errorf("status %d", code)
			}
		}
		if ok != 5 || limited != 15 {
			t.Errorf("20 requests against a limit of 5: %d ok, %d limited", ok, limited)
		}
		if n := b.count("/limited"); n != 5 {
			t.Errorf("backend saw %d requests, want 5", n)
		}
	})

	t.Run("per-client limit answers 429 per client", func(t *testing.T) {
		get := func(client string) (int, http.Header) {
			req, _ := http.NewRequest(http.MethodGet, e.URL()+"/per-client", nil)
			req.Header.Set("X-Client", client)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode, resp.Header
		}
		for i := 0; i < 3; i++ {
			if code, _ := get("alice"); code != http.StatusOK {
				t.Fatalf("alice request %d: %d", i, code)
			}
		}
		code, h := get("alice")
		if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" || h.Get("X-Ratelimit-Limit") == "" {
			t.Errorf("alice over her limit: %d %v", code, h)
		}
		if code, _ := get("bob"); code != http.StatusOK {
			t.Errorf("bob is limited by alice's bucket: %d", code)
		}
	})

	t.Run("breaker opens on failures and closes after recovery", func(t *testing.T) {
		b.failing.Store(true)
		for i := 0; i < 3; i++ {
			if code, _, _ := testenv.Get(t, e.URL()+"/flaky"); code != http.StatusInternalServerError {
				t.Fatalf("failing backend call %d: status %d, want 500", i, code)
			}
		}
		before := b.count("/flaky")
		code, h, body := testenv.Get(t, e.URL()+"/flaky")
		if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || body != "" {
			t.Errorf("open breaker: %d %s %v", code, body, h)
		}
		if n := b.count("/flaky"); n != before {
			t.Errorf("open breaker called the backend (%d → %d)", before, n)
		}
		b.failing.Store(false)
		// After the breaker's timeout (1 s) it lets one probe through; until
		// then it answers 503 without calling the backend. Bounded wait on
		// the answer.
		testenv.Eventually(t, 10*time.Second, func() error {
			if code, _, _ := testenv.Get(t, e.URL()+"/flaky"); code != http.StatusOK {
				return fmt.Errorf("half-open probe to a recovered backend: %d", code)
			}
			return nil
		})
		if code, _, _ := testenv.Get(t, e.URL()+"/flaky"); code != http.StatusOK {
			t.Errorf("closed breaker: %d", code)
		}
	})

	t.Run("cache hits skip the backend", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			if code, _, _ := testenv.Get(t, e.URL()+"/cached"); code != http.StatusOK {
				t.Fatalf("cached: %d", code)
			}
		}
		if n := b.count("/cached"); n != 1 {
			t.Errorf("backend saw %d requests for a cacheable response, want 1", n)
		}
	})

	t.Run("CORS preflight is answered on any path", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodOptions, e.URL()+"/no/such/route", nil)
		req.Header.Set("Origin", "https://app.test")
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.test" ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
			t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
		}
	})

	t.Run("a push keeps unchanged routes' state and resets changed ones", func(t *testing.T) {
		push(v2, 2)
		if code, _, _ := testenv.Get(t, e.URL()+"/limited"); code != http.StatusServiceUnavailable {
			t.Errorf("after an unrelated push the exhausted limit was reset: %d", code)
		}
		push(v3, 3)
		if code, _, _ := testenv.Get(t, e.URL()+"/limited"); code != http.StatusOK {
			t.Errorf("after changing the limit the bucket was not reset: %d", code)
		}
	})
}
