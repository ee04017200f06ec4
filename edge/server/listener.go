package server

import (
	"context"
	"errors"
	"math"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// settings are the fasthttp.Server fields a snapshot controls. fasthttp reads
// them without locks while serving, so they are never changed on a running
// fasthttp.Server: a change starts a new generation instead.
type settings struct {
	readTimeout        time.Duration
	writeTimeout       time.Duration
	idleTimeout        time.Duration
	readBufferSize     int
	maxRequestBodySize int
}

// settingsOf maps a snapshot's service onto fasthttp settings. Zero values
// keep fasthttp's defaults (4 KiB read buffer, 4 MiB bodies, no timeouts).
func settingsOf(svc *gatewayv1.Service) settings {
	hs := svc.GetHttpServer()
	ms := func(v int64) time.Duration {
		if v <= 0 {
			return 0
		}
		return time.Duration(v) * time.Millisecond
	}
	read := ms(hs.GetReadTimeoutMs())
	if read == 0 {
		// fasthttp has one read deadline for header and body; a header-only
		// timeout is better enforced on both than not at all.
		read = ms(hs.GetReadHeaderTimeoutMs())
	}
	return settings{
		readTimeout:        read,
		writeTimeout:       ms(hs.GetWriteTimeoutMs()),
		idleTimeout:        ms(hs.GetIdleTimeoutMs()),
		readBufferSize:     clampInt(hs.GetMaxHeaderBytes()),
		maxRequestBodySize: clampInt(svc.GetMaxBodyBytes()),
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
		ReadTimeout:          st.readTimeout,
		WriteTimeout:         st.writeTimeout,
		IdleTimeout:          st.idleTimeout,
		ReadBufferSize:       st.readBufferSize,
		MaxRequestBodySize:   st.maxRequestBodySize,
	}
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
	s.log.Info().Dur("read_timeout", st.readTimeout).Dur("write_timeout", st.writeTimeout).
		Dur("idle_timeout", st.idleTimeout).Int("read_buffer_size", st.readBufferSize).
		Int("max_request_body_size", st.maxRequestBodySize).
		Msg("http server settings changed; draining the previous server")
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
		return c, nil
	}
}

func (l *genListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *genListener) Addr() net.Addr { return l.addr }
