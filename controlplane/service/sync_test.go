package service

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/apigw/gateway/controlplane/config"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func hello(node, region string) *gatewayv1.Hello {
	return &gatewayv1.Hello{NodeId: node, Region: region, BuildVersion: "test", SchemaVersion: config.SchemaVersion}
}

func holding(h *gatewayv1.Hello, env *gatewayv1.SnapshotEnvelope) *gatewayv1.Hello {
	h.ConfigVersion, h.ConfigSha256 = env.GetVersion(), env.GetSha256()
	return h
}

func TestSyncHelloWithNothingGetsSnapshot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pushed := e.push(configV1, "alice")
	e.waitPublished(1)

	edge := e.connect(hello("edge-1", "eu"))
	got := edge.next()

	compiled, err := config.Compile("gateway.json", []byte(configV1))
	if err != nil {
		t.Fatal(err)
	}
	want := &gatewayv1.SnapshotEnvelope{
		Version:       1,
		Sha256:        compiled.SHA256,
		Payload:       compiled.Payload,
		Author:        "token:admin (alice)",
		CreatedUnixMs: pushed.GetVersion().GetCreatedUnixMs(),
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Fatalf("snapshot (-want +got):\n%s", diff)
	}
	// What an edge checks before applying.
	sum := sha256.Sum256(got.GetPayload())
	if hex.EncodeToString(sum[:]) != got.GetSha256() {
		t.Fatal("payload does not match sha256")
	}
	var snap gatewayv1.Snapshot
	if err := proto.Unmarshal(got.GetPayload(), &snap); err != nil {
		t.Fatalf("payload is not a Snapshot: %v", err)
	}

	if s := e.edgeState("edge-1"); s != stateStale {
		t.Fatalf("state before ACK = %q, want stale", s)
	}
	edge.ack(got)
	e.waitEdgeState("edge-1", stateInSync)
	edge.none()
}

func TestSyncHelloWithCurrentGetsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.push(configV1, "alice")
	e.waitPublished(1)
	cur := e.svc.hub.current().env

	edge := e.connect(holding(hello("edge-1", "eu"), cur))
	edge.none()
	if n := edge.keepalivesSeen(); n == 0 {
		t.Fatal("no keepalive received while idle")
	}
	e.waitEdgeState("edge-1", stateInSync)

	// Same version number but different content (e.g. a control plane that
	// lost its store): the edge lacks the snapshot and gets it.
	other := e.connect(&gatewayv1.Hello{NodeId: "edge-2", ConfigVersion: 1, ConfigSha256: "0000"})
	if got := other.next(); got.GetVersion() != 1 {
		t.Fatalf("got v%d, want v1", got.GetVersion())
	}
}

func TestSyncPushWhileConnected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	edge := e.connect(hello("edge-1", "eu"))
	edge.none() // empty store: nothing to send
	e.waitEdgeState("edge-1", stateInSync)

	e.push(configV1, "alice")
	v1 := edge.next()
	if v1.GetVersion() != 1 {
		t.Fatalf("got v%d, want v1", v1.GetVersion())
	}
	edge.ack(v1)
	e.waitEdgeState("edge-1", stateInSync)

	e.push(configV2, "bob")
	v2 := edge.next()
	if v2.GetVersion() != 2 || v2.GetAuthor() != "token:admin (bob)" {
		t.Fatalf("got v%d by %q, want v2 by token:admin (bob)", v2.GetVersion(), v2.GetAuthor())
	}
	edge.ack(v2)
	e.waitEdgeState("edge-1", stateInSync)
}

func TestSyncBusyEdgeGetsOnlyNewest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.push(configV1, "alice")
	e.waitPublished(1)
	edge := e.connect(hello("edge-1", "eu"))
	v1 := edge.next()

	// The edge is busy applying v1 (no ACK yet) while two pushes land.
	e.push(configV2, "alice")
	e.push(configV3, "alice")
	e.waitPublished(3)
	edge.none()

	edge.ack(v1)
	if got := edge.next(); got.GetVersion() != 3 {
		t.Fatalf("after the ACK got v%d, want only the newest (v3)", got.GetVersion())
	}
	edge.none()
}

func TestSyncNackedVersionNotResent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.push(configV1, "alice")
	e.waitPublished(1)

	edge := e.connect(hello("edge-1", "eu"))
	v1 := edge.next()
	edge.nack(v1, 0, "build plan", &gatewayv1.FieldViolation{Path: "features", Kind: "unsupported", Detail: "proxy.shadow"})
	e.waitEdgeState("edge-1", stateRejected)
	edge.none()

	// Reconnecting does not make the control plane forget the NACK.
	edge.closeSend()
	e.waitEdgeState("edge-1", stateDisconnected)
	edge = e.connect(hello("edge-1", "eu"))
	edge.none()
	e.waitEdgeState("edge-1", stateRejected)

	st := e.status().GetEdges()[0]
	if st.GetRejectedVersion() != 1 || st.GetLastError() == "" {
		t.Fatalf("rejected_version=%d last_error=%q; want 1 and the NACK reason", st.GetRejectedVersion(), st.GetLastError())
	}

	// A newer version is sent.
	e.push(configV2, "alice")
	v2 := edge.next()
	if v2.GetVersion() != 2 {
		t.Fatalf("got v%d, want v2", v2.GetVersion())
	}
	edge.ack(v2)
	e.waitEdgeState("edge-1", stateInSync)
	// The NACK named a missing feature: counted under reason "feature".
	if got := gaugeValue(t, e.svc, "gw_controlplane_nacks_total", map[string]string{"reason": "feature"}); got != 1 {
		t.Fatalf(`nacks_total{reason="feature"} = %v, want 1`, got)
	}
	if got := gaugeValue(t, e.svc, "gw_controlplane_nacks_total", map[string]string{"reason": "other"}); got != 0 {
		t.Fatalf(`nacks_total{reason="other"} = %v, want 0`, got)
	}
}

