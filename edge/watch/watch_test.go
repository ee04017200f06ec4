package watch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/apigw/gateway/controlplane/service"
	"github.com/apigw/gateway/controlplane/store"
	"github.com/apigw/gateway/edge/apply"
	"github.com/apigw/gateway/edge/auth"
	"github.com/apigw/gateway/edge/internal/snaptest"
	"github.com/apigw/gateway/edge/lkg"
	"github.com/apigw/gateway/edge/plan"
	"github.com/apigw/gateway/edge/server"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) count(msg string) int {
	return strings.Count(s.String(), `"message":"`+msg+`"`)
}

// eventually retries f every 20 ms until it returns nil or 10 s pass.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricValue is the value of the counter or gauge name{labels} in reg (0
// when absent).
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// applies is gw_edge_snapshot_applies_total{result} of e.
func (e *edge) applies(t *testing.T, result string) float64 {
	t.Helper()
	return metricValue(t, e.reg, "gw_edge_snapshot_applies_total", map[string]string{"result": result})
}

// streams is gw_edge_controlplane_streams_total{result} of e.
// received is gw_edge_snapshots_received_total: snapshots the control
// plane sent.
func (e *edge) received(t *testing.T) float64 {
	t.Helper()
	return metricValue(t, e.reg, "gw_edge_snapshots_received_total", nil)
}

func (e *edge) streams(t *testing.T, result string) float64 {
	t.Helper()
	return metricValue(t, e.reg, "gw_edge_controlplane_streams_total", map[string]string{"result": result})
}

// waitKeepalives waits until the control plane has heard from node n more
// times (each keepalive moves last_seen): the stream stayed up for that
// many rounds, so anything the control plane would resend has had its
// chance to arrive.
func (cp *controlPlane) waitKeepalives(t *testing.T, node string, n int) {
	t.Helper()
	last, seen := int64(0), -1
	eventually(t, func() error {
		e := cp.edge(t, node)
		if e == nil {
			return fmt.Errorf("control plane does not know %s", node)
		}
		if ls := e.GetLastSeenUnixMs(); ls != last {
			last, seen = ls, seen+1
		}
		if seen < n {
			return fmt.Errorf("%s: %d of %d keepalives seen", node, seen, n)
		}
		return nil
	})
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// --- snapshots ---------------------------------------------------------

func startBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"path": r.URL.Path})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// snapshot is a compiled config with one GET /hello endpoint proxying to
// host+upstream, every default resolved as controlplane/config would.
func snapshot(host, upstream string) *gatewayv1.Snapshot {
	return &gatewayv1.Snapshot{
		SchemaVersion: 1,
		Service:       snaptest.Service("watch-test"),
		Endpoints: []*gatewayv1.Endpoint{{
			Name:           "GET /hello",
			Path:           "/hello",
			Method:         "GET",
			TimeoutMs:      3000,
			OutputEncoding: "json",
			Backends: []*gatewayv1.Backend{{
				Name:       "GET /hello backend[0]",
				Hosts:      []string{host},
				UrlPattern: upstream,
				Method:     "GET",
				Encoding:   "json",
			}},
		}},
	}
}

func marshal(t *testing.T, snap *gatewayv1.Snapshot) ([]byte, string) {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// --- a real control plane ------------------------------------------------

type controlPlane struct {
	addr  string
	store store.Store
	owned bool // stop closes the store
	svc   *service.Service
	grpc  *grpc.Server
	admin gatewayv1.AdminServiceClient
	conn  *grpc.ClientConn
}

// startControlPlane runs controlplane/service over the bbolt store in dir on
// addr ("127.0.0.1:0" for a new port). stop is registered as cleanup.
func startControlPlane(t *testing.T, dir, addr string) *controlPlane {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(dir, "cp.db"))
	if err != nil {
		t.Fatal(err)
	}
	cp := startControlPlaneOn(t, st, addr)
	cp.owned = true
	return cp
}

