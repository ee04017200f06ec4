package service

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/apigw/gateway/controlplane/store"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

const testToken = "s3cret-test-token"

// Test configurations in the KrakenD v3 format, compiled by the real
// controlplane/config.
const (
	configV1 = `{"version": 3, "endpoints": [
  {"endpoint": "/users/{id}", "backend": [{"host": ["http://127.0.0.1:8081"], "url_pattern": "/u/{id}"}]}
]}`
	configV2 = `{"version": 3, "endpoints": [
  {"endpoint": "/users/{id}", "backend": [{"host": ["http://127.0.0.1:8081"], "url_pattern": "/u/{id}"}]},
  {"endpoint": "/orders", "backend": [{"host": ["http://127.0.0.1:8082"], "url_pattern": "/orders"}]}
]}`
	configV3 = `{"version": 3, "endpoints": [
  {"endpoint": "/orders", "backend": [{"host": ["http://127.0.0.1:8082"], "url_pattern": "/orders"}]}
]}`
	// configBad has several independent problems.
	configBad = `{"version": 3, "bogus_key": true, "endpoints": [
  {"endpoint": "users", "backend": [{"host": ["http://127.0.0.1:8081"], "url_pattern": "/u"}]},
  {"endpoint": "/x", "backend": []},
  {"endpoint": "/y", "method": "GET", "unknown_endpoint_key": 1, "backend": [{"host": ["amqp://nope"], "url_pattern": "/y"}]}
]}`
)

func source(content string) *gatewayv1.ConfigSource {
	return &gatewayv1.ConfigSource{Filename: "gateway.json", Content: []byte(content)}
}

// env is one control plane under test: a bbolt store in a temp dir, the
// Service, and two gRPC servers on 127.0.0.1:0 (admin with token auth, sync).
type env struct {
	t         *testing.T
	store     *store.Bolt
	svc       *Service
	admin     gatewayv1.AdminServiceClient // sends the token
	noAuth    gatewayv1.AdminServiceClient // sends no token
	sync      gatewayv1.SyncServiceClient
	adminSrv  *grpc.Server
	syncSrv   *grpc.Server
	auth      *TokenAuth
	adminAddr string
}

type envOption func(*Config)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after serveEnv's cleanup stopped the
	// Service.
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	cfg := Config{
		Store:       st,
		Logger:      zerolog.New(zerolog.NewTestWriter(t)),
		Keepalive:   50 * time.Millisecond,
		RecvTimeout: 5 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	e := serveEnv(t, cfg)
	e.store = st
	return e
}

// serveEnv starts a Service with cfg and its admin (token auth) and sync
// servers on 127.0.0.1:0, and stops them in cleanup. It does not close
// cfg.Store.
func serveEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := NewTokenAuth(testToken)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, svc: svc, auth: auth}
	e.adminSrv = grpc.NewServer(auth.ServerOptions()...)
	svc.RegisterAdmin(e.adminSrv)
	svc.AuditRefusals(auth)
	e.syncSrv = grpc.NewServer(grpc.InTapHandle(svc.SyncTap)) // as gw-controlplane
	svc.RegisterSync(e.syncSrv)

	var serving sync.WaitGroup
	serve := func(srv *grpc.Server) string {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		serving.Go(func() { _ = srv.Serve(lis) })
		return lis.Addr().String()
	}
	adminAddr, syncAddr := serve(e.adminSrv), serve(e.syncSrv)
	e.adminAddr = adminAddr
	t.Cleanup(func() {
		e.adminSrv.Stop()
		e.syncSrv.Stop()
		serving.Wait()
		if err := svc.Close(); err != nil {
			t.Error(err)
		}
	})

	adminConn := dial(t, adminAddr, grpc.WithUnaryInterceptor(bearer(testToken)))
	e.admin = gatewayv1.NewAdminServiceClient(adminConn)
	e.noAuth = gatewayv1.NewAdminServiceClient(dial(t, adminAddr))
	e.sync = gatewayv1.NewSyncServiceClient(dial(t, syncAddr))
	return e
}

func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// bearer adds the admin token to every unary call, as gwctl does.
func bearer(token string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (e *env) push(content, author string) *gatewayv1.PushResponse {
	e.t.Helper()
	resp, err := e.admin.Push(ctxT(e.t), &gatewayv1.PushRequest{Source: source(content), Author: author})
	if err != nil {
		e.t.Fatalf("Push: %v", err)
	}
	return resp
}

// waitPublished waits until the hub distributes version v, so a test can
// order "push" before "edge acts" deterministically.
func (e *env) waitPublished(v uint64) {
	e.t.Helper()
	eventually(e.t, func() bool {
		cur := e.svc.hub.current()
		return cur != nil && cur.env.GetVersion() == v
	}, "hub publishes version %d", v)
}

func (e *env) status() *gatewayv1.StatusResponse {
	e.t.Helper()
	resp, err := e.admin.Status(ctxT(e.t), &gatewayv1.StatusRequest{})
	if err != nil {
		e.t.Fatalf("Status: %v", err)
	}
	return resp
}

// edgeState returns the state of node in Status ("" when absent).
func (e *env) edgeState(node string) string {
	for _, ed := range e.status().GetEdges() {
		if ed.GetNodeId() == node {
			return ed.GetState()
		}
	}
	return ""
}

func (e *env) waitEdgeState(node, want string) {
	e.t.Helper()
	var got string
	eventually(e.t, func() bool { got = e.edgeState(node); return got == want }, "edge %s state %q", node, want)
}

func eventually(t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: "+format, args...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testEdge speaks the Sync protocol through the generated client, as a real
// edge does, and hands each received snapshot and revocation message to the
// test. It ACKs or NACKs only when told, so tests control timing.
type testEdge struct {
	t         *testing.T
	stream    gatewayv1.SyncService_SyncClient
	cancel    context.CancelFunc
	snapshots chan *gatewayv1.SnapshotEnvelope
	revs      revQueue      // deltas and resets, in order, unbounded
	done      chan struct{} // closed when the receive loop ends
	errMu     sync.Mutex
	err       error // the error that ended the receive loop

	keepalivesMu sync.Mutex
	keepalives   int
}

// connect opens a stream and sends hello.
func (e *env) connect(hello *gatewayv1.Hello) *testEdge {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := e.sync.Sync(ctx)
	if err != nil {
		cancel()
		e.t.Fatalf("Sync: %v", err)
	}
	te := &testEdge{
		t:         e.t,
		stream:    stream,
		cancel:    cancel,
		snapshots: make(chan *gatewayv1.SnapshotEnvelope, 16),
		revs:      revQueue{signal: make(chan struct{}, 1)},
		done:      make(chan struct{}),
	}
	go te.recvLoop()
	e.t.Cleanup(te.close)
	if hello != nil {
		te.send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Hello{Hello: hello}})
	}
	return te
}

