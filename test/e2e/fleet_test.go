package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// TestFleetLifecycle walks one fleet through the life the foundation
// promises: push → convergence, identical push, a rejected config, a new
// version, rollback, the control plane killed, an edge restarted while the
// control plane is down, the control plane back without reconfiguring
// anybody, a push while an edge is away, and a corrupt snapshot on disk.
// The steps share processes on purpose (starting them is the slow part), so
// they run in order and stop at the first failure.
func TestFleetLifecycle(t *testing.T) {
	bins := testenv.Build(t)
	backend := echoBackend(t, "b1")
	dir := t.TempDir()
	cfgV1 := testenv.WriteFile(t, dir, "v1.json", helloConfig(backend.URL, "/v1"))
	cfgV2 := testenv.WriteFile(t, dir, "v2.yaml", "# same API, another upstream path\n"+helloConfig(backend.URL, "/v2"))
	cfgV4 := testenv.WriteFile(t, dir, "v4.json", helloConfig(backend.URL, "/v4"))
	bad := testenv.WriteFile(t, dir, "bad.json", `{
  "version": 3,
  "endpoints": [
    {"endpoint": "/a", "backend": [{"url_pattern": "/x", "host": ["amqp://nope"]}]},
    {"endpoint": "/b/{id}", "method": "TRACE", "backend": [{"url_pattern": "/y/{missing}", "host": ["http://127.0.0.1:1"]}]},
    {"endpoint": "/a", "backend": [{"url_pattern": "/z", "host": ["http://127.0.0.1:1"], "encodin": "json"}]}
  ]
}`)

	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	e1 := testenv.StartEdge(t, bins, cp, "edge-eu-1", "eu-west", filepath.Join(dir, "e1"))
	e2 := testenv.StartEdge(t, bins, cp, "edge-us-1", "us-east", filepath.Join(dir, "e2"))

	step := func(name string, f func(t *testing.T)) {
		if t.Failed() {
			return
		}
		t.Run(name, f)
	}

	step("edges without a snapshot answer 503", func(t *testing.T) {
		for _, e := range []*testenv.Edge{e1, e2} {
			code, _, body := testenv.Get(t, e.URL()+"/hello")
			if code != http.StatusServiceUnavailable || body != `{"error":"service_unavailable"}` {
				t.Errorf("%s: got %d %s", e.Name, code, body)
			}
		}
	})

	step("push converges both edges", func(t *testing.T) {
		r := testenv.Gwctl(t, bins, cp, "push", cfgV1, "--wait", "--timeout", "20s")
		if r.Code != 0 {
			t.Fatalf("push: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		mustContain(t, "push output", r.Stdout, "version 1", "2/2 edges on v1")
		for _, e := range []*testenv.Edge{e1, e2} {
			e.WaitVersion(t, 1, 5*time.Second)
			if got := bodyField(t, e.URL()+"/hello", "path"); got != "/v1" {
				t.Errorf("%s /hello → upstream %q, want /v1", e.Name, got)
			}
		}
	})

	step("identical push keeps the version", func(t *testing.T) {
		r := testenv.Gwctl(t, bins, cp, "push", cfgV1)
		if r.Code != 0 {
			t.Fatalf("push: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		mustContain(t, "push output", r.Stdout, "unchanged: version 1")
	})

	step("bad config lists every violation and touches nothing", func(t *testing.T) {
		r := testenv.Gwctl(t, bins, cp, "push", bad, "--wait")
		if r.Code != 1 {
			t.Fatalf("push bad: exit %d, want 1\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		out := r.Stdout + r.Stderr
		mustContain(t, "push output", out,
			"endpoints[0].backend[0].host[0]",
			"endpoints[1].method",
			"endpoints[1].backend[0].url_pattern",
			"endpoints[2].backend[0].encodin",
			"endpoints[2].endpoint",
		)
		v := testenv.Gwctl(t, bins, cp, "validate", bad)
		if v.Code != 1 {
			t.Errorf("validate bad: exit %d, want 1", v.Code)
		}
		if got, want := strings.Count(strings.TrimSpace(v.Stdout+v.Stderr), "\n")+1, 5; got < want {
			t.Errorf("validate printed %d lines, want at least %d:\n%s%s", got, want, v.Stdout, v.Stderr)
		}
		h := testenv.Gwctl(t, bins, cp, "history")
		if strings.Contains(h.Stdout, "\n2 ") {
			t.Errorf("a rejected config made a version:\n%s", h.Stdout)
		}
		for _, e := range []*testenv.Edge{e1, e2} {
			if hh, _ := e.Health(); hh.Version != 1 {
				t.Errorf("%s moved to version %d", e.Name, hh.Version)
			}
		}
	})

	step("second version and rollback", func(t *testing.T) {
		r := testenv.Gwctl(t, bins, cp, "push", cfgV2, "--wait", "--timeout", "20s")
		if r.Code != 0 {
			t.Fatalf("push v2: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		mustContain(t, "push output", r.Stdout, "version 2")
		e1.WaitVersion(t, 2, 5*time.Second)
		if got := bodyField(t, e1.URL()+"/hello", "path"); got != "/v2" {
			t.Fatalf("after v2 /hello → %q", got)
		}
		d := testenv.Gwctl(t, bins, cp, "diff", cfgV1)
		mustContain(t, "diff output", d.Stdout, "GET /hello", "url_pattern")

		rb := testenv.Gwctl(t, bins, cp, "rollback", "1")
		if rb.Code != 0 {
			t.Fatalf("rollback: exit %d\n%s%s", rb.Code, rb.Stdout, rb.Stderr)
		}
		mustContain(t, "rollback output", rb.Stdout, "version 3")
		for _, e := range []*testenv.Edge{e1, e2} {
			e.WaitVersion(t, 3, 10*time.Second)
			if got := bodyField(t, e.URL()+"/hello", "path"); got != "/v1" {
				t.Errorf("%s after rollback /hello → %q, want /v1", e.Name, got)
			}
		}
		h := testenv.Gwctl(t, bins, cp, "history")
		mustContain(t, "history", h.Stdout, "rollback of 1")
		s := testenv.Gwctl(t, bins, cp, "status")
		mustContain(t, "status", s.Stdout, "eu-west", "us-east", "edge-eu-1", "edge-us-1", "in_sync")
	})

	step("control plane killed: edges keep serving, even across an edge restart", func(t *testing.T) {
		cp.Kill()
		for _, e := range []*testenv.Edge{e1, e2} {
			if got := bodyField(t, e.URL()+"/hello", "path"); got != "/v1" {
				t.Errorf("%s with control plane down → %q", e.Name, got)
			}
		}
		e1.Kill()
		e1.RestartSamePort(t)
		e1.WaitVersion(t, 3, 5*time.Second)
		if got := bodyField(t, e1.URL()+"/hello", "path"); got != "/v1" {
			t.Errorf("restarted edge from disk → %q", got)
		}
	})

	step("control plane back: edges reconnect without reconfiguring", func(t *testing.T) {
		before := applies(e2)
		cp.RestartSamePorts(t)
		testenv.Eventually(t, 20*time.Second, func() error {
			s := testenv.Gwctl(t, bins, cp, "status")
			if strings.Count(s.Stdout, "in_sync") != 2 {
				return errorf("status not 2 in_sync yet:\n%s", s.Stdout)
			}
			return nil
		})
		if after := applies(e2); after != before {
			t.Errorf("edge re-applied its snapshot after the control plane restart: %d → %d applies", before, after)
		}
	})

	step("push while an edge is away: it catches up on reconnect", func(t *testing.T) {
		e2.Kill()
		r := testenv.Gwctl(t, bins, cp, "push", cfgV4, "--wait", "--timeout", "20s")
		if r.Code != 0 {
			t.Fatalf("push v4: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		mustContain(t, "push output", r.Stdout, "version 4", "1/1 edges on v4")
		e2.RestartSamePort(t)
		e2.WaitVersion(t, 4, 20*time.Second)
		if got := bodyField(t, e2.URL()+"/hello", "path"); got != "/v4" {
			t.Errorf("caught-up edge → %q, want /v4", got)
		}
	})

	step("corrupt newest snapshot on disk: the previous one serves", func(t *testing.T) {
		cp.Kill()
		e2.Kill()
		newest := newestSnapshotFile(t, e2.DataDir)
		b, err := os.ReadFile(newest)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(b) / 2; i < len(b) && i < len(b)/2+16; i++ {
			b[i] ^= 0xff
		}
		if err := os.WriteFile(newest, b, 0o600); err != nil {
			t.Fatal(err)
		}
		e2.RestartSamePort(t)
		e2.WaitVersion(t, 3, 5*time.Second)
		if got := bodyField(t, e2.URL()+"/hello", "path"); got != "/v1" {
			t.Errorf("fallback snapshot → %q, want /v1 (version 3)", got)
		}
	})
}

// applies counts the snapshots an edge has applied, from its log.
func applies(e *testenv.Edge) int {
	n := 0
	for _, l := range e.Lines() {
		if strings.Contains(l, `"message":"snapshot applied"`) {
			n++
		}
	}
	return n
}

// newestSnapshotFile returns the snapshot file with the highest version
// in an edge's data dir (file names carry the zero-padded version).
func newestSnapshotFile(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasPrefix(e.Name(), "snapshot-") && !strings.Contains(e.Name(), ".tmp") {
			names = append(names, e.Name())
		}
	}
	if len(names) < 2 {
		t.Fatalf("want at least 2 snapshot files in %s, have %v", dir, names)
	}
	sort.Strings(names)
	return filepath.Join(dir, names[len(names)-1])
}
