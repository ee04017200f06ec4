package proxy

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

// TestDialerKeepAlive: dialer_keep_alive is the TCP keep-alive period of
// the backend connection, read back from the socket.
func TestDialerKeepAlive(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, tc := range []struct {
		name      string
		keepAlive time.Duration
		wantOn    bool
		wantIdle  int // seconds
	}{
		{"default", 0, true, 15},
		{"dialer_keep_alive 42s", 42 * time.Second, true, 42},
		{"disabled", -1, false, 0},
	} {
		conn, err := dialer(ClientConfig{DialerKeepAlive: tc.keepAlive})(ln.Addr().String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := conn.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var on, idle int
		var serr error
		err = raw.Control(func(fd uintptr) {
			on, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
			if serr == nil {
				idle, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
			}
		})
		conn.Close()
		if err != nil || serr != nil {
			t.Fatal(err, serr)
		}
		if (on != 0) != tc.wantOn || (tc.wantOn && idle != tc.wantIdle) {
			t.Errorf("%s: SO_KEEPALIVE=%d TCP_KEEPIDLE=%ds, want on=%v idle=%ds", tc.name, on, idle, tc.wantOn, tc.wantIdle)
		}
	}
}

// TestResponseTimeout: response_header_timeout bounds a backend that is
// slow to answer, well inside a generous call deadline.
func TestResponseTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, err := NewClient(ClientConfig{Hosts: []string{srv.URL}, ResponseTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(srv.URL + "/")
	req.SetHost(strings.TrimPrefix(srv.URL, "http://"))
	start := time.Now()
	err = c.Pick().Do(req, resp, time.Now().Add(30*time.Second))
	if !errors.Is(err, fasthttp.ErrTimeout) {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Do = %v, want a timeout", err)
		}
	}
	// Not a speed assertion: only that the 30 s deadline was not what
	// ended the call.
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the call took %s: the response timeout was not applied", took)
	}
}
