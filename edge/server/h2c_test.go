package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// h2cClient is an HTTP/2 client with prior knowledge over plain TCP (Go's
// Transport with unencrypted HTTP/2 only), as
// `curl --http2-prior-knowledge` or a gRPC-style client; dials counts its
// connections.
func h2cClient(t *testing.T) (*http.Client, *atomic.Int32) {
	t.Helper()
	var dials atomic.Int32
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{
		Protocols: &protocols,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}, &dials
}

// TestH2CServesBothProtocols: with use_h2c the plain listener serves
// HTTP/2 prior-knowledge clients through the same routes, many streams on
// one connection, and HTTP/1.1 clients as before.
func TestH2CServesBothProtocols(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "b1")
	h := start(t, nil)
	snap := snapshot(endpoint("/hello", b.URL, "/v1"))
	snap.Service.H2C = true
	snap.Service.MaxBodyBytes = 1024
	h.apply(t, envelope(t, 1, snap))

	c, dials := h2cClient(t)
	resp, err := c.Get(h.url + "/hello")
	if err != nil {
		t.Fatalf("h2c GET: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || !strings.Contains(string(body), `"path":"/v1"`) {
		t.Fatalf("h2c GET /hello = %s %d %s, want HTTP/2.0 200 from the backend", resp.Proto, resp.StatusCode, body)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}
	if resp.Header.Get("Connection") != "" || resp.ContentLength != int64(len(body)) {
		t.Errorf("headers %v, content length %d for %d bytes", resp.Header, resp.ContentLength, len(body))
	}

	// Concurrent streams share the connection.
	var wg sync.WaitGroup
	codes := make(chan int, 20)
	for range 20 {
		wg.Go(func() {
			r, err := c.Get(h.url + "/hello")
			if err != nil {
				t.Errorf("h2c GET: %v", err)
				return
			}
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
			codes <- r.StatusCode
		})
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != 200 {
			t.Errorf("concurrent h2c GET = %d", code)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d connections for 21 requests, want 1", n)
	}

	// The router's answers and the body limit are the HTTP/1.1 ones.
	for _, tc := range []struct {
		method, path, body string
		code               int
	}{
		{http.MethodGet, "/nope", "", 404},
		{http.MethodPost, "/hello", strings.Repeat("x", 2048), 413}, // over max_body_bytes
		{http.MethodPost, "/hello", "small", 405},
		{http.MethodHead, "/hello", "", 0},
		{http.MethodGet, "/hello/", "", 0},
	} {
		h1 := do(t, client, tc.method, h.url+tc.path, nil, strings.NewReader(tc.body))
		h2 := do(t, c, tc.method, h.url+tc.path, nil, strings.NewReader(tc.body))
		if h2.code != h1.code || h2.body != h1.body || h2.header.Get("Content-Type") != h1.header.Get("Content-Type") ||
			(tc.code != 0 && h2.code != tc.code) {
			t.Errorf("%s %s: h2c %d %q (%s), HTTP/1.1 %d %q (%s), want %d", tc.method, tc.path,
				h2.code, h2.body, h2.header.Get("Content-Type"), h1.code, h1.body, h1.header.Get("Content-Type"), tc.code)
		}
	}

	// HTTP/1.1 on the same listener.
	if r := get(t, h.url+"/hello"); r.code != 200 || !strings.Contains(r.body, `"path":"/v1"`) {
		t.Errorf("HTTP/1.1 GET with h2c on = %d %s", r.code, r.body)
	}
	// A request whose method starts like the preface is HTTP/1.1 still.
	if r := do(t, client, "PRIX", h.url+"/hello", nil, nil); r.code != 405 {
		t.Errorf("HTTP/1.1 PRIX = %d %q, want the router's 405", r.code, r.body)
	}
}

// TestH2COff: without use_h2c an HTTP/2 preface is an HTTP/1.1 request
// fasthttp refuses, as KrakenD without use_h2c does.
func TestH2COff(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "b1")
	h := start(t, nil)
	h.apply(t, envelope(t, 1, snapshot(endpoint("/hello", b.URL, "/v1"))))
	c, _ := h2cClient(t)
	if resp, err := c.Get(h.url + "/hello"); err == nil {
		resp.Body.Close()
		t.Fatalf("h2c GET without use_h2c = %s %d, want an error", resp.Proto, resp.StatusCode)
	}
}

