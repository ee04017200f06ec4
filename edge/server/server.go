// Package server is the edge's HTTP front: it binds the listener once, serves
// every request from the plan that is current when the request starts, and
// swaps plans atomically when a new snapshot is applied.
//
// The current plan, its version and sha256 live in one immutable state value
// behind an atomic.Pointer; the request handler loads it once per request, so
// a request in flight finishes on the plan it started with while the next
// request already sees the new one. A swap releases the previous plan (its
// upstream clients close after a grace period, see plan.Release).
//
// Settings that fasthttp fixes per fasthttp.Server (timeouts, read buffer,
// body limit) come from the snapshot's http_server section. When a swap
// changes them, the server starts a new fasthttp.Server generation on the
// same bound listener and drains the previous one gracefully: nothing is
// rebound and no in-flight request is dropped. The listen address itself
// never changes after New; a snapshot asking for another port only gets a
// warning.
//
// The package also holds the edge's Prometheus registry (Registry) and the
// metrics listener configured by telemetry/metrics or --metrics-listen.
// Turning a SnapshotEnvelope into a plan is edge/apply's job; the server is
// its apply.Target (Swap, Current).
//
// server imports edge/plan; it never imports edge/apply, edge/watch nor
// anything from the control plane.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/accesslog"
	"github.com/apigw/gateway/edge/internal/gelf"
	"github.com/apigw/gateway/edge/internal/influx"
	"github.com/apigw/gateway/edge/internal/loglevel"
	"github.com/apigw/gateway/edge/internal/logsink"
	"github.com/apigw/gateway/edge/plan"
	"github.com/apigw/gateway/edge/stats"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// DefaultHealthPath answers health checks while no plan is loaded.
const DefaultHealthPath = plan.DefaultHealthPath

// Fixed bodies: a client never sees an error text of ours. Requests the
// server cannot read get the texts Go's net/http (KrakenD's server) sends.
var (
	bodyUnavailable   = []byte(`{"error":"service_unavailable"}`)
	bodyBadRequest    = []byte("400 Bad Request")
	bodyTooLarge      = []byte("413 Request Entity Too Large")
	bodyHeaderTooBig  = []byte("431 Request Header Fields Too Large")
	bodyRequestTimout = []byte("408 Request Timeout")
	contentTypeJSON   = []byte("application/json")
	contentTypeText   = []byte("text/plain; charset=utf-8")
)

// Config configures a Server. The zero value is not usable: Listen is
// required.
type Config struct {
	// Listen is the address bound once by New ("127.0.0.1:0" works).
	Listen string
	// Logger is the base logger; the server adds component=server.
	Logger zerolog.Logger
	// BuildVersion is reported in gw_edge_build_info.
	BuildVersion string
	// Registry receives the edge's metrics; nil makes a new registry with
	// the Go and process collectors.
	Registry *prometheus.Registry
	// MetricsListen, when set, serves /metrics there from New on and
	// overrides the snapshot's telemetry/metrics listen_address.
	MetricsListen string
	// LogLevel is the level used while the snapshot sets none ("" means
	// info).
	LogLevel string
	// Level is the level of the edge's loggers (built on Level.Writer); the
	// server sets it to LogLevel, then to each snapshot's
	// telemetry/logging level. nil leaves levels alone (the snapshot's
	// level then has no effect, and a snapshot naming one is warned about).
	Level *loglevel.Var
	// DebugEndpoint serves KrakenD's /__debug/* whatever the snapshot says
	// (`gw-edge run -d`).
	DebugEndpoint bool
	// PinLogLevel keeps LogLevel even when a snapshot's telemetry/logging
	// asks for another level (an operator's --log-level or -d wins).
	PinLogLevel bool
	// LogSink is the writer under the edge's loggers; the server applies
	// each snapshot's telemetry/logging output settings to it (prefix,
	// stdout, syslog, format). nil leaves the output alone.
	LogSink *logsink.Sink
	// PinLogFormat keeps the process's own log output whatever a snapshot
	// says (an operator's --log-format wins).
	PinLogFormat bool
	// AccessLog is where and how access-log lines are written; a nil Out
	// writes none. Each snapshot's router.disable_access_log turns it off
	// and router.logger_skip_paths skips paths.
	AccessLog accesslog.Config
	// Limits bounds connections (zero fields take the defaults).
	Limits Limits
	// Degraded, when set, is asked at every health check with the plan
	// being served: a non-empty answer (a snake_case cause,
	// "revocations_unknown") makes the health path answer 503 with status
	// "degraded" and the cause in X-Apigw-Degraded, while the plan keeps
	// serving what it can.
	Degraded func(*plan.Plan) string
	// AgentPings, when set, returns the last health report of each async
	// agent, listed under "agents" in the health answer as KrakenD lists
	// its agents' pings.
	AgentPings func() map[string]time.Time
}

