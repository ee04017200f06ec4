package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// Front-door regression tests (issue 10): raw sockets against a real
// gw-edge process.

// timeoutConfig is helloConfig with the server timeouts set (empty: none).
func timeoutConfig(backendURL, timeouts string) string {
	cfg := helloConfig(backendURL, "/hello")
	if timeouts == "" {
		return cfg
	}
	return strings.Replace(cfg, `"version": 3,`, `"version": 3, `+timeouts+`,`, 1)
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reports how long the server took to close c (reading and
// discarding whatever it sends), failing after limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %s", limit)
	}
	return time.Since(start)
}

// TestSlowClientsClosed: with no timeouts, slow-header and idle
// connections stayed open for as long as the client liked (slowloris).
func TestSlowClientsClosed(t *testing.T) {
	bins := testenv.Build(t)
	backend := echoBackend(t, "b")
	dir := t.TempDir()
	e := testenv.StartStandalone(t, bins, testenv.WriteFile(t, dir, "cfg.json",
		timeoutConfig(backend.URL, `"read_header_timeout": "1s", "read_timeout": "1s", "idle_timeout": "1s"`)))

	t.Run("slow header", func(t *testing.T) {
		c := dial(t, e.Addr)
		stop := make(chan struct{})
		defer close(stop)
		go func() { // one byte every 100 ms, never finishing the header
			for _, b := range []byte("GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
			}
		}()
		closedWithin(t, c, 5*time.Second)
	})
	t.Run("slow body", func(t *testing.T) {
		c := dial(t, e.Addr)
		fmt.Fprint(c, "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
		closedWithin(t, c, 5*time.Second)
	})
	t.Run("connect and say nothing", func(t *testing.T) {
		closedWithin(t, dial(t, e.Addr), 5*time.Second)
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c := dial(t, e.Addr)
		fmt.Fprint(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("first request: %v %v", resp, err)
		}
		closedWithin(t, c, 5*time.Second)
	})
}

// TestDefaultHeaderTimeout: without any timeout in the config, a client
// that never finishes its header is closed after the default 10 s.
func TestDefaultHeaderTimeout(t *testing.T) {
	bins := testenv.Build(t)
	backend := echoBackend(t, "b")
	e := testenv.StartStandalone(t, bins, testenv.WriteFile(t, t.TempDir(), "cfg.json", timeoutConfig(backend.URL, "")))
	c := dial(t, e.Addr)
	fmt.Fprint(c, "GET /hello HTTP/1.1\r\nHost: x\r\n")
	if d := closedWithin(t, c, 20*time.Second); d < 9*time.Second {
		t.Errorf("closed after %s, before the 10 s default", d)
	}
}

// TestSmugglingCLTE: a request with both Content-Length and
// Transfer-Encoding kept the connection open, and the bytes a front proxy
// would have counted as body ran as a second request.
func TestSmugglingCLTE(t *testing.T) {
	bins := testenv.Build(t)
	backend := echoBackend(t, "b")
	e := testenv.StartStandalone(t, bins, testenv.WriteFile(t, t.TempDir(), "cfg.json", timeoutConfig(backend.URL, "")))
	c := dial(t, e.Addr)
	smuggled := "GET /items/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	fmt.Fprintf(c, "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s", 5+len(smuggled), smuggled)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if !resp.Close {
		t.Errorf("response to a CL+TE request does not close the connection (Connection: %q)", resp.Header.Get("Connection"))
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	rest, _ := io.ReadAll(br)
	if len(rest) > 0 {
		t.Errorf("the smuggled request was answered: %q", rest)
	}
}

// TestConnLimitPerIP: one client address may not hold more connections
// than --max-conns-per-ip.
func TestConnLimitPerIP(t *testing.T) {
	bins := testenv.Build(t)
	backend := echoBackend(t, "b")
	e := testenv.StartStandalone(t, bins, testenv.WriteFile(t, t.TempDir(), "cfg.json", timeoutConfig(backend.URL, "")), "--max-conns-per-ip", "2")
	held := []net.Conn{dial(t, e.Addr), dial(t, e.Addr)}
	for _, c := range held {
		fmt.Fprint(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection within the limit: %v %v", resp, err)
		}
	}
	third := dial(t, e.Addr)
	third.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(third), nil)
	if err != nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third connection: %v %v, want 429", resp, err)
	}
	held[0].Close()
	testenv.Eventually(t, 5*time.Second, func() error {
		if code, _, _ := testenv.Get(t, e.URL()+"/hello"); code != 200 {
			return fmt.Errorf("after closing one: status %d", code)
		}
		return nil
	})
}
