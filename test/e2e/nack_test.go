package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// TestNackedVersionIsNotResent runs one edge that lacks a feature (as an
// older or differently built edge would) beside one that has it. A config
// that uses the feature is ACKed by one and NACKed by the other; the NACKing
// edge keeps serving its old plan and is never sent that version again, not
// on keepalives and not after reconnecting; a later version it can serve
// reaches it normally.
func TestNackedVersionIsNotResent(t *testing.T) {
	bins := testenv.Build(t)
	backend := echoBackend(t, "b1")
	dir := t.TempDir()
	plain := testenv.WriteFile(t, dir, "plain.json", helloConfig(backend.URL, "/v1"))
	withStatic := testenv.WriteFile(t, dir, "static.json", fmt.Sprintf(`{
  "version": 3,
  "host": [%q],
  "endpoints": [
    {"endpoint": "/hello", "backend": [{"url_pattern": "/v2"}],
     "extra_config": {"proxy": {"static": {"strategy": "always", "data": {"static": true}}}}}
  ]
}`, backend.URL))
	plainV3 := testenv.WriteFile(t, dir, "plain3.json", helloConfig(backend.URL, "/v3"))

	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	full := testenv.StartEdge(t, bins, cp, "edge-full", "eu", filepath.Join(dir, "full"))
	old := testenv.StartEdge(t, bins, cp, "edge-old", "eu", filepath.Join(dir, "old"), "--disable-feature", "proxy.static")

	if r := testenv.Gwctl(t, bins, cp, "push", plain, "--wait", "--timeout", "20s"); r.Code != 0 {
		t.Fatalf("push plain: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	r := testenv.Gwctl(t, bins, cp, "push", withStatic, "--wait", "--timeout", "20s")
	if r.Code != 1 {
		t.Fatalf("push with a NACK: exit %d, want 1\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	mustContain(t, "push output", r.Stdout+r.Stderr, "edge-old", "proxy.static")
	full.WaitVersion(t, 2, 5*time.Second)
	if h, _ := old.Health(); h.Version != 1 {
		t.Fatalf("NACKing edge serves version %d, want 1", h.Version)
	}
	if got := bodyField(t, old.URL()+"/hello", "path"); got != "/v1" {
		t.Errorf("NACKing edge /hello → %q, want the old plan's /v1", got)
	}
	s := testenv.Gwctl(t, bins, cp, "status")
	mustContain(t, "status", s.Stdout, "rejected")

	// Keepalives flow every second; a control plane restart makes the edge
	// reconnect with a Hello. Neither may bring version 2 back.
	time.Sleep(2500 * time.Millisecond)
	cp.Kill()
	cp.RestartSamePorts(t)
	testenv.Eventually(t, 20*time.Second, func() error {
		s := testenv.Gwctl(t, bins, cp, "status")
		if !strings.Contains(s.Stdout, "edge-old") || strings.Contains(s.Stdout, "disconnected") {
			return errorf("edges not reconnected yet:\n%s", s.Stdout)
		}
		return nil
	})
	time.Sleep(1500 * time.Millisecond)
	if n := nacks(old); n != 1 {
		t.Errorf("edge NACKed %d times, want exactly 1 (the version must not be resent)", n)
	}

	if r := testenv.Gwctl(t, bins, cp, "push", plainV3, "--wait", "--timeout", "20s"); r.Code != 0 {
		t.Fatalf("push v3: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	old.WaitVersion(t, 3, 5*time.Second)
}

func nacks(e *testenv.Edge) int {
	n := 0
	for _, l := range e.Lines() {
		if strings.Contains(l, `"message":"snapshot rejected"`) {
			n++
		}
	}
	return n
}