// startControlPlaneOn runs controlplane/service over st (shared with other
// control planes: replicas) on addr. stop is registered as cleanup; st is
// not closed.
func startControlPlaneOn(t *testing.T, st store.Store, addr string) *controlPlane {
	t.Helper()
	svc, err := service.New(service.Config{Store: st, Keepalive: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the previous process's port
	}
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	svc.RegisterSync(gs)
	svc.RegisterAdmin(gs) // no token in tests: the admin API is loopback-only here
	go gs.Serve(ln)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	cp := &controlPlane{addr: ln.Addr().String(), store: st, svc: svc, grpc: gs, admin: gatewayv1.NewAdminServiceClient(conn), conn: conn}
	t.Cleanup(cp.stop)
	return cp
}

func (cp *controlPlane) stop() {
	if cp.grpc == nil {
		return
	}
	cp.conn.Close()
	cp.grpc.Stop()
	cp.svc.Close()
	if cp.owned {
		cp.store.Close()
	}
	cp.grpc = nil
}

// commit stores snap as the next version and returns it.
func (cp *controlPlane) commit(t *testing.T, snap *gatewayv1.Snapshot) uint64 {
	t.Helper()
	payload, sha := marshal(t, snap)
	ctx := context.Background()
	var prev uint64
	if latest, err := cp.store.Latest(ctx); err == nil {
		prev = latest.Version
	}
	rev, err := cp.store.Commit(ctx, prev, &store.Revision{SHA256: sha, Payload: payload, Author: "test", Endpoints: uint32(len(snap.GetEndpoints()))})
	if err != nil {
		t.Fatal(err)
	}
	return rev.Version
}

func (cp *controlPlane) edge(t *testing.T, node string) *gatewayv1.EdgeStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cp.admin.Status(ctx, &gatewayv1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range resp.GetEdges() {
		if e.GetNodeId() == node {
			return e
		}
	}
	return nil
}

// waitEdge waits until the control plane reports node in state with
// applied version v.
func (cp *controlPlane) waitEdge(t *testing.T, node, state string, v uint64) *gatewayv1.EdgeStatus {
	t.Helper()
	var e *gatewayv1.EdgeStatus
	eventually(t, func() error {
		e = cp.edge(t, node)
		if e == nil {
			return fmt.Errorf("control plane does not know %s", node)
		}
		if e.GetState() != state || e.GetAppliedVersion() != v {
			return fmt.Errorf("%s: state %s applied v%d (error %q), want %s v%d", node, e.GetState(), e.GetAppliedVersion(), e.GetLastError(), state, v)
		}
		return nil
	})
	return e
}

// --- a real edge -----------------------------------------------------------

type edge struct {
	rev     *auth.Revocations
	srv     *server.Server
	applier *apply.Applier
	store   *lkg.Store
	client  *Client
	logs    *syncBuffer
	url     string
	reg     *prometheus.Registry
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type edgeOpts struct {
	node     string
	target   string
	targets  []string
	dataDir  string
	disabled []string
	restore  bool // load the newest snapshot from dataDir before connecting
	// applyOpts are the Applier's test hooks.
	applyOpts []apply.Option
}

func startEdge(t *testing.T, o edgeOpts) *edge {
	t.Helper()
	logs := &syncBuffer{}
	log := zerolog.New(logs).With().Str("node", o.node).Logger()
	reg := prometheus.NewRegistry()
	srv, err := server.New(server.Config{Listen: "127.0.0.1:0", Logger: log, Registry: reg, PinLogLevel: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err := lkg.New(lkg.Config{Dir: o.dataDir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	rev := auth.NewRevocations(auth.RevocationsConfig{Logger: log})
	t.Cleanup(rev.Close)
	if saved, err := st.LoadRevocations(); err == nil {
		if err := rev.Reset(saved.GetSeq(), saved.GetEntries()); err != nil {
			t.Fatal(err)
		}
	} else if !errors.Is(err, lkg.ErrNotFound) {
		t.Fatal(err)
	}
	// The data-plane metrics as gw-edge has them: releasing a plan deletes
	// its series, which is part of every apply.
	metrics, err := plan.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := apply.New(apply.Config{Target: srv, Logger: log, Store: st, Deps: plan.Deps{DisabledFeatures: o.disabled, Revocations: rev, Metrics: metrics}, Registerer: reg}, o.applyOpts...)
	if err != nil {
		t.Fatal(err)
	}
	if o.restore {
		env, err := st.Load()
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Restore(context.Background(), env); err != nil {
			t.Fatal(err)
		}
	}
	c, err := New(Config{
		Target:           o.target,
		Targets:          o.targets,
		NodeID:           o.node,
		Region:           "test",
		BuildVersion:     "test",
		SchemaVersion:    apply.SchemaVersion,
		DisabledFeatures: o.disabled,
		Applier:          a,
		Revocations:      revocationStore{set: rev, store: st},
		Logger:           log,
		Keepalive:        100 * time.Millisecond,
		RecvTimeout:      time.Second,
		BackoffBase:      20 * time.Millisecond,
		BackoffMax:       200 * time.Millisecond,
		Registerer:       reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &edge{rev: rev, srv: srv, applier: a, store: st, client: c, logs: logs, url: "http://" + srv.Addr().String(), reg: reg, cancel: cancel}
	e.wg.Go(func() {
		if err := srv.Serve(ctx); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	e.wg.Go(func() {
		if err := c.Run(ctx); err != nil {
			t.Errorf("watch: %v", err)
		}
	})
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			t.Logf("edge %s log:\n%s", o.node, logs.String())
		}
	})
	return e
}

func (e *edge) stop() {
	e.cancel()
	e.client.Close()
	e.wg.Wait()
}

func (e *edge) get(t *testing.T, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(e.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *edge) waitVersion(t *testing.T, v uint64) {
	t.Helper()
	eventually(t, func() error {
		if got, _ := e.srv.Current(); got != v {
			return fmt.Errorf("edge serves v%d, want v%d", got, v)
		}
		return nil
	})
}

// --- tests ------------------------------------------------------------------

func TestSnapshotAppliedAndServed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	backend := startBackend(t)
	cp := startControlPlane(t, dir, "127.0.0.1:0")
	e := startEdge(t, edgeOpts{node: "e1", target: cp.addr, dataDir: filepath.Join(dir, "e1")})

	eventually(t, func() error {
		if cp.edge(t, "e1") == nil {
			return errors.New("edge not connected yet")
		}
		return nil
	})
	if code, body := e.get(t, "/hello"); code != 503 {
		t.Errorf("before any snapshot: %d %s", code, body)
	}

	v := cp.commit(t, snapshot(backend, "/v1"))
	e.waitVersion(t, v)
	st := cp.waitEdge(t, "e1", "in_sync", v)
	if st.GetLastError() != "" {
		t.Errorf("last error %q", st.GetLastError())
	}
	if code, body := e.get(t, "/hello"); code != 200 || !strings.Contains(body, `"path":"/v1"`) {
		t.Errorf("GET /hello = %d %s, want the backend's /v1", code, body)
	}
	if got := gaugeValue(t, e.client.connected); got != 1 {
		t.Errorf("gw_edge_controlplane_connected = %v, want 1", got)
	}
	saved, err := e.store.Load()
	if err != nil {
		t.Fatal(err)
	}
	if saved.GetVersion() != v {
		t.Errorf("persisted v%d, want v%d", saved.GetVersion(), v)
	}

	// A second version replaces the first.
	v2 := cp.commit(t, snapshot(backend, "/v2"))
	e.waitVersion(t, v2)
	cp.waitEdge(t, "e1", "in_sync", v2)
	if code, body := e.get(t, "/hello"); code != 200 || !strings.Contains(body, `"path":"/v2"`) {
		t.Errorf("GET /hello after v2 = %d %s", code, body)
	}
}

// largeSnapshot has n endpoints whose names and backends are all new in
// each variant, so every push of another variant replaces the whole plan.
func largeSnapshot(host string, variant, n int) *gatewayv1.Snapshot {
	snap := snapshot(host, "/hello")
	for i := range n {
		path := fmt.Sprintf("/v%d/r%d", variant, i)
		snap.Endpoints = append(snap.Endpoints, &gatewayv1.Endpoint{
			Name: "GET " + path, Path: path, Method: "GET", TimeoutMs: 3000, OutputEncoding: "json",
			Backends: []*gatewayv1.Backend{{
				Name: "GET " + path + " backend[0]", Hosts: []string{host}, UrlPattern: path, Method: "GET", Encoding: "json",
			}},
		})
	}
	return snap
}

// TestLargePushesBackToBackAreAcked is the regression test of the lost ACK:
// each push of a large config, made as soon as the edge serves the previous
// one, is ACKed. The apply worker answers only after the swap released the
// old plan, and releasing it deleted its metric series with one scan of
// every series per endpoint (quadratic): at 3,000 endpoints that held the
// ACK for tens of seconds, and at 10,000 the control plane gave up waiting
// (AckTimeout) before the next push could go out.
func TestLargePushesBackToBackAreAcked(t *testing.T) {
	t.Parallel()
	const endpoints = 3000
	dir := t.TempDir()
	backend := startBackend(t)
	cp := startControlPlane(t, dir, "127.0.0.1:0")
	e := startEdge(t, edgeOpts{node: "e1", target: cp.addr, dataDir: filepath.Join(dir, "e1")})
	var v uint64
	for variant := 1; variant <= 3; variant++ {
		v = cp.commit(t, largeSnapshot(backend, variant, endpoints))
		e.waitVersion(t, v)
		cp.waitEdge(t, "e1", "in_sync", v)
	}
	if code, _ := e.get(t, fmt.Sprintf("/v3/r%d", endpoints-1)); code != 200 {
		t.Errorf("GET of the last endpoint of v%d = %d", v, code)
	}
	if code, _ := e.get(t, "/v2/r0"); code != 404 {
		t.Errorf("GET of an endpoint of the replaced version = %d, want 404", code)
	}
}

func TestUnbuildableSnapshotIsNackedAndOldPlanKept(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	backend := startBackend(t)
	cp := startControlPlane(t, dir, "127.0.0.1:0")
	e := startEdge(t, edgeOpts{node: "e1", target: cp.addr, dataDir: filepath.Join(dir, "e1")})

	v1 := cp.commit(t, snapshot(backend, "/v1"))
	e.waitVersion(t, v1)

	future := snapshot(backend, "/v2")
	future.SchemaVersion = apply.SchemaVersion + 1
	v2 := cp.commit(t, future)
	st := cp.waitEdge(t, "e1", "rejected", v1)
	if st.GetRejectedVersion() != v2 || !strings.Contains(st.GetLastError(), "schema_version") {
		t.Errorf("status: rejected v%d, error %q; want v%d and the schema violation", st.GetRejectedVersion(), st.GetLastError(), v2)
	}
	if got, _ := e.srv.Current(); got != v1 {
		t.Errorf("edge serves v%d after the NACK, want v%d", got, v1)
	}
	if code, body := e.get(t, "/hello"); code != 200 || !strings.Contains(body, `"path":"/v1"`) {
		t.Errorf("old plan not served: %d %s", code, body)
	}
	// Keepalives keep flowing; the version is never resent.
	cp.waitKeepalives(t, "e1", 3)
	if n := e.applies(t, "rejected"); n != 1 {
		t.Errorf("rejected %v times, want 1", n)
	}

	// A newer good version goes through.
	v3 := cp.commit(t, snapshot(backend, "/v3"))
	e.waitVersion(t, v3)
	cp.waitEdge(t, "e1", "in_sync", v3)
}

func TestDisabledFeatureIsNacked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	backend := startBackend(t)
	cp := startControlPlane(t, dir, "127.0.0.1:0")
	full := startEdge(t, edgeOpts{node: "full", target: cp.addr, dataDir: filepath.Join(dir, "full")})
	old := startEdge(t, edgeOpts{node: "old", target: cp.addr, dataDir: filepath.Join(dir, "old"), disabled: []string{"proxy.static"}})

	v1 := cp.commit(t, snapshot(backend, "/v1"))
	full.waitVersion(t, v1)
	old.waitVersion(t, v1)

	static := snapshot(backend, "/v2")
	static.Endpoints[0].Static = &gatewayv1.Static{Strategy: "always", Data: []byte(`{"static":true}`)}
	static.Features = []string{"proxy.static"}
	v2 := cp.commit(t, static)
	full.waitVersion(t, v2)
	st := cp.waitEdge(t, "old", "rejected", v1)
	if !strings.Contains(st.GetLastError(), "proxy.static") {
		t.Errorf("last error %q does not name the feature", st.GetLastError())
	}
}

func TestReconnectAfterControlPlaneRestartDoesNotReapply(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	backend := startBackend(t)
	cp := startControlPlane(t, dir, "127.0.0.1:0")
	addr := cp.addr
	e := startEdge(t, edgeOpts{node: "e1", target: addr, dataDir: filepath.Join(dir, "e1")})
	v := cp.commit(t, snapshot(backend, "/v1"))
	e.waitVersion(t, v)
	cp.waitEdge(t, "e1", "in_sync", v)

	cp.stop()
	eventually(t, func() error {
		if got := gaugeValue(t, e.client.connected); got != 0 {
			return errors.New("edge still reports a connection")
		}
		return nil
	})
	if code, body := e.get(t, "/hello"); code != 200 || !strings.Contains(body, "/v1") {
		t.Errorf("with the control plane down: %d %s", code, body)
	}

	cp2 := startControlPlane(t, dir, addr)
	cp2.waitEdge(t, "e1", "in_sync", v)
	cp2.waitKeepalives(t, "e1", 3)
	if n := e.applies(t, "ok"); n != 1 {
		t.Errorf("edge applied %v times, want 1: the Hello must carry the held version", n)
	}
	if n := e.streams(t, "established"); n != 2 {
		t.Errorf("%v streams established, want 2", n)
	}
}

// TestFailoverBetweenReplicas gives the edge two control planes on one
// store (replicas): when the one it streams from stops, it moves to the
// other without applying again, and takes the next version from there.
func TestFailoverBetweenReplicas(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	backend := startBackend(t)
	st, err := store.OpenBolt(filepath.Join(dir, "shared.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after both control planes stopped
	cps := []*controlPlane{startControlPlaneOn(t, st, "127.0.0.1:0"), startControlPlaneOn(t, st, "127.0.0.1:0")}
	e := startEdge(t, edgeOpts{node: "e1", targets: []string{cps[0].addr, cps[1].addr}, dataDir: filepath.Join(dir, "e1")})
	v := cps[0].commit(t, snapshot(backend, "/v1"))
	e.waitVersion(t, v)

	// Which replica holds the stream (the edge starts at a random one)?
	var on int
	eventually(t, func() error {
		for i, cp := range cps {
			if es := cp.edge(t, "e1"); es != nil && es.GetState() == "in_sync" && es.GetAppliedVersion() == v {
				on = i
				return nil
			}
		}
		return errors.New("no replica reports e1 in sync")
	})
	cps[on].stop()
	other := cps[1-on]
	other.waitEdge(t, "e1", "in_sync", v)
	if n := e.applies(t, "ok"); n != 1 {
		t.Errorf("edge applied %v times after failing over, want 1: the other replica serves the same version", n)
	}
	v2 := other.commit(t, snapshot(backend, "/v2"))
	e.waitVersion(t, v2)
	other.waitEdge(t, "e1", "in_sync", v2)
}

func TestNackRememberedAcrossControlPlaneRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	backend := startBackend(t)
	cp := startControlPlane(t, dir, "127.0.0.1:0")
	addr := cp.addr
	e := startEdge(t, edgeOpts{node: "e1", target: addr, dataDir: filepath.Join(dir, "e1")})
	v1 := cp.commit(t, snapshot(backend, "/v1"))
	e.waitVersion(t, v1)
	bad := snapshot(backend, "/v2")
	bad.SchemaVersion = 99
	cp.commit(t, bad)
	cp.waitEdge(t, "e1", "rejected", v1)

	if n := e.received(t); n != 2 {
		t.Fatalf("received %v snapshots, want 2 (v1, v2)", n)
	}

	// The new control plane process did not see the NACK; the edge's Hello
	// names the snapshot it refused, so it is not sent again.
	cp.stop()
	cp2 := startControlPlane(t, dir, addr)
	st := cp2.waitEdge(t, "e1", "rejected", v1)
	if !strings.Contains(st.GetLastError(), "refused before the edge connected") {
		t.Errorf("last error after restart %q", st.GetLastError())
	}
	cp2.waitKeepalives(t, "e1", 2)
	if n := e.received(t); n != 2 {
		t.Errorf("received %v snapshots, want 2: the refused one was sent again", n)
	}
	if n := e.applies(t, "rejected"); n != 1 {
		t.Errorf("built and rejected %v times, want 1", n)
	}
}

func TestBootFromLastKnownGoodWithoutControlPlane(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	backend := startBackend(t)
	dataDir := filepath.Join(dir, "e1")
	st, err := lkg.New(lkg.Config{Dir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	payload, sha := marshal(t, snapshot(backend, "/from-disk"))
	if err := st.Save(&gatewayv1.SnapshotEnvelope{Version: 42, Sha256: sha, Payload: payload}); err != nil {
		t.Fatal(err)
	}

	// Nothing listens on the target: a port that was just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	e := startEdge(t, edgeOpts{node: "e1", target: dead, dataDir: dataDir, restore: true})
	if v, gotSHA := e.srv.Current(); v != 42 || gotSHA != sha {
		t.Fatalf("serving v%d %s, want v42 %s", v, gotSHA, sha)
	}
	if code, body := e.get(t, "/__health"); code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Errorf("health = %d %s", code, body)
	}
	if code, body := e.get(t, "/hello"); code != 200 || !strings.Contains(body, "/from-disk") {
		t.Errorf("GET /hello = %d %s", code, body)
	}
	eventually(t, func() error {
		if n := e.streams(t, "failed"); n < 3 {
			return fmt.Errorf("%v reconnect attempts so far", n)
		}
		return nil
	})
	// Close returns promptly even mid-backoff.
	begin := time.Now()
	e.stop()
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("stop took %s", took)
	}
}

// revocationStore persists the set in the edge's data dir (as gw-edge does).
type revocationStore struct {
	set   *auth.Revocations
	store *lkg.Store
}

func (r revocationStore) Seq() uint64 { return r.set.Seq() }
func (r revocationStore) ApplyDelta(e []*gatewayv1.RevocationEntry, from, to uint64) error {
	return r.set.ApplyDelta(e, from, to)
}
func (r revocationStore) Reset(seq uint64, e []*gatewayv1.RevocationEntry) error {
	return r.set.Reset(seq, e)
}
func (r revocationStore) Persist() error { return r.store.SaveRevocations(r.set.Export()) }

func (r revocationStore) Confirm() { r.set.Confirm() }

func (cp *controlPlane) revoke(t *testing.T, jti string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cp.admin.Revoke(ctx, &gatewayv1.RevokeRequest{Claim: "jti", Value: jti, ExpiresUnixMs: time.Now().Add(time.Hour).UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetEntry().GetSeq()
}

func TestRevocationsFlowAndSurviveRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cp := startControlPlane(t, dir, "127.0.0.1:0")
	dataDir := filepath.Join(dir, "e1")
	e := startEdge(t, edgeOpts{node: "e1", target: cp.addr, dataDir: dataDir})
	eventually(t, func() error {
		if cp.edge(t, "e1") == nil {
			return errors.New("edge not connected yet")
		}
		return nil
	})

	// Revocations arrive while connected, in order, and are ACKed.
	cp.revoke(t, "token-1")
	seq := cp.revoke(t, "token-2")
	eventually(t, func() error {
		if got := e.rev.Seq(); got != seq {
			return fmt.Errorf("edge holds revocation seq %d, want %d", got, seq)
		}
		return nil
	})
	if !e.rev.Revoked("jti", "token-1") || !e.rev.Revoked("jti", "token-2") || e.rev.Revoked("jti", "token-3") {
		t.Error("revocation set does not hold exactly the revoked tokens")
	}
	if got := gaugeValue(t, e.client.revSeq); got != float64(seq) {
		t.Errorf("gw_edge_revocation_seq = %v, want %d", got, seq)
	}
	// The deltas set the lag: positive, and far below the test's bounds.
	if got := gaugeValue(t, e.client.revLag); got <= 0 || got > 30 {
		t.Errorf("gw_edge_revocation_lag_seconds = %v, want a small positive lag", got)
	}

	// Stopping the edge persists the set; a restart without the control
	// plane enforces it, and reconnecting resumes from the held seq.
	e.stop()
	cp.stop()
	st, err := lkg.New(lkg.Config{Dir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	saved, err := st.LoadRevocations()
	if err != nil {
		t.Fatal(err)
	}
	rev := auth.NewRevocations(auth.RevocationsConfig{})
	defer rev.Close()
	if err := rev.Reset(saved.GetSeq(), saved.GetEntries()); err != nil {
		t.Fatal(err)
	}
	if rev.Seq() != seq || !rev.Revoked("jti", "token-2") {
		t.Errorf("persisted set at seq %d (revoked token-2: %v), want seq %d", rev.Seq(), rev.Revoked("jti", "token-2"), seq)
	}
	cp2 := startControlPlane(t, dir, cp.addr)
	e2 := startEdge(t, edgeOpts{node: "e1", target: cp2.addr, dataDir: dataDir})
	seq3 := cp2.revoke(t, "token-3")
	eventually(t, func() error {
		if got := e2.rev.Seq(); got != seq3 {
			return fmt.Errorf("restarted edge holds seq %d, want %d", got, seq3)
		}
		return nil
	})
	for _, jti := range []string{"token-1", "token-2", "token-3"} {
		if !e2.rev.Revoked("jti", jti) {
			t.Errorf("%s not revoked after the restart", jti)
		}
	}
	if n := e2.logs.count("revocation set reset"); n != 0 {
		t.Errorf("the restarted edge got %d resets; its Hello seq should have made a delta enough", n)
	}
}

// TestRevocationNotBlockedByHeldBuild is the spec's "revocations are never
// blocked by config": while the edge builds a snapshot (held here for
// seconds, as a slow JWKS or a 10,000-endpoint config would), a revocation
// still reaches it at once, and the held snapshot is swapped in afterwards.
func TestRevocationNotBlockedByHeldBuild(t *testing.T) {
	t.Parallel()
	const (
		hold   = 5 * time.Second
		budget = 100 * time.Millisecond
	)
	dir := t.TempDir()
	backend := startBackend(t)
	cp := startControlPlane(t, dir, "127.0.0.1:0")
	holding := make(chan uint64, 1)
	release := make(chan struct{})
	var once sync.Once
	hook := apply.WithBuildHook(func(ctx context.Context, env *gatewayv1.SnapshotEnvelope) {
		if env.GetVersion() < 2 {
			return
		}
		once.Do(func() {
			holding <- env.GetVersion()
			select {
			case <-release:
			case <-time.After(hold):
			case <-ctx.Done():
			}
		})
	})
	e := startEdge(t, edgeOpts{node: "e1", target: cp.addr, dataDir: filepath.Join(dir, "e1"), applyOpts: []apply.Option{hook}})
	v1 := cp.commit(t, snapshot(backend, "/v1"))
	e.waitVersion(t, v1)

	v2 := cp.commit(t, snapshot(backend, "/v2"))
	select {
	case v := <-holding:
		if v != v2 {
			t.Fatalf("build of v%d held, want v%d", v, v2)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the edge never started building v2")
	}
	held := time.Now()

	// The budget is the sync path's: it starts when the Revoke call
	// returns, i.e. once the control plane has committed the entry to its
	// log (a bbolt fsync, a disk's latency, not the edge's) and woken the
	// streams; it ends when the edge enforces it.
	called := time.Now()
	seq := cp.revoke(t, "token-1")
	committed := time.Now()
	for e.rev.Seq() < seq {
		if time.Since(held) > hold {
			t.Fatalf("revocation seq %d not applied while the build was held (edge holds %d)", seq, e.rev.Seq())
		}
		time.Sleep(time.Millisecond)
	}
	took := time.Since(committed)
	// Causal, not timed: the edge enforced the revocation while it still
	// served v1, i.e. while the build of v2 was held.
	if got, _ := e.srv.Current(); got != v1 {
		t.Fatalf("edge serves v%d: the build was not held while the revocation arrived", got)
	}
	t.Logf("revocation enforced %s after the control plane committed it (%s after the Revoke call), %s into a build held for %s",
		took, time.Since(called), time.Since(held), hold)
	if took >= budget {
		t.Errorf("revocation took %s to reach an edge that is building, want < %s", took, budget)
	}
	if !e.rev.Revoked("jti", "token-1") {
		t.Error("token-1 not revoked")
	}

	// Releasing the build swaps v2 in and ACKs it.
	close(release)
	e.waitVersion(t, v2)
	cp.waitEdge(t, "e1", "in_sync", v2)
}

func TestRevocationGapReconnects(t *testing.T) {
	t.Parallel()
	f, addr := startFake(t)
	e := startEdge(t, edgeOpts{node: "e1", target: addr, dataDir: t.TempDir()})
	fs := f.next(t)
	if fs.hello.GetRevocationSeq() != 0 {
		t.Fatalf("fresh edge says revocation seq %d", fs.hello.GetRevocationSeq())
	}
	entry := func(seq uint64, jti string) *gatewayv1.RevocationEntry {
		return &gatewayv1.RevocationEntry{Seq: seq, Claim: "jti", Value: jti, ExpiresUnixMs: time.Now().Add(time.Hour).UnixMilli()}
	}
	send := func(fs *fakeStream, m *gatewayv1.SyncResponse) {
		t.Helper()
		if err := fs.stream.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	send(fs, &gatewayv1.SyncResponse{Msg: &gatewayv1.SyncResponse_RevocationReset{RevocationReset: &gatewayv1.RevocationReset{
		Seq: 2, Entries: []*gatewayv1.RevocationEntry{entry(1, "a"), entry(2, "b")},
	}}})
	if got := fs.reply(t).GetRevocationAck(); got.GetSeq() != 2 {
		t.Fatalf("reply to the reset = %v, want RevocationAck{2}", got)
	}
	send(fs, &gatewayv1.SyncResponse{Msg: &gatewayv1.SyncResponse_RevocationDelta{RevocationDelta: &gatewayv1.RevocationDelta{
		FromSeq: 2, ToSeq: 3, Entries: []*gatewayv1.RevocationEntry{entry(3, "c")},
	}}})
	if got := fs.reply(t).GetRevocationAck(); got.GetSeq() != 3 {
		t.Fatalf("reply to the delta = %v, want RevocationAck{3}", got)
	}
	// A delta from seq 5 leaves a gap: the edge drops the stream and says
	// in its next Hello what it holds.
	send(fs, &gatewayv1.SyncResponse{Msg: &gatewayv1.SyncResponse_RevocationDelta{RevocationDelta: &gatewayv1.RevocationDelta{
		FromSeq: 5, ToSeq: 6, Entries: []*gatewayv1.RevocationEntry{entry(6, "f")},
	}}})
	fs2 := f.next(t)
	if got := fs2.hello.GetRevocationSeq(); got != 3 {
		t.Errorf("hello after the gap says seq %d, want 3", got)
	}
	if e.rev.Revoked("jti", "f") || !e.rev.Revoked("jti", "c") {
		t.Error("the gapped delta changed the set")
	}
}

// fakeControlPlane is a SyncService peer driven by the test, for what the
// real control plane never does (corrupt envelopes, silence).
type fakeControlPlane struct {
	gatewayv1.UnimplementedSyncServiceServer
	streams chan *fakeStream
}

type fakeStream struct {
	stream  gatewayv1.SyncService_SyncServer
	hello   *gatewayv1.Hello
	end     chan struct{}
	endOnce sync.Once
}

// finish ends the stream (the handler returns).
func (fs *fakeStream) finish() { fs.endOnce.Do(func() { close(fs.end) }) }

func (f *fakeControlPlane) Sync(stream gatewayv1.SyncService_SyncServer) error {
	req, err := stream.Recv()
	if err != nil {
		return err
	}
	fs := &fakeStream{stream: stream, hello: req.GetHello(), end: make(chan struct{})}
	select {
	case f.streams <- fs:
	case <-stream.Context().Done():
		return nil
	}
	select {
	case <-fs.end:
	case <-stream.Context().Done():
	}
	return nil
}

func startFake(t *testing.T) (*fakeControlPlane, string) {
	t.Helper()
	f := &fakeControlPlane{streams: make(chan *fakeStream, 16)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	gatewayv1.RegisterSyncServiceServer(gs, f)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	return f, ln.Addr().String()
}

func (f *fakeControlPlane) next(t *testing.T) *fakeStream {
	t.Helper()
	select {
	case fs := <-f.streams:
		t.Cleanup(fs.finish)
		return fs
	case <-time.After(10 * time.Second):
		t.Fatal("the edge never opened a stream")
		return nil
	}
}

// reply waits for the next ACK or NACK, skipping keepalives.
func (fs *fakeStream) reply(t *testing.T) *gatewayv1.SyncRequest {
	t.Helper()
	for {
		req, err := fs.stream.Recv()
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		if req.GetKeepalive() == nil {
			return req
		}
	}
}

func TestHelloAndCorruptEnvelope(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	backend := startBackend(t)
	f, addr := startFake(t)
	e := startEdge(t, edgeOpts{node: "e1", target: addr, dataDir: dir, disabled: []string{"proxy.static"}})

	fs := f.next(t)
	want := &gatewayv1.Hello{
		NodeId:        "e1",
		Region:        "test",
		BuildVersion:  "test",
		SchemaVersion: apply.SchemaVersion,
		Features:      features(plan.SupportedFeatures(), []string{"proxy.static"}),
	}
	if diff := cmp.Diff(want, fs.hello, protocmp.Transform()); diff != "" {
		t.Errorf("hello (-want +got):\n%s", diff)
	}
	for _, feat := range fs.hello.GetFeatures() {
		if feat == "proxy.static" {
			t.Error("hello advertises a disabled feature")
		}
	}

	payload, sha := marshal(t, snapshot(backend, "/v1"))
	send := func(env *gatewayv1.SnapshotEnvelope) {
		t.Helper()
		if err := fs.stream.Send(&gatewayv1.SyncResponse{Msg: &gatewayv1.SyncResponse_Snapshot{Snapshot: env}}); err != nil {
			t.Fatal(err)
		}
	}
	send(&gatewayv1.SnapshotEnvelope{Version: 1, Sha256: sha, Payload: payload})
	if got := fs.reply(t).GetAck(); got == nil || got.GetVersion() != 1 || got.GetSha256() != sha {
		t.Fatalf("reply to v1 = %v, want an ACK of v1", got)
	}

	tampered := append([]byte(nil), payload...)
	tampered[len(tampered)-1] ^= 1
	send(&gatewayv1.SnapshotEnvelope{Version: 2, Sha256: sha, Payload: tampered})
	n := fs.reply(t).GetNack()
	if n == nil {
		t.Fatal("a tampered payload was not NACKed")
	}
	if n.GetVersion() != 2 || n.GetRunningVersion() != 1 || !strings.Contains(n.GetDetail(), "sha256") {
		t.Errorf("NACK = %v; want version 2, running 1, a sha256 detail", n)
	}
	if v, _ := e.srv.Current(); v != 1 {
		t.Errorf("serving v%d after the tampered snapshot", v)
	}

	// The snapshot the edge already serves is ACKed without a rebuild.
	send(&gatewayv1.SnapshotEnvelope{Version: 1, Sha256: sha, Payload: payload})
	if got := fs.reply(t).GetAck(); got == nil || got.GetVersion() != 1 {
		t.Errorf("reply to the held version = %v, want an ACK", got)
	}
	if n := e.applies(t, "ok"); n != 1 {
		t.Errorf("applied %v times, want 1", n)
	}

	// Hello after a reconnect carries the held version.
	fs.finish()
	fs2 := f.next(t)
	if fs2.hello.GetConfigVersion() != 1 || fs2.hello.GetConfigSha256() != sha {
		t.Errorf("hello after reconnect holds v%d %s, want v1 %s", fs2.hello.GetConfigVersion(), fs2.hello.GetConfigSha256(), sha)
	}
}

func TestSilentControlPlaneIsReplaced(t *testing.T) {
	t.Parallel()
	f, addr := startFake(t)
	e := startEdge(t, edgeOpts{node: "e1", target: addr, dataDir: t.TempDir()})
	fs := f.next(t)
	// It keeps sending keepalives...
	for range 3 {
		req, err := fs.stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if req.GetKeepalive() == nil {
			t.Fatalf("got %v, want a keepalive", req)
		}
	}
	// ...and, hearing nothing back for the receive timeout (1 s here),
	// opens a new stream.
	f.next(t)
	if !strings.Contains(e.logs.String(), "nothing from the control plane") {
		t.Errorf("no liveness error logged:\n%s", e.logs.String())
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	c := &Client{cfg: Config{BackoffBase: 200 * time.Millisecond, BackoffMax: 10 * time.Second}}
	tests := []struct {
		attempt int
		ceiling time.Duration
	}{
		{0, 200 * time.Millisecond},
		{1, 400 * time.Millisecond},
		{3, 1600 * time.Millisecond},
		{5, 6400 * time.Millisecond},
		{6, 10 * time.Second},
		{100, 10 * time.Second},
	}
	for _, tc := range tests {
		var maxSeen time.Duration
		for range 200 {
			d := c.backoff(tc.attempt)
			if d < 0 || d > tc.ceiling {
				t.Fatalf("backoff(%d) = %s, outside [0, %s]", tc.attempt, d, tc.ceiling)
			}
			maxSeen = max(maxSeen, d)
		}
		if maxSeen < tc.ceiling/2 {
			t.Errorf("backoff(%d): max of 200 draws %s, expected jitter over [0, %s]", tc.attempt, maxSeen, tc.ceiling)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := Config{Target: "x:1", NodeID: "n", SchemaVersion: 1, Applier: idleApplier(t)}
	tests := []struct {
		name    string
		mut     func(*Config)
		wantErr string
	}{
		{name: "ok", mut: func(*Config) {}},
		{name: "no target", mut: func(c *Config) { c.Target = "" }, wantErr: "target"},
		{name: "no node", mut: func(c *Config) { c.NodeID = "" }, wantErr: "node id"},
		{name: "no schema", mut: func(c *Config) { c.SchemaVersion = 0 }, wantErr: "schema"},
		{name: "no applier", mut: func(c *Config) { c.Applier = nil }, wantErr: "applier"},
		{name: "negative keepalive", mut: func(c *Config) { c.Keepalive = -1 }, wantErr: "keepalive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := ok
			tc.mut(&cfg)
			err := cfg.Validate()
			if (err != nil) != (tc.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Validate() = %v, want an error about %q", err, tc.wantErr)
			}
		})
	}
}

func TestCloseIsIdempotentAndStopsRun(t *testing.T) {
	t.Parallel()
	c, err := New(Config{Target: "127.0.0.1:1", NodeID: "n", SchemaVersion: 1, Applier: idleApplier(t), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	// Close a running Run: wait until it tried a stream (refused).
	eventually(t, func() error {
		var m dto.Metric
		if err := c.streams.WithLabelValues(streamFailed).Write(&m); err != nil {
			return err
		}
		if m.GetCounter().GetValue() < 1 {
			return errors.New("Run has not tried a stream yet")
		}
		return nil
	})
	c.Close()
	c.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if err := c.Run(context.Background()); err == nil {
		t.Error("Run after Close succeeded")
	}
}

// idleApplier is a real Applier over a real (never serving) server, for
// tests that need a valid Config but never apply anything.
func idleApplier(t *testing.T) *apply.Applier {
	t.Helper()
	srv, err := server.New(server.Config{Listen: "127.0.0.1:0", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	a, err := apply.New(apply.Config{Target: srv, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return a
}
