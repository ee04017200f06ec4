package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NATS is a real NATS server (Debian's nats-server) run as a child process
// of the test on 127.0.0.1, with no persistence: Stop and Start bring it
// down and back on the same port.
type NATS struct {
	// URL is the server's URL: nats://127.0.0.1:PORT.
	URL  string
	Port int

	bin  string
	mu   sync.Mutex // guards the fields below
	cmd  *exec.Cmd
	done chan struct{}
	out  *lockedBuffer
}

// ErrNoNATS is returned by NewNATS when nats-server is not installed; tests
// skip on it.
var ErrNoNATS = errors.New("nats-server not installed (apt-get install -y nats-server)")

// NewNATS starts a server and waits until it greets clients. Close it.
func NewNATS() (*NATS, error) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		return nil, ErrNoNATS
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	n := &NATS{URL: fmt.Sprintf("nats://127.0.0.1:%d", port), Port: port, bin: bin}
	if err := n.Start(); err != nil {
		return nil, err
	}
	return n, nil
}

// StartNATS starts a server for t, skipping t when nats-server is not
// installed; the server stops with the test.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n, err := NewNATS()
	if errors.Is(err, ErrNoNATS) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	return n
}

// Start starts a stopped server again on the same port.
func (n *NATS) Start() error {
	cmd := exec.Command(n.bin, "-a", "127.0.0.1", "-p", strconv.Itoa(n.Port), "--no_advertise")
	out := &lockedBuffer{}
	pr, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start nats-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			out.WriteLine(sc.Text())
		}
		_ = cmd.Wait()
		close(done)
	}()
	n.mu.Lock()
	n.cmd, n.done, n.out = cmd, done, out
	n.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for !natsReady(n.Port) {
		select {
		case <-done:
			return fmt.Errorf("nats-server exited during start:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			n.Stop()
			return errors.New("nats-server did not greet within 20s")
		}
	}
	return nil
}

// natsReady reads the server's INFO greeting.
func natsReady(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "INFO ")
}

// Stop stops the server (SIGTERM, SIGKILL after 10s) and waits for it.
// Idempotent.
func (n *NATS) Stop() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	stopGroup(cmd, done, 10*time.Second)
}

// Output returns what the server printed since it last started.
func (n *NATS) Output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.out == nil {
		return ""
	}
	return n.out.String()
}
