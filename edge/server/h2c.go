package server

import (
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// h2c (`use_h2c: true`, root level or in the router namespace) serves
// HTTP/2 without TLS on the plain listener beside HTTP/1.1, as KrakenD does
// (it wraps its handler with x/net's h2c). fasthttp has no HTTP/2, so a
// connection whose first bytes are the HTTP/2 client preface (RFC 9113
// §3.4, "prior knowledge") is taken away from fasthttp and served by
// net/http's HTTP/2 server (Protocols: HTTP/2 only); each of its requests
// is copied into a fasthttp.RequestCtx and run through the same handler as
// HTTP/1.1 requests, and the response is copied back. The same bridge
// serves HTTP/2 over TLS: a TLS connection whose ALPN picked h2 (see
// serveTLS).
//
// The preface is recognised in the connection's first Read, in fasthttp's
// goroutine for the connection and under its read deadline: the accept loop
// never blocks on a client, and an HTTP/1.1 connection costs one comparison
// of its first bytes (read straight into fasthttp's buffer), then a branch
// per Read. When h2c is off no connection is wrapped at all.
//
// The HTTP/1.1 "Upgrade: h2c" handshake (RFC 7540 §3.2, deprecated by RFC
// 9113 but what curl --http2 and KrakenD do) is served too: see upgrade.

// h2cPreface opens every HTTP/2 connection.
const h2cPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// h2Bridge serves the HTTP/2 connections of one generation: a net/http
// server speaking only HTTP/2, fed through an in-memory listener the
// connections h2cConn hands over (unencrypted, prior knowledge or Upgrade)
// and the TLS connections whose ALPN picked h2 (serveTLS), as KrakenD's
// net/http server negotiates h2 on a TLS listener.
type h2Bridge struct {
	s   *Server
	hs  *http.Server
	ln  *connListener
	max int // request body limit, as the generation's fasthttp.Server

	mu  sync.Mutex                 // guards tls
	tls map[net.Conn]chan struct{} // TLS connections served now; closed when hs is done with one
}

type connKey struct{}

func newH2Bridge(s *Server, st settings) *h2Bridge {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	protocols.SetHTTP2(true) // a *tls.Conn that negotiated h2
	b := &h2Bridge{s: s, ln: newConnListener(), max: st.maxRequestBodySize, tls: make(map[net.Conn]chan struct{})}
	if b.max <= 0 {
		b.max = fasthttp.DefaultMaxRequestBodySize
	}
	b.hs = &http.Server{
		Protocols:      &protocols,
		Handler:        b,
		ReadTimeout:    st.readTimeout,
		WriteTimeout:   st.writeTimeout,
		IdleTimeout:    st.idleTimeout,
		MaxHeaderBytes: st.readBufferSize,
		ErrorLog:       log.New(io.Discard, "", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				b.doneTLS(c)
			}
		},
	}
	go b.hs.Serve(b.ln) // returns on Shutdown or Close
	return b
}

// serve takes over c (its preface already read into pre) and serves it as
// HTTP/2, until the client or a drain closes it.
func (b *h2Bridge) serve(c net.Conn, pre []byte) {
	// fasthttp's deadline for the first request no longer applies:
	// HTTP/2 keeps its own (idle timeout, per-stream read/write).
	c.SetDeadline(time.Time{})
	if !b.ln.push(&replayConn{Conn: c, pre: pre}) {
		c.Close()
	}
}

// serveTLS serves c, a *tls.Conn whose handshake (done by fasthttp)
// negotiated h2, and returns when the HTTP/2 server is done with it: c is
// fasthttp's connection, which it closes on return, and whose goroutine
// counts against max connections and is waited for by a drain. c goes to
// net/http as it is: only a *tls.Conn is served by ALPN.
func (b *h2Bridge) serveTLS(c net.Conn) error {
	done := make(chan struct{})
	b.mu.Lock()
	b.tls[c] = done
	b.mu.Unlock()
	if !b.ln.push(c) {
		b.doneTLS(c) // draining: fasthttp closes c
		return nil
	}
	<-done
	return nil
}

