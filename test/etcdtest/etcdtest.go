// Package etcdtest starts real etcd servers on loopback for tests: a single
// member or a cluster of three, with members that can be stopped and
// started again on the same data. It runs Debian's etcd-server binary (or
// $GW_ETCD_BIN), the server operators are likely to run, not an embedded
// one: the tests then exercise the real wire protocol against a separately
// built server. Test support only: nothing in the product imports it.
package etcdtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// startTimeout bounds how long a member may take to answer /health.
const startTimeout = 30 * time.Second

// Binary returns the etcd server to run: $GW_ETCD_BIN, else etcd on PATH.
func Binary() (string, error) {
	if b := os.Getenv("GW_ETCD_BIN"); b != "" {
		return b, nil
	}
	b, err := exec.LookPath("etcd")
	if err != nil {
		return "", errors.New("etcd not found: install Debian's etcd-server (apt-get install etcd-server) or set GW_ETCD_BIN")
	}
	return b, nil
}

// Member is one etcd server process.
type Member struct {
	Name       string
	ClientURL  string // http://127.0.0.1:port
	peerURL    string
	dir        string
	args       []string
	bin        string
	mu         sync.Mutex
	cmd        *exec.Cmd
	exited     chan struct{}
	logPath    string
	startCount int
}

// Cluster is one or more members forming an etcd cluster.
type Cluster struct {
	Members []*Member
}

// Start starts an n-member cluster under dir and waits until every member
// answers /health. Stop it with Close.
func Start(dir string, n int) (*Cluster, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c := &Cluster{}
	var initial []string
	for i := range n {
		cp, err := freePort()
		if err != nil {
			return nil, err
		}
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", cp),
			peerURL:   fmt.Sprintf("http://127.0.0.1:%d", pp),
			dir:       filepath.Join(dir, fmt.Sprintf("m%d", i)),
			bin:       bin,
		}
		m.logPath = filepath.Join(dir, m.Name+".log")
		initial = append(initial, m.Name+"="+m.peerURL)
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.args = []string{
			"--name", m.Name,
			"--data-dir", m.dir,
			"--listen-client-urls", m.ClientURL,
			"--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.peerURL,
			"--initial-advertise-peer-urls", m.peerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", filepath.Base(dir),
			// Fast elections on loopback keep fault tests short.
			"--heartbeat-interval", "50",
			"--election-timeout", "500",
			"--logger", "zap",
			"--log-level", "warn",
		}
		if err := m.Start(); err != nil {
			c.Close()
			return nil, err
		}
	}
	for _, m := range c.Members {
		if err := m.WaitHealthy(); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// Endpoints returns the members' client addresses (host:port).
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.Endpoint())
	}
	return out
}

// URL returns the --store value naming every member under prefix.
func (c *Cluster) URL(prefix string) string {
	return "etcd://" + strings.Join(c.Endpoints(), ",") + "/" + strings.Trim(prefix, "/")
}

// Close kills every member.
func (c *Cluster) Close() {
	for _, m := range c.Members {
		m.Kill()
	}
}

// Endpoint returns the member's client host:port.
func (m *Member) Endpoint() string { return strings.TrimPrefix(m.ClientURL, "http://") }

// Start starts the member (again, on its data dir). It returns once the
// process runs; WaitHealthy waits for it to serve.
func (m *Member) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return fmt.Errorf("etcd member %s already running", m.Name)
	}
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(m.bin, m.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The member dies with the test binary, even when that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start etcd %s: %w", m.Name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	m.cmd, m.exited = cmd, exited
	m.startCount++
	return nil
}

// WaitHealthy polls the member's /health until it reports healthy.
func (m *Member) WaitHealthy() error {
	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		m.mu.Lock()
		exited := m.exited
		m.mu.Unlock()
		select {
		case <-exited:
			return fmt.Errorf("etcd %s exited: %s", m.Name, m.LogTail())
		default:
		}
		resp, err := client.Get(m.ClientURL + "/health")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"true"`)) {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("etcd %s not healthy after %s: %s", m.Name, startTimeout, m.LogTail())
}

// Stop ends the member with SIGTERM (a clean shutdown) and waits for it.
func (m *Member) Stop() { m.signal(syscall.SIGTERM) }

// Kill ends the member with SIGKILL and waits for it.
func (m *Member) Kill() { m.signal(syscall.SIGKILL) }

func (m *Member) signal(sig syscall.Signal) {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// LogTail returns the end of the member's log, for failure messages.
func (m *Member) LogTail() string {
	b, _ := os.ReadFile(m.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