func (te *testEdge) recvLoop() {
	defer close(te.done)
	for {
		resp, err := te.stream.Recv()
		if err != nil {
			te.errMu.Lock()
			te.err = err
			te.errMu.Unlock()
			return
		}
		switch m := resp.GetMsg().(type) {
		case *gatewayv1.SyncResponse_Snapshot:
			te.snapshots <- m.Snapshot
		case *gatewayv1.SyncResponse_RevocationDelta, *gatewayv1.SyncResponse_RevocationReset:
			te.revs.push(resp)
		case *gatewayv1.SyncResponse_Keepalive:
			te.keepalivesMu.Lock()
			te.keepalives++
			te.keepalivesMu.Unlock()
		}
	}
}

func (te *testEdge) send(req *gatewayv1.SyncRequest) {
	te.t.Helper()
	if err := te.stream.Send(req); err != nil {
		te.t.Fatalf("edge send: %v", err)
	}
}

func (te *testEdge) ack(env *gatewayv1.SnapshotEnvelope) {
	te.t.Helper()
	te.send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Ack{Ack: &gatewayv1.Ack{Version: env.GetVersion(), Sha256: env.GetSha256()}}})
}

func (te *testEdge) nack(env *gatewayv1.SnapshotEnvelope, running uint64, detail string, violations ...*gatewayv1.FieldViolation) {
	te.t.Helper()
	te.send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Nack{Nack: &gatewayv1.Nack{
		Version: env.GetVersion(), Sha256: env.GetSha256(), Detail: detail, Violations: violations, RunningVersion: running,
	}}})
}

// next returns the next snapshot or fails after a timeout.
func (te *testEdge) next() *gatewayv1.SnapshotEnvelope {
	te.t.Helper()
	select {
	case s := <-te.snapshots:
		return s
	case <-te.done:
		te.t.Fatalf("stream ended while waiting for a snapshot: %v", te.endErr())
	case <-time.After(10 * time.Second):
		te.t.Fatal("no snapshot within 10s")
	}
	return nil
}

// none asserts that no snapshot arrives before the control plane has sent
// two more keepalives. The stream's loop handles the edge's messages,
// decides what to send and sends keepalives on one goroutine, in order, and
// recvLoop reads them in order: a snapshot decided before those keepalives
// has arrived by then.
func (te *testEdge) none() {
	te.t.Helper()
	te.waitKeepalives(2)
	select {
	case s := <-te.snapshots:
		te.t.Fatalf("unexpected snapshot v%d", s.GetVersion())
	default:
	}
}

// waitKeepalives waits until n more keepalives arrived (bounded).
func (te *testEdge) waitKeepalives(n int) {
	te.t.Helper()
	want := te.keepalivesSeen() + n
	deadline := time.After(10 * time.Second)
	for te.keepalivesSeen() < want {
		select {
		case <-te.done:
			te.t.Fatalf("stream ended while waiting for keepalives: %v", te.endErr())
		case <-deadline:
			te.t.Fatalf("fewer than %d keepalives within 10s", n)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ended waits for the stream to end and returns its error.
func (te *testEdge) ended() error {
	te.t.Helper()
	select {
	case <-te.done:
		return te.endErr()
	case <-time.After(10 * time.Second):
		te.t.Fatal("stream did not end within 10s")
		return nil
	}
}

func (te *testEdge) endErr() error {
	te.errMu.Lock()
	defer te.errMu.Unlock()
	return te.err
}

func (te *testEdge) keepalivesSeen() int {
	te.keepalivesMu.Lock()
	defer te.keepalivesMu.Unlock()
	return te.keepalives
}

// close ends the stream and waits for the receive loop. Idempotent.
func (te *testEdge) close() {
	te.cancel()
	<-te.done
}

// closeSend ends the stream cleanly from the edge side.
func (te *testEdge) closeSend() {
	te.t.Helper()
	if err := te.stream.CloseSend(); err != nil {
		te.t.Fatal(err)
	}
	if err := te.ended(); !errors.Is(err, io.EOF) {
		te.t.Fatalf("stream end after CloseSend: %v, want EOF", err)
	}
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("status code = %v (%v), want %v", got, err, want)
	}
}