// Connection limits of the front door, defaults for flags that leave them
// zero. A client over the per-IP limit, or any client once the server holds
// MaxConns connections, is answered with a 429 or 503 and closed.
const (
	DefaultMaxConnsPerIP = 1024
	DefaultMaxConns      = 16384
)

// Limits are the front door's connection limits; a negative field means no
// limit, zero the default.
type Limits struct {
	// MaxConnsPerIP bounds the open connections of one client address
	// (the TCP peer; behind a load balancer every client shares its
	// address, so raise it or turn it off there).
	MaxConnsPerIP int
	// MaxConns bounds the connections served at once (fasthttp's
	// Concurrency: one request at a time per connection, so it also bounds
	// the requests in flight).
	MaxConns int
}

func (l Limits) withDefaults() Limits {
	pick := func(v, def int) int {
		switch {
		case v < 0:
			return 0 // fasthttp: 0 means no per-IP limit
		case v == 0:
			return def
		}
		return v
	}
	l.MaxConnsPerIP = pick(l.MaxConnsPerIP, DefaultMaxConnsPerIP)
	l.MaxConns = pick(l.MaxConns, DefaultMaxConns)
	if l.MaxConns == 0 {
		l.MaxConns = math.MaxInt32 // fasthttp: 0 means its own 256 Ki default
	}
	return l
}

// Validate reports a configuration that New would refuse.
func (c Config) Validate() error {
	if c.Listen == "" {
		return errors.New("server config: listen address is required")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("server config: listen %q: %w", c.Listen, err)
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return fmt.Errorf("server config: metrics listen %q: %w", c.MetricsListen, err)
		}
	}
	if c.LogLevel != "" {
		if _, err := zerolog.ParseLevel(c.LogLevel); err != nil {
			return fmt.Errorf("server config: log level %q: %w", c.LogLevel, err)
		}
	}
	if c.AccessLog.Out != nil {
		if err := c.AccessLog.Validate(); err != nil {
			return fmt.Errorf("server config: %w", err)
		}
	}
	return nil
}

// state is what one request sees: immutable once published.
type state struct {
	plan       *plan.Plan // nil until the first snapshot
	version    uint64
	sha        string
	healthPath string         // "" when the plan disables health
	healthCode int            // 200 with a plan; 503 before the first one, so readiness probes wait for it
	healthWord string         // the "status" value: "ok", or "no_config" before the first plan
	debug      bool           // serve /__debug/*
	echo       bool           // serve /__echo/*
	access     *accesslog.Log // nil: no access log
	builtin    plan.BuiltinFunc
}

func (s *Server) newState(p *plan.Plan, version uint64, sha string) *state {
	st := &state{plan: p, version: version, sha: sha, healthPath: DefaultHealthPath,
		healthCode: fasthttp.StatusServiceUnavailable, healthWord: "no_config", debug: s.cfg.DebugEndpoint}
	if p != nil {
		st.healthPath = p.HealthPath()
		st.healthCode = fasthttp.StatusOK
		st.healthWord = "ok"
		st.debug = st.debug || p.Service().GetDebugEndpoint()
		st.echo = p.Service().GetEchoEndpoint()
	}
	st.access = s.accessLog(p)
	st.builtin = func(ctx *fasthttp.RequestCtx, b plan.Builtin) { s.serveBuiltin(ctx, st, b) }
	return st
}

