package command

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/apigw/gateway/controlplane/service"
	"github.com/apigw/gateway/controlplane/store"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// controlPlane is a real control plane (controlplane/service over bbolt) on
// loopback: the admin API behind a bearer token, the sync API open.
type controlPlane struct {
	admin, sync string
	tokenFile   string
	client      gatewayv1.AdminServiceClient
}

const testToken = "test-token-0123456789"

// futureUntil is a --until a month ahead: within the control plane's
// maximum, and the golden output normalises the date.
var futureUntil = time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339)

func startControlPlane(t *testing.T) *controlPlane {
	t.Helper()
	dir := t.TempDir()
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st, err := store.OpenBolt(filepath.Join(dir, "store.db"), store.WithClock(func() time.Time { return created }))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(service.Config{Store: st, Keepalive: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := service.NewTokenAuth(testToken)
	if err != nil {
		t.Fatal(err)
	}
	adminSrv := grpc.NewServer(auth.ServerOptions()...)
	svc.RegisterAdmin(adminSrv)
	svc.AuditRefusals(auth)
	syncSrv := grpc.NewServer()
	svc.RegisterSync(syncSrv)
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	syncLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go adminSrv.Serve(adminLn)
	go syncSrv.Serve(syncLn)

	tokenFile := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(adminLn.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer(testToken)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		adminSrv.Stop()
		syncSrv.Stop()
		svc.Close()
		st.Close()
	})
	return &controlPlane{admin: adminLn.Addr().String(), sync: syncLn.Addr().String(), tokenFile: tokenFile, client: gatewayv1.NewAdminServiceClient(conn)}
}

// gwctlEnv runs the CLI against the control plane with environment vars.
func (cp *controlPlane) gwctlEnv(t *testing.T, vars map[string]string, args ...string) result {
	t.Helper()
	return runCLI(t, testEnv(vars), append([]string{"--server", cp.admin, "--token-file", cp.tokenFile}, args...)...)
}

// waitEdges waits until the control plane lists n connected edges.
func (cp *controlPlane) waitEdges(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := cp.client.Status(ctx, &gatewayv1.StatusRequest{})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		connected := 0
		for _, e := range resp.GetEdges() {
			if e.GetConnected() {
				connected++
			}
		}
		if connected == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d edges connected, want %d", connected, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fakeEdge speaks the sync protocol with a scripted answer to every
// snapshot; the CLI only needs the control plane's view of the fleet.
type fakeEdge struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// answer decides the reply to a snapshot; nil means stay silent.
type answer func(env *gatewayv1.SnapshotEnvelope) *gatewayv1.SyncRequest

func ackAll(env *gatewayv1.SnapshotEnvelope) *gatewayv1.SyncRequest {
	return &gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Ack{Ack: &gatewayv1.Ack{Version: env.GetVersion(), Sha256: env.GetSha256()}}}
}

func silent(*gatewayv1.SnapshotEnvelope) *gatewayv1.SyncRequest { return nil }

// nackAfter ACKs versions up to last and NACKs newer ones.
func nackAfter(last uint64) answer {
	return func(env *gatewayv1.SnapshotEnvelope) *gatewayv1.SyncRequest {
		if env.GetVersion() <= last {
			return ackAll(env)
		}
		return &gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Nack{Nack: &gatewayv1.Nack{
			Version: env.GetVersion(), Sha256: env.GetSha256(), RunningVersion: last,
			Detail: fmt.Sprintf("snapshot v%d cannot be served by this edge", env.GetVersion()),
			Violations: []*gatewayv1.FieldViolation{{
				Path: "features[0]", Kind: "unsupported", Detail: `feature "proxy.static" is disabled on this edge`,
			}},
		}}}
	}
}

// startFakeEdge connects an edge that runs until owner's cleanup (a step of
// a sequence may start edges that later steps still need).
func startFakeEdge(t *testing.T, owner testing.TB, syncAddr, node, region string, reply answer) *fakeEdge {
	t.Helper()
	conn, err := grpc.NewClient(syncAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := gatewayv1.NewSyncServiceClient(conn).Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hello := &gatewayv1.Hello{NodeId: node, Region: region, BuildVersion: "test", SchemaVersion: 1}
	if err := stream.Send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Hello{Hello: hello}}); err != nil {
		t.Fatal(err)
	}
	e := &fakeEdge{cancel: cancel}
	e.wg.Go(func() {
		defer conn.Close()
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			env := m.GetSnapshot()
			if env == nil {
				continue
			}
			if r := reply(env); r != nil {
				if err := stream.Send(r); err != nil {
					return
				}
			}
		}
	})
	owner.Cleanup(e.stop)
	return e
}

