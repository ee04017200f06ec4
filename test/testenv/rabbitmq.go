package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RabbitMQ is a real RabbitMQ broker (Debian's rabbitmq-server) run as a
// child process of the test binary: its own node name, AMQP and
// distribution ports on 127.0.0.1, data, log and HOME (Erlang cookie)
// directories under one temporary folder, no plugins. It is never the
// system service. Start one per test package (SharedRabbitMQ) rather than
// one per test: a broker takes seconds to boot.
type RabbitMQ struct {
	// URL is the AMQP URL of the broker: amqp://guest:guest@127.0.0.1:PORT/.
	URL  string
	Port int

	dir     string
	env     []string
	cmdPath string
	mu      sync.Mutex // guards the fields below
	cmd     *exec.Cmd
	done    chan struct{}
	out     *lockedBuffer
}

// lockedBuffer is a bytes.Buffer safe for one writer and many readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) WriteLine(s string) {
	l.mu.Lock()
	l.b.WriteString(s)
	l.b.WriteByte('\n')
	l.mu.Unlock()
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// ErrNoRabbitMQ is returned by NewRabbitMQ when rabbitmq-server is not
// installed; tests skip on it.
var ErrNoRabbitMQ = errors.New("rabbitmq-server not installed (apt-get install -y rabbitmq-server)")

// rabbitBin finds the broker's start script: the one Debian installs under
// /usr/lib/rabbitmq/bin, which (unlike /usr/sbin/rabbitmq-server) neither
// changes user nor directory.
func rabbitBin() (string, error) {
	for _, p := range []string{"/usr/lib/rabbitmq/bin/rabbitmq-server"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("rabbitmq-server"); err == nil {
		return p, nil
	}
	return "", ErrNoRabbitMQ
}

// NewRabbitMQ starts a broker and waits until it speaks AMQP. Close stops
// it and removes its files.
func NewRabbitMQ() (*RabbitMQ, error) {
	bin, err := rabbitBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gw-rabbitmq-")
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{"home", "mnesia", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	plugins := filepath.Join(dir, "enabled_plugins")
	if err := os.WriteFile(plugins, []byte("[].\n"), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	dist, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	node := "gwtest" + strconv.Itoa(os.Getpid()) + "p" + strconv.Itoa(port) + "@localhost"
	r := &RabbitMQ{
		URL:  fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port),
		Port: port,
		dir:  dir,
	}
	r.env = append(os.Environ(),
		"HOME="+filepath.Join(dir, "home"),
		"RABBITMQ_NODENAME="+node,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(dist),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+plugins,
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"),
		"ERL_EPMD_ADDRESS=127.0.0.1",
	)
	r.cmdPath = bin
	if err := r.start(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *RabbitMQ) start() error {
	cmd := exec.Command(r.cmdPath)
	cmd.Dir = r.dir
	cmd.Env = r.env
	out := &lockedBuffer{}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	// Its own process group: Stop signals the script and the Erlang VM.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start rabbitmq-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			out.WriteLine(sc.Text())
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(done)
	}()
	r.mu.Lock()
	r.cmd, r.done, r.out = cmd, done, out
	r.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if amqpReady(r.Port) {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("rabbitmq-server exited during start:\n%s", out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.Stop()
			return errors.New("rabbitmq-server did not accept AMQP within 60s")
		}
	}
}

// amqpReady sends the AMQP 0-9-1 protocol header and checks that the
// broker answers with a method frame (connection.start): the listener is
// open and the broker has booted.
func amqpReady(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("AMQP\x00\x00\x09\x01")); err != nil {
		return false
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return false
	}
	return b[0] == 1
}

// Stop stops the broker (SIGTERM to its process group, SIGKILL after 20s)
// and waits for it; its data stays, so Start can bring it back on the same
// port with the same durable queues.
func (r *RabbitMQ) Stop() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	stopGroup(cmd, done, 20*time.Second)
	// The VM may outlive the script by a moment; the group goes with it.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// stopGroup sends SIGTERM to cmd's process group, SIGKILL after grace,
// and waits for done (closed when cmd has exited).
func stopGroup(cmd *exec.Cmd, done <-chan struct{}, grace time.Duration) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Start starts a stopped broker again on the same ports and data.
func (r *RabbitMQ) Start() error { return r.start() }

// Output returns what the broker printed since it last started.
func (r *RabbitMQ) Output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.out == nil {
		return ""
	}
	return r.out.String()
}

// Close stops the broker and removes its folder. It is idempotent.
func (r *RabbitMQ) Close() {
	r.Stop()
	if r.dir != "" {
		os.RemoveAll(r.dir)
	}
}

var (
	sharedRabbitOnce sync.Once
	sharedRabbit     *RabbitMQ
	sharedRabbitErr  error
)

// SharedRabbitMQ returns the test binary's one broker, started on first
// use; the test is skipped when rabbitmq-server is not installed. Call
// CloseSharedRabbitMQ from TestMain after m.Run.
func SharedRabbitMQ(t testing.TB) *RabbitMQ {
	t.Helper()
	sharedRabbitOnce.Do(func() { sharedRabbit, sharedRabbitErr = NewRabbitMQ() })
	if errors.Is(sharedRabbitErr, ErrNoRabbitMQ) {
		t.Skip(sharedRabbitErr)
	}
	if sharedRabbitErr != nil {
		t.Fatal(sharedRabbitErr)
	}
	return sharedRabbit
}

// CloseSharedRabbitMQ stops the broker SharedRabbitMQ started, if any.
func CloseSharedRabbitMQ() {
	if sharedRabbit != nil {
		sharedRabbit.Close()
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
