package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	snapsign "github.com/apigw/gateway/proto/sign"
	"github.com/apigw/gateway/test/testenv"
)

// rogueCP is the attacker's control plane: a sync server on loopback that
// sends whatever the test hands it to the edge that dials it, and reports
// every message (but keepalives) the edge sends back. It speaks the real
// protocol with the generated code; it stands in for no part of ours.
type rogueCP struct {
	gatewayv1.UnimplementedSyncServiceServer
	Addr string
	send chan *gatewayv1.SyncResponse
	got  chan *gatewayv1.SyncRequest
	srv  *grpc.Server
}

// startRogue serves on addr ("127.0.0.1:0" for a new port) until stop or
// the end of the test.
func startRogue(t *testing.T, addr string) *rogueCP {
	t.Helper()
	var lis net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port a stopped process held may take a moment to free
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("rogue control plane: listen %s: %v", addr, err)
	}
	r := &rogueCP{
		Addr: lis.Addr().String(),
		send: make(chan *gatewayv1.SyncResponse, 16),
		got:  make(chan *gatewayv1.SyncRequest, 1024),
		srv:  grpc.NewServer(),
	}
	gatewayv1.RegisterSyncServiceServer(r.srv, r)
	go r.srv.Serve(lis)
	t.Cleanup(r.stop)
	return r
}

func (r *rogueCP) stop() { r.srv.Stop() }

func (r *rogueCP) Sync(stream gatewayv1.SyncService_SyncServer) error {
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			if m.GetKeepalive() != nil {
				continue
			}
			select {
			case r.got <- m:
			default: // a test that stopped reading; drop
			}
		}
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		var m *gatewayv1.SyncResponse
		select {
		case <-stream.Context().Done():
			return nil
		case m = <-r.send:
		case now := <-tick.C:
			m = &gatewayv1.SyncResponse{Msg: &gatewayv1.SyncResponse_Keepalive{Keepalive: &gatewayv1.Keepalive{UnixMs: now.UnixMilli()}}}
		}
		if err := stream.Send(m); err != nil {
			return err
		}
	}
}

// await returns the first message from the edge that match accepts.
func (r *rogueCP) await(t *testing.T, timeout time.Duration, what string, match func(*gatewayv1.SyncRequest) bool) *gatewayv1.SyncRequest {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-r.got:
			if match(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("rogue control plane: no %s from the edge after %s", what, timeout)
			return nil
		}
	}
}

func (r *rogueCP) sendSnapshot(env *gatewayv1.SnapshotEnvelope) {
	r.send <- &gatewayv1.SyncResponse{Msg: &gatewayv1.SyncResponse_Snapshot{Snapshot: env}}
}

// answerTo waits for the edge's ACK or NACK of version v.
func (r *rogueCP) answerTo(t *testing.T, v uint64) (ack *gatewayv1.Ack, nack *gatewayv1.Nack) {
	t.Helper()
	m := r.await(t, 20*time.Second, "answer", func(m *gatewayv1.SyncRequest) bool {
		return m.GetAck().GetVersion() == v && m.GetAck() != nil || m.GetNack().GetVersion() == v && m.GetNack() != nil
	})
	return m.GetAck(), m.GetNack()
}

// fetchEnvelope is what a real control plane sends an edge for cfg: the
// test pushes cfg to a control plane in dataDir and reads the envelope as
// an edge would, then stops that control plane. It returns the envelope
// and the control plane's signing key.
func fetchEnvelope(t *testing.T, bins testenv.Bins, dataDir, cfg string) (*gatewayv1.SnapshotEnvelope, *snapsign.Signer) {
	t.Helper()
	cp := testenv.StartControlPlane(t, bins, dataDir)
	defer cp.Stop()
	if r := testenv.Gwctl(t, bins, cp, "push", testenv.WriteFile(t, dataDir, "pushed.json", cfg)); r.Code != 0 {
		t.Fatalf("push: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	conn, err := grpc.NewClient(cp.Sync, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := gatewayv1.NewSyncServiceClient(conn).Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Hello{Hello: &gatewayv1.Hello{NodeId: "fetch", Region: "eu", BuildVersion: "test", SchemaVersion: 1}}}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("fetch envelope: %v", err)
		}
		if env := m.GetSnapshot(); env != nil {
			return env, loadSigner(t, dataDir)
		}
	}
}

// loadSigner reads a control plane's signing key from its data dir.
func loadSigner(t *testing.T, dataDir string) *snapsign.Signer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := snapsign.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return snapsign.NewSigner(key)
}

// reversion is env under another version number, signed by s (nil: left
// unsigned).
func reversion(env *gatewayv1.SnapshotEnvelope, v uint64, s *snapsign.Signer) *gatewayv1.SnapshotEnvelope {
	out := proto.Clone(env).(*gatewayv1.SnapshotEnvelope)
	out.Version, out.Signature, out.SigningKeyId = v, nil, ""
	if s != nil {
		s.Snapshot(out)
	}
	return out
}

// repayload is env with its snapshot changed by edit, re-hashed, under
// version v and signed by s.
func repayload(t *testing.T, env *gatewayv1.SnapshotEnvelope, v uint64, s *snapsign.Signer, edit func(*gatewayv1.Snapshot)) *gatewayv1.SnapshotEnvelope {
	t.Helper()
	var snap gatewayv1.Snapshot
	if err := proto.Unmarshal(env.GetPayload(), &snap); err != nil {
		t.Fatal(err)
	}
	edit(&snap)
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(&snap)
	if err != nil {
		t.Fatal(err)
	}
	out := proto.Clone(env).(*gatewayv1.SnapshotEnvelope)
	sum := sha256.Sum256(payload)
	out.Payload, out.Sha256 = payload, hex.EncodeToString(sum[:])
	return reversion(out, v, s)
}
