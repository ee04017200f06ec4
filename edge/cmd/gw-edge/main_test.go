package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apigw/gateway/controlplane/config"
	"github.com/apigw/gateway/edge/apply"
	"github.com/apigw/gateway/edge/lkg"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/proto/sign"
)

// The tests run the binary's run function in process. They are not parallel:
// the zerolog level is process-global.

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

func backend(t *testing.T) string {
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

func configFile(t *testing.T, dir, host string) string {
	t.Helper()
	p := filepath.Join(dir, "krakend.json")
	body := fmt.Sprintf(`{"version": 3, "host": [%q], "endpoints": [{"endpoint": "/hello", "backend": [{"url_pattern": "/up"}]}]}`, host)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// running is one in-process gw-edge.
type running struct {
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	code           chan int
	addr           string
}

func start(t *testing.T, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, code: make(chan int, 1)}
	go func() { r.code <- run(ctx, args, r.stdout, r.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.code:
		case <-time.After(10 * time.Second):
			t.Error("gw-edge did not stop")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for r.addr == "" {
		sc := bufio.NewScanner(strings.NewReader(r.stdout.String()))
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["message"] == "listening" && m["level"] == "info" {
				r.addr, _ = m["addr"].(string)
			}
		}
		if r.addr != "" {
			break
		}
		select {
		case code := <-r.code:
			t.Fatalf("gw-edge exited %d before listening\nstdout:\n%s\nstderr:\n%s", code, r.stdout, r.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r
}

// stop cancels the context (SIGTERM) and returns the exit code.
func (r *running) stop(t *testing.T) int {
	t.Helper()
	r.cancel()
	select {
	case code := <-r.code:
		r.code <- code
		return code
	case <-time.After(10 * time.Second):
		t.Fatal("gw-edge did not stop")
		return -1
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestStandaloneServesFile(t *testing.T) {
	dir := t.TempDir()
	cfg := configFile(t, dir, backend(t))
	r := start(t, "run", "-c", cfg, "--listen", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug", "-d")

	if code, body := get(t, "http://"+r.addr+"/hello"); code != 200 || !strings.Contains(body, `"path":"/up"`) {
		t.Errorf("GET /hello = %d %s", code, body)
	}
	c, err := config.CompileFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, "http://"+r.addr+"/__health"); code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Errorf("health = %d %s, want 200 ok (snapshot %s)", code, body, c.SHA256)
	}
	// -d serves KrakenD's debug endpoint (what KrakenD's own tests use as a
	// backend), on every method.
	if code, body := get(t, "http://"+r.addr+"/__debug/any/path?x=1"); code != 200 || body != `{"message":"pong"}` {
		t.Errorf("GET /__debug/any/path = %d %s", code, body)
	}
	if code := r.stop(t); code != exitOK {
		t.Errorf("exit %d, want 0\n%s", code, r.stderr)
	}
	if !strings.Contains(r.stdout.String(), `"level":"debug"`) {
		t.Error("--log-level debug did not enable debug logs")
	}
}

func TestStandaloneRejectsInvalidFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(cfg, []byte(`{"version": 3, "endpoints": [{"endpoint": "nope", "backend": []}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	code := run(context.Background(), []string{"run", "-c", cfg, "--listen", "127.0.0.1:0"}, &stdout, &stderr)
	if code != exitError {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{"endpoints[0].endpoint", "endpoints[0].backend"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	// One violation per line, after the header line.
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n")[1:] {
		if strings.Count(line, ": ") < 2 {
			t.Errorf("line %q is not path: kind: detail", line)
		}
	}
}

func TestManagedServesFromDiskWithoutControlPlane(t *testing.T) {
	dir := t.TempDir()
	c, err := config.CompileFile(configFile(t, dir, backend(t)))
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	st, err := lkg.New(lkg.Config{Dir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	signer, pub := testSigningKey(t, dir)
	env := &gatewayv1.SnapshotEnvelope{Version: 5, Sha256: c.SHA256, Payload: c.Payload}
	signer.Snapshot(env)
	if err := st.Save(env); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	r := start(t, "--controlplane", dead, "--node-id", "n1", "--region", "eu", "--listen", "127.0.0.1:0",
		"--data-dir", dataDir, "--log-format", "json", "--keepalive", "100ms", "--disable-feature", "proxy.static",
		"--snapshot-public-key", pub)
	if code, body := get(t, "http://"+r.addr+"/__health"); code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Errorf("health = %d %s", code, body)
	}
	if code, body := get(t, "http://"+r.addr+"/hello"); code != 200 || !strings.Contains(body, "/up") {
		t.Errorf("GET /hello = %d %s", code, body)
	}
	if code := r.stop(t); code != exitOK {
		t.Errorf("exit %d\n%s", code, r.stderr)
	}
	if !strings.Contains(r.stdout.String(), `"source":"disk"`) {
		t.Errorf("no restore from disk logged:\n%s", r.stdout)
	}
}

func TestManagedWithNothingStoredAnswers503(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	r := start(t, "--controlplane", dead, "--node-id", "n1", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-format", "json", "--insecure-unsigned-snapshots")
	if code, body := get(t, "http://"+r.addr+"/hello"); code != 503 || body != `{"error":"service_unavailable"}` {
		t.Errorf("GET /hello = %d %s", code, body)
	}
	if !strings.Contains(r.stdout.String(), "--insecure-unsigned-snapshots: snapshots and revocations are not verified") {
		t.Errorf("no insecure-mode warning:\n%s", r.stdout)
	}
}

// TestManagedRefusesASnapshotOnDiskSignedByAnotherKey: a snapshot a rogue
// control plane got saved (or anyone wrote into the data dir) is never
// served: with the control plane down the edge answers 503.
func TestManagedRefusesASnapshotOnDiskSignedByAnotherKey(t *testing.T) {
	dir := t.TempDir()
	c, err := config.CompileFile(configFile(t, dir, backend(t)))
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	st, err := lkg.New(lkg.Config{Dir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	_, pub := testSigningKey(t, filepath.Join(dir, "real"))
	rogue, _ := testSigningKey(t, filepath.Join(dir, "rogue"))
	for v, signer := range map[uint64]*sign.Signer{5: rogue, 6: nil} {
		env := &gatewayv1.SnapshotEnvelope{Version: v, Sha256: c.SHA256, Payload: c.Payload}
		signer.Snapshot(env) // v6 stays unsigned
		if err := st.Save(env); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	r := start(t, "--controlplane", dead, "--node-id", "n1", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "json",
		"--snapshot-public-key", pub)
	if code, body := get(t, "http://"+r.addr+"/hello"); code != 503 {
		t.Errorf("GET /hello = %d %s, want 503", code, body)
	}
	out := r.stdout.String()
	for _, want := range []string{"is not pinned on this edge", "message is not signed"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// testSigningKey writes a fresh public key to dir/signing.pub and returns
// its signer.
func testSigningKey(t *testing.T, dir string) (*sign.Signer, string) {
	t.Helper()
	key, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s := sign.NewSigner(key)
	pem, err := sign.EncodePublicKey(s.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "signing.pub")
	if err := os.WriteFile(path, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return s, path
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "managed help", args: []string{"--help"}, wantCode: exitOK, wantErr: "Usage:"},
		{name: "run help", args: []string{"run", "--help"}, wantCode: exitOK, wantErr: "gw-edge run -c FILE"},
		{name: "unknown flag", args: []string{"--nope"}, wantCode: exitUsage, wantErr: "flag provided but not defined"},
		{name: "no control plane", args: []string{"--data-dir", "/tmp/x"}, wantCode: exitUsage, wantErr: "--controlplane: required"},
		{name: "stray argument", args: []string{"--controlplane", "x:1", "extra"}, wantCode: exitUsage, wantErr: "unexpected arguments: extra"},
		{name: "bad log format", args: []string{"--controlplane", "x:1", "--log-format", "xml"}, wantCode: exitUsage, wantErr: "--log-format"},
		{name: "half mTLS", args: []string{"--controlplane", "x:1", "--tls-cert", "c.pem"}, wantCode: exitUsage, wantErr: "--tls-cert and --tls-key"},
		{name: "no pinned key", args: []string{"--controlplane", "x:1"}, wantCode: exitUsage, wantErr: "--snapshot-public-key: required"},
		{name: "plaintext off loopback", args: []string{"--controlplane", "cp.example:9001", "--insecure-unsigned-snapshots"}, wantCode: exitUsage, wantErr: "not a loopback address, and no TLS"},
		{name: "plaintext off loopback, second replica", args: []string{"--controlplane", "127.0.0.1:9001,cp2.example:9001", "--insecure-unsigned-snapshots"}, wantCode: exitUsage, wantErr: "--controlplane cp2.example:9001: not a loopback address"},
		{name: "plaintext off loopback, repeated flag", args: []string{"--controlplane", "127.0.0.1:9001", "--controlplane", "cp3.example:9001", "--insecure-unsigned-snapshots"}, wantCode: exitUsage, wantErr: "--controlplane cp3.example:9001: not a loopback address"},
		{name: "empty replica address", args: []string{"--controlplane", "127.0.0.1:9001,,127.0.0.1:9002"}, wantCode: exitUsage, wantErr: "empty address"},
		{name: "run without file", args: []string{"run"}, wantCode: exitUsage, wantErr: "-c: required"},
		{name: "run bad listen", args: []string{"run", "-c", "f.json", "--listen", "nope"}, wantCode: exitUsage, wantErr: "--listen"},
		{name: "run missing file", args: []string{"run", "-c", "/does/not/exist.json"}, wantCode: exitError, wantErr: "exist.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d\nstderr:\n%s", code, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantErr, stderr.String())
			}
		})
	}
}

// TestSchemaVersionMatchesCompiler guards against a control plane and an
// edge of the same build disagreeing on the snapshot schema.
func TestSchemaVersionMatchesCompiler(t *testing.T) {
	if apply.SchemaVersion != config.SchemaVersion {
		t.Errorf("edge understands schema %d, the compiler emits %d", apply.SchemaVersion, config.SchemaVersion)
	}
}

// TestStandaloneRendersFlexibleConfig: with FC_ENABLE, gw-edge run renders
// the template (settings, partials, sub-templates) before it compiles; a
// violation names the template line and a template error stops the start.
func TestStandaloneRendersFlexibleConfig(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"settings/upstream.json": fmt.Sprintf(`{"host": %q, "paths": ["/a", "/b"]}`, backend(t)),
		"templates/ep.tmpl":      `{"endpoint": "{{ . }}", "backend": [{"url_pattern": "/up{{ . }}"}]}`,
		"partials/timeout.txt":   `"timeout": "2s",`,
		"gw.tmpl": "{\n  \"version\": 3,\n  {{ include \"timeout.txt\" }}\n  \"host\": [\"{{ .upstream.host }}\"],\n" +
			"  \"endpoints\": [{{ range $i, $p := .upstream.paths }}{{ if $i }},{{ end }}{{ template \"ep.tmpl\" $p }}{{ end }}]\n}\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("FC_ENABLE", "1")
	t.Setenv("FC_SETTINGS", filepath.Join(dir, "settings"))
	t.Setenv("FC_TEMPLATES", filepath.Join(dir, "templates"))
	t.Setenv("FC_PARTIALS", filepath.Join(dir, "partials"))
	tmpl := filepath.Join(dir, "gw.tmpl")

	r := start(t, "run", "-c", tmpl, "--listen", "127.0.0.1:0", "--log-format", "json")
	if code, body := get(t, "http://"+r.addr+"/b"); code != 200 || !strings.Contains(body, `"path":"/up/b"`) {
		t.Errorf("GET /b = %d %s", code, body)
	}
	if code := r.stop(t); code != exitOK {
		t.Errorf("exit %d\n%s", code, r.stderr)
	}

	// A bad value from the sub-template: the violation names ep.tmpl.
	if err := os.WriteFile(filepath.Join(dir, "templates", "ep.tmpl"), []byte(`{"endpoint": "no-slash{{ . }}", "backend": [{"url_pattern": "/"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	if code := run(context.Background(), []string{"run", "-c", tmpl, "--listen", "127.0.0.1:0"}, &stdout, &stderr); code != exitError {
		t.Fatalf("exit %d, want %d", code, exitError)
	}
	if want := "templates/ep.tmpl line 1"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
	}

	// A missing partial stops the start (KrakenD would include nothing).
	t.Setenv("FC_PARTIALS", t.TempDir())
	var stderr2 syncBuffer
	if code := run(context.Background(), []string{"run", "-c", tmpl, "--listen", "127.0.0.1:0"}, &stdout, &stderr2); code != exitError || !strings.Contains(stderr2.String(), "timeout.txt") {
		t.Errorf("exit %d with a missing partial:\n%s", code, stderr2.String())
	}
}
