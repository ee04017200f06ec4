package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/internal/ascii"

	"github.com/apigw/gateway/proto/duration"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Timeouts used when the snapshot's http_server leaves them zero. Go's
// net/http (and so KrakenD) has none by default, which lets a client hold a
// connection forever by sending a header one byte at a time (slowloris) or
// by opening connections and sending nothing.
const (
	// DefaultReadHeaderTimeout bounds the wait for a request's header,
	// from the connection's first byte (or from the end of the previous
	// response on a keep-alive connection, after the idle wait).
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds the read of a request's body, from the end
	// of its header.
	DefaultReadTimeout = 60 * time.Second
	// DefaultIdleTimeout bounds the wait for the next request on a
	// keep-alive connection, and for the first byte of a new connection.
	DefaultIdleTimeout = 90 * time.Second
)

// settings are the fasthttp.Server fields a snapshot controls. fasthttp reads
// them without locks while serving, so they are never changed on a running
// fasthttp.Server: a change starts a new generation instead.
type settings struct {
	readHeaderTimeout  time.Duration
	readTimeout        time.Duration // the body, after the header
	writeTimeout       time.Duration
	idleTimeout        time.Duration
	readBufferSize     int
	maxRequestBodySize int
	maxConnsPerIP      int
	maxConns           int
	h2c                bool // serve HTTP/2 prior-knowledge connections too (see h2c.go)
}

// settingsOf maps a snapshot's service onto fasthttp settings. Zero
// timeouts take the defaults above (write_timeout stays off: responses may
// stream for long); zero sizes keep fasthttp's defaults (4 KiB read buffer,
// 4 MiB bodies). Connection limits come from the server's Config.
func settingsOf(svc *gatewayv1.Service, lim Limits) settings {
	hs := svc.GetHttpServer()
	orDefault := func(d, def time.Duration) time.Duration {
		if d <= 0 {
			return def
		}
		return d
	}
	return settings{
		readHeaderTimeout:  orDefault(duration.Join(hs.GetReadHeaderTimeoutMs(), hs.GetReadHeaderTimeoutNs()), DefaultReadHeaderTimeout),
		readTimeout:        orDefault(duration.Join(hs.GetReadTimeoutMs(), hs.GetReadTimeoutNs()), DefaultReadTimeout),
		writeTimeout:       duration.Join(hs.GetWriteTimeoutMs(), hs.GetWriteTimeoutNs()),
		idleTimeout:        orDefault(duration.Join(hs.GetIdleTimeoutMs(), hs.GetIdleTimeoutNs()), DefaultIdleTimeout),
		readBufferSize:     clampInt(hs.GetMaxHeaderBytes()),
		maxRequestBodySize: clampInt(svc.GetMaxBodyBytes()),
		maxConnsPerIP:      lim.MaxConnsPerIP,
		maxConns:           lim.MaxConns,
		h2c:                svc.GetH2C(),
	}
}

func clampInt(v int64) int {
	switch {
	case v <= 0:
		return 0
	case v > math.MaxInt32:
		return math.MaxInt32
	}
	return int(v)
}

// generation is one fasthttp.Server fed from the shared listener.
type generation struct {
	srv  *fasthttp.Server
	ln   *genListener
	h2   *h2Bridge     // HTTP/2: h2 by ALPN on TLS, and h2c when the settings say so
	done chan struct{} // closed when srv.Serve has returned

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
}

func (g *generation) trackConn(c net.Conn, st fasthttp.ConnState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch st {
	case fasthttp.StateNew:
		g.conns[c] = struct{}{}
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		delete(g.conns, c)
	}
}

// closeConns force-closes every connection still open.
func (g *generation) closeConns() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	for c := range g.conns {
		c.Close()
	}
	return len(g.conns)
}

