package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/proto/sign"
)

func validConfig(dir string) *Config {
	return &Config{
		DataDir:         dir,
		AdminListen:     "127.0.0.1:0",
		SyncListen:      "127.0.0.1:0",
		Keepalive:       50 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second,
		RevocationTTL:   24 * time.Hour,
		RevocationGrace: time.Hour,
		MaxEdges:        100,
		FleetTTL:        time.Hour,
		AdmissionRate:   100,
		LogLevel:        "info",
		LogFormat:       "json",
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*Config)
		want   []string // substrings of the error, one per expected problem; nil = valid
	}{
		{name: "defaults", change: func(*Config) {}},
		{name: "localhost admin", change: func(c *Config) { c.AdminListen = "localhost:9000" }},
		{name: "ipv6 loopback admin", change: func(c *Config) { c.AdminListen = "[::1]:9000" }},
		{name: "remote admin refused", change: func(c *Config) { c.AdminListen = "0.0.0.0:9000" }, want: []string{"--admin-listen"}},
		{name: "empty host admin refused", change: func(c *Config) { c.AdminListen = ":9000" }, want: []string{"--admin-listen"}},
		{name: "hostname admin refused", change: func(c *Config) { c.AdminListen = "cp.internal:9000" }, want: []string{"--admin-listen"}},
		{name: "remote admin allowed", change: func(c *Config) { c.AdminListen = "0.0.0.0:9000"; c.AdminAllowRemote = true }},
		{name: "remote sync is fine", change: func(c *Config) { c.SyncListen = "0.0.0.0:9001" }},
		{name: "bad listen", change: func(c *Config) { c.SyncListen = "9001" }, want: []string{"--sync-listen"}},
		{name: "bad metrics listen", change: func(c *Config) { c.MetricsListen = "nope" }, want: []string{"--metrics-listen"}},
		{name: "pprof without metrics listen", change: func(c *Config) { c.MetricsListen = ""; c.Pprof = true }, want: []string{"--pprof"}},
		{name: "pprof on the metrics listen", change: func(c *Config) { c.MetricsListen = "127.0.0.1:9002"; c.Pprof = true }},
		{name: "cert without key", change: func(c *Config) { c.SyncTLSCert = "c.pem" }, want: []string{"--sync-tls-key"}},
		{name: "client ca without cert", change: func(c *Config) { c.SyncTLSClientCA = "ca.pem" }, want: []string{"--sync-tls-client-ca"}},
		{name: "no data dir", change: func(c *Config) { c.DataDir = "" }, want: []string{"--data-dir"}},
		{name: "revocation ttl over a year", change: func(c *Config) { c.RevocationTTL = 366 * 24 * time.Hour }, want: []string{"--revocation-ttl"}},
		{name: "zero revocation ttl", change: func(c *Config) { c.RevocationTTL = 0 }, want: []string{"--revocation-ttl"}},
		{name: "negative revocation grace", change: func(c *Config) { c.RevocationGrace = -time.Second }, want: []string{"--revocation-grace"}},
		{name: "fleet limits", change: func(c *Config) { c.MaxEdges = 0; c.FleetTTL = -1; c.AdmissionRate = -5 }, want: []string{"--max-edges", "--fleet-ttl", "--admission-rate"}},
		{name: "etcd store", change: func(c *Config) { c.Store = "etcd://127.0.0.1:2379,127.0.0.1:22379/gw" }, want: nil},
		{name: "etcd store with TLS", change: func(c *Config) { c.Store = "etcds://e1:2379"; c.EtcdCA = "ca.pem" }, want: nil},
		{name: "unknown store", change: func(c *Config) { c.Store = "redis://x:1" }, want: []string{"--store"}},
		{name: "etcd store without a port", change: func(c *Config) { c.Store = "etcd://e1" }, want: []string{"--store", "host:port"}},
		{name: "etcd TLS flags without etcds", change: func(c *Config) { c.Store = "etcd://e1:2379"; c.EtcdCert = "c.pem" }, want: []string{"need --store etcds://", "--etcd-cert and --etcd-key"}},
		{name: "etcd TLS flags with bolt", change: func(c *Config) { c.EtcdCA = "ca.pem" }, want: []string{"only apply to --store etcds://"}},
		{name: "etcd user", change: func(c *Config) { c.Store = "etcd://e1:2379"; c.EtcdUser = "gw"; c.EtcdPasswordFile = "pw" }},
		{name: "etcd user with bolt", change: func(c *Config) { c.EtcdUser = "gw" }, want: []string{"--etcd-user: only applies"}},
		{name: "etcd password file without a user", change: func(c *Config) { c.Store = "etcd://e1:2379"; c.EtcdPasswordFile = "pw" }, want: []string{"--etcd-password-file: needs --etcd-user"}},
		{name: "negative stream age", change: func(c *Config) { c.MaxStreamAge = -time.Second }, want: []string{"--max-stream-age"}},
		{name: "fleet flags with etcd", change: func(c *Config) { c.Store = "etcd://e1:2379"; c.ReplicaName = "cp-1"; c.FleetLeaseTTL = 5 * time.Second }},
		{name: "fleet flags with bolt", change: func(c *Config) { c.ReplicaName = "cp-1" }, want: []string{"--replica-name, --fleet-lease-ttl: only apply"}},
		{name: "fleet lease under a second", change: func(c *Config) { c.Store = "etcd://e1:2379"; c.FleetLeaseTTL = 500 * time.Millisecond }, want: []string{"--fleet-lease-ttl: must be at least 1s"}},
		{name: "admin half TLS", change: func(c *Config) { c.AdminTLSKey = "k.pem" }, want: []string{"--admin-tls-cert and --admin-tls-key"}},
		{name: "admin client ca without TLS", change: func(c *Config) { c.AdminTLSClientCA = "ca.pem" }, want: []string{"--admin-tls-client-ca"}},
		{name: "every problem at once", change: func(c *Config) {
			c.Keepalive = 0
			c.LogLevel = "loud"
			c.LogFormat = "xml"
			c.ShutdownTimeout = -1
		}, want: []string{"--keepalive", "--log-level", "--log-format", "--shutdown-timeout"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig("/tmp/x")
			tc.change(c)
			err := c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted an invalid config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}

func TestRealMainExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want int
	}{
		{name: "help", args: []string{"--help"}, want: exitOK},
		{name: "unknown flag", args: []string{"--bogus"}, want: exitUsage},
		{name: "stray argument", args: []string{"serve"}, want: exitUsage},
		{name: "remote admin", args: []string{"--data-dir", t.TempDir(), "--admin-listen", "0.0.0.0:0"}, want: exitUsage},
		{name: "bad duration", args: []string{"--keepalive", "soon"}, want: exitUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stderr strings.Builder
			if got := realMain(tc.args, io.Discard, &stderr); got != tc.want {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", got, tc.want, stderr.String())
			}
		})
	}
}