// TestH2CDrain: turning h2c off starts a new generation; a request in
// flight on an HTTP/2 connection of the old one finishes (GOAWAY, then the
// connection closes), and new HTTP/2 connections are refused.
func TestH2CDrain(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "b1")
	h := start(t, nil)
	snap := snapshot(endpoint("/slow", b.URL, "/slow/a"))
	snap.Service.H2C = true
	snap.Service.HttpServer.MaxShutdownWaitMs = 5000
	h.apply(t, envelope(t, 1, snap))

	c, dials := h2cClient(t)
	done := make(chan reply, 1)
	go func() {
		resp, err := c.Get(h.url + "/slow")
		if err != nil {
			done <- reply{code: -1, body: err.Error()}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		done <- reply{code: resp.StatusCode, body: string(body)}
	}()
	b.waitStarted(t)
	snap.Service.H2C = false
	h.apply(t, envelope(t, 2, snap))
	close(b.release)
	if r := <-done; r.code != 200 || !strings.Contains(r.body, "/slow/a") {
		t.Fatalf("in-flight h2c request across the generation change = %d %s", r.code, r.body)
	}
	// The old connection went away with GOAWAY: the next request dials
	// again and meets an HTTP/1.1-only listener.
	if resp, err := c.Get(h.url + "/slow"); err == nil {
		resp.Body.Close()
		t.Errorf("h2c GET after use_h2c was turned off = %d, want an error", resp.StatusCode)
	}
	if n := dials.Load(); n < 2 {
		t.Errorf("%d dials, want a new connection after GOAWAY", n)
	}
}

// TestH2CConnSniff drives h2cConn directly: the preface in pieces is
// recognised, and HTTP/1.1 bytes read through a buffer smaller than the
// preface come out whole and in order.
func TestH2CConnSniff(t *testing.T) {
	t.Parallel()
	t.Run("http1 small buffer", func(t *testing.T) {
		client, srv := net.Pipe()
		defer client.Close()
		c := &h2cConn{Conn: srv, b: &h2Bridge{}}
		const req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
		go func() {
			client.Write([]byte("PR")) // a prefix of the preface, then not
			client.Write([]byte(req[2:]))
			client.Close()
		}()
		var got []byte
		p := make([]byte, 5)
		for {
			n, err := c.Read(p)
			got = append(got, p[:n]...)
			if err != nil {
				break
			}
		}
		if want := "PR" + req[2:]; string(got) != want {
			t.Errorf("read %q, want %q", got, want)
		}
		if c.handedOff.Load() {
			t.Error("an HTTP/1.1 connection was handed to HTTP/2")
		}
	})
	t.Run("preface in pieces", func(t *testing.T) {
		client, srv := net.Pipe()
		defer client.Close()
		b := &h2Bridge{ln: newConnListener()}
		b.ln.Close() // closed: serve only closes the conn
		c := &h2cConn{Conn: srv, b: b}
		go func() {
			for i := range len(h2cPreface) {
				client.Write([]byte{h2cPreface[i]})
			}
		}()
		n, err := c.Read(make([]byte, 4096))
		if n != 0 || err != io.EOF || !c.handedOff.Load() {
			t.Fatalf("Read = %d, %v, handed off %v; want 0, EOF, true", n, err, c.handedOff.Load())
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close after handoff = %v", err)
		}
		if _, err := c.Write([]byte("x")); err == nil {
			t.Error("fasthttp could still write to a handed-off connection")
		}
	})
}

// BenchmarkHTTP1OnH2CListener measures what use_h2c costs HTTP/1.1: a new
// connection with one request (the sniff of its first bytes) and requests
// on a keep-alive connection (a branch per Read), h2c off and on. The
// route is the edge's own health endpoint, so no backend is timed.
func BenchmarkHTTP1OnH2CListener(b *testing.B) {
	const req = "GET /__health HTTP/1.1\r\nHost: bench\r\n\r\n"
	for _, h2c := range []bool{false, true} {
		h := start(b, nil)
		snap := snapshot()
		snap.Service.H2C = h2c
		h.apply(b, envelope(b, 1, snap))
		addr := h.srv.Addr().String()
		name := "h2c=off"
		if h2c {
			name = "h2c=on"
		}
		buf := make([]byte, 4096)
		// roundTrip writes req and reads one response (health answers
		// are small: one read holds the whole of it).
		roundTrip := func(b *testing.B, c net.Conn) {
			if _, err := c.Write([]byte(req)); err != nil {
				b.Fatal(err)
			}
			n, err := c.Read(buf)
			if err != nil || !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") {
				b.Fatalf("response %q, %v", buf[:n], err)
			}
		}
		b.Run(name+"/new-connection", func(b *testing.B) {
			for b.Loop() {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				roundTrip(b, c)
				c.Close()
			}
		})
		b.Run(name+"/keep-alive", func(b *testing.B) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			for b.Loop() {
				roundTrip(b, c)
			}
		})
	}
}