// serveBuiltin answers a builtin route the plan's router found (the plan
// ran the layers around it).
func (s *Server) serveBuiltin(ctx *fasthttp.RequestCtx, st *state, b plan.Builtin) {
	switch b {
	case plan.BuiltinHealth:
		writeHealth(ctx, st, s.cfg.Degraded, s.cfg.AgentPings)
	case plan.BuiltinDebug:
		writePong(ctx)
	case plan.BuiltinEcho:
		writeEcho(ctx)
	default:
		ctx.SetStatusCode(fasthttp.StatusNotFound)
	}
}

// accessLog builds the access log a plan asks for: none without an output
// or with router.disable_access_log, and the plan's logger_skip_paths.
func (s *Server) accessLog(p *plan.Plan) *accesslog.Log {
	cfg := s.cfg.AccessLog
	if cfg.Out == nil {
		return nil
	}
	cfg.Out = accessOut{base: cfg.Out, s: s}
	if p != nil {
		r := p.Service().GetRouter()
		if r.GetDisableAccessLog() {
			return nil
		}
		cfg.SkipPaths = r.GetLoggerSkipPaths()
	}
	l, err := accesslog.New(cfg)
	if err != nil {
		// Config.Validate checked everything New checks.
		panic("server: access log: " + err.Error())
	}
	return l
}

// contentTypeJSONUTF8 is what KrakenD's gin renders JSON with.
var contentTypeJSONUTF8 = []byte("application/json; charset=utf-8")

// Health headers: the snapshot being served (KrakenD's body has no room
// for it).
var (
	hdrSnapshotVersion = []byte("X-Apigw-Snapshot-Version")
	hdrSnapshotSHA     = []byte("X-Apigw-Snapshot-Sha256")
	hdrDegraded        = []byte("X-Apigw-Degraded")
)

// writeHealth answers the health path with KrakenD's body: the async
// agents' last pings (sorted by name, as gin encodes a map), the current time as Go prints it (with the monotonic reading, as KrakenD's
// time.Now().String()) and the status. The snapshot version and sha256 go
// in the X-Apigw-Snapshot-* headers. A degraded edge (Config.Degraded)
// answers 503 with status "degraded".
func writeHealth(ctx *fasthttp.RequestCtx, st *state, degraded func(*plan.Plan) string, pings func() map[string]time.Time) {
	code, word := st.healthCode, st.healthWord
	if degraded != nil && st.plan != nil {
		if cause := degraded(st.plan); cause != "" {
			code, word = fasthttp.StatusServiceUnavailable, "degraded"
			ctx.Response.Header.SetCanonical(hdrDegraded, []byte(cause))
		}
	}
	var num [20]byte
	ctx.Response.Header.SetCanonical(hdrSnapshotVersion, strconv.AppendUint(num[:0], st.version, 10))
	if st.sha != "" {
		ctx.Response.Header.SetCanonical(hdrSnapshotSHA, []byte(st.sha))
	}
	var buf [128]byte
	b := append(buf[:0], `{"agents":{`...)
	if pings != nil {
		b = appendPings(b, pings())
	}
	b = append(b, `},"now":`...)
	b = strconv.AppendQuote(b, time.Now().String())
	b = append(b, `,"status":`...)
	b = strconv.AppendQuote(b, word)
	b = append(b, '}')
	ctx.SetStatusCode(code)
	ctx.SetContentTypeBytes(contentTypeJSONUTF8)
	ctx.SetBody(b)
}

// appendPings writes the agents' pings as JSON members ("name":"time").
func appendPings(b []byte, pings map[string]time.Time) []byte {
	names := make([]string, 0, len(pings))
	for n := range pings {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(n)
		v, _ := json.Marshal(pings[n].String())
		b = append(append(append(b, k...), ':'), v...)
	}
	return b
}

