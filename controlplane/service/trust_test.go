package service

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/proto/sign"
)

// TestSyncOversizedHellosAreBounded: 100 Hellos with 1 MB fields (the
// finding grew the control plane from 20 to 532 MB) are refused by the
// message limit or the field limits, and none of them is kept.
func TestSyncOversizedHellosAreBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	big := strings.Repeat("x", 1<<20)
	for i := range 100 {
		h := hello(fmt.Sprintf("edge-%d", i), "eu")
		switch i % 4 {
		case 0:
			h.NodeId = big
		case 1:
			h.Region = big
		case 2:
			h.BuildVersion = strings.Repeat("b", 200)
		case 3:
			h.Features = make([]string, 100)
		}
		edge := e.connect(h)
		if code := status.Code(edge.ended()); code != codes.ResourceExhausted && code != codes.InvalidArgument {
			t.Fatalf("hello %d: code %v, want ResourceExhausted or InvalidArgument", i, code)
		}
	}
	if n := len(e.svc.fleet.list(func(string) (uint64, string) { return 0, "" })); n != 0 {
		t.Fatalf("fleet holds %d entries after refused hellos, want 0", n)
	}
	for _, bad := range []string{"edge\x1b[31m", "a b", "", strings.Repeat("n", 129)} {
		if err := checkHello(hello(bad, "eu")); err == nil {
			t.Errorf("node id %q accepted", bad)
		}
	}
}

// TestFleetCapAndTTL: a full registry of connected edges refuses a new
// node; disconnected entries make room and expire after the TTL.
func TestFleetCapAndTTL(t *testing.T) {
	m := newMetrics(newEdgesCollector(func() map[regionState]int { return nil }))
	f := newFleet(3, time.Hour, m)
	now := time.Now()
	nop := func(error) {}
	ids := map[string]uint64{}
	for _, n := range []string{"a", "b", "c"} {
		id, err := f.connect(hello(n, "eu"), nil, "", nop, now)
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = id
	}
	if _, err := f.connect(hello("d", "eu"), nil, "", nop, now); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("4th node: %v, want ResourceExhausted", err)
	}
	f.disconnect("b", ids["b"], "", now)
	if _, err := f.connect(hello("d", "eu"), nil, "", nop, now); err != nil {
		t.Fatalf("4th node after a disconnect: %v", err)
	}
	f.disconnect("a", ids["a"], "", now)
	f.mu.Lock()
	f.sweepLocked(now.Add(2*time.Hour), true)
	n := len(f.edges)
	f.mu.Unlock()
	if n != 2 {
		t.Fatalf("after the TTL the fleet holds %d entries, want 2 (c, d)", n)
	}
}

// TestStatusPagesOverManyEdges: 2500 edges (about 1 MB of status) come in
// pages that each stay far below the gRPC limit and together list every
// edge once.
func TestStatusPagesOverManyEdges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	nop := func(error) {}
	for i := range 2500 {
		h := hello(fmt.Sprintf("edge-%04d", i), fmt.Sprintf("r%d", i%7))
		h.BuildVersion = strings.Repeat("v", 100)
		if _, err := e.svc.fleet.connect(h, nil, "", nop, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	a := &adminServer{svc: e.svc}
	seen := map[string]bool{}
	tok := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("more pages than edges allow")
		}
		resp, err := a.Status(context.Background(), &gatewayv1.StatusRequest{PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetTotalEdges() != 2500 {
			t.Fatalf("total_edges = %d", resp.GetTotalEdges())
		}
		for _, ed := range resp.GetEdges() {
			if seen[ed.GetNodeId()] {
				t.Fatalf("%s listed twice", ed.GetNodeId())
			}
			seen[ed.GetNodeId()] = true
		}
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
	}
	if len(seen) != 2500 {
		t.Fatalf("listed %d edges, want 2500", len(seen))
	}
}

// TestSyncRepairsADifferingRevocationSet: an edge that holds the log's seq
// but an empty set (a rogue control plane reset it) gets a reset with the
// live entries.
func TestSyncRepairsADifferingRevocationSet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := &adminServer{svc: e.svc}
	resp, err := a.Revoke(ctx, &gatewayv1.RevokeRequest{Claim: "jti", Value: "stolen", ExpiresUnixMs: time.Now().Add(time.Hour).UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	seq := resp.GetEntry().GetSeq()
	now := time.Now().UnixMilli()
	h := hello("edge-1", "eu")
	h.RevocationSeq = seq
	h.RevocationSetCutoffUnixMs = now
	h.RevocationSetSha256 = sign.RevocationSetHash(nil, seq, now)
	edge := e.connect(h)
	r := edge.nextRev().GetRevocationReset()
	if r == nil || len(r.GetEntries()) != 1 || r.GetEntries()[0].GetValue() != "stolen" {
		t.Fatalf("first revocation message = %v, want a reset holding the live entry", r)
	}
	// An edge whose set matches is left alone.
	h2 := hello("edge-2", "eu")
	h2.RevocationSeq, h2.RevocationSetCutoffUnixMs = seq, now
	h2.RevocationSetSha256 = sign.RevocationSetHash(r.GetEntries(), seq, now)
	e.connect(h2).noRev()
}

// TestSyncAdmissionInTheTap: on a server with SyncTap (as gw-controlplane
// runs), streams over the admission limit are refused with
// ResourceExhausted before their handler runs, and an admitted stream is
// not charged a second time by Sync.
func TestSyncAdmissionInTheTap(t *testing.T) {
	t.Parallel()
	// One token a minute after a burst of two: the test's third stream
	// is over the limit whatever the scheduling.
	e := newEnv(t, func(c *Config) { c.AdmissionRate = 1; c.AdmissionBurst = 2 })
	e.svc.admit.mu.Lock()
	e.svc.admit.rate = 1.0 / 60
	e.svc.admit.mu.Unlock()
	e.connect(hello("edge-1", "eu"))
	e.connect(hello("edge-2", "eu"))
	e.waitEdgeState("edge-1", stateInSync)
	e.waitEdgeState("edge-2", stateInSync)
	third := e.connect(hello("edge-3", "eu"))
	if code := status.Code(third.ended()); code != codes.ResourceExhausted {
		t.Fatalf("third stream: %v, want ResourceExhausted", code)
	}
	if v := gaugeValue(t, e.svc, "gw_controlplane_streams_refused_total", map[string]string{"reason": refusedRate}); v != 1 {
		t.Fatalf("streams refused for the rate: %v, want 1", v)
	}
}
