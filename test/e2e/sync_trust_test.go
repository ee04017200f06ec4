package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/apigw/gateway/controlplane/pki"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	snapsign "github.com/apigw/gateway/proto/sign"
	"github.com/apigw/gateway/test/testenv"
)

// Regression tests for issue 10 (sync-stream half): each reproduces a
// finding against real processes on loopback. The attacker's side (an
// impostor edge, a rogue control plane) is test code speaking the real
// protocol.

// syncHello opens a Sync stream to addr with creds, sends a Hello for
// node/region and returns the first message the control plane answers (or
// the error that ended the stream).
func syncHello(t *testing.T, addr string, creds credentials.TransportCredentials, node, region string) (*gatewayv1.SyncResponse, error) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := gatewayv1.NewSyncServiceClient(conn).Sync(ctx)
	if err != nil {
		return nil, err
	}
	h := &gatewayv1.Hello{NodeId: node, Region: region, BuildVersion: "test", SchemaVersion: 1}
	if err := stream.Send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Hello{Hello: h}}); err != nil {
		_, err = stream.Recv() // the status that ended the stream
		return nil, err
	}
	for {
		m, err := stream.Recv()
		if err != nil || m.GetKeepalive() == nil {
			return m, err
		}
	}
}

func certPool(t *testing.T, caFile string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("%s: no certificate", caFile)
	}
	return pool
}

func tlsCreds(t *testing.T, caFile string, certs ...tls.Certificate) credentials.TransportCredentials {
	t.Helper()
	return credentials.NewTLS(&tls.Config{RootCAs: certPool(t, caFile), Certificates: certs, MinVersion: tls.VersionTLS12})
}

