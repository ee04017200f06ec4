package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/etcdtest"
	"github.com/apigw/gateway/test/testenv"
)

// fleetStatus is the part of `gwctl status -o json` this test reads.
type fleetStatus struct {
	Replica  string `json:"replica"`
	Replicas []struct {
		Name  string `json:"name"`
		Edges int    `json:"edges"`
	} `json:"replicas"`
	TotalEdges int `json:"total_edges"`
	Edges      []struct {
		NodeID         string `json:"node_id"`
		Region         string `json:"region"`
		State          string `json:"state"`
		AppliedVersion string `json:"applied_version"` // uint64: a string in protojson
		Connected      bool   `json:"connected"`
		Replica        string `json:"replica"`
		ReportedUnixMs string `json:"reported_unix_ms"`
	} `json:"edges"`
}

// edgesLine renders st's edges for messages and comparisons:
// "node@replica:state:vN" sorted.
func (st fleetStatus) edgesLine() string {
	var out []string
	for _, e := range st.Edges {
		conn := ""
		if !e.Connected {
			conn = "(gone)"
		}
		out = append(out, fmt.Sprintf("%s@%s:%s:v%s%s", e.NodeID, e.Replica, e.State, e.AppliedVersion, conn))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// TestFleetAcrossReplicas runs two gw-controlplane replicas on a real etcd
// and edges streaming from different ones: `gwctl status -o json` on
// either lists every edge with its region, version, state and the replica
// it streams from. One replica is SIGKILLed: its edge that knows only it
// vanishes from the survivor's view once the dead replica's lease expires,
// and its edge that knows both reconnects and shows on the survivor.
func TestFleetAcrossReplicas(t *testing.T) {
	bins := testenv.Build(t)
	backend := echoBackend(t, "fleet")
	dir := t.TempDir()
	cluster, err := etcdtest.Start(filepath.Join(dir, "etcd"), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	storeURL := cluster.URL("fleet")

	start := func(name string) *testenv.ControlPlane {
		return testenv.StartControlPlane(t, bins, filepath.Join(dir, name),
			"--store", storeURL, "--replica-name", name, "--fleet-lease-ttl", "2s", "--max-stream-age", "0")
	}
	a := start("cp-a")
	bDir := filepath.Join(dir, "cp-b")
	if err := os.MkdirAll(bDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"admin.token", "signing.key", "signing.pub"} {
		b, err := os.ReadFile(filepath.Join(a.DataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bDir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b := start("cp-b")

	// edge-eu streams from cp-a only, edge-us from cp-b only; edge-ap
	// knows cp-b first and cp-a as a fallback.
	edges := []*testenv.Edge{
		testenv.StartEdge(t, bins, a, "edge-eu", "eu", filepath.Join(dir, "eu")),
		testenv.StartEdge(t, bins, b, "edge-us", "us", filepath.Join(dir, "us")),
		testenv.StartEdge(t, bins, b, "edge-ap", "ap", filepath.Join(dir, "ap"), "--controlplane", a.Sync),
	}
	cfg := testenv.WriteFile(t, dir, "v1.json", helloConfig(backend.URL, "/v1"))
	if r := testenv.Gwctl(t, bins, a, "push", cfg); r.Code != 0 {
		t.Fatalf("push: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, e := range edges {
		e.WaitVersion(t, 1, 30*time.Second)
	}

	status := func(cp *testenv.ControlPlane) (fleetStatus, error) {
		r := testenv.Gwctl(t, bins, cp, "status", "-o", "json")
		var st fleetStatus
		if r.Code != 0 {
			return st, fmt.Errorf("status: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
			t.Fatalf("status -o json: %v\n%s", err, r.Stdout)
		}
		return st, nil
	}
	// Where edge-ap streams from is up to it (it starts at a random
	// address); both replicas must agree.
	var apOn string
	for _, cp := range []*testenv.ControlPlane{a, b} {
		testenv.Eventually(t, 15*time.Second, func() error {
			st, err := status(cp)
			if err != nil {
				return err
			}
			for _, e := range st.Edges {
				if e.NodeID == "edge-ap" {
					if apOn != "" && e.Replica != apOn {
						return fmt.Errorf("edge-ap on %s as seen from %s, on %s as seen from the other", e.Replica, st.Replica, apOn)
					}
					apOn = e.Replica
				}
			}
			want := fmt.Sprintf("edge-ap@%s:in_sync:v1 edge-eu@cp-a:in_sync:v1 edge-us@cp-b:in_sync:v1", apOn)
			if got := st.edgesLine(); got != want || st.TotalEdges != 3 || len(st.Replicas) != 2 {
				return fmt.Errorf("status on %s: %s (total %d, replicas %v), want %s", st.Replica, got, st.TotalEdges, st.Replicas, want)
			}
			return nil
		})
	}
	st, _ := status(b)
	if st.Replica != "cp-b" || st.Replicas[0].Name != "cp-b" || st.Replicas[1].Name != "cp-a" {
		t.Errorf("replicas as cp-b sees them: %q %v", st.Replica, st.Replicas)
	}
	// The text view names the replica of each edge.
	if r := testenv.Gwctl(t, bins, a, "status"); r.Code != 0 || !strings.Contains(r.Stdout, "REPLICA") || !strings.Contains(r.Stdout, "cp-b") ||
		!strings.Contains(r.Stdout, "replicas: cp-a (answering") {
		t.Errorf("gwctl status text:\n%s%s", r.Stdout, r.Stderr)
	} else {
		t.Logf("gwctl status on cp-a:\n%s", r.Stdout)
	}

	// cp-b dies without a word: edge-us (which knows only cp-b) leaves
	// cp-a's view when cp-b's lease expires; edge-ap is on cp-a by then.
	killed := time.Now()
	b.Kill()
	testenv.Eventually(t, 20*time.Second, func() error {
		st, err := status(a)
		if err != nil {
			return err
		}
		if got, want := st.edgesLine(), "edge-ap@cp-a:in_sync:v1 edge-eu@cp-a:in_sync:v1"; got != want || len(st.Replicas) != 1 {
			return fmt.Errorf("status on cp-a after cp-b died: %s (replicas %v), want %s", got, st.Replicas, want)
		}
		return nil
	})
	t.Logf("cp-b's edges left cp-a's view %s after the kill (lease TTL 2s)", time.Since(killed).Round(100*time.Millisecond))
}
