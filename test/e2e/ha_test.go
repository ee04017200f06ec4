package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/etcdtest"
	"github.com/apigw/gateway/test/testenv"
)

// TestHAOnEtcd runs three gw-controlplane replicas on a three-member etcd
// cluster (real processes, Debian's etcd-server) with three edges that know
// all three replicas, and walks through the failures HA is for: pushes to
// different replicas, a replica killed while edges stream from it, a
// replica started while an etcd member is down, and the whole etcd cluster
// restarted. Throughout, versions are 1, 2, 3... each assigned once, every
// edge converges on the newest, and no edge applies a version twice however
// often it moves between replicas (their stream age is capped at a few
// seconds so they move all the time). gwctl is given several replicas and
// fails over. The steps share processes and run in order.
func TestHAOnEtcd(t *testing.T) {
	bins := testenv.Build(t)
	backend := echoBackend(t, "ha")
	dir := t.TempDir()

	cluster, err := etcdtest.Start(filepath.Join(dir, "etcd"), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	storeURL := cluster.URL("ha")

	// Replicas share the admin token and the signing key: the first one
	// creates them, the others get copies (README: "Running replicas").
	var cps []*testenv.ControlPlane
	startReplica := func(i int) *testenv.ControlPlane {
		return testenv.StartControlPlane(t, bins, filepath.Join(dir, fmt.Sprintf("cp%d", i)),
			"--store", storeURL, "--max-stream-age", "3s")
	}
	cps = append(cps, startReplica(1))
	for i := 2; i <= 3; i++ {
		d := filepath.Join(dir, fmt.Sprintf("cp%d", i))
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"admin.token", "signing.key", "signing.pub"} {
			b, err := os.ReadFile(filepath.Join(cps[0].DataDir, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		cps = append(cps, startReplica(i))
	}
	var syncAddrs, adminAddrs []string
	for _, cp := range cps {
		syncAddrs = append(syncAddrs, cp.Sync)
		adminAddrs = append(adminAddrs, cp.Admin)
	}
	var edges []*testenv.Edge
	for i := 1; i <= 3; i++ {
		edges = append(edges, testenv.StartEdge(t, bins, cps[0], fmt.Sprintf("edge-%d", i), "eu", filepath.Join(dir, fmt.Sprintf("e%d", i)),
			"--controlplane", strings.Join(syncAddrs[1:], ",")))
	}

	// gwctlOn runs gwctl against the given admin addresses (a comma list).
	gwctlOn := func(addrs ...string) func(args ...string) testenv.Result {
		cp := &testenv.ControlPlane{Admin: strings.Join(addrs, ","), DataDir: cps[0].DataDir}
		return func(args ...string) testenv.Result { return testenv.Gwctl(t, bins, cp, args...) }
	}
	var pushed int
	push := func(t *testing.T, gwctl func(...string) testenv.Result, wantVersion uint64) testenv.Result {
		t.Helper()
		pushed++
		cfg := testenv.WriteFile(t, dir, fmt.Sprintf("v%d.json", pushed), helloConfig(backend.URL, fmt.Sprintf("/v%d", pushed)))
		r := gwctl("push", cfg)
		if r.Code != 0 || !strings.Contains(r.Stdout, fmt.Sprintf("version %d ", wantVersion)) {
			t.Fatalf("push %d: exit %d, want v%d\nstdout: %s\nstderr: %s", pushed, r.Code, wantVersion, r.Stdout, r.Stderr)
		}
		return r
	}
	converge := func(t *testing.T, v uint64) {
		t.Helper()
		for _, e := range edges {
			e.WaitVersion(t, v, 30*time.Second)
			if got := bodyField(t, e.URL()+"/hello", "path"); got != fmt.Sprintf("/v%d", pushed) {
				t.Fatalf("%s serves %q, want /v%d", e.Name, got, pushed)
			}
		}
	}

	step := func(name string, f func(t *testing.T)) {
		if t.Failed() {
			return
		}
		t.Run(name, f)
	}

	step("pushes to different replicas", func(t *testing.T) {
		for i, cp := range cps {
			push(t, gwctlOn(cp.Admin), uint64(i+1))
			converge(t, uint64(i+1))
		}
		// The same content pushed to another replica is the same version.
		cfg := filepath.Join(dir, fmt.Sprintf("v%d.json", pushed))
		if r := gwctlOn(cps[0].Admin)("push", cfg); r.Code != 0 || !strings.Contains(r.Stdout, "version 3 ") {
			t.Fatalf("identical push to another replica: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
	})

	step("a revocation through one replica is listed by another", func(t *testing.T) {
		if r := gwctlOn(cps[1].Admin)("revoke", "tok-ha-1"); r.Code != 0 {
			t.Fatalf("revoke: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		testenv.Eventually(t, 10*time.Second, func() error {
			r := gwctlOn(cps[2].Admin)("revocations")
			if r.Code != 0 || !strings.Contains(r.Stdout, "tok-ha-1") {
				return fmt.Errorf("revocations on replica 3: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
			}
			return nil
		})
	})

	step("a replica killed while edges stream; gwctl fails over", func(t *testing.T) {
		cps[0].Kill()
		r := push(t, gwctlOn(cps[0].Admin, cps[1].Admin), 4)
		if !strings.Contains(r.Stderr, "unavailable, trying "+cps[1].Admin) {
			t.Errorf("gwctl did not say it failed over:\n%s", r.Stderr)
		}
		converge(t, 4)
	})

	step("a replica starts while an etcd member is down", func(t *testing.T) {
		cluster.Members[0].Kill()
		cps[0].RestartSamePorts(t)
		push(t, gwctlOn(cps[0].Admin), 5)
		converge(t, 5)
	})

	step("etcd restarted", func(t *testing.T) {
		if err := cluster.Members[0].Start(); err != nil {
			t.Fatal(err)
		}
		if err := cluster.Members[0].WaitHealthy(); err != nil {
			t.Fatal(err)
		}
		for _, m := range cluster.Members {
			m.Stop()
		}
		for _, m := range cluster.Members {
			if err := m.Start(); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range cluster.Members {
			if err := m.WaitHealthy(); err != nil {
				t.Fatal(err)
			}
		}
		// Every replica follows etcd again: a push to each reaches all edges.
		for i, cp := range cps {
			v := uint64(6 + i)
			testenv.Eventually(t, 30*time.Second, func() error {
				if h := gwctlOn(cp.Admin)("history", "--limit", "1"); h.Code != 0 {
					return fmt.Errorf("replica %d: history exit %d: %s", i+1, h.Code, h.Stderr)
				}
				return nil
			})
			push(t, gwctlOn(cp.Admin), v)
			converge(t, v)
		}
	})

	step("no version lost or duplicated, none applied twice", func(t *testing.T) {
		r := gwctlOn(adminAddrs...)("history", "-o", "json")
		if r.Code != 0 {
			t.Fatalf("history: exit %d\n%s", r.Code, r.Stderr)
		}
		var hist struct {
			Versions []struct {
				Version string `json:"version"`
				Sha256  string `json:"sha256"`
			} `json:"versions"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &hist); err != nil {
			t.Fatalf("history -o json: %v\n%s", err, r.Stdout)
		}
		shas := map[string]bool{}
		for i, v := range hist.Versions {
			if want := fmt.Sprint(len(hist.Versions) - i); v.Version != want {
				t.Errorf("history position %d is v%s, want v%s", i, v.Version, want)
			}
			shas[v.Sha256] = true
		}
		if len(hist.Versions) != pushed || len(shas) != pushed {
			t.Errorf("history has %d versions (%d distinct), want %d", len(hist.Versions), len(shas), pushed)
		}
		// Streams end at their age cap (3s here) and the edges move on to
		// the next replica: wait for two more connections of each.
		type tally struct {
			applied  map[float64]int
			connects int
			replicas map[string]bool
		}
		count := func(e *testenv.Edge) tally {
			c := tally{applied: map[float64]int{}, replicas: map[string]bool{}}
			for _, line := range e.Lines() {
				var m map[string]any
				if json.Unmarshal([]byte(line), &m) != nil {
					continue
				}
				switch m["message"] {
				case "snapshot applied":
					v, _ := m["version"].(float64)
					c.applied[v]++
				case "connected to control plane":
					c.connects++
					addr, _ := m["controlplane"].(string)
					c.replicas[addr] = true
				}
			}
			return c
		}
		for _, e := range edges {
			base := count(e).connects
			testenv.Eventually(t, 30*time.Second, func() error {
				if c := count(e); c.connects < base+2 {
					return fmt.Errorf("%s connected %d times, want %d: the stream age cap should move it between replicas", e.Name, c.connects, base+2)
				}
				return nil
			})
			c := count(e)
			if len(c.replicas) < 2 {
				t.Errorf("%s streamed from %d replica(s) over %d connections, want at least 2", e.Name, len(c.replicas), c.connects)
			}
			for v, n := range c.applied {
				if n > 1 {
					t.Errorf("%s applied v%v %d times", e.Name, v, n)
				}
			}
			if h, ok := e.Health(); !ok || h.Version != uint64(pushed) {
				t.Errorf("%s serves v%d after moving around, want v%d", e.Name, h.Version, pushed)
			}
		}
	})
}
