package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// rolloutStatus is the part of gwctl status -o json a rollout test reads.
type rolloutStatus struct {
	Rollout struct {
		Phase   string   `json:"phase"`
		Reason  string   `json:"reason"`
		Regions []string `json:"regions"`
	} `json:"rollout"`
	Edges []struct {
		NodeID    string `json:"node_id"`
		Connected bool   `json:"connected"`
	} `json:"edges"`
}

func gwctlRollout(t *testing.T, bins testenv.Bins, cp *testenv.ControlPlane) rolloutStatus {
	t.Helper()
	r := testenv.Gwctl(t, bins, cp, "status", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("status: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	var st rolloutStatus
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, r.Stdout)
	}
	return st
}

func waitRolloutPhase(t *testing.T, bins testenv.Bins, cp *testenv.ControlPlane, phase string) rolloutStatus {
	t.Helper()
	var st rolloutStatus
	testenv.Eventually(t, 20*time.Second, func() error {
		st = gwctlRollout(t, bins, cp)
		if st.Rollout.Phase != phase {
			return fmt.Errorf("rollout phase %q (%s), want %q", st.Rollout.Phase, st.Rollout.Reason, phase)
		}
		return nil
	})
	return st
}

// TestStagedRollout runs one control plane and edges in three regions as
// processes: a canary reaches its region only (also across a restart of
// the control plane), promote takes it everywhere, abort brings the canary
// back, a config a canary edge cannot serve (its build lacks a feature)
// halts the rollout on the NACK, and a config whose backend fails halts it
// on the edges' own 5xx counters.
func TestStagedRollout(t *testing.T) {
	bins := testenv.Build(t)
	backend := testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"path": r.URL.Path})
	}))
	dir := t.TempDir()
	write := func(name, upstream string) string {
		return testenv.WriteFile(t, dir, name, helloConfig(backend.URL, upstream))
	}
	v1, v2, v3, failing := write("v1.json", "/v1"), write("v2.json", "/v2"), write("v3.json", "/v3"), write("fail.json", "/fail")
	withStatic := testenv.WriteFile(t, dir, "static.json", fmt.Sprintf(`{
  "version": 3,
  "host": [%q],
  "endpoints": [
    {"endpoint": "/hello", "backend": [{"url_pattern": "/v4"}],
     "extra_config": {"proxy": {"static": {"strategy": "always", "data": {"static": true}}}}}
  ]
}`, backend.URL))

	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	eu := testenv.StartEdge(t, bins, cp, "edge-eu", "eu", filepath.Join(dir, "eu"))
	us := testenv.StartEdge(t, bins, cp, "edge-us", "us", filepath.Join(dir, "us"))
	// An older build in ap: it cannot serve proxy/static.
	ap := testenv.StartEdge(t, bins, cp, "edge-ap", "ap", filepath.Join(dir, "ap"), "--disable-feature", "proxy.static")
	all := []*testenv.Edge{eu, us, ap}
	path := func(e *testenv.Edge) string { return bodyField(t, e.URL()+"/hello", "path") }
	gwctl := func(wantCode int, args ...string) testenv.Result {
		t.Helper()
		r := testenv.Gwctl(t, bins, cp, args...)
		if r.Code != wantCode {
			t.Fatalf("gwctl %v: exit %d, want %d\n%s%s", args, r.Code, wantCode, r.Stdout, r.Stderr)
		}
		return r
	}
	step := func(name string, f func(t *testing.T)) {
		if t.Failed() {
			return
		}
		t.Run(name, f)
	}

	step("v1 everywhere", func(t *testing.T) {
		r := gwctl(0, "push", v1, "--wait", "--timeout", "20s")
		mustContain(t, "push", r.Stdout, "3/3 edges on v1")
	})

	step("canary in eu only", func(t *testing.T) {
		r := gwctl(0, "push", v2, "--canary", "eu", "--wait", "--timeout", "20s")
		mustContain(t, "push", r.Stdout, "version 2", "rollout: version 2 canary in eu (stable version 1 elsewhere)", "1/1 edges on v2")
		if got := path(eu); got != "/v2" {
			t.Errorf("eu /hello → %q, want /v2", got)
		}
		time.Sleep(2 * time.Second) // keepalives went by: nothing else moves
		for _, e := range []*testenv.Edge{us, ap} {
			if h, _ := e.Health(); h.Version != 1 || path(e) != "/v1" {
				t.Errorf("%s serves version %d (%s), want 1", e.Name, h.Version, path(e))
			}
		}
		mustContain(t, "status", gwctl(0, "status").Stdout, "rollout: version 2 canary in eu")
		gwctl(1, "push", v3) // refused while the canary runs
	})

	step("control plane restarted mid-rollout", func(t *testing.T) {
		cp.Kill()
		cp.RestartSamePorts(t)
		testenv.Eventually(t, 20*time.Second, func() error {
			st := gwctlRollout(t, bins, cp)
			n := 0
			for _, e := range st.Edges {
				if e.Connected {
					n++
				}
			}
			if n != 3 || st.Rollout.Phase != "canary" {
				return fmt.Errorf("%d edges connected, phase %q", n, st.Rollout.Phase)
			}
			return nil
		})
		time.Sleep(2 * time.Second)
		for _, e := range []*testenv.Edge{us, ap} {
			if h, _ := e.Health(); h.Version != 1 {
				t.Errorf("%s serves version %d after the restart, want 1", e.Name, h.Version)
			}
		}
		if h, _ := eu.Health(); h.Version != 2 {
			t.Errorf("eu serves version %d after the restart, want 2", h.Version)
		}
	})

	step("promote", func(t *testing.T) {
		mustContain(t, "promote", gwctl(0, "promote", "2").Stdout, "version 2 promoted")
		for _, e := range all {
			e.WaitVersion(t, 2, 10*time.Second)
		}
		gwctl(1, "abort", "2") // already promoted
	})

	step("abort brings the canary back", func(t *testing.T) {
		gwctl(0, "push", v3, "--canary", "eu", "--wait", "--timeout", "20s")
		mustContain(t, "abort", gwctl(0, "abort", "3").Stdout, "version 3 aborted")
		eu.WaitVersion(t, 2, 10*time.Second)
		if got := path(eu); got != "/v2" {
			t.Errorf("eu after abort /hello → %q, want /v2", got)
		}
	})

	step("a NACK halts the rollout", func(t *testing.T) {
		gwctl(0, "push", withStatic, "--canary", "ap,eu", "--soak", "1m")
		st := waitRolloutPhase(t, bins, cp, "halted")
		mustContain(t, "halt reason", st.Rollout.Reason, "edge-ap", "NACKed version 4")
		eu.WaitVersion(t, 2, 10*time.Second) // the other canary goes back
		if h, _ := us.Health(); h.Version != 2 {
			t.Errorf("us serves version %d, want 2", h.Version)
		}
		audit := gwctl(0, "audit", "-o", "json").Stdout
		mustContain(t, "audit", audit, `"halt"`, "control-plane (automatic)", `"abort"`, `"promote"`)
	})

	step("a 5xx rate halts the rollout", func(t *testing.T) {
		gwctl(0, "push", failing, "--canary", "us", "--max-error-rate", "0.2", "--wait", "--timeout", "20s")
		for range 60 {
			if code, _, _ := testenv.Get(t, us.URL()+"/hello"); code < 500 {
				t.Fatalf("the failing config answered %d", code)
			}
		}
		st := waitRolloutPhase(t, bins, cp, "halted")
		mustContain(t, "halt reason", st.Rollout.Reason, "error rate", "above the maximum 0.2")
		us.WaitVersion(t, 2, 10*time.Second)
		if got := path(us); got != "/v2" {
			t.Errorf("us after the halt /hello → %q, want /v2", got)
		}
		if !strings.Contains(gwctl(0, "status").Stdout, "halted") {
			t.Error("status does not show the halted rollout")
		}
	})
}
