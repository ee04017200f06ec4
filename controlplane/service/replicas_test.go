package service

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"

	"github.com/apigw/gateway/controlplane/store"
	"github.com/apigw/gateway/test/etcdtest"
)

// TestSyncStreamAgeCap ends a stream at the maximum age with Unavailable;
// the edge that reconnects holding the version is sent nothing.
func TestSyncStreamAgeCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.MaxStreamAge = 300 * time.Millisecond })
	e.push(configV1, "alice")
	e.waitPublished(1)

	edge := e.connect(hello("edge-1", "eu"))
	got := edge.next()
	edge.ack(got)
	wantCode(t, edge.ended(), codes.Unavailable)

	again := e.connect(holding(hello("edge-1", "eu"), got))
	again.none()
	if v := gaugeValue(t, e.svc, "gw_controlplane_streams_aged_total", nil); v < 1 {
		t.Fatalf("gw_controlplane_streams_aged_total = %v, want >= 1", v)
	}
}

// TestReplicasOnEtcd runs two Services on one etcd store, as two replicas:
// a push to one reaches an edge streaming from the other, and the edge that
// moves to the first replica holding that version is not sent it again.
func TestReplicasOnEtcd(t *testing.T) {
	t.Parallel()
	c, err := etcdtest.Start(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close) // after the stores close (cleanups run last-first)
	open := func() *store.Etcd {
		st, err := store.OpenEtcd(context.Background(), store.EtcdConfig{Endpoints: c.Endpoints(), Prefix: "/svc/"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	replica := func(st store.Store) *env {
		return serveEnv(t, Config{Store: st, Logger: zerolog.New(zerolog.NewTestWriter(t)), Keepalive: 50 * time.Millisecond, RecvTimeout: 5 * time.Second})
	}
	a, b := replica(open()), replica(open())

	edge := b.connect(hello("edge-1", "eu"))
	a.push(configV1, "alice")
	got := edge.next()
	if got.GetVersion() != 1 {
		t.Fatalf("edge on replica b got v%d, want v1 pushed to replica a", got.GetVersion())
	}
	edge.ack(got)
	b.waitEdgeState("edge-1", stateInSync)
	edge.close()

	moved := a.connect(holding(hello("edge-1", "eu"), got))
	moved.none()
	a.waitEdgeState("edge-1", stateInSync)

	// The same content pushed to the other replica is the same version.
	if r := b.push(configV1, "bob"); r.GetVersion().GetVersion() != 1 || r.GetCreated() {
		t.Fatalf("identical push to replica b = v%d created=%v, want v1 not created", r.GetVersion().GetVersion(), r.GetCreated())
	}
	// A revocation appended on b reaches the edge on a.
	b.revoke("tok-1")
	a.waitRevocationSeq(1)
}