// Server serves HTTP from the current plan. Swap, Current and Addr are safe
// for concurrent use; Serve runs once. A Server must not be copied.
type Server struct {
	// answered and serverErrors count responses (Counters).
	answered, serverErrors paddedCounter

	cfg       Config
	log       zerolog.Logger
	baseLevel zerolog.Level
	ln        net.Listener
	cur       atomic.Pointer[state]
	m         *metrics

	conns      chan net.Conn // accepted connections, handed to the current generation
	acceptStop chan struct{} // closed at shutdown: the accept loop exits
	quit       chan struct{} // closed by Close
	quitOnce   sync.Once
	done       chan struct{} // closed when Serve has finished or Close cleaned up
	// force is closed when the final shutdown deadline passes: drains of
	// old generations still running close what is left (no ctx is kept in
	// the server; each drain derives its own, see drainContext).
	force     chan struct{}
	forceOnce sync.Once
	wg        sync.WaitGroup // every goroutine of the server

	// reconfMu serialises Swap's reconfiguration and the lifecycle; it is
	// held across starting and stopping listeners, never on the request path.
	reconfMu     sync.Mutex
	serving      bool // Serve has started
	stopped      bool // shutdown has begun: no new generation or listener
	gen          *generation
	settings     settings
	maxWait      time.Duration
	metricsLn    *metricsListener
	stats        *stats.Stats                // telemetry/metrics' /__stats series, process-wide
	gelf         atomic.Pointer[gelf.Writer] // telemetry/gelf; nil: none
	influx       *influx.Writer              // telemetry/influx; nil: none; guarded by reconfMu
	influxM      *influx.Metrics
	statsServed  atomic.Bool // the snapshot has telemetry/metrics without endpoint_disabled
	warnedListen string      // snapshot listen address already warned about
	perIP        *ipLimiter  // nil: no per-IP limit
}

// New binds cfg.Listen (and cfg.MetricsListen when set) and returns a Server
// that answers 503 until the first Swap. Call Serve to start serving and
// Close (or cancel Serve's ctx) to release the listeners.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	level := zerolog.InfoLevel
	if cfg.LogLevel != "" {
		level, _ = zerolog.ParseLevel(cfg.LogLevel)
	}
	if cfg.Level != nil {
		cfg.Level.Set(level)
	}
	reg := cfg.Registry
	if reg == nil {
		reg = NewRegistry()
	}
	m, err := newMetrics(reg, cfg.BuildVersion)
	if err != nil {
		return nil, err
	}
	im, err := influx.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger.With().Str("component", "server").Logger(),
		baseLevel:  level,
		ln:         ln,
		m:          m,
		conns:      make(chan net.Conn),
		acceptStop: make(chan struct{}),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
		force:      make(chan struct{}),
		settings:   settingsOf(nil, cfg.Limits.withDefaults()),
		stats:      stats.New(),
		influxM:    im,
	}
	s.stats.Run()
	if n := s.settings.maxConnsPerIP; n > 0 {
		s.perIP = &ipLimiter{max: n, n: map[netip.Addr]int{}}
	}
	s.cur.Store(s.newState(nil, 0, ""))
	if cfg.MetricsListen != "" {
		if err := s.setMetricsAddr(cfg.MetricsListen); err != nil {
			ln.Close()
			return nil, err
		}
	}
	return s, nil
}

// Addr returns the bound address of the HTTP listener.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// MetricsAddr returns the bound address of the metrics listener, or nil
// when none runs.
func (s *Server) MetricsAddr() net.Addr {
	s.reconfMu.Lock()
	defer s.reconfMu.Unlock()
	if s.metricsLn == nil {
		return nil
	}
	return s.metricsLn.ln.Addr()
}

// Registry returns the edge's Prometheus registry, for other components
// (plan metrics, the control-plane client) to register on.
func (s *Server) Registry() *prometheus.Registry { return s.m.reg }

// Stats is the registry of telemetry/metrics' /__stats series, for the
// plans (plan.Deps.Stats).
func (s *Server) Stats() *stats.Stats { return s.stats }

// Current returns the version and sha256 of the plan being served (0, ""
// before the first Swap).
func (s *Server) Current() (version uint64, sha string) {
	st := s.cur.Load()
	return st.version, st.sha
}

// Swap publishes p as the plan for every request that starts from now on,
// releases the previous plan (requests in flight finish on it) and applies
// the snapshot's listener, logging and metrics settings. p must be non-nil
// and must not be swapped in twice.
func (s *Server) Swap(p *plan.Plan, version uint64, sha string) {
	if p == nil {
		panic("server: Swap with a nil plan")
	}
	s.reconfMu.Lock()
	defer s.reconfMu.Unlock()

	old := s.cur.Swap(s.newState(p, version, sha))
	s.m.version.Set(float64(version))
	if old.plan == nil || old.version != version {
		s.m.applied.SetToCurrentTime()
	}
	if old.plan != nil && old.plan != p {
		old.plan.Release()
	}
	if s.stopped {
		// Shut down: nothing will serve p; Current still reports it.
		p.Release()
		return
	}
	s.reconfigureLocked(p.Service())
}

