package e2e

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/test/testenv"
)

// Regression tests for issue 10 (edge and admin half): each reproduces a
// finding against real processes on loopback.

func sign(t *testing.T, is *testenv.Issuer, claims map[string]any) string {
	t.Helper()
	tok, err := is.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// claimsFor is a valid claim set (iss, aud, iat, exp in an hour) plus extra.
func claimsFor(extra map[string]any) map[string]any {
	m := map[string]any{
		"iss": testenv.IssuerName, "aud": []string{testenv.IssuerAudience},
		"iat": time.Now().Add(-time.Minute).Unix(), "exp": time.Now().Add(30 * time.Minute).Unix(),
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	return m
}

// TestRevokeNumericClaims: `gwctl revoke 12345` used to report success on
// every edge while a token with the numeric claim "jti": 12345 (or a
// numeric sub) was still accepted, because only string claims were probed.
func TestRevokeNumericClaims(t *testing.T) {
	bins := testenv.Build(t)
	is := newIssuer(t)
	backend := echoBackend(t, "users")
	dir := t.TempDir()
	cfg := testenv.WriteFile(t, dir, "jwt.json", jwtConfig(backend.URL, is))
	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	e := testenv.StartEdge(t, bins, cp, "edge-a", "eu", filepath.Join(dir, "edge"))
	if r := testenv.Gwctl(t, bins, cp, "push", cfg, "--wait", "--timeout", "20s"); r.Code != 0 {
		t.Fatalf("push: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	numJTI := sign(t, is, claimsFor(map[string]any{"sub": "alice", "jti": 12345}))
	floatJTI := sign(t, is, claimsFor(map[string]any{"sub": "alice", "jti": 12345.0}))
	numSub := sign(t, is, claimsFor(map[string]any{"sub": 777, "jti": "j-777"}))
	other := sign(t, is, claimsFor(map[string]any{"sub": 778, "jti": 12346}))
	for _, tok := range []string{numJTI, floatJTI, numSub, other} {
		if code, _ := callMe(t, e, tok); code != http.StatusOK {
			t.Fatalf("before any revocation: status %d, want 200", code)
		}
	}
	if r := testenv.Gwctl(t, bins, cp, "revoke", "12345", "--wait", "--timeout", "10s"); r.Code != 0 {
		t.Fatalf("revoke: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := testenv.Gwctl(t, bins, cp, "revoke", "--claim", "sub", "777", "--wait", "--timeout", "10s"); r.Code != 0 {
		t.Fatalf("revoke sub: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for name, tc := range map[string]struct {
		tok  string
		want int
	}{
		"jti 12345":       {numJTI, http.StatusUnauthorized},
		"jti 12345.0":     {floatJTI, http.StatusUnauthorized},
		"sub 777":         {numSub, http.StatusUnauthorized},
		"not revoked ids": {other, http.StatusOK},
	} {
		if code, _ := callMe(t, e, tc.tok); code != tc.want {
			t.Errorf("%s after revoke: status %d, want %d", name, code, tc.want)
		}
	}
}

// TestDataDirLocked: two edges sharing one data dir both wrote the same
// files. A second process on a locked dir (edge or control plane) now
// refuses to start, naming the owner.
func TestDataDirLocked(t *testing.T) {
	bins := testenv.Build(t)
	dir := t.TempDir()
	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	testenv.StartEdge(t, bins, cp, "edge-a", "eu", filepath.Join(dir, "edge"))
	for name, tc := range map[string]struct {
		bin  string
		args []string
	}{
		"second control plane": {bins.ControlPlane, []string{"--data-dir", filepath.Join(dir, "cp"), "--admin-listen", "127.0.0.1:0", "--sync-listen", "127.0.0.1:0", "--log-format", "json"}},
		"second edge": {bins.Edge, []string{"--controlplane", cp.Sync, "--snapshot-public-key", filepath.Join(cp.DataDir, "signing.pub"), "--node-id", "edge-b", "--region", "eu", "--listen", "127.0.0.1:0",
			"--data-dir", filepath.Join(dir, "edge"), "--log-format", "json"}},
	} {
		p := testenv.Start(t, name, tc.bin, tc.args...)
		testenv.Eventually(t, 10*time.Second, func() error {
			if done, _ := p.Exited(); !done {
				return errors.New("still running")
			}
			return nil
		})
		if _, err := p.Exited(); err == nil {
			t.Errorf("%s exited 0", name)
		}
		mustContain(t, name+" output", p.Output(), "data dir in use by another process", "locked by pid")
	}
}

// TestAdminTokenFileRefused: a 1-byte admin token was accepted, and a
// group/world-readable token file only warned. Both now stop the control
// plane at start with a clear error.
func TestAdminTokenFileRefused(t *testing.T) {
	bins := testenv.Build(t)
	for name, tc := range map[string]struct {
		token string
		mode  os.FileMode
		want  string
	}{
		"1-byte token":    {"x", 0o600, "want at least 32"},
		"0644 token file": {strings.Repeat("a", 64), 0o644, "lets other users read it"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "admin.token")
		if err := os.WriteFile(path, []byte(tc.token+"\n"), tc.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, tc.mode) // past the umask
		p := testenv.Start(t, name, bins.ControlPlane, "--data-dir", dir, "--admin-listen", "127.0.0.1:0",
			"--sync-listen", "127.0.0.1:0", "--log-format", "json", "--admin-token-file", path)
		testenv.Eventually(t, 10*time.Second, func() error {
			if done, _ := p.Exited(); !done {
				return errors.New("still running")
			}
			return nil
		})
		if _, err := p.Exited(); err == nil {
			t.Errorf("%s: control plane exited 0", name)
		}
		mustContain(t, name, p.Output(), tc.want)
	}
}

// TestGwctlEscapesNodeIDs: gwctl status printed control characters from
// node ids raw, so an edge (or anything that reaches the sync port) could
// drive the operator's terminal. The control plane now refuses such a node
// id at Hello; what an edge may still send as free text (a NACK's detail)
// is escaped by gwctl.
func TestGwctlEscapesNodeIDs(t *testing.T) {
	bins := testenv.Build(t)
	backend := echoBackend(t, "users")
	dir := t.TempDir()
	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	if r := testenv.Gwctl(t, bins, cp, "push", testenv.WriteFile(t, dir, "gw.json", helloConfig(backend.URL, "users"))); r.Code != 0 {
		t.Fatalf("push: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	conn, err := grpc.NewClient(cp.Sync, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hello := func(node, region string) gatewayv1.SyncService_SyncClient {
		stream, err := gatewayv1.NewSyncServiceClient(conn).Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		h := &gatewayv1.Hello{NodeId: node, Region: region, BuildVersion: "test", SchemaVersion: 1}
		if err := stream.Send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Hello{Hello: h}}); err != nil {
			t.Fatal(err)
		}
		return stream
	}
	bad := hello("edge-\x1b]0;pwned\x07\x1b[2J", "eu\x1b[31m")
	if _, err := bad.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("hello with control characters in the node id: %v, want InvalidArgument", err)
	}
	good := hello("edge-x", "eu")
	resp, err := good.Recv()
	if err != nil || resp.GetSnapshot() == nil {
		t.Fatalf("first message to a valid hello: %v, %v; want the snapshot", resp, err)
	}
	nack := &gatewayv1.Nack{Version: resp.GetSnapshot().GetVersion(), Sha256: resp.GetSnapshot().GetSha256(), Detail: "boom\x1b]0;pwned\x07\x1b[2J\u202e"}
	if err := good.Send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Nack{Nack: nack}}); err != nil {
		t.Fatal(err)
	}
	var out string
	testenv.Eventually(t, 10*time.Second, func() error {
		r := testenv.Gwctl(t, bins, cp, "status")
		out = r.Stdout + r.Stderr
		if !strings.Contains(out, "boom") {
			return errors.New("nack not listed yet")
		}
		return nil
	})
	if strings.ContainsAny(out, "\x1b\x07\u202e") {
		t.Fatalf("gwctl status printed raw control characters: %q", out)
	}
	mustContain(t, "gwctl status", out, "edge-x", `boom\x1b]0;pwned\a\x1b[2J`)
}
