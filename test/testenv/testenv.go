// Package testenv starts the real components of the gateway for end-to-end,
// fault and load tests: it builds the binaries once per test process, runs
// them as child processes on loopback ports chosen by the kernel, reads the
// addresses they bound from their JSON logs, and stops them when the test
// ends. It is test support only; nothing in the product imports it.
package testenv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bins holds the paths of the built binaries.
type Bins struct {
	ControlPlane string
	Edge         string
	Gwctl        string
}

var (
	buildOnce sync.Once
	buildBins Bins
	buildErr  error
)

// RepoRoot returns the repository root (the folder holding go.mod).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Build compiles the three binaries once per test process into a temporary
// folder and returns their paths. The folder is removed by CleanupBuild,
// which TestMain should call after m.Run.
func Build(t testing.TB) Bins {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "apigw-bins-")
		if err != nil {
			buildErr = err
			return
		}
		buildBins = Bins{
			ControlPlane: filepath.Join(dir, "gw-controlplane"),
			Edge:         filepath.Join(dir, "gw-edge"),
			Gwctl:        filepath.Join(dir, "gwctl"),
		}
		for pkg, out := range map[string]string{
			"./controlplane/cmd/gw-controlplane": buildBins.ControlPlane,
			"./edge/cmd/gw-edge":                 buildBins.Edge,
			"./cli/gwctl":                        buildBins.Gwctl,
		} {
			cmd := exec.Command("go", "build", "-o", out, pkg)
			cmd.Dir = RepoRoot()
			if b, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBins
}

// CleanupBuild removes the binaries built by Build.
func CleanupBuild() {
	if buildBins.Edge != "" {
		os.RemoveAll(filepath.Dir(buildBins.Edge))
	}
}

// Proc is a running child process whose output is kept for the test.
type Proc struct {
	Name string
	Args []string
	bin  string

	cmd  *exec.Cmd
	done chan struct{}

	mu    sync.Mutex // guards the fields below
	lines []string
	err   error
}

// Start runs bin with args, capturing stdout and stderr line by line. The
// process is killed when the test ends.
func Start(t testing.TB, name, bin string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, Args: args, bin: bin}
	if err := p.start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", p.Name, p.Output())
		}
	})
	return p
}

func (p *Proc) start() error {
	cmd := exec.Command(p.bin, p.Args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmd = cmd
	p.done = make(chan struct{})
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		<-scanDone
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return nil
}

// Restart starts the same command again after the process has exited.
func (p *Proc) Restart(t testing.TB) {
	t.Helper()
	select {
	case <-p.done:
	default:
		t.Fatalf("restart %s: still running", p.Name)
	}
	p.mu.Lock()
	p.lines = append(p.lines, "---- restart ----")
	p.mu.Unlock()
	if err := p.start(); err != nil {
		t.Fatalf("restart %s: %v", p.Name, err)
	}
}

// Output returns everything the process printed so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// Lines returns a copy of the printed lines.
func (p *Proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Exited reports whether the process has exited, and its wait error.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM and waits up to 10 s, then kills.
func (p *Proc) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.Kill()
	}
}