// startGenerationLocked starts a fasthttp.Server with the current settings
// and drains the previous one. reconfMu must be held.
func (s *Server) startGenerationLocked() {
	st := s.settings
	g := &generation{
		ln:    &genListener{conns: s.conns, addr: s.ln.Addr(), closed: make(chan struct{})},
		done:  make(chan struct{}),
		conns: make(map[net.Conn]struct{}),
	}
	// Every generation can serve HTTP/2: whether a connection is TLS is
	// decided per accept by the plan, not by the generation's settings.
	g.h2 = newH2Bridge(s, st)
	if st.h2c {
		g.ln.h2c = g.h2
	}
	g.srv = &fasthttp.Server{
		Handler:               s.handle,
		ErrorHandler:          s.handleError,
		ConnState:             g.trackConn,
		Logger:                fasthttpLogger{log: s.log},
		Name:                  "",
		NoDefaultServerHeader: true,
		// As Go's net/http (KrakenD): no Content-Type unless the handler
		// sets one; every writer of a body sets its own.
		NoDefaultContentType: true,
		CloseOnShutdown:      true,
		// fasthttp's ReadTimeout runs from the first byte of a request
		// to the end of its header here: HeaderReceived moves the deadline
		// to read_timeout for the body.
		ReadTimeout:        st.readHeaderTimeout,
		HeaderReceived:     st.headerReceived,
		WriteTimeout:       st.writeTimeout,
		IdleTimeout:        st.idleTimeout,
		ReadBufferSize:     st.readBufferSize,
		MaxRequestBodySize: st.maxRequestBodySize,
		Concurrency:        st.maxConns,
	}
	// A TLS connection whose ALPN picked h2 (edge/tlsconf offers it) is
	// handed to the bridge after fasthttp's handshake, which runs in the
	// connection's goroutine under ReadTimeout. NextProto also gives
	// srv an unused TLSConfig: srv.Serve never wraps connections.
	g.srv.NextProto("h2", g.h2.serveTLS)
	s.wg.Go(func() {
		defer close(g.done)
		if err := g.srv.Serve(g.ln); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Error().Err(err).Msg("serve")
		}
	})
	old := s.gen
	s.gen = g
	if old == nil {
		return
	}
	s.log.Info().Dur("read_header_timeout", st.readHeaderTimeout).Dur("read_timeout", st.readTimeout).Dur("write_timeout", st.writeTimeout).
		Dur("idle_timeout", st.idleTimeout).Int("read_buffer_size", st.readBufferSize).
		Int("max_request_body_size", st.maxRequestBodySize).
		Msg("http server settings changed; draining the previous server")
	// The old generation stops taking connections before this returns:
	// closed in drain's goroutine it could still win a connection accepted
	// after the new settings applied, and answer it with the old ones.
	old.ln.Close()
	ctx, cancel := s.drainContext()
	s.wg.Go(func() {
		defer cancel()
		s.drain(ctx, old)
	})
}

// drain shuts a generation down: no new connection, requests in flight
// finish, idle keep-alive connections close. When ctx ends first, the
// remaining connections are closed.
func (s *Server) drain(ctx context.Context, g *generation) {
	g.ln.Close()
	// In parallel with fasthttp's drain, which waits for the HTTP/2
	// connections over TLS too (each holds its fasthttp connection
	// goroutine): GOAWAY goes out now.
	h2done := make(chan struct{})
	go func() { g.h2.shutdown(ctx); close(h2done) }()
	defer func() { <-h2done }()
	if err := g.srv.ShutdownWithContext(ctx); err != nil {
		n := g.closeConns()
		s.log.Warn().Int("connections", n).Msg("shutdown wait exceeded; closed connections with requests in flight")
	}
	<-g.done
	// After a forced close, fasthttp's connection goroutines notice within
	// a read or write; wait for them so none outlives the server.
	deadline := time.Now().Add(5 * time.Second)
	for g.srv.GetOpenConnectionsCount() > 0 && time.Now().Before(deadline) {
		g.closeConns()
		time.Sleep(10 * time.Millisecond)
	}
}