func TestHelpDescribesEveryFlag(t *testing.T) {
	t.Parallel()
	var stderr strings.Builder
	realMain([]string{"--help"}, io.Discard, &stderr)
	for _, f := range []string{
		"data-dir", "admin-listen", "admin-allow-remote", "admin-token-file", "sync-listen", "sync-tls-cert",
		"sync-tls-key", "sync-tls-client-ca", "metrics-listen", "keepalive", "shutdown-timeout", "log-level", "log-format",
		"revocation-ttl", "revocation-grace", "max-edges", "fleet-ttl", "admission-rate", "insecure-sync", "insecure-admin",
		"admin-tls-cert", "admin-tls-key", "admin-tls-client-ca", "cert-warn-before", "replica-name", "fleet-lease-ttl",
	} {
		if !strings.Contains(stderr.String(), "-"+f) {
			t.Errorf("--help does not describe --%s", f)
		}
	}
}

// runCP starts run in the background and returns the addresses from its
// "listening" log line, plus a stop function returning run's error.
func runCP(t *testing.T, cfg *Config) (adminAddr, syncAddr string, stop func() error, logs func() string) {
	t.Helper()
	var logMu sync.Mutex
	var all strings.Builder
	logs = func() string {
		logMu.Lock()
		defer logMu.Unlock()
		return all.String()
	}
	pr, pw := io.Pipe()
	log := zerolog.New(pw)
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() {
		runErr <- run(ctx, cfg, log)
		pw.Close()
	}()
	lines := make(chan map[string]any, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			logMu.Lock()
			all.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("log line is not JSON: %q", sc.Text())
				continue
			}
			select {
			case lines <- m:
			default: // the test reads only up to "listening"
			}
		}
	}()
	var stopped bool
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-runErr:
			for range lines {
			}
			return err
		case <-time.After(20 * time.Second):
			t.Fatal("run did not return after cancel")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatalf("run ended before listening: %v", <-runErr)
			}
			if m["message"] == "listening" {
				return m["admin"].(string), m["sync"].(string), stop, logs
			}
		case <-timeout:
			t.Fatal("no listening line within 20s")
		}
	}
}