// Kill sends SIGKILL (a crash) and waits for the process to be reaped.
func (p *Proc) Kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// WaitLog waits until a JSON log line satisfies match (lines that are not
// JSON objects are skipped) and returns it. from skips earlier lines.
func (p *Proc) WaitLog(t testing.TB, from int, timeout time.Duration, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		lines := p.Lines()
		for _, l := range lines[min(from, len(lines)):] {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && match(m) {
				return m
			}
		}
		if exited, err := p.Exited(); exited {
			t.Fatalf("%s exited (%v) before the expected log line\n%s", p.Name, err, p.Output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no matching log line after %s\n%s", p.Name, timeout, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// MessageIs matches log lines by their "message" field.
func MessageIs(msg string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["message"] == msg }
}

// ControlPlane is a running gw-controlplane.
type ControlPlane struct {
	*Proc
	Admin   string
	Sync    string
	DataDir string
	Token   string
	// Metrics is the /metrics address when started with --metrics-listen.
	Metrics string
	// Fleet is the fleet page's address when started with --fleet-listen.
	Fleet string
}

// StartControlPlane runs gw-controlplane with its store in dataDir. Ports
// are chosen by the kernel unless extra flags set them.
func StartControlPlane(t testing.TB, bins Bins, dataDir string, extra ...string) *ControlPlane {
	t.Helper()
	args := append([]string{
		"--data-dir", dataDir,
		"--admin-listen", "127.0.0.1:0",
		"--sync-listen", "127.0.0.1:0",
		"--log-format", "json",
		"--keepalive", "1s",
	}, extra...)
	cp := &ControlPlane{Proc: Start(t, "gw-controlplane", bins.ControlPlane, args...), DataDir: dataDir}
	cp.readAddrs(t, 0)
	return cp
}

func (cp *ControlPlane) readAddrs(t testing.TB, from int) {
	t.Helper()
	m := cp.WaitLog(t, from, 20*time.Second, MessageIs("listening"))
	cp.Admin, _ = m["admin"].(string)
	cp.Sync, _ = m["sync"].(string)
	cp.Metrics, _ = m["metrics"].(string)
	cp.Fleet, _ = m["fleet"].(string)
	if cp.Admin == "" || cp.Sync == "" {
		t.Fatalf("gw-controlplane listening line lacks addresses: %v", m)
	}
	tok, err := os.ReadFile(filepath.Join(cp.DataDir, "admin.token"))
	if err != nil {
		t.Fatalf("read admin token: %v", err)
	}
	cp.Token = strings.TrimSpace(string(tok))
}

// RestartSamePorts starts the control plane again on the addresses it had,
// so edges configured with its sync address reconnect to it.
func (cp *ControlPlane) RestartSamePorts(t testing.TB) {
	t.Helper()
	args := replaceFlag(cp.Args, "--admin-listen", cp.Admin)
	args = replaceFlag(args, "--sync-listen", cp.Sync)
	cp.Proc.Args = args
	from := len(cp.Lines())
	cp.Restart(t)
	cp.readAddrs(t, from)
}

func replaceFlag(args []string, name, value string) []string {
	out := append([]string(nil), args...)
	for i := 0; i+1 < len(out); i++ {
		if out[i] == name {
			out[i+1] = value
		}
	}
	return out
}

// Edge is a running gw-edge.
type Edge struct {
	*Proc
	Addr    string
	DataDir string
}

// StartEdge runs a managed gw-edge against the control plane's sync
// address, listening on a kernel-chosen loopback port. It pins the control
// plane's signing key (its <data-dir>/signing.pub).
func StartEdge(t testing.TB, bins Bins, cp *ControlPlane, nodeID, region, dataDir string, extra ...string) *Edge {
	t.Helper()
	args := append([]string{
		"--controlplane", cp.Sync,
		"--snapshot-public-key", filepath.Join(cp.DataDir, "signing.pub"),
		"--node-id", nodeID,
		"--region", region,
		"--listen", "127.0.0.1:0",
		"--data-dir", dataDir,
		"--log-format", "json",
		"--keepalive", "1s",
	}, extra...)
	e := &Edge{Proc: Start(t, "gw-edge "+nodeID, bins.Edge, args...), DataDir: dataDir}
	e.readAddr(t, 0)
	return e
}

// StartStandalone runs `gw-edge run -c file` on a kernel-chosen port.
func StartStandalone(t testing.TB, bins Bins, file string, extra ...string) *Edge {
	t.Helper()
	args := append([]string{"run", "-c", file, "--listen", "127.0.0.1:0", "--log-format", "json"}, extra...)
	e := &Edge{Proc: Start(t, "gw-edge run", bins.Edge, args...)}
	e.readAddr(t, 0)
	return e
}

func (e *Edge) readAddr(t testing.TB, from int) {
	t.Helper()
	m := e.WaitLog(t, from, 20*time.Second, MessageIs("listening"))
	e.Addr, _ = m["addr"].(string)
	if e.Addr == "" {
		t.Fatalf("gw-edge listening line lacks addr: %v", m)
	}
}

// RestartSamePort starts the edge again on the address it had.
func (e *Edge) RestartSamePort(t testing.TB) {
	t.Helper()
	e.Proc.Args = replaceFlag(e.Args, "--listen", e.Addr)
	from := len(e.Lines())
	e.Restart(t)
	e.readAddr(t, from)
}

// URL returns the edge's base URL.
func (e *Edge) URL() string { return "http://" + e.Addr }

// Health is the edge's /__health answer: KrakenD's body (status) and the
// snapshot from the X-Apigw-Snapshot-* headers.
type Health struct {
	Status  string `json:"status"`
	Version uint64 `json:"-"`
	SHA256  string `json:"-"`
}

// Health fetches /__health; ok is false when the edge does not answer 200.
func (e *Edge) Health() (Health, bool) {
	var h Health
	resp, err := httpClient.Get(e.URL() + "/__health")
	if err != nil {
		return h, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return h, false
	}
	h.Version, _ = strconv.ParseUint(resp.Header.Get("X-Apigw-Snapshot-Version"), 10, 64)
	h.SHA256 = resp.Header.Get("X-Apigw-Snapshot-Sha256")
	return h, json.NewDecoder(resp.Body).Decode(&h) == nil
}

// WaitVersion waits until the edge serves version v.
func (e *Edge) WaitVersion(t testing.TB, v uint64, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, func() error {
		h, ok := e.Health()
		if !ok {
			return errors.New("health not answering 200")
		}
		if h.Version != v {
			return fmt.Errorf("version %d, want %d", h.Version, v)
		}
		return nil
	})
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// Get fetches url and returns status, headers and body.
func Get(t testing.TB, url string) (int, http.Header, string) {
	t.Helper()
	return Do(t, http.MethodGet, url, "")
}

// Do sends one request with an optional body.
func Do(t testing.TB, method, url, body string) (int, http.Header, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// Eventually retries f every 50 ms until it returns nil or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Result is the outcome of one gwctl run.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Gwctl runs the gwctl binary against the control plane.
func Gwctl(t testing.TB, bins Bins, cp *ControlPlane, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"--server", cp.Admin, "--token-file", filepath.Join(cp.DataDir, "admin.token")}, args...)
	cmd := exec.CommandContext(ctx, bins.Gwctl, full...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("gwctl %v: %v", args, err)
	}
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// Backend is a real HTTP server on 127.0.0.1 for tests.
type Backend struct {
	URL string
	srv *http.Server
}

// StartBackend serves h on a kernel-chosen loopback port until the test ends.
func StartBackend(t testing.TB, h http.Handler) *Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return &Backend{URL: "http://" + ln.Addr().String(), srv: srv}
}

// WriteFile writes content to name inside dir and returns the path.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