// doneTLS releases serveTLS for c; other connections are ignored.
func (b *h2Bridge) doneTLS(c net.Conn) {
	b.mu.Lock()
	done, ok := b.tls[c]
	delete(b.tls, c)
	b.mu.Unlock()
	if ok {
		close(done)
	}
}

// shutdown stops taking connections and drains the open ones: GOAWAY,
// requests in flight finish (clients open new connections to the next
// generation). When ctx ends first, the rest are closed.
func (b *h2Bridge) shutdown(ctx context.Context) {
	if err := b.hs.Shutdown(ctx); err != nil {
		b.hs.Close()
		b.s.log.Warn().Msg("shutdown wait exceeded; closed HTTP/2 connections")
	}
}

// ServeHTTP runs one HTTP/2 request through the edge's fasthttp handler.
func (b *h2Bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, _ := r.Context().Value(connKey{}).(net.Conn)
	b.serveHTTP(c, w, r)
}

// connListener is a net.Listener whose connections are pushed to it.
type connListener struct {
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

func newConnListener() *connListener {
	return &connListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

// push hands c to Accept; false once the listener is closed.
func (l *connListener) push(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{} }

// hopHeaders are the connection-specific fields HTTP/2 forbids (RFC 9113
// §8.2.2); fasthttp may set them for HTTP/1.1.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true,
	"Transfer-Encoding": true, "Upgrade": true, "Content-Length": true,
}

// serveHTTP runs one HTTP/2 request through the edge's fasthttp handler.
// The RequestCtx is fresh per request (HTTP/2 is not the path the alloc
// tests guard; reusing one would need fasthttp's unexported reset).
func (b *h2Bridge) serveHTTP(c net.Conn, w http.ResponseWriter, r *http.Request) {
	ctx := new(fasthttp.RequestCtx)
	ctx.Init2(c, fasthttpLogger{log: b.s.log}, true)
	req := &ctx.Request
	req.Header.SetMethod(r.Method)
	req.Header.SetProtocol("HTTP/2.0")
	req.SetRequestURI(r.RequestURI)
	req.Header.SetHost(r.Host)
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if r.TLS != nil {
		// As on fasthttp's own TLS connections, the URI says https
		// (parsed here, once the Host is set).
		req.URI().SetScheme("https")
	}
	if err := b.readBody(req, r); err != nil {
		b.s.handleError(ctx, err)
	} else {
		b.s.handle(ctx)
	}
	b.writeResponse(w, r, &ctx.Response)
}

// readBody reads the request body whole, as fasthttp's server does, within
// the same limit.
func (b *h2Bridge) readBody(req *fasthttp.Request, r *http.Request) error {
	if r.ContentLength > int64(b.max) {
		return fasthttp.ErrBodyTooLarge
	}
	n, err := io.Copy(req.BodyWriter(), io.LimitReader(r.Body, int64(b.max)+1))
	switch {
	case err != nil:
		return err
	case n > int64(b.max):
		return fasthttp.ErrBodyTooLarge
	case n > 0 || r.ContentLength >= 0:
		req.Header.SetContentLength(int(n))
	}
	return nil
}

func (b *h2Bridge) writeResponse(w http.ResponseWriter, r *http.Request, resp *fasthttp.Response) {
	h := w.Header()
	for k, v := range resp.Header.All() {
		if name := string(k); !hopHeaders[name] {
			h.Add(name, string(v))
		}
	}
	status := resp.StatusCode()
	if status == 0 {
		status = http.StatusOK
	}
	bodyAllowed := status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
	if resp.IsBodyStream() {
		w.WriteHeader(status)
		if r.Method == http.MethodHead || !bodyAllowed {
			resp.CloseBodyStream()
			return
		}
		if err := resp.BodyWriteTo(flushWriter{w}); err != nil {
			b.s.log.Debug().Err(err).Msg("h2c: response stream")
		}
		return
	}
	body := resp.Body()
	if bodyAllowed {
		n := len(body)
		if r.Method == http.MethodHead && n == 0 && resp.Header.ContentLength() > 0 {
			n = resp.Header.ContentLength()
		}
		h.Set("Content-Length", strconv.Itoa(n))
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead && bodyAllowed && len(body) > 0 {
		w.Write(body)
	}
}

// flushWriter sends each write of a streamed body at once (server-sent
// events and other streams must not wait for a buffer to fill).
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

// h2cConn is a plain connection on an h2c listener as fasthttp sees it.
type h2cConn struct {
	net.Conn
	b *h2Bridge

	// Owned by the goroutine reading the connection (fasthttp's).
	state   uint8
	pending []byte // sniffed bytes fasthttp has not read yet (tiny buffers only)
	small   [len(h2cPreface)]byte

	handedOff atomic.Bool // the HTTP/2 side owns Conn; Close may come from a drain
}

// errHandedOff ends fasthttp's reading of a connection now served as HTTP/2.
var errHandedOff = io.EOF

// h2cConn states.
const (
	connSniffing  uint8 = iota // nothing read yet
	connHTTP1                  // HTTP/1.1: reads pass through
	connReplaying              // HTTP/1.1, pending holds sniffed bytes
	connHandedOff              // HTTP/2: the bridge owns Conn
)

func (c *h2cConn) Read(p []byte) (int, error) {
	switch c.state {
	case connHTTP1:
		return c.Conn.Read(p)
	case connHandedOff:
		return 0, errHandedOff
	case connReplaying:
		n := copy(p, c.pending)
		if c.pending = c.pending[n:]; len(c.pending) == 0 {
			c.state = connHTTP1
		}
		return n, nil
	}
	return c.sniff(p)
}

// sniff reads until the bytes read either stop matching the preface or hold
// all of it. fasthttp's buffer takes the bytes directly unless it is smaller
// than the preface.
func (c *h2cConn) sniff(p []byte) (int, error) {
	buf := p
	if len(buf) < len(h2cPreface) {
		buf = c.small[:]
	}
	n := 0
	var err error
	for n < len(h2cPreface) && err == nil && bytes.HasPrefix([]byte(h2cPreface), buf[:n]) {
		var m int
		m, err = c.Conn.Read(buf[n:])
		n += m
	}
	c.state = connHTTP1
	if n >= len(h2cPreface) && string(buf[:len(h2cPreface)]) == h2cPreface {
		c.state = connHandedOff
		c.handedOff.Store(true)
		c.b.serve(c.Conn, bytes.Clone(buf[:n]))
		return 0, errHandedOff
	}
	if len(p) < len(h2cPreface) {
		m := copy(p, buf[:n])
		c.pending = buf[m:n]
		n = m
		if len(c.pending) > 0 {
			c.state = connReplaying
			return n, nil // err, if any, comes again on the next Read
		}
	}
	return n, err
}

func (c *h2cConn) Close() error {
	if c.handedOff.Load() {
		return nil
	}
	return c.Conn.Close()
}

func (c *h2cConn) Write(p []byte) (int, error) {
	if c.handedOff.Load() {
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

func (c *h2cConn) SetDeadline(t time.Time) error {
	if c.handedOff.Load() {
		return nil
	}
	return c.Conn.SetDeadline(t)
}

func (c *h2cConn) SetReadDeadline(t time.Time) error {
	if c.handedOff.Load() {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *h2cConn) SetWriteDeadline(t time.Time) error {
	if c.handedOff.Load() {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// replayConn gives back the bytes read while sniffing before reading on.
type replayConn struct {
	net.Conn
	pre []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
