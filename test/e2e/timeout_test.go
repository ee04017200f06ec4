package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// subMsSetup: one backend that takes 700µs to answer, behind an endpoint
// with a 150µs timeout and one with a 50ms timeout. Rounded to a whole
// millisecond (what the snapshot held before timeout_ns), the first would
// usually answer; KrakenD's context deadline is the exact Go duration.
func subMsSetup(t *testing.T) string {
	be := testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(700 * time.Microsecond)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}))
	return fmt.Sprintf(`{
  "version": 3,
  "host": [%q],
  "endpoints": [
    {"endpoint": "/tight", "timeout": "150us", "backend": [{"url_pattern": "/slow"}]},
    {"endpoint": "/loose", "timeout": "50ms", "backend": [{"url_pattern": "/slow"}]}
  ]
}`, be.URL)
}

// checkSubMs: /tight must time out. A deadline is a runtime timer in
// KrakenD as here, and on a loaded machine a timer can fire after the
// backend's 700µs answer has arrived, so a minority of late answers is
// tolerated; a 1ms deadline (the old rounding) was answered on an idle
// machine. TestEndpointTimeoutPrecision (edge/plan) checks the exact value.
func checkSubMs(t *testing.T, base string) {
	t.Helper()
	const tries = 10
	timedOut := 0
	for i := range tries {
		switch code, _, body := testenv.Get(t, base+"/tight"); {
		case code == 500 && body == "":
			timedOut++
		case code == 200 && body == `{"ok":true}`:
		default:
			t.Fatalf("try %d: /tight: %d %q, want 500 and an empty body (or, late timer, the backend's answer)", i, code, body)
		}
	}
	if timedOut < tries*6/10 {
		t.Errorf("/tight (150us timeout, 700us backend) timed out %d times in %d", timedOut, tries)
	}
	if code, _, body := testenv.Get(t, base+"/loose"); code != 200 || body != `{"ok":true}` {
		t.Fatalf("/loose (50ms timeout): %d %q, want 200", code, body)
	}
}

// TestSubMillisecondTimeout: `timeout: "150us"` through `gw-edge run -c`
// bounds the pipe at 150µs, not at a rounded-up millisecond.
func TestSubMillisecondTimeout(t *testing.T) {
	bins := testenv.Build(t)
	e := testenv.StartStandalone(t, bins, testenv.WriteFile(t, t.TempDir(), "krakend.json", subMsSetup(t)))
	checkSubMs(t, e.URL())
}

// TestSubMillisecondTimeoutThroughControlPlane: pushed through the control
// plane; an edge without the duration.sub_ms feature (it would apply 1ms)
// NACKs it.
func TestSubMillisecondTimeoutThroughControlPlane(t *testing.T) {
	bins := testenv.Build(t)
	dir := t.TempDir()
	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	edge := testenv.StartEdge(t, bins, cp, "edge-new", "eu", filepath.Join(dir, "new"))
	testenv.StartEdge(t, bins, cp, "edge-old", "eu", filepath.Join(dir, "old"), "--disable-feature", "duration.sub_ms")
	r := testenv.Gwctl(t, bins, cp, "push", testenv.WriteFile(t, dir, "krakend.json", subMsSetup(t)), "--wait", "--timeout", "20s")
	if r.Code != 1 {
		t.Fatalf("push: exit %d, want 1 (edge-old NACKs)\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	mustContain(t, "push output", r.Stdout+r.Stderr, "edge-old", "duration.sub_ms")
	edge.WaitVersion(t, 1, 10*time.Second)
	checkSubMs(t, edge.URL())
}