// accessOut writes access-log lines to the configured output and, with
// telemetry/gelf, to Graylog too (KrakenD gives gin's logger the GELF
// writer).
type accessOut struct {
	base io.Writer
	s    *Server
}

func (o accessOut) Write(p []byte) (int, error) {
	if g := o.s.gelf.Load(); g != nil {
		_, _ = g.AccessLog().Write(p)
	}
	return o.base.Write(p)
}

// applyGELF connects to the snapshot's telemetry/gelf input (or stops
// sending). A TCP input that refuses the connection is logged and leaves
// GELF off, as in KrakenD; the snapshot stays.
func (s *Server) applyGELF(g *gatewayv1.GELF) {
	cur := s.gelf.Load()
	if cur != nil && g != nil && cur.Addr() == g.GetAddress() && cur.TCP() == g.GetEnableTcp() {
		return
	}
	var next *gelf.Writer
	if g != nil {
		w, err := gelf.New(g.GetAddress(), g.GetEnableTcp())
		if err != nil {
			s.log.Error().Err(err).Str("address", g.GetAddress()).Msg("telemetry/gelf not started")
		}
		next = w
	}
	s.gelf.Store(next)
	if s.cfg.LogSink != nil {
		if next == nil {
			s.cfg.LogSink.SetGELF(nil)
		} else {
			s.cfg.LogSink.SetGELF(next)
		}
	}
	if cur != nil {
		cur.Close()
	}
}

// applyInflux starts, restarts (settings changed) or stops the
// telemetry/influx writer. Called with reconfMu held.
func (s *Server) applyInflux(x *gatewayv1.InfluxDB) {
	var want influx.Config
	if x != nil {
		want = influx.Config{
			Address: x.GetAddress(), Username: x.GetUsername(), Password: x.GetPassword(), DB: x.GetDb(),
			TTL: time.Duration(x.GetTtlMs()) * time.Millisecond, BufferSize: int(x.GetBufferSize()),
		}
	}
	if cur := s.influx; cur != nil {
		if x != nil && cur.Config() == want {
			return
		}
		cur.Close()
		s.influx = nil
	}
	if x == nil {
		return
	}
	w, err := influx.Start(want, s.stats, s.cfg.Logger.With().Str("component", "influx").Logger(), s.influxM)
	if err != nil {
		s.log.Error().Err(err).Msg("telemetry/influx not started")
		return
	}
	s.influx = w
}

// reconfigureLocked applies the non-routing settings of a new snapshot.
func (s *Server) reconfigureLocked(svc *gatewayv1.Service) {
	s.applyGELF(svc.GetGelf())
	s.applyInflux(svc.GetInflux())
	s.applyLogLevel(svc.GetLogging())
	s.applyLogOutput(svc.GetLogging())
	s.maxWait = time.Duration(svc.GetHttpServer().GetMaxShutdownWaitMs()) * time.Millisecond

	if want := listenAddrOf(svc); want != "" && !sameListenAddr(want, s.ln.Addr()) && want != s.warnedListen {
		s.warnedListen = want
		s.log.Warn().Str("snapshot_listen", want).Str("bound", s.ln.Addr().String()).
			Msg("snapshot asks for another listen address; the listener is bound once, restart the edge to move it")
	}

	m := svc.GetMetrics()
	s.statsServed.Store(m.GetEnabled() && !m.GetEndpointDisabled())
	s.stats.SetCollectionTime(time.Duration(m.GetCollectionTimeMs()) * time.Millisecond)
	if s.cfg.MetricsListen == "" {
		addr := ""
		if m.GetEnabled() {
			addr = m.GetListenAddress()
		}
		if err := s.setMetricsAddr(addr); err != nil {
			// A node-local problem (port taken): the plan is fine and stays.
			s.log.Error().Err(err).Msg("metrics listener not started")
		}
	}

	next := settingsOf(svc, s.cfg.Limits.withDefaults())
	if next == s.settings {
		return
	}
	s.settings = next
	if s.serving {
		s.startGenerationLocked()
	}
}

