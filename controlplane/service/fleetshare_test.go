package service

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/apigw/gateway/controlplane/store"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/test/etcdtest"
)

// etcdReplicas starts n Services on one etcd store (prefix) as replicas
// r0, r1..., publishing their fleets often.
func etcdReplicas(t *testing.T, c *etcdtest.Cluster, prefix string, n int, tweak func(*Config)) []*env {
	t.Helper()
	var out []*env
	for i := range n {
		st, err := store.OpenEtcd(context.Background(), store.EtcdConfig{Endpoints: c.Endpoints(), Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		cfg := Config{
			Store: st, Logger: zerolog.New(zerolog.NewTestWriter(t)), ReplicaName: "r" + string(rune('0'+i)),
			RolloutCheckInterval: 20 * time.Millisecond, RecvTimeout: time.Minute, Keepalive: 50 * time.Millisecond,
			FleetPublishInterval: 20 * time.Millisecond, FleetLeaseTTL: 2 * time.Second,
		}
		if tweak != nil {
			tweak(&cfg)
		}
		out = append(out, serveEnv(t, cfg))
	}
	return out
}

func startEtcd(t *testing.T) *etcdtest.Cluster {
	t.Helper()
	c, err := etcdtest.Start(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close) // after the stores close (cleanups run last-first)
	return c
}

func edgeOf(resp *gatewayv1.StatusResponse, node string) *gatewayv1.EdgeStatus {
	for _, e := range resp.GetEdges() {
		if e.GetNodeId() == node {
			return e
		}
	}
	return nil
}

// TestFleetAcrossReplicas: each replica's Status lists the edges of both,
// with the replica each streams from; an edge that moves is listed once,
// on its new replica; a replica that closes takes its edges with it.
func TestFleetAcrossReplicas(t *testing.T) {
	t.Parallel()
	c := startEtcd(t)
	rs := etcdReplicas(t, c, "/fleet/", 2, nil)
	a, b := rs[0], rs[1]
	a.push(configV1, "alice")
	ea := a.connect(hello("edge-a", "eu"))
	eb := b.connect(hello("edge-b", "us"))
	ea.ack(ea.next())
	eb.ack(eb.next())

	for _, r := range rs {
		eventually(t, func() bool {
			st := r.status()
			x, y := edgeOf(st, "edge-a"), edgeOf(st, "edge-b")
			return st.GetTotalEdges() == 2 && x.GetState() == stateInSync && y.GetState() == stateInSync &&
				x.GetReplica() == "r0" && y.GetReplica() == "r1" && x.GetAppliedVersion() == 1 && len(st.GetReplicas()) == 2
		}, "replica %s lists both edges in sync", r.svc.replicaName())
	}
	st := b.status()
	if st.GetReplica() != "r1" || st.GetReplicas()[0].GetName() != "r1" || st.GetReplicas()[1].GetName() != "r0" {
		t.Errorf("replica %q, replicas %v", st.GetReplica(), st.GetReplicas())
	}
	if x := edgeOf(st, "edge-a"); x.GetReportedUnixMs() == 0 || !x.GetConnected() || x.GetConnectedSinceUnixMs() == 0 {
		t.Errorf("edge-a as seen from r1: %v", x)
	}

	// The fleet page of either lists both, with the replicas.
	page := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	a.svc.FleetPageHandler(a.auth).ServeHTTP(page, req)
	if body := page.Body.String(); page.Code != http.StatusOK || !strings.Contains(body, `data-node="edge-b"`) ||
		!strings.Contains(body, `id="replicas"`) || !strings.Contains(body, "<b>r1</b>") {
		t.Errorf("fleet page of r0: %d\n%s", page.Code, body)
	}

	// A NACK on one replica is seen by the other.
	a.push(configV2, "alice")
	ea.nack(ea.next(), 1, "feature lua not supported")
	eb.ack(eb.next())
	eventually(t, func() bool {
		x := edgeOf(b.status(), "edge-a")
		return x.GetState() == stateRejected && x.GetRejectedVersion() == 2 && strings.Contains(x.GetLastError(), "lua")
	}, "r1 sees edge-a's NACK")

	// edge-a moves to r1: it is listed once, connected to r1, and r1 does
	// not send it the version it NACKed on r0.
	ea.close()
	moved := b.connect(hello("edge-a", "eu"))
	for _, r := range rs {
		eventually(t, func() bool {
			st := r.status()
			x := edgeOf(st, "edge-a")
			return st.GetTotalEdges() == 2 && x.GetConnected() && x.GetReplica() == "r1"
		}, "replica %s lists edge-a on r1", r.svc.replicaName())
	}
	moved.none()

	// The edges gauges sum over the replicas: r0 no longer counts edge-a.
	eventually(t, func() bool {
		n := 0
		for _, r := range rs {
			for _, c := range r.svc.edgeRegionCounts() {
				n += c
			}
		}
		return n == 2
	}, "gauges over both replicas count 2 edges")

	// r1 closes (revokes its lease): r0 drops its edges at once.
	b.svc.Close()
	eventually(t, func() bool {
		st := a.status()
		x := edgeOf(st, "edge-a")
		return edgeOf(st, "edge-b") == nil && x != nil && !x.GetConnected() && x.GetReplica() == "r0" && len(st.GetReplicas()) == 1
	}, "r0 drops r1's edges after r1 closed")
}

// TestRolloutAcrossReplicas: the canary region's only edge streams from
// another replica than the one holding the rollout's checks; its NACK
// halts the rollout, and a soak promotes only once that edge serves it.
func TestRolloutAcrossReplicas(t *testing.T) {
	t.Parallel()
	c := startEtcd(t)
	// Only r0 runs the checks in this test (r1's interval is an hour), so
	// the decision must come from r0 reading r1's edge.
	a := etcdReplicas(t, c, "/rollout/", 1, nil)[0]
	b := serveEnvOnStoreOf(t, c, "/rollout/", "r1-quiet")
	a.push(configV1, "alice")
	eu := b.connect(&gatewayv1.Hello{NodeId: "eu-1", Region: "eu"})
	us := a.connect(&gatewayv1.Hello{NodeId: "us-1", Region: "us"})
	eu.ack(eu.next())
	us.ack(us.next())
	a.waitEdgeState("eu-1", stateInSync)

	a.pushCanary(configV2, &gatewayv1.PushRequest{CanaryRegions: []string{"eu"}, SoakMs: 300})
	v2 := eu.next()
	// Not applied yet: the soak passes but no canary edge serves it, so no
	// promotion.
	time.Sleep(500 * time.Millisecond)
	if r := a.status().GetRollout(); r.GetPhase() != phaseCanary || r.GetCanaryEdges() != 1 || r.GetCanaryApplied() != 0 {
		t.Fatalf("rollout before the canary edge applied: %v", r)
	}
	eu.ack(v2)
	r := a.waitPhase(phasePromoted)
	if !strings.Contains(r.GetReason(), "1 canary edge") {
		t.Errorf("promote reason %q", r.GetReason())
	}
	if got := us.next(); got.GetVersion() != 2 {
		t.Fatalf("us got v%d after the promotion, want v2", got.GetVersion())
	}
	us.ack(&gatewayv1.SnapshotEnvelope{Version: 2, Sha256: v2.GetSha256()})

	// Next canary: the remote canary edge NACKs; r0 halts.
	a.pushCanary(configV3, &gatewayv1.PushRequest{CanaryRegions: []string{"eu"}, SoakMs: 60_000})
	eu.nack(eu.next(), 2, "feature lua not supported by this edge")
	r = a.waitPhase(phaseHalted)
	if !strings.Contains(r.GetReason(), "eu-1") || !strings.Contains(r.GetReason(), "lua") {
		t.Errorf("halt reason %q does not name the remote edge and its error", r.GetReason())
	}
}

// serveEnvOnStoreOf starts a replica whose own rollout checks never run.
func serveEnvOnStoreOf(t *testing.T, c *etcdtest.Cluster, prefix, name string) *env {
	t.Helper()
	st, err := store.OpenEtcd(context.Background(), store.EtcdConfig{Endpoints: c.Endpoints(), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return serveEnv(t, Config{
		Store: st, Logger: zerolog.New(zerolog.NewTestWriter(t)), ReplicaName: name,
		RolloutCheckInterval: time.Hour, RecvTimeout: time.Minute, Keepalive: 50 * time.Millisecond,
		FleetPublishInterval: 20 * time.Millisecond, FleetLeaseTTL: 2 * time.Second,
	})
}