func loadPair(t *testing.T, c testenv.EdgeCreds) tls.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// foreignCert is a client certificate for node from a CA the control
// plane does not trust (the built-in PKI of another data dir).
func foreignCert(t *testing.T, node, region string) tls.Certificate {
	t.Helper()
	dir := t.TempDir()
	if err := pki.Init(dir, []string{"localhost"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: node}}, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.Issue(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), node, region, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// startPKIControlPlane runs a control plane with the built-in PKI (mTLS on
// the sync port) and /metrics.
func startPKIControlPlane(t *testing.T, bins testenv.Bins, dataDir string, extra ...string) *testenv.ControlPlane {
	t.Helper()
	testenv.InitPKI(t, bins, dataDir)
	cp := testenv.StartControlPlane(t, bins, dataDir, append([]string{"--metrics-listen", "127.0.0.1:0"}, extra...)...)
	cp.WaitLog(t, 0, 5*time.Second, func(m map[string]any) bool { return m["message"] == "listening" && m["sync_mtls"] == true })
	return cp
}

func pushOK(t *testing.T, bins testenv.Bins, cp *testenv.ControlPlane, file string, args ...string) {
	t.Helper()
	if r := testenv.Gwctl(t, bins, cp, append([]string{"push", file}, args...)...); r.Code != 0 {
		t.Fatalf("push %s: exit %d\n%s%s", file, r.Code, r.Stdout, r.Stderr)
	}
}

// TestSyncImpostorsRefused: any process that reached the sync port got
// every snapshot (secrets included) and could pose as any edge; with mTLS,
// a valid certificate for edge-2 could still claim node_id edge-1. Now a
// client without a certificate, with one from another CA, or with
// another node's certificate gets no snapshot, and the real edge-1 stays
// in sync.
func TestSyncImpostorsRefused(t *testing.T) {
	bins := testenv.Build(t)
	backend := echoBackend(t, "secret-backend")
	dir := t.TempDir()
	cp := startPKIControlPlane(t, bins, filepath.Join(dir, "cp"))
	edge1 := testenv.IssueCert(t, bins, cp, "edge-1", "eu", filepath.Join(dir, "tls1"))
	edge2 := testenv.IssueCert(t, bins, cp, "edge-2", "eu", filepath.Join(dir, "tls2"))
	e := testenv.StartEdge(t, bins, cp, "edge-1", "eu", filepath.Join(dir, "e1"), edge1.Args()...)
	pushOK(t, bins, cp, testenv.WriteFile(t, dir, "gw.json", helloConfig(backend.URL, "/hello")), "--wait", "--timeout", "20s")
	e.WaitVersion(t, 1, 10*time.Second)

	for name, creds := range map[string]credentials.TransportCredentials{
		"plaintext":                 insecure.NewCredentials(),
		"TLS without a certificate": tlsCreds(t, edge1.CA),
		"certificate of another CA": tlsCreds(t, edge1.CA, foreignCert(t, "edge-1", "eu")),
	} {
		m, err := syncHello(t, cp.Sync, creds, "edge-1", "eu")
		if err == nil {
			t.Errorf("%s: the control plane answered %v", name, m)
		}
	}
	m, err := syncHello(t, cp.Sync, tlsCreds(t, edge1.CA, loadPair(t, edge2)), "edge-1", "eu")
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("edge-2's certificate claiming edge-1: %v, %v; want PermissionDenied", m, err)
	}
	mustContain(t, "refusal", err.Error(), `hello.node_id "edge-1" is not the node your certificate names ("edge-2")`)
	if v, _ := scrape(t, "http://"+cp.Metrics, `gw_controlplane_streams_refused_total{reason="identity"}`); v < 1 {
		t.Errorf("streams_refused_total{identity} = %v, want ≥ 1", v)
	}
	// A real edge holding edge-2's certificate but started as edge-1.
	liar := testenv.Start(t, "gw-edge liar", bins.Edge, append([]string{"--controlplane", cp.Sync,
		"--snapshot-public-key", filepath.Join(cp.DataDir, "signing.pub"), "--node-id", "edge-1", "--region", "eu",
		"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "liar"), "--log-format", "json"}, edge2.Args()...)...)
	liar.WaitLog(t, 0, 20*time.Second, func(m map[string]any) bool {
		s, _ := m["error"].(string)
		return strings.Contains(s, "is not the node your certificate names")
	})
	if _, err := os.Stat(filepath.Join(dir, "liar")); err == nil {
		if names, _ := filepath.Glob(filepath.Join(dir, "liar", "snapshot-*")); len(names) != 0 {
			t.Errorf("the lying edge saved a snapshot: %v", names)
		}
	}
	// The positive control: edge-2's certificate as edge-2 gets the snapshot.
	m, err = syncHello(t, cp.Sync, tlsCreds(t, edge1.CA, loadPair(t, edge2)), "edge-2", "eu")
	if err != nil || m.GetSnapshot() == nil {
		t.Fatalf("edge-2 as itself: %v, %v; want the snapshot", m, err)
	}
	r := testenv.Gwctl(t, bins, cp, "status")
	mustContain(t, "status", r.Stdout, "edge-1")
	for _, l := range strings.Split(r.Stdout, "\n") {
		if strings.Contains(l, "edge-1") && (!strings.Contains(l, "in_sync") || !strings.HasSuffix(strings.TrimSpace(l), "-")) {
			t.Errorf("edge-1 after the impostors: %q, want in_sync without error", l)
		}
	}
}

// TestSyncPlaintextOffLoopbackRefused: the shipped manifests listened on
// 0.0.0.0:9001 in plaintext. A non-loopback sync listener without TLS now
// stops the control plane unless --insecure-sync, which warns at start.
func TestSyncPlaintextOffLoopbackRefused(t *testing.T) {
	bins := testenv.Build(t)
	dir := t.TempDir()
	args := []string{"--data-dir", filepath.Join(dir, "cp"), "--admin-listen", "127.0.0.1:0", "--sync-listen", "0.0.0.0:0", "--log-format", "json"}
	p := testenv.Start(t, "gw-controlplane plaintext", bins.ControlPlane, args...)
	testenv.Eventually(t, 10*time.Second, func() error {
		if done, _ := p.Exited(); !done {
			return errors.New("still running")
		}
		return nil
	})
	if _, err := p.Exited(); err == nil {
		t.Fatal("plaintext non-loopback sync listener: exit 0")
	}
	mustContain(t, "refusal", p.Output(), "--insecure-sync")

	p = testenv.Start(t, "gw-controlplane insecure", bins.ControlPlane, append(args, "--insecure-sync")...)
	p.WaitLog(t, 0, 10*time.Second, func(m map[string]any) bool {
		msg, _ := m["message"].(string)
		return m["level"] == "warn" && strings.Contains(msg, "--insecure-sync")
	})
	p.WaitLog(t, 0, 10*time.Second, testenv.MessageIs("listening"))
	p.Stop()

	// With the built-in PKI the same listener serves mTLS, no flag.
	testenv.InitPKI(t, bins, filepath.Join(dir, "cp"))
	p = testenv.Start(t, "gw-controlplane pki", bins.ControlPlane, args...)
	p.WaitLog(t, 0, 10*time.Second, func(m map[string]any) bool { return m["message"] == "listening" && m["sync_mtls"] == true })
}

// TestSyncHelloBounds: 100 Hellos with 1 MB fields took a control plane
// from 20 to 532 MB, then gwctl status failed on the gRPC limit. Every
// Hello field is bounded now: the Hellos are refused, memory stays flat
// and status answers.
func TestSyncHelloBounds(t *testing.T) {
	bins := testenv.Build(t)
	cp := testenv.StartControlPlane(t, bins, filepath.Join(t.TempDir(), "cp"), "--metrics-listen", "127.0.0.1:0")
	before := cp.RSS()
	big := strings.Repeat("a", 900<<10) // under the 1 MiB message cap: refused by the field limits
	conn, err := grpc.NewClient(cp.Sync, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hellos := []*gatewayv1.Hello{
		{NodeId: big, Region: "eu", SchemaVersion: 1},
		{NodeId: "edge-x", Region: big, SchemaVersion: 1},
		{NodeId: "edge-x", BuildVersion: big, SchemaVersion: 1},
		{NodeId: "edge-x", Features: []string{big}, SchemaVersion: 1},
		{NodeId: "edge-x", ConfigSha256: big, SchemaVersion: 1},
		{NodeId: "edge-x", RevocationSetSha256: big, SchemaVersion: 1},
		{NodeId: "edge-x", Features: strings.Split(strings.Repeat("f,", 1000), ","), SchemaVersion: 1},
	}
	for i := 0; i < 100; i++ {
		h := hellos[i%len(hellos)]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		stream, err := gatewayv1.NewSyncServiceClient(conn).Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Hello{Hello: h}}); err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		cancel()
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("hello %d: %v, want InvalidArgument", i%len(hellos), err)
		}
	}
	// A Hello over the message cap never reaches the handler.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := gatewayv1.NewSyncServiceClient(conn).Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stream.Send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Hello{Hello: &gatewayv1.Hello{NodeId: strings.Repeat("a", 2<<20)}}})
	if _, err := stream.Recv(); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("2 MiB hello: %v, want ResourceExhausted", err)
	}
	after := cp.RSS()
	t.Logf("control plane RSS %d MiB before, %d MiB after 101 oversized hellos", before>>20, after>>20)
	if before == 0 || after-before > 64<<20 {
		t.Errorf("RSS grew from %d to %d MiB over oversized hellos; want under 64 MiB growth", before>>20, after>>20)
	}
	if v, _ := scrape(t, "http://"+cp.Metrics, `gw_controlplane_streams_refused_total{reason="hello"}`); v != 100 {
		t.Errorf("streams_refused_total{hello} = %v, want 100", v)
	}
	r := testenv.Gwctl(t, bins, cp, "status")
	if r.Code != 0 {
		t.Fatalf("status: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	mustContain(t, "status", r.Stdout, "no edge has connected")
}

// snapshotFiles lists the snapshot files in an edge's data dir.
func snapshotFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "snapshot-*"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

// TestRogueControlPlaneSnapshotNotServed: a rogue control plane removed
// auth from a route and pointed it at its own backend, and the edge saved
// that as last-known-good. An edge now pins its control plane's key: a
// real control plane with another key, on the same address, gets a NACK,
// and its snapshot is never served or saved, also across an edge restart.
func TestRogueControlPlaneSnapshotNotServed(t *testing.T) {
	bins := testenv.Build(t)
	good := echoBackend(t, "good")
	evil := echoBackend(t, "evil")
	dir := t.TempDir()
	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	e := testenv.StartEdge(t, bins, cp, "edge-1", "eu", filepath.Join(dir, "e"))
	pushOK(t, bins, cp, testenv.WriteFile(t, dir, "good.json", helloConfig(good.URL, "/good")), "--wait", "--timeout", "20s")
	if got := bodyField(t, e.URL()+"/hello", "path"); got != "/good" {
		t.Fatalf("before: /hello → %q, want /good", got)
	}
	saved := snapshotFiles(t, e.DataDir)

	cp.Stop()
	rogue := testenv.StartControlPlane(t, bins, filepath.Join(dir, "rogue"), "--sync-listen", cp.Sync)
	pushOK(t, bins, rogue, testenv.WriteFile(t, dir, "evil1.json", helloConfig(evil.URL, "/evil1")))
	pushOK(t, bins, rogue, testenv.WriteFile(t, dir, "evil.json", helloConfig(evil.URL, "/evil"))) // version 2: not the number the edge runs
	e.WaitLog(t, 0, 30*time.Second, func(m map[string]any) bool {
		s, _ := m["error"].(string)
		return m["message"] == "snapshot rejected" && strings.Contains(s, "not pinned on this edge")
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		r := testenv.Gwctl(t, bins, rogue, "status")
		if !strings.Contains(r.Stdout, "not pinned") {
			return fmt.Errorf("rogue's status has no NACK yet:\n%s", r.Stdout)
		}
		return nil
	})
	if got := bodyField(t, e.URL()+"/hello", "path"); got != "/good" {
		t.Errorf("after the rogue's push: /hello → %q, want /good", got)
	}
	if after := snapshotFiles(t, e.DataDir); strings.Join(after, ",") != strings.Join(saved, ",") {
		t.Errorf("snapshot files changed: %v → %v", saved, after)
	}
	e.Stop()
	e.RestartSamePort(t)
	if got := bodyField(t, e.URL()+"/hello", "path"); got != "/good" {
		t.Errorf("restarted edge: /hello → %q, want /good (its saved snapshot)", got)
	}
}

// TestEdgeRefusesUnsignedAndOversizedSnapshots: a rogue control plane's
// unsigned snapshot, one signed by another key, and one signed by the
// pinned key asking for a bloom filter of 1e11 entries (which killed an
// edge) are each NACKed; none is served or saved, the edge's memory stays
// small, and the real snapshot is then applied.
func TestEdgeRefusesUnsignedAndOversizedSnapshots(t *testing.T) {
	bins := testenv.Build(t)
	is := newIssuer(t)
	backend := echoBackend(t, "users")
	dir := t.TempDir()
	env, signer := fetchEnvelope(t, bins, filepath.Join(dir, "cp"), jwtConfig(backend.URL, is))
	rogue := startRogue(t, "127.0.0.1:0")
	e := testenv.Start(t, "gw-edge", bins.Edge, "--controlplane", rogue.Addr,
		"--snapshot-public-key", filepath.Join(dir, "cp", "signing.pub"), "--node-id", "edge-1", "--region", "eu",
		"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "e"), "--log-format", "json", "--keepalive", "1s")
	rogue.await(t, 20*time.Second, "hello", func(m *gatewayv1.SyncRequest) bool { return m.GetHello() != nil })

	otherKey, err := snapsign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  *gatewayv1.SnapshotEnvelope
		want string
	}{
		{"unsigned", reversion(env, 101, nil), "is not signed"},
		{"signed by another key", reversion(env, 102, snapsign.NewSigner(otherKey)), "not pinned on this edge"},
		{"bloom N 1e11", repayload(t, env, 103, signer, func(s *gatewayv1.Snapshot) { s.GetService().GetRevoker().N = 1e11 }), "revoker"},
		{"bloom P 1e-300", repayload(t, env, 104, signer, func(s *gatewayv1.Snapshot) { s.GetService().GetRevoker().P = 1e-300 }), "revoker"},
	} {
		rogue.sendSnapshot(tc.env)
		ack, nack := rogue.answerTo(t, tc.env.GetVersion())
		if ack != nil || !strings.Contains(strings.ToLower(nackText(nack)), tc.want) {
			t.Errorf("%s: ack %v, nack %q; want a NACK naming %q", tc.name, ack, nackText(nack), tc.want)
		}
	}
	if rss := e.RSS(); rss > 256<<20 {
		t.Errorf("edge RSS %d MiB after the oversized bloom settings", rss>>20)
	}
	if names := snapshotFiles(t, filepath.Join(dir, "e")); len(names) != 0 {
		t.Errorf("refused snapshots were saved: %v", names)
	}
	edge := &testenv.Edge{Proc: e}
	m := e.WaitLog(t, 0, 5*time.Second, testenv.MessageIs("listening"))
	edge.Addr, _ = m["addr"].(string)
	if code, _, _ := testenv.Get(t, edge.URL()+"/me"); code == http.StatusOK {
		t.Errorf("an edge with no accepted snapshot answered /me 200")
	}
	rogue.sendSnapshot(env)
	if ack, nack := rogue.answerTo(t, env.GetVersion()); ack == nil {
		t.Fatalf("the real snapshot: NACK %q", nackText(nack))
	}
	if names := snapshotFiles(t, filepath.Join(dir, "e")); len(names) != 1 {
		t.Errorf("after the real snapshot: files %v, want one", names)
	}
}

func nackText(n *gatewayv1.Nack) string {
	if n == nil {
		return ""
	}
	s := n.GetDetail()
	for _, v := range n.GetViolations() {
		s += "; " + v.GetPath() + ": " + v.GetDetail()
	}
	return s
}

// TestRevocationSetResetRepaired: a rogue control plane reset an edge's
// revocation set to empty at the same seq, and the real control plane
// never repaired it (the revoked token got 200 while status said in_sync).
// Edges now report a hash of their set in the Hello and the control plane
// sends a reset when it differs from its log. The rogue here holds the
// real signing key (a leaked key, the worst case): the edge takes its
// reset, and the real control plane repairs it on the next connect.
func TestRevocationSetResetRepaired(t *testing.T) {
	bins := testenv.Build(t)
	is := newIssuer(t)
	backend := echoBackend(t, "users")
	dir := t.TempDir()
	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"), "--metrics-listen", "127.0.0.1:0")
	e := testenv.StartEdge(t, bins, cp, "edge-1", "eu", filepath.Join(dir, "e"))
	pushOK(t, bins, cp, testenv.WriteFile(t, dir, "jwt.json", jwtConfig(backend.URL, is)), "--wait", "--timeout", "20s")
	tok := token(t, is, "alice", "jti-revoked", time.Now().Add(30*time.Minute))
	if code, _ := callMe(t, e, tok); code != http.StatusOK {
		t.Fatalf("before revoke: %d", code)
	}
	if r := testenv.Gwctl(t, bins, cp, "revoke", "jti-revoked", "--wait", "--timeout", "10s"); r.Code != 0 {
		t.Fatalf("revoke: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if code, _ := callMe(t, e, tok); code != http.StatusUnauthorized {
		t.Fatalf("after revoke: %d, want 401", code)
	}

	cp.Stop()
	rogue := startRogue(t, cp.Sync)
	hello := rogue.await(t, 30*time.Second, "hello", func(m *gatewayv1.SyncRequest) bool { return m.GetHello() != nil }).GetHello()
	reset := &gatewayv1.RevocationReset{Seq: hello.GetRevocationSeq()}
	loadSigner(t, cp.DataDir).Reset(reset)
	rogue.send <- &gatewayv1.SyncResponse{Msg: &gatewayv1.SyncResponse_RevocationReset{RevocationReset: reset}}
	rogue.await(t, 10*time.Second, "revocation ack", func(m *gatewayv1.SyncRequest) bool { return m.GetRevocationAck() != nil })
	if code, _ := callMe(t, e, tok); code != http.StatusOK {
		t.Fatalf("after the rogue's reset to empty: %d; the scenario needs the set emptied", code)
	}
	rogue.stop()

	cp.RestartSamePorts(t)
	testenv.Eventually(t, 30*time.Second, func() error {
		if code, _ := callMe(t, e, tok); code != http.StatusUnauthorized {
			return fmt.Errorf("revoked token: %d, want 401", code)
		}
		return nil
	})
	if v, _ := scrape(t, "http://"+cp.Metrics, "gw_controlplane_revocation_repairs_total"); v < 1 {
		t.Errorf("revocation_repairs_total = %v, want ≥ 1", v)
	}
}

// writeServerCert replaces the control plane's sync server certificate
// (its built-in PKI's server.crt/.key) with one valid from notBefore to
// notAfter for 127.0.0.1, signed by the PKI's CA.
func writeServerCert(t *testing.T, dataDir string, notBefore, notAfter time.Time) {
	t.Helper()
	caCertPath, caKeyPath, srvCertPath, srvKeyPath := pki.Paths(dataDir)
	caCert := readCert(t, caCertPath)
	kb, err := os.ReadFile(caKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(kb)
	caKey, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "gw-controlplane"},
		NotBefore:    notBefore, NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	// Key first: the reloader takes the pair when both parse together.
	for path, b := range map[string][]byte{
		srvKeyPath + ".new":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
		srvCertPath + ".new": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{srvKeyPath, srvCertPath} {
		if err := os.Rename(p+".new", p); err != nil {
			t.Fatal(err)
		}
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// connects counts the streams the control plane accepted from node.
func connects(cp *testenv.ControlPlane, node string) int {
	n := 0
	for _, l := range cp.Lines() {
		if strings.Contains(l, `"message":"edge connected"`) && strings.Contains(l, `"node_id":"`+node+`"`) {
			n++
		}
	}
	return n
}

// TestCertificateRotationAndExpiryWarnings: certificates rotate without
// dropping the stream, and an expiring one is warned about in the metrics,
// the log and gwctl status well before it expires.
func TestCertificateRotationAndExpiryWarnings(t *testing.T) {
	bins := testenv.Build(t)
	backend := echoBackend(t, "users")
	dir := t.TempDir()
	cpDir := filepath.Join(dir, "cp")
	testenv.InitPKI(t, bins, cpDir)
	// The server certificate expires in 10 days: inside the 30-day warning.
	soon := time.Now().Add(240 * time.Hour).Truncate(time.Second)
	writeServerCert(t, cpDir, time.Now().Add(-time.Hour), soon)
	cp := testenv.StartControlPlane(t, bins, cpDir, "--metrics-listen", "127.0.0.1:0")
	cp.WaitLog(t, 0, 5*time.Second, func(m map[string]any) bool {
		return m["level"] == "warn" && m["message"] == "the sync TLS certificate expires soon; rotate it (the new files are picked up without a restart)"
	})
	if v, _ := scrape(t, "http://"+cp.Metrics, "gw_controlplane_sync_cert_expiry_timestamp_seconds"); int64(v) != soon.Unix() {
		t.Errorf("sync_cert_expiry = %v, want %d", v, soon.Unix())
	}
	creds := testenv.IssueCert(t, bins, cp, "edge-1", "eu", filepath.Join(dir, "tls"), "--validity", "240h")
	notAfter := readCert(t, creds.Cert).NotAfter
	e := testenv.StartEdge(t, bins, cp, "edge-1", "eu", filepath.Join(dir, "e"), append(creds.Args(), "--metrics-listen", "127.0.0.1:0")...)
	pushOK(t, bins, cp, testenv.WriteFile(t, dir, "gw.json", helloConfig(backend.URL, "/hello")), "--wait", "--timeout", "20s")
	e.WaitVersion(t, 1, 10*time.Second)
	e.WaitLog(t, 0, 5*time.Second, func(m map[string]any) bool {
		return m["level"] == "warn" && strings.HasPrefix(fmt.Sprint(m["message"]), "the client certificate expires soon")
	})
	em := e.WaitLog(t, 0, 5*time.Second, testenv.MessageIs("metrics listening"))
	if v, _ := scrape(t, fmt.Sprint("http://", em["addr"]), "gw_edge_client_cert_expiry_timestamp_seconds"); int64(v) != notAfter.Unix() {
		t.Errorf("edge client_cert_expiry = %v, want %d", v, notAfter.Unix())
	}
	series := `gw_controlplane_edge_cert_expiry_timestamp_seconds{node_id="edge-1"}`
	if v, _ := scrape(t, "http://"+cp.Metrics, series); int64(v) != notAfter.Unix() {
		t.Errorf("%s = %v, want %d", series, v, notAfter.Unix())
	}
	cp.WaitLog(t, 0, 5*time.Second, func(m map[string]any) bool {
		return m["level"] == "warn" && m["node_id"] == "edge-1" && strings.Contains(fmt.Sprint(m["message"]), "certificate expires soon")
	})
	r := testenv.Gwctl(t, bins, cp, "status")
	mustContain(t, "status", r.Stdout, "WARNING: the control plane's sync certificate expires in", "certificate expires in")

	// Rotate both while the stream is open: new files, same paths.
	before := connects(cp, "edge-1")
	if out, err := exec.Command(bins.ControlPlane, "ca", "renew-server", "--data-dir", cpDir).CombinedOutput(); err != nil {
		t.Fatalf("ca renew-server: %v\n%s", err, out)
	}
	creds = testenv.IssueCert(t, bins, cp, "edge-1", "eu", filepath.Join(dir, "tls"), "--validity", "2160h")
	newNotAfter := readCert(t, creds.Cert).NotAfter
	time.Sleep(2 * time.Second) // past the reloaders' once-a-second check
	pushOK(t, bins, cp, testenv.WriteFile(t, dir, "gw2.json", helloConfig(backend.URL, "/v2")), "--wait", "--timeout", "20s")
	e.WaitVersion(t, 2, 10*time.Second)
	if n := connects(cp, "edge-1"); n != before {
		t.Errorf("the edge reconnected %d times over the rotation; the open stream should carry on", n-before)
	}
	// New handshakes use the new certificates: a fresh client sees the new
	// server certificate, and the edge's next stream presents its new one.
	conn, err := tls.Dial("tcp", cp.Sync, &tls.Config{RootCAs: certPool(t, creds.CA), Certificates: []tls.Certificate{loadPair(t, creds)}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := conn.ConnectionState().PeerCertificates[0].NotAfter; got.Before(time.Now().Add(80 * 24 * time.Hour)) {
		t.Errorf("a new handshake got the server certificate valid until %s, want the rotated one", got)
	}
	conn.Close()
	cp.Stop()
	cp.RestartSamePorts(t)
	testenv.Eventually(t, 30*time.Second, func() error {
		if v, _ := scrape(t, "http://"+cp.Metrics, series); int64(v) != newNotAfter.Unix() {
			return fmt.Errorf("%s = %v, want %d (the rotated certificate)", series, v, newNotAfter.Unix())
		}
		return nil
	})
	r = testenv.Gwctl(t, bins, cp, "status")
	if strings.Contains(r.Stdout, "WARNING") || strings.Contains(r.Stdout, "certificate expires") {
		t.Errorf("status after rotation still warns:\n%s", r.Stdout)
	}
}

// TestExpiredControlPlaneCertKeepsEdgeConfig: an expired control plane
// certificate must never make an edge drop its config. The edge cannot
// connect (and says so), keeps serving its snapshot, also across a
// restart, and reconnects once the certificate is rotated.
func TestExpiredControlPlaneCertKeepsEdgeConfig(t *testing.T) {
	bins := testenv.Build(t)
	backend := echoBackend(t, "users")
	dir := t.TempDir()
	cp := startPKIControlPlane(t, bins, filepath.Join(dir, "cp"))
	creds := testenv.IssueCert(t, bins, cp, "edge-1", "eu", filepath.Join(dir, "tls"))
	e := testenv.StartEdge(t, bins, cp, "edge-1", "eu", filepath.Join(dir, "e"), creds.Args()...)
	pushOK(t, bins, cp, testenv.WriteFile(t, dir, "gw.json", helloConfig(backend.URL, "/hello")), "--wait", "--timeout", "20s")
	e.WaitVersion(t, 1, 10*time.Second)

	cp.Stop()
	writeServerCert(t, cp.DataDir, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	from := len(e.Lines())
	cp.RestartSamePorts(t)
	cp.WaitLog(t, 0, 5*time.Second, func(m map[string]any) bool {
		return m["level"] == "error" && strings.Contains(fmt.Sprint(m["message"]), "has expired")
	})
	e.WaitLog(t, from, 30*time.Second, func(m map[string]any) bool {
		return strings.Contains(fmt.Sprint(m["error"]), "expired")
	})
	for i := 0; i < 5; i++ {
		if got := bodyField(t, e.URL()+"/hello", "path"); got != "/hello" {
			t.Fatalf("with the control plane's certificate expired: /hello → %q", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.Stop()
	e.RestartSamePort(t)
	if got := bodyField(t, e.URL()+"/hello", "path"); got != "/hello" {
		t.Fatalf("restarted edge, certificate still expired: /hello → %q", got)
	}
	writeServerCert(t, cp.DataDir, time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))
	testenv.Eventually(t, 30*time.Second, func() error {
		r := testenv.Gwctl(t, bins, cp, "status")
		if !strings.Contains(r.Stdout, "in_sync") {
			return fmt.Errorf("edge not back in sync:\n%s", r.Stdout)
		}
		return nil
	})
}

// TestKubeSecretCredentials: what deploy/kubernetes/edge.yaml mounts,
// made by `gwctl certs issue --kube-secret` (the control plane's image has
// no shell, so the credentials come out on stdout), connects an edge over
// mTLS with signed snapshots. `ca init --if-missing` (the init container)
// leaves an existing CA alone.
func TestKubeSecretCredentials(t *testing.T) {
	bins := testenv.Build(t)
	backend := echoBackend(t, "users")
	dir := t.TempDir()
	cpDir := filepath.Join(dir, "cp")
	testenv.InitPKI(t, bins, cpDir, "--host", "localhost,127.0.0.1")
	caBefore, err := os.ReadFile(filepath.Join(cpDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bins.ControlPlane, "ca", "init", "--if-missing", "--data-dir", cpDir, "--host", "other").CombinedOutput(); err != nil || !strings.Contains(string(out), "nothing changed") {
		t.Fatalf("ca init --if-missing on an existing CA: %v\n%s", err, out)
	}
	if caAfter, _ := os.ReadFile(filepath.Join(cpDir, "pki", "ca.crt")); string(caAfter) != string(caBefore) {
		t.Fatal("ca init --if-missing replaced the CA")
	}
	cp := testenv.StartControlPlane(t, bins, cpDir)
	r := testenv.Gwctl(t, bins, cp, "certs", "issue", "--node-id", "gw-edge-0", "--region", "eu-west-1", "--kube-secret", "gw-edge-0-tls")
	if r.Code != 0 {
		t.Fatalf("certs issue --kube-secret: exit %d\n%s", r.Code, r.Stderr)
	}
	var secret struct {
		Kind     string                `yaml:"kind"`
		Metadata struct{ Name string } `yaml:"metadata"`
		Data     map[string]string     `yaml:"data"`
	}
	if err := yaml.Unmarshal([]byte(r.Stdout), &secret); err != nil {
		t.Fatalf("not YAML: %v\n%s", err, r.Stdout)
	}
	if secret.Kind != "Secret" || secret.Metadata.Name != "gw-edge-0-tls" {
		t.Fatalf("kind %q name %q", secret.Kind, secret.Metadata.Name)
	}
	mount := filepath.Join(dir, "mount")
	if err := os.MkdirAll(mount, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tls.key", "tls.crt", "ca.crt", "signing.pub"} {
		b, err := base64.StdEncoding.DecodeString(secret.Data[k])
		if err != nil || len(b) == 0 {
			t.Fatalf("data[%s]: %v (%d bytes)", k, err, len(b))
		}
		if err := os.WriteFile(filepath.Join(mount, k), b, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(r.Stdout, "BEGIN") {
		t.Error("PEM in clear in the Secret's data")
	}
	e := testenv.Start(t, "gw-edge gw-edge-0", bins.Edge, "--controlplane", cp.Sync, "--node-id", "gw-edge-0", "--region", "eu-west-1",
		"--controlplane-ca", filepath.Join(mount, "ca.crt"), "--tls-cert", filepath.Join(mount, "tls.crt"), "--tls-key", filepath.Join(mount, "tls.key"),
		"--snapshot-public-key", filepath.Join(mount, "signing.pub"),
		"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "e"), "--log-format", "json")
	e.WaitLog(t, 0, 20*time.Second, testenv.MessageIs("listening"))
	pushOK(t, bins, cp, testenv.WriteFile(t, dir, "gw.json", helloConfig(backend.URL, "/hello")), "--wait", "--timeout", "20s")
	e.WaitLog(t, 0, 10*time.Second, testenv.MessageIs("snapshot applied"))
	if r := testenv.Gwctl(t, bins, cp, "certs", "issue", "--node-id", "x", "--region", "r", "--kube-secret", "Bad_Name"); r.Code != 2 {
		t.Errorf("--kube-secret Bad_Name: exit %d, want 2", r.Code)
	}
}