func TestRunServesAndStopsGracefully(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := validConfig(dir)
	admin, syncAddr, stop, logs := runCP(t, cfg)

	tokPath := filepath.Join(dir, "admin.token")
	fi, err := os.Stat(tokPath)
	if err != nil {
		t.Fatalf("token file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	raw, err := os.ReadFile(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(raw))
	if len(token) != 64 {
		t.Fatalf("token %d chars, want 64 hex", len(token))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cc, err := grpc.NewClient(admin, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ac := gatewayv1.NewAdminServiceClient(cc)
	if _, err := ac.Status(ctx, &gatewayv1.StatusRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Status without token: %v, want Unauthenticated", err)
	}
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	if _, err := ac.Status(authed, &gatewayv1.StatusRequest{}); err != nil {
		t.Fatalf("Status with token: %v", err)
	}

	// An edge stream is open while the control plane stops: it must end.
	sc, err := grpc.NewClient(syncAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	stream, err := gatewayv1.NewSyncServiceClient(sc).Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Hello{Hello: &gatewayv1.Hello{NodeId: "e1"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil { // a keepalive
		t.Fatalf("Recv: %v", err)
	}

	if err := stop(); err != nil {
		t.Fatalf("run returned %v after cancel, want nil", err)
	}
	if l := logs(); strings.Contains(l, token) {
		t.Fatalf("the admin token appears in the log:\n%s", l)
	} else if !strings.Contains(l, tokPath) {
		t.Fatalf("the log does not name the generated token file:\n%s", l)
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if c := status.Code(err); c != codes.Unavailable {
				t.Fatalf("edge stream ended with %v, want Unavailable", err)
			}
			break
		}
	}

	// A restart reuses the token and the store.
	_, _, stop2, _ := runCP(t, cfg)
	raw2, err := os.ReadFile(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(raw), string(raw2)); diff != "" {
		t.Fatalf("token changed on restart (-first +second):\n%s", diff)
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
}

func TestRunKeepsRevocationsAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := validConfig(dir)
	cfg.RevocationTTL = 2 * time.Hour
	admin, _, stop, _ := runCP(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	raw, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(string(raw)))
	adminClient := func(addr string) gatewayv1.AdminServiceClient {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return gatewayv1.NewAdminServiceClient(cc)
	}

	ac := adminClient(admin)
	before := time.Now()
	var want []*gatewayv1.RevocationEntry
	for _, v := range []string{"a", "b"} {
		resp, err := ac.Revoke(ctx, &gatewayv1.RevokeRequest{Value: v, Author: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, resp.GetEntry())
	}
	// --revocation-ttl is the default lifetime (no config is pushed).
	if ttl := time.UnixMilli(want[0].GetExpiresUnixMs()).Sub(before); ttl < 2*time.Hour-time.Minute || ttl > 2*time.Hour+time.Minute {
		t.Fatalf("default lifetime %s, want about 2h (--revocation-ttl)", ttl)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	admin, syncAddr, stop2, _ := runCP(t, cfg)
	ac = adminClient(admin)
	list, err := ac.ListRevocations(ctx, &gatewayv1.ListRevocationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&gatewayv1.ListRevocationsResponse{Entries: want, Seq: 2}, list, protocmp.Transform()); diff != "" {
		t.Fatalf("revocations after restart (-want +got):\n%s", diff)
	}
	// An edge that held nothing gets both entries as one delta.
	sc, err := grpc.NewClient(syncAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	stream, err := gatewayv1.NewSyncServiceClient(sc).Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Hello{Hello: &gatewayv1.Hello{NodeId: "e1"}}}); err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if d := resp.GetRevocationDelta(); d != nil {
			// Signed with the key kept in the data dir across the restart.
			v, err := sign.LoadVerifier(filepath.Join(dir, signingPubFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Delta(d); err != nil {
				t.Fatalf("delta after restart: %v", err)
			}
			d.Signature, d.SigningKeyId = nil, ""
			wantDelta := &gatewayv1.RevocationDelta{FromSeq: 0, ToSeq: 2, Entries: want}
			if diff := cmp.Diff(wantDelta, d, protocmp.Transform()); diff != "" {
				t.Fatalf("delta after restart (-want +got):\n%s", diff)
			}
			break
		}
	}
	next, err := ac.Revoke(ctx, &gatewayv1.RevokeRequest{Value: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if next.GetEntry().GetSeq() != 3 {
		t.Fatalf("seq after restart = %d, want 3", next.GetEntry().GetSeq())
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
}

func TestRunRefusesASecondInstance(t *testing.T) {
	t.Parallel()
	cfg := validConfig(t.TempDir())
	runCP(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := run(ctx, cfg, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second run on the same data dir: %v, want a lock error", err)
	}
}

func TestTokenFileExplicitPath(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "tok")
	first, err := loadOrCreateToken(path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	second, err := loadOrCreateToken(path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Fatal("second load generated a new token")
	}
	if err := os.WriteFile(path, []byte("  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrCreateToken(path, zerolog.Nop()); err == nil {
		t.Fatal("an empty token file was accepted")
	}
}

// TestRunAuditLogFileAndRestart: --audit-log appends one JSON line per
// record to the file, and the records are in the store after a restart.
func TestRunAuditLogFileAndRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := validConfig(dir)
	cfg.AuditLog = filepath.Join(dir, "audit.jsonl")
	admin, _, stop, _ := runCP(t, cfg)
	raw, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(string(raw)))
	client := func(addr string) gatewayv1.AdminServiceClient {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return gatewayv1.NewAdminServiceClient(cc)
	}
	ac := client(admin)
	if _, err := ac.Status(ctx, &gatewayv1.StatusRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Status without token: %v", err)
	}
	if _, err := ac.Push(authed, &gatewayv1.PushRequest{Source: &gatewayv1.ConfigSource{Filename: "g.json", Content: []byte(`{"version": 3, "endpoints": [{"endpoint": "/a", "backend": [{"host": ["http://127.0.0.1:1"], "url_pattern": "/a"}]}]}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(cfg.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit log mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(cfg.AuditLog)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("audit log has %d lines, want 2:\n%s", len(lines), b)
	}
	var l map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &l); err != nil {
		t.Fatal(err)
	}
	if l["log"] != "audit" || l["action"] != "push" || l["who"] != "token:admin" || l["outcome"] != "created" || l["time"] == nil {
		t.Fatalf("audit line: %s", lines[1])
	}

	admin2, _, stop2, _ := runCP(t, cfg)
	resp, err := client(admin2).ListAudit(authed, &gatewayv1.ListAuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetEntries()); n != 2 || resp.GetEntries()[0].GetAction() != "push" || resp.GetEntries()[1].GetCode() != "Unauthenticated" {
		t.Fatalf("after restart, ListAudit = %v", resp)
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
}