// applyLogOutput routes the edge's logs as telemetry/logging says (the
// process's own output when the snapshot has none), unless the operator
// pinned the format.
func (s *Server) applyLogOutput(l *gatewayv1.Logging) {
	if s.cfg.LogSink == nil || s.cfg.PinLogFormat {
		return
	}
	var set logsink.Settings
	if l != nil {
		set = logsink.Settings{Format: l.GetFormat(), Prefix: l.GetPrefix(), Stdout: l.GetStdout(),
			Syslog: l.GetSyslog(), Facility: l.GetSyslogFacility(), Level: l.GetLevel(), CustomFormat: l.GetCustomFormat(), Logstash: l.GetLogstash()}
		if set.Format == "" {
			set.Format = "default"
		}
	}
	if err := s.cfg.LogSink.Apply(set); err != nil {
		s.log.Error().Err(err).Msg("telemetry/logging output not applied; keeping the previous one")
	}
}

// applyLogLevel sets the edge's log level from telemetry/logging unless
// the operator pinned it.
func (s *Server) applyLogLevel(l *gatewayv1.Logging) {
	if s.cfg.PinLogLevel {
		return
	}
	if s.cfg.Level == nil {
		if l.GetLevel() != "" {
			s.log.Warn().Str("level", l.GetLevel()).Msg("snapshot logging level has no effect: this server was given no level to set")
		}
		return
	}
	level := s.baseLevel
	if name := l.GetLevel(); name != "" {
		parsed, err := zerolog.ParseLevel(normaliseLevel(name))
		if err != nil {
			s.log.Warn().Str("level", name).Msg("snapshot logging level not understood; keeping the default")
		} else {
			level = parsed
		}
	}
	if s.cfg.Level.Level() != level {
		s.cfg.Level.Set(level)
		s.log.Info().Str("level", level.String()).Msg("log level set from snapshot")
	}
}

// normaliseLevel maps KrakenD's level names onto zerolog's.
func normaliseLevel(name string) string {
	switch name {
	case "DEBUG", "Debug":
		return "debug"
	case "INFO", "Info":
		return "info"
	case "WARNING", "WARN", "warning", "Warning":
		return "warn"
	case "ERROR", "Error":
		return "error"
	case "CRITICAL", "critical", "Critical":
		return "fatal"
	}
	return name
}

// listenAddrOf is the address a snapshot would have the edge listen on.
func listenAddrOf(svc *gatewayv1.Service) string {
	if svc.GetPort() == 0 {
		return ""
	}
	return net.JoinHostPort(svc.GetListenIp(), strconv.FormatUint(uint64(svc.GetPort()), 10))
}

// ListenAddrOf is the address a snapshot asks the edge to listen on
// ("listen_ip:port"), or "" when it names no port.
func ListenAddrOf(snap *gatewayv1.Snapshot) string { return listenAddrOf(snap.GetService()) }

// sameListenAddr reports whether want (from a snapshot) names the bound
// address: same port, and the same IP unless want listens on every IP.
func sameListenAddr(want string, bound net.Addr) bool {
	wh, wp, err := net.SplitHostPort(want)
	if err != nil {
		return false
	}
	bh, bp, err := net.SplitHostPort(bound.String())
	if err != nil {
		return false
	}
	if wp != bp {
		return false
	}
	if wh == "" || wh == "0.0.0.0" || wh == "::" {
		return true
	}
	wip, bip := net.ParseIP(wh), net.ParseIP(bh)
	return wip != nil && bip != nil && wip.Equal(bip)
}

// Serve serves HTTP until ctx is done or Close is called, then shuts down
// gracefully: it stops accepting, lets requests in flight finish for up to
// the snapshot's max_shutdown_wait (0 waits for them however long they take),
// closes what is left and returns once every goroutine has exited. It can be
// called once.
func (s *Server) Serve(ctx context.Context) error {
	s.reconfMu.Lock()
	if s.serving || s.stopped {
		s.reconfMu.Unlock()
		return errors.New("serve: server already served or closed")
	}
	s.serving = true
	s.wg.Go(s.acceptLoop)
	s.startGenerationLocked()
	s.reconfMu.Unlock()

	select {
	case <-ctx.Done():
	case <-s.quit:
	}
	s.shutdown()
	return nil
}

