package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
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
	old := testenv.StartEdge(t, bins, cp, "edge-old", "eu", filepath.Join(dir, "old"), "--disable-feature", "proxy.static",
		"--metrics-listen", "127.0.0.1:0")
	oldMetrics := metricsURL(t, old)

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

	// The edge got v1 and v2 and built v2 once.
	wantMetric(t, oldMetrics, "gw_edge_snapshots_received_total", 2)
	wantMetric(t, oldMetrics, `gw_edge_snapshot_applies_total{result="rejected"}`, 1)

	// Keepalives flow every second; a control plane restart makes the edge
	// reconnect with a Hello. Neither may bring version 2 back: wait until
	// the control plane has seen two keepalives, then restart it and wait
	// for two keepalives on the new stream.
	waitKeepalives(t, cp, "edge-old", 2)
	cp.Kill()
	cp.RestartSamePorts(t)
	testenv.Eventually(t, 20*time.Second, func() error {
		s := testenv.Gwctl(t, bins, cp, "status")
		if !strings.Contains(s.Stdout, "edge-old") || strings.Contains(s.Stdout, "disconnected") {
			return errorf("edges not reconnected yet:\n%s", s.Stdout)
		}
		return nil
	})
	waitKeepalives(t, cp, "edge-old", 2)
	wantMetric(t, oldMetrics, "gw_edge_snapshots_received_total", 2)
	wantMetric(t, oldMetrics, `gw_edge_snapshot_applies_total{result="rejected"}`, 1)

	if r := testenv.Gwctl(t, bins, cp, "push", plainV3, "--wait", "--timeout", "20s"); r.Code != 0 {
		t.Fatalf("push v3: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	old.WaitVersion(t, 3, 5*time.Second)
	// The stream is ordered: a resent v2 would have arrived before v3.
	wantMetric(t, oldMetrics, "gw_edge_snapshots_received_total", 3)
	wantMetric(t, oldMetrics, `gw_edge_snapshot_applies_total{result="rejected"}`, 1)
}

// metricsURL is the base URL of the metrics listener e logged.
func metricsURL(t *testing.T, e *testenv.Edge) string {
	t.Helper()
	m := e.WaitLog(t, 0, 10*time.Second, testenv.MessageIs("metrics listening"))
	addr, _ := m["addr"].(string)
	if addr == "" {
		t.Fatalf("metrics listening line without addr: %v", m)
	}
	return "http://" + addr
}

// wantMetric requires the sample series to read want now.
func wantMetric(t *testing.T, base, series string, want float64) {
	t.Helper()
	if got, ok := scrape(t, base, series); !ok || got != want {
		t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
	}
}

// waitKeepalives waits until the control plane has seen n more messages
// (keepalives) from node on its current stream after the first status read.
func waitKeepalives(t *testing.T, cp *testenv.ControlPlane, node string, n int) {
	t.Helper()
	conn, err := grpc.NewClient(cp.Admin, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	admin := gatewayv1.NewAdminServiceClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+cp.Token)
	lastSeen := func() (int64, error) {
		resp, err := admin.Status(ctx, &gatewayv1.StatusRequest{})
		if err != nil {
			return 0, err
		}
		for _, e := range resp.GetEdges() {
			if e.GetNodeId() == node && e.GetConnected() {
				return e.GetLastSeenUnixMs(), nil
			}
		}
		return 0, fmt.Errorf("edge %s not connected", node)
	}
	var seen int64
	testenv.Eventually(t, 10*time.Second, func() (err error) {
		seen, err = lastSeen()
		return err
	})
	for i := 0; i < n; i++ {
		testenv.Eventually(t, 10*time.Second, func() error {
			now, err := lastSeen()
			if err != nil {
				return err
			}
			if now <= seen {
				return errorf("no message from %s since %d", node, seen)
			}
			seen = now
			return nil
		})
	}
}