func (e *fakeEdge) stop() {
	e.cancel()
	e.wg.Wait()
}

// TestAgainstControlPlane walks the commands through one control plane's
// life; the steps share state, so they run in order.
func TestAgainstControlPlane(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t)
	parent := t
	steps := []struct {
		name     string
		before   func(t *testing.T)
		args     []string
		wantCode int
		contains []string // besides the golden file, for readers
		vars     map[string]string
	}{
		{name: "status_empty", args: []string{"status"}, contains: []string{"no version pushed yet"}},
		{name: "history_empty", args: []string{"history"}},
		{name: "diff_first", args: []string{"diff", "testdata/good.json"}, contains: []string{"+ GET /hello", "+ GET /items/{id}"}},
		{name: "push_first", args: []string{"push", "testdata/good.json", "--author", "alice"}, contains: []string{"version 1 (sha256 "}},
		{name: "push_same", args: []string{"push", "--author", "bob", "testdata/good.json"}, contains: []string{"unchanged: version 1"}},
		{name: "push_bad", args: []string{"push", "testdata/bad.json", "--wait", "--author", "erin"}, wantCode: ExitRejected, contains: []string{"endpoints[2].endpoint"}},
		{name: "diff_v2", args: []string{"diff", "testdata/good_v2.yaml"}, contains: []string{"~ GET /hello: ", "url_pattern", "- GET /items/{id}", "+ POST /users"}},
		{name: "diff_same", args: []string{"diff", "testdata/good.json"}, contains: []string{"no changes against version 1"}},
		// KRAKEND_* overrides reach the control plane (gwctl sends the
		// resolved document).
		{name: "diff_env", args: []string{"diff", "testdata/good.json"}, vars: map[string]string{"KRAKEND_PORT": "9091"},
			contains: []string{"against version 1:", "port"}},
		{
			name: "push_wait",
			before: func(t *testing.T) {
				startFakeEdge(t, parent, cp.sync, "edge-eu-1", "eu-west", ackAll)
				startFakeEdge(t, parent, cp.sync, "edge-us-1", "us-east", ackAll)
				cp.waitEdges(t, 2)
			},
			args:     []string{"push", "testdata/good_v2.yaml", "--wait", "--timeout", "10s", "--author", "alice"},
			contains: []string{"version 2", "2/2 edges on v2"},
		},
		{name: "status_in_sync", args: []string{"status"}, contains: []string{"eu-west:", "us-east:", "in_sync"}},
		{name: "rollback", args: []string{"rollback", "1", "--wait", "--author", "carol"}, contains: []string{"version 3", "rollback of 1", "2/2 edges on v3"}},
		{name: "rollback_same", args: []string{"rollback", "3", "--author", "dave"}, contains: []string{"unchanged: version 3"}},
		{name: "rollback_missing", args: []string{"rollback", "99", "--author", "dave"}, wantCode: ExitRejected},
		{name: "history", args: []string{"history"}, contains: []string{"rollback of 1", "alice", "carol"}},
		{name: "history_limit", args: []string{"history", "--limit", "1"}},
		{name: "revocations_empty", args: []string{"revocations"}, contains: []string{"no live revocation"}},
		{name: "revoke", args: []string{"revoke", "token-1", "--author", "alice"}, contains: []string{"revoked jti=token-1 until", "(seq 1)"}},
		{name: "revoke_subject", args: []string{"revoke", "--claim", "sub", "mallory", "--until", futureUntil, "--author", "bob"}, contains: []string{"revoked sub=mallory", "(seq 2)"}},
		{name: "revoke_bad_until", args: []string{"revoke", "x", "--until", "soon"}, wantCode: ExitUsage},
		{name: "revocations", args: []string{"revocations"}, contains: []string{"log at seq 2", "token-1", "mallory"}},
		{
			name: "push_nack",
			before: func(t *testing.T) {
				startFakeEdge(t, parent, cp.sync, "edge-old", "eu-west", nackAfter(3))
				cp.waitEdges(t, 3)
			},
			args:     []string{"push", "testdata/good_v3.json", "--wait", "--timeout", "10s", "--author", "alice"},
			wantCode: ExitRejected,
			contains: []string{"2/3 edges on v4", "edge-old", "proxy.static"},
		},
		{name: "status_rejected", args: []string{"status"}, contains: []string{"rejected"}},
		{
			name: "push_timeout",
			before: func(t *testing.T) {
				startFakeEdge(t, parent, cp.sync, "edge-mute", "ap-south", silent)
				cp.waitEdges(t, 4)
			},
			args:     []string{"push", "testdata/good.json", "--wait", "--timeout", "1s", "--author", "alice"},
			wantCode: ExitTimeout,
			contains: []string{"edge-mute"},
		},
		{name: "push_strict", args: []string{"push", "testdata/warned.json", "--strict"}, wantCode: ExitRejected,
			contains: []string{"url_pattern: normalized:"}},
		{name: "push_warned", args: []string{"push", "testdata/warned.json", "--author", "alice"},
			contains: []string{"version 6", "warning: endpoints[0].backend[0].url_pattern: normalized:"}},
		{name: "push_rendered", args: []string{"push", "testdata/fc/gw.tmpl", "--author", "alice"}, vars: fcEnv(),
			contains: []string{"version 7"}},
		{name: "history_rendered", args: []string{"history", "--limit", "2"},
			contains: []string{"rendered from 4 files", "1 warning", "v7 rendered from:", "testdata/fc/templates/endpoint.tmpl", "v6 warnings:"}},
		{name: "audit", args: []string{"audit", "--limit", "30"},
			contains: []string{"token:admin (alice)", "v7 ", "refused (InvalidArgument)"}},
		{name: "audit_page", args: []string{"audit", "--limit", "2"}, contains: []string{"more: gwctl audit --before 12"}},
		{name: "audit_rollback", args: []string{"audit", "--action", "rollback"},
			contains: []string{"rollback of 1", "rollback of 3", "refused (NotFound)", "unchanged"}},
		{name: "audit_revoke", args: []string{"audit", "--action", "revoke"},
			contains: []string{"seq 2 sub=mallory", "token:admin (bob)"}},
		{name: "audit_bad_limit", args: []string{"audit", "--limit", "0"}, wantCode: ExitUsage},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) {
			if s.before != nil {
				s.before(t)
			}
			r := cp.gwctlEnv(t, s.vars, s.args...)
			if r.code != s.wantCode {
				t.Errorf("exit %d, want %d\n%s", r.code, s.wantCode, r)
			}
			for _, want := range s.contains {
				if !strings.Contains(r.stdout+r.stderr, want) {
					t.Errorf("output lacks %q:\n%s", want, r)
				}
			}
			golden(t, s.name, r)
		}) {
			return
		}
	}
}