// Close stops the server: it makes a running Serve shut down and return,
// or, when Serve never ran, releases the listeners. It blocks until every
// goroutine has exited. Close is idempotent.
func (s *Server) Close() error {
	s.quitOnce.Do(func() { close(s.quit) })
	s.reconfMu.Lock()
	serving := s.serving
	s.reconfMu.Unlock()
	if !serving {
		s.shutdown()
	}
	<-s.done
	return nil
}

// shutdown runs once, from Serve or from Close when Serve never ran.
func (s *Server) shutdown() {
	s.reconfMu.Lock()
	if s.stopped {
		s.reconfMu.Unlock()
		return
	}
	s.stopped = true
	s.serving = true // a later Serve must refuse
	gen, wait, ml := s.gen, s.maxWait, s.metricsLn
	s.gen, s.metricsLn = nil, nil
	if s.influx != nil {
		s.influx.Close()
		s.influx = nil
	}
	s.reconfMu.Unlock()
	defer close(s.done)
	defer s.stats.Close()
	defer func() {
		if g := s.gelf.Swap(nil); g != nil {
			if s.cfg.LogSink != nil {
				s.cfg.LogSink.SetGELF(nil)
			}
			g.Close()
		}
	}()

	// Stop accepting: the kernel refuses new connections from here on and
	// the accept loop exits.
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Warn().Err(err).Msg("close listener")
	}
	close(s.acceptStop)
	sctx, cancel := context.Background(), context.CancelFunc(func() {})
	if wait > 0 {
		sctx, cancel = context.WithTimeout(context.Background(), wait)
	}
	defer cancel()
	// When the deadline passes, old generations still draining are forced
	// too.
	stopForce := context.AfterFunc(sctx, s.forceDrains)
	defer stopForce()

	if gen != nil {
		s.drain(sctx, gen)
	}
	if ml != nil {
		ml.stop()
	}
	s.wg.Wait()
	s.forceDrains()

	// Nothing serves any more: let the last plan's upstream clients go.
	// Current keeps reporting what was served.
	s.reconfMu.Lock()
	st := s.cur.Load()
	if st.plan != nil {
		s.cur.Store(s.newState(nil, st.version, st.sha))
		st.plan.Release()
	}
	s.reconfMu.Unlock()
	if st.plan != nil {
		// No goroutine of the plan outlives the server: backend calls
		// still running (aggregate stragglers) end by their deadline.
		st.plan.Wait()
	}
}

// forceDrains makes every drain still running close its connections.
func (s *Server) forceDrains() { s.forceOnce.Do(func() { close(s.force) }) }

// drainContext bounds one drain of an old generation: the snapshot's
// max_shutdown_wait (none when 0), and the final shutdown deadline
// (forceDrains). The watcher goroutine is the server's and ends with ctx.
func (s *Server) drainContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	if s.maxWait > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), s.maxWait)
	}
	s.wg.Go(func() {
		select {
		case <-s.force:
			cancel()
		case <-ctx.Done():
		}
	})
	return ctx, cancel
}

// handle serves one request from the state current when it starts and
// writes its access-log line.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	if c, ok := ctx.Conn().(*h2cConn); ok && c.b.upgrade(ctx) {
		return // HTTP/1.1 "Upgrade: h2c": answered as HTTP/2 stream 1
	}
	st := s.cur.Load()
	if st.access == nil {
		s.serve(ctx, st, nil)
		s.count(ctx)
		return
	}
	e := st.access.Start(ctx.Path(), time.Now())
	s.serve(ctx, st, e)
	s.count(ctx)
	if e != nil {
		finishAccess(ctx, e)
	}
}

// count adds the answered request to the counters the edge reports on its
// control-plane stream (a canary is halted on their rate).
func (s *Server) count(ctx *fasthttp.RequestCtx) {
	s.answered.n.Add(1)
	if ctx.Response.StatusCode() >= 500 {
		s.serverErrors.n.Add(1)
	}
}

// Counters returns the responses served since the server started and how
// many of them had a 5xx status.
func (s *Server) Counters() (requests, errors uint64) {
	return s.answered.n.Load(), s.serverErrors.n.Load()
}