// TestSyncHelloRejectedNotResent: a control plane that never saw an
// edge's NACK (it restarted since) learns it from the edge's Hello and does
// not send the refused snapshot; a Hello naming other content gets it.
func TestSyncHelloRejectedNotResent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.push(configV1, "alice")
	e.waitPublished(1)
	probe := e.connect(hello("probe", "eu"))
	v1 := probe.next()
	probe.close()

	h := hello("edge-1", "eu")
	h.RejectedVersion, h.RejectedSha256 = v1.GetVersion(), v1.GetSha256()
	edge := e.connect(h)
	e.waitEdgeState("edge-1", stateRejected)
	edge.none()
	for _, st := range e.status().GetEdges() {
		if st.GetNodeId() == "edge-1" && (st.GetRejectedVersion() != 1 || !strings.Contains(st.GetLastError(), "refused before")) {
			t.Errorf("rejected_version=%d last_error=%q", st.GetRejectedVersion(), st.GetLastError())
		}
	}

	other := hello("edge-2", "eu")
	other.RejectedVersion, other.RejectedSha256 = v1.GetVersion(), "not-the-published-content"
	if got := e.connect(other).next(); got.GetVersion() != 1 {
		t.Fatalf("got v%d, want v1", got.GetVersion())
	}
}

func TestSyncUpgradedEdgeGetsNackedVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.push(configV1, "alice")
	e.waitPublished(1)
	edge := e.connect(hello("edge-1", "eu"))
	edge.nack(edge.next(), 0, "unsupported feature")
	e.waitEdgeState("edge-1", stateRejected)
	edge.closeSend()

	// The same node comes back with a new build: it may accept v1 now.
	upgraded := hello("edge-1", "eu")
	upgraded.BuildVersion = "test-2"
	edge = e.connect(upgraded)
	v1 := edge.next()
	if v1.GetVersion() != 1 {
		t.Fatalf("got v%d, want v1", v1.GetVersion())
	}
	edge.ack(v1)
	e.waitEdgeState("edge-1", stateInSync)
}

func TestSyncProtocolErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name  string
		first *gatewayv1.SyncRequest
	}{
		{name: "ack first", first: &gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Ack{Ack: &gatewayv1.Ack{Version: 1}}}},
		{name: "keepalive first", first: &gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Keepalive{Keepalive: &gatewayv1.Keepalive{}}}},
		{name: "hello without node_id", first: &gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Hello{Hello: &gatewayv1.Hello{Region: "eu"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			edge := e.connect(nil)
			edge.send(tc.first)
			wantCode(t, edge.ended(), codes.InvalidArgument)
		})
	}

	t.Run("hello twice", func(t *testing.T) {
		edge := e.connect(hello("edge-x", "eu"))
		edge.send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Hello{Hello: hello("edge-x", "eu")}})
		wantCode(t, edge.ended(), codes.InvalidArgument)
	})
}

func TestSyncSilentEdgeIsDropped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Keepalive = 20 * time.Millisecond; c.RecvTimeout = 200 * time.Millisecond })
	t.Run("no hello", func(t *testing.T) {
		edge := e.connect(nil)
		wantCode(t, edge.ended(), codes.DeadlineExceeded)
	})
	t.Run("silent after hello", func(t *testing.T) {
		edge := e.connect(hello("quiet", "eu"))
		wantCode(t, edge.ended(), codes.DeadlineExceeded)
		e.waitEdgeState("quiet", stateDisconnected)
	})
}

func TestSyncReconnectReplacesOldStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.connect(hello("edge-1", "eu"))
	e.waitEdgeState("edge-1", stateInSync)
	second := e.connect(hello("edge-1", "us"))
	wantCode(t, first.ended(), codes.Aborted)

	// The old stream's end must not mark the new one disconnected.
	second.none()
	edges := e.status().GetEdges()
	if len(edges) != 1 || edges[0].GetRegion() != "us" || !edges[0].GetConnected() {
		t.Fatalf("edges after reconnect: %v; want one connected entry in region us", edges)
	}
}

func TestSyncShutdownEndsStreams(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	edge := e.connect(hello("edge-1", "eu"))
	e.waitEdgeState("edge-1", stateInSync)
	if err := e.svc.Close(); err != nil {
		t.Fatal(err)
	}
	wantCode(t, edge.ended(), codes.Unavailable)
	// A stream opened after Close ends with Unavailable; the server may end
	// it before the Hello is even sent (Send then sees io.EOF), so the Hello
	// goes out without the helper's fatal-on-error.
	late := e.connect(nil)
	if err := late.stream.Send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Hello{Hello: hello("edge-2", "eu")}}); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("send hello: %v", err)
	}
	wantCode(t, late.ended(), codes.Unavailable)
}

func TestSyncLoadsStoredVersionOnStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.push(configV1, "alice")
	e.push(configV2, "alice")

	// A second Service on the same store (a control plane restart): it
	// serves the stored newest version without any push.
	svc2, err := New(Config{Store: e.store})
	if err != nil {
		t.Fatal(err)
	}
	defer svc2.Close()
	eventually(t, func() bool {
		cur := svc2.hub.current()
		return cur != nil && cur.env.GetVersion() == 2
	}, "restarted service publishes v2")
}