func TestUnreachableAndUnauthenticated(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	wrong := filepath.Join(t.TempDir(), "wrong.token")
	if err := os.WriteFile(wrong, []byte("nope"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		vars       map[string]string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{name: "unreachable", args: []string{"--server", dead, "--token-file", cp.tokenFile, "status"}, wantCode: ExitUnavailable, wantStderr: "cannot reach the control plane"},
		{name: "wrong token", args: []string{"--server", cp.admin, "--token-file", wrong, "status"}, wantCode: ExitUnavailable, wantStderr: "refused the admin token"},
		{name: "no token", vars: map[string]string{"HOME": t.TempDir()}, args: []string{"--server", cp.admin, "history"}, wantCode: ExitUnavailable, wantStderr: "read admin token"},
		{name: "env server and token", vars: map[string]string{"GWCTL_SERVER": cp.admin, "GWCTL_TOKEN": testToken}, args: []string{"status"}, wantCode: ExitOK},
		{name: "first of several unreachable", args: []string{"--server", dead + "," + cp.admin, "--token-file", cp.tokenFile, "status"}, wantCode: ExitOK, wantStderr: dead + " unavailable, trying " + cp.admin},
		{name: "all of several unreachable", args: []string{"--server", dead + "," + dead, "--token-file", cp.tokenFile, "status"}, wantCode: ExitUnavailable, wantStderr: "cannot reach the control plane"},
		{name: "empty address in the list", args: []string{"--server", cp.admin + ",", "--token-file", cp.tokenFile, "status"}, wantCode: ExitUsage, wantStderr: "empty address"},
		{name: "flags after the command", args: []string{"status", "--server", cp.admin, "--token-file", cp.tokenFile}, wantCode: ExitOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, testEnv(tc.vars), tc.args...)
			if r.code != tc.wantCode || !strings.Contains(r.stderr, tc.wantStderr) {
				t.Errorf("exit %d, want %d with %q\n%s", r.code, tc.wantCode, tc.wantStderr, r)
			}
		})
	}
}

func TestProgressOnTerminal(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t)
	startFakeEdge(t, t, cp.sync, "e1", "eu", ackAll)
	cp.waitEdges(t, 1)
	e := testEnv(nil)
	e.tty = true
	r := runCLI(t, e, "--server", cp.admin, "--token-file", cp.tokenFile, "push", "testdata/good.json", "--wait")
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	if !strings.Contains(r.stdout, "\r\033[K1/1 edges on v1\n") {
		t.Errorf("progress not rewritten in place:\n%q", r.stdout)
	}
}