// paddedCounter keeps a counter every request bumps on its own cache line.
type paddedCounter struct {
	_ [64]byte
	n atomic.Uint64
	_ [56]byte
}

// finishAccess completes e from the answered request and writes it.
func finishAccess(ctx *fasthttp.RequestCtx, e *accesslog.Entry) {
	if len(e.ClientIP) == 0 {
		if a, ok := netip.AddrFromSlice(ctx.RemoteIP()); ok {
			e.ClientIP = a.Unmap().AppendTo(e.ClientIP[:0])
		}
	}
	size := len(ctx.Response.Body())
	if ctx.Response.IsBodyStream() {
		size = ctx.Response.Header.ContentLength()
	}
	r := accesslog.Request{
		Method:   ctx.Method(),
		Path:     ctx.Path(),
		Query:    ctx.URI().QueryString(),
		ClientIP: e.ClientIP,
		Status:   ctx.Response.StatusCode(),
		Bytes:    size,
		Complete: ctx.Response.Header.PeekBytes(hdrCompletedName),
		TraceID:  e.TraceID,
	}
	if len(r.TraceID) == 0 {
		// Not traced by the edge: the client's trace, if it sent one.
		r.TraceID = traceID(ctx.Request.Header.PeekBytes(hdrTraceparent))
	}
	e.Finish(&r, time.Now())
}

var (
	hdrCompletedName = []byte("X-Krakend-Completed")
	hdrTraceparent   = []byte("Traceparent")
)

// traceID returns the trace id of a W3C traceparent value
// ("00-<32 hex>-<16 hex>-<2 hex>"), nil when v is not one.
func traceID(v []byte) []byte {
	if len(v) < 55 || v[2] != '-' || v[35] != '-' {
		return nil
	}
	id := v[3:35]
	zero := true
	for _, c := range id {
		switch {
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'f':
		default:
			return nil
		}
		zero = zero && c == '0'
	}
	if zero {
		return nil
	}
	return id
}

// serve answers one request from st, filling e (when non-nil) for the
// access log.
func (s *Server) serve(ctx *fasthttp.RequestCtx, st *state, e *accesslog.Entry) {
	// The builtin routes' exact spellings are answered here; the others
	// (//__health, /__h%65alth, /__debug//x) go to the plan's router, which
	// routes them as KrakenD's gin engine does (plan.Builtin).
	if st.healthPath != "" && ctx.IsGet() && string(ctx.Path()) == st.healthPath && (st.plan == nil || plan.Verbatim(ctx)) {
		// KrakenD's health route is GET only (the plan answers other methods
		// 405) and, like every route, inside CORS.
		if st.plan != nil && st.plan.Guard(ctx, false) {
			return
		}
		writeHealth(ctx, st, s.cfg.Degraded, s.cfg.AgentPings)
		return
	}
	if serveTestHandlers(ctx, st) {
		return
	}
	if st.plan == nil {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetContentTypeBytes(contentTypeJSON)
		ctx.SetBody(bodyUnavailable)
		return
	}
	// plan.Serve recovers its own panics (and counts them in
	// gw_edge_panics_total): one recover, where the request state is.
	st.plan.ServeLogged(ctx, e, st.builtin)
}

// handleError answers requests fasthttp could not read, with fixed bodies.
func (s *Server) handleError(ctx *fasthttp.RequestCtx, err error) {
	ctx.SetContentTypeBytes(contentTypeText)
	ctx.SetConnectionClose()
	var small *fasthttp.ErrSmallBuffer
	var nerr net.Error
	switch {
	case errors.As(err, &small):
		ctx.SetStatusCode(fasthttp.StatusRequestHeaderFieldsTooLarge)
		ctx.SetBody(bodyHeaderTooBig)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		ctx.SetStatusCode(fasthttp.StatusRequestEntityTooLarge)
		ctx.SetBody(bodyTooLarge)
	case errors.As(err, &nerr) && nerr.Timeout():
		ctx.SetStatusCode(fasthttp.StatusRequestTimeout)
		ctx.SetBody(bodyRequestTimout)
	default:
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		ctx.SetBody(bodyBadRequest)
	}
}

// fasthttpLogger sends fasthttp's own messages (mostly clients going away)
// to the debug level.
type fasthttpLogger struct{ log zerolog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug().Msgf(format, args...)
}