// acceptLoop accepts on the bound listener and hands each connection to
// whichever generation accepts next. It exits when the listener is closed.
func (s *Server) acceptLoop() {
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http
			// does instead of spinning.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else {
				delay = min(2*delay, time.Second)
			}
			s.log.Warn().Err(err).Dur("retry_in", delay).Msg("accept")
			select {
			case <-time.After(delay):
				continue
			case <-s.acceptStop:
				return
			}
		}
		delay = 0
		if c = s.perIP.admit(c); c == nil {
			continue
		}
		// The plan current at accept decides plain or TLS; the handshake
		// runs on the connection's first read, in its own goroutine
		// under fasthttp's read deadline, and picks the certificates
		// loaded then (see edge/tlsconf).
		if t := s.cur.Load().plan.TLS(); t != nil {
			c = tls.Server(c, t.Config())
		}
		select {
		case s.conns <- c:
		case <-s.acceptStop:
			// Shutting down: the listener is closed and no generation
			// takes connections any more.
			c.Close()
			return
		}
	}
}

// genListener is the listener of one generation: connections come from the
// shared accept loop; Close stops this generation only.
type genListener struct {
	conns     <-chan net.Conn
	addr      net.Addr
	closed    chan struct{}
	closeOnce sync.Once
	h2c       *h2Bridge // set: plain connections may turn out HTTP/2
}

func (l *genListener) Accept() (net.Conn, error) {
	// A closed generation must not take connections meant for its
	// successor.
	select {
	case <-l.closed:
		return nil, net.ErrClosed
	default:
	}
	select {
	case <-l.closed:
		return nil, net.ErrClosed
	case c := <-l.conns:
		if l.h2c != nil {
			// TLS connections negotiate their protocol by ALPN
			// (see Server.NextProto above): h2c is for plain ones.
			if _, isTLS := c.(*tls.Conn); !isTLS {
				c = &h2cConn{Conn: c, b: l.h2c}
			}
		}
		return c, nil
	}
}

func (l *genListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *genListener) Addr() net.Addr { return l.addr }

// headerReceived runs once a request's header is read, before its body: it
// gives the body its own read deadline, and marks a request that carries
// both Transfer-Encoding: chunked and Content-Length for closing after its
// response. The chunked framing wins (RFC 9112 §6.3, as Go's net/http
// does), but a proxy in front of us may have framed it by Content-Length:
// whatever bytes follow must never be read as a second request on this
// connection (request smuggling). It does not allocate.
func (st settings) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if h.ContentLength() == -1 && hasContentLength(h.RawHeaders()) {
		h.SetConnectionClose()
	}
	return fasthttp.RequestConfig{ReadTimeout: st.readTimeout, MaxRequestBodySize: st.maxRequestBodySize}
}

// hasContentLength reports whether raw header lines (as the client sent
// them, request line excluded) hold a Content-Length field, in any case.
func hasContentLength(raw []byte) bool {
	const name = "content-length:"
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(line) >= len(name) && ascii.EqualFold(line[:len(name)], name) {
			return true
		}
	}
	return false
}

// ipLimiter bounds the open connections per client IP (the TCP peer). It
// is ours rather than fasthttp's MaxConnsPerIP, which counts every IPv6
// client as one address and whose connections must not be closed from
// another goroutine (a drain does that).
type ipLimiter struct {
	max int
	mu  sync.Mutex
	n   map[netip.Addr]int
}

// tooManyConns is the answer to a connection over the per-IP limit.
var tooManyConns = []byte("HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 21\r\nConnection: close\r\n\r\n429 Too Many Requests")

// admit returns c wrapped so that closing it releases its slot, or nil
// after answering 429 and closing c when its IP holds max connections
// already. A nil limiter admits everything.
func (l *ipLimiter) admit(c net.Conn) net.Conn {
	if l == nil {
		return c
	}
	ip := remoteIP(c)
	l.mu.Lock()
	ok := l.n[ip] < l.max
	if ok {
		l.n[ip]++
	}
	l.mu.Unlock()
	if !ok {
		c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		c.Write(tooManyConns)
		c.Close()
		return nil
	}
	return &limitedConn{Conn: c, release: func() { l.release(ip) }}
}

func (l *ipLimiter) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[ip]--; l.n[ip] <= 0 {
		delete(l.n, ip)
	}
}

func remoteIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// limitedConn releases its per-IP slot on the first Close (from fasthttp
// or from a forced drain, whichever comes first).
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
