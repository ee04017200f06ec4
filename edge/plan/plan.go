// Package plan compiles a Snapshot into an immutable Plan and serves
// requests from it.
//
// Build does all the preparation off the request path: the router table,
// one compiled pipe per endpoint (upstream clients from the Upstreams
// registry, request templates with parameter slots, response formatters
// from edge/response), the protection layers (JWT validators from
// auth.Keys, rate limiters, circuit breakers and HTTP caches from the QoS
// registry, CORS and security headers, martian modifiers, JSON schemas),
// header values as ready-made []byte, metric label children. It reports
// everything it cannot serve as a *BuildError with field violations, so
// the edge can NACK a snapshot and keep its old plan.
//
// Serve answers one request, in KrakenD's layer order: CORS (every path,
// before routing) → security/http → route (404, 405 with Allow,
// trailing-slash redirect, automatic OPTIONS) → JWT (401/403, claims
// propagated into the request headers and {JWT.claim} placeholders) →
// router rate limit (429 client, then 503 global) → JSON schema (400) →
// the endpoint pipe (edge/proxy for a no-op pass-through, edge/aggregate
// otherwise), where each backend call goes through its circuit breaker,
// backend rate limit, martian modifiers and HTTP cache → render by
// output_encoding and set X-KrakenD, X-KrakenD-Completed and
// Cache-Control. It never panics and never writes an internal error
// text: failures get fixed bodies.
//
// State that must outlive a plan (upstream pools, JWKS keys and verified
// tokens, rate-limit buckets, breaker states, caches) lives in registries
// passed through Deps and keyed by identity + settings: a push leaves the
// state of unchanged routes as it was and resets changed ones.
//
// A Plan is immutable once built and safe for concurrent use: a server
// holds the current one in an atomic.Pointer and each request uses the plan
// it loaded at its start.
//
// plan imports edge/router, edge/proxy, edge/aggregate, edge/response, edge/lua,
// edge/auth, edge/qos, edge/security, edge/modifier and edge/schema; it
// must not import edge/server, edge/watch or anything from the control
// plane.
package plan

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net/url"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/apigw/gateway/edge/accesslog"
	"github.com/apigw/gateway/edge/aggregate"
	"github.com/apigw/gateway/edge/auth"
	"github.com/apigw/gateway/edge/cel"
	"github.com/apigw/gateway/edge/lua"
	"github.com/apigw/gateway/edge/mq"
	"github.com/apigw/gateway/edge/proxy"
	"github.com/apigw/gateway/edge/qos"
	"github.com/apigw/gateway/edge/qos/ratelimit"
	"github.com/apigw/gateway/edge/response"
	"github.com/apigw/gateway/edge/router"
	"github.com/apigw/gateway/edge/schema"
	"github.com/apigw/gateway/edge/security"
	"github.com/apigw/gateway/edge/stats"
	"github.com/apigw/gateway/edge/tlsconf"
	"github.com/apigw/gateway/edge/tracing"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Fixed bodies: a client never sees an error text of ours.
var (
	bodyBadRequest       = []byte(`{"error":"bad_request"}`)
	bodyNotFound         = []byte(`{"error":"not_found"}`)
	bodyMethodNotAllowed = []byte(`{"error":"method_not_allowed"}`)
	bodyInternal         = []byte(`{"error":"internal"}`)
	bodyNull             = []byte("null")
)

// Header names and values, written as KrakenD writes them on the wire (Go
// canonical form).
var (
	hdrXKrakenD     = []byte("X-Krakend")
	hdrCompleted    = []byte("X-Krakend-Completed")
	nameXKrakenD    = string(hdrXKrakenD)
	nameCompleted   = string(hdrCompleted)
	hdrCacheControl = []byte("Cache-Control")
	hdrAllow        = []byte("Allow")
	hdrLocation     = []byte("Location")
	valTrue         = []byte("true")
	valFalse        = []byte("false")
	contentTypeJSON = []byte("application/json")
	rawContentType  = []byte(response.ContentTypeJSON)
)

// DefaultHealthPath is where the edge answers health checks when the
// snapshot names no other path, and while no plan is loaded (the edge's one
// copy of KrakenD's /__health).
const DefaultHealthPath = "/__health"

// Plan serves requests from one snapshot. It is immutable and safe for
// concurrent use.
type Plan struct {
	svc            *gatewayv1.Service
	log            zerolog.Logger
	table          *router.Table
	endpoints      []*endpoint // indexed like the router routes
	builtins       []Builtin   // the router routes after the endpoints' (builtin.go)
	agents         []*Agent    // the snapshot's async agents, in order
	clientIP       *proxy.ClientIP
	cors           *security.CORS        // security/cors, before routing; nil: none
	secure         *security.Secure      // security/http, before routing; nil: none
	bots           *security.BotDetector // service security/bot-detector; nil: none
	luaSvc         *lua.Script           // service modifier/lua-endpoint; nil: none
	luaSvcTimeout  time.Duration         // its deadline off a route: the longest endpoint timeout
	healthPath     string
	versionValue   []byte // X-KrakenD value
	returnErrorMsg bool
	jsonErrors     bool // apigw/errors json: our JSON error bodies
	rawParams      bool // router.disable_path_decoding: no param check
	body404        []byte
	body405        []byte
	metrics        endpointMetrics // unmatched requests
	rejections     rejectionMetrics
	panics         prometheus.Counter // nil without metrics
	metricsOwner   *Metrics           // the Metrics labels are held on
	labels         []labelUse
	tls            *tlsconf.Server // service tls; nil: plain HTTP

	upstreams    *Upstreams
	upstreamKeys []clientIdentity
	validators   []*auth.Validator
	signers      []*auth.Signer
	lease        *qos.Lease
	tracer       *tracing.Tracer                     // nil: no telemetry/opentelemetry
	stats        *stats.Stats                        // telemetry/metrics' router connections; nil: not counted
	tracers      *tracing.Registry                   // where tracer goes back on Release; nil: owned
	producers    mqRefs[*mq.Producers, *mq.Producer] // given back on Release
	consumers    mqRefs[*mq.Consumers, *mq.Consumer]
	pubsubs      mqRefs[*mq.PubSub, *mq.PubSubClient]
	ownKeys      *auth.Keys    // created by Build when Deps.Keys was nil
	ownQoS       *qos.Registry // created by Build when Deps.QoS was nil
	ownUpstreams *Upstreams    // created by Build when Deps.Upstreams was nil
	releaseOnce  sync.Once
}

// endpoint is one compiled endpoint.
type endpoint struct {
	name         string
	route        string // the endpoint pattern, for the access log
	backends     int    // answering backends, for the access log
	timeout      time.Duration
	cacheControl []byte // nil without cache_ttl
	output       response.Output
	noop         *proxy.Backend                      // set for a no-op pass-through endpoint
	noopErrors   [proxy.NumReasons]aggregate.Counter // indexed by failure reason
	shadows      []aggregate.Shadow                  // fired by the no-op path (the pipe fires its own)
	pipe         *aggregate.Pipe                     // every other endpoint
	// nullBody: the only answering backend is an AMQP producer, whose
	// success KrakenD renders as JSON null (a response without data).
	nullBody bool
	metrics  endpointMetrics

	trace *tracing.Layer // the proxy layer's spans; nil: none
	// routeStats and pipeStats are the endpoint's telemetry/metrics series
	// (router and proxy layers); nil: not counted.
	routeStats *stats.Route
	pipeStats  *stats.Layer
	proxySpan  string // "proxy <route>" ("pipe-<route>" with telemetry/opencensus)
	serverSpan string // the server span's name once routed

	jwt     *auth.Validator       // auth/validator, nil for a public endpoint
	signer  *auth.Signer          // auth/signer, nil without
	schema  *schema.Validator     // validation/json-schema, nil without schema
	bots    *security.BotDetector // endpoint security/bot-detector, nil without
	cel     *cel.Checks           // endpoint validation/cel, nil without
	celIn   cel.Inbound           // the req_* settings (names, lists) for cel
	limiter *ratelimit.Router     // qos/ratelimit/router, nil without limit
	keyKind clientKeyKind         // where the limiter's client key comes from
	keyName []byte                // header name (keyHeader, keyIPHeader)
	keySlot int                   // parameter slot (keyParam)

	luaEP      *lua.Script // modifier/lua-endpoint, nil without
	paramNames []string    // router slot names, for the ctx object of Lua
}

// Protected reports whether some endpoint validates JWTs (and so depends
// on the revocation set).
func (p *Plan) Protected() bool { return len(p.validators) > 0 }

// HealthPath returns the health check path, "" when health is disabled.
func (p *Plan) HealthPath() string { return p.healthPath }

// Service returns the service settings (listener, logging, metrics).
func (p *Plan) Service() *gatewayv1.Service { return p.svc }

// TLS returns the configuration of the edge's listener when the service
// enables tls, or nil for plain HTTP (and for a nil Plan).
func (p *Plan) TLS() *tlsconf.Server {
	if p == nil {
		return nil
	}
	return p.tls
}

// Release tells the registries this plan's state may go: upstream clients
// and QoS components (rate limiters, breakers, caches) close after their
// grace period unless a newer plan uses them, and JWT validators are closed
// (their shared keys and token cache live on while a newer plan's
// validator with the same settings holds them). Requests still running on
// the plan keep working. Release is idempotent.
func (p *Plan) Release() {
	p.releaseOnce.Do(func() {
		p.upstreams.release(p.upstreamKeys, nil)
		for _, v := range p.validators {
			v.Close()
		}
		for _, s := range p.signers {
			s.Close()
		}
		if p.lease != nil {
			p.lease.Release()
		}
		if p.ownQoS != nil {
			p.ownQoS.Close()
		}
		if p.ownKeys != nil {
			p.ownKeys.Close()
		}
		if p.ownUpstreams != nil {
			p.ownUpstreams.Close()
		}
		p.metricsOwner.drop(p.labels)
		releaseTracer(p.tracers, p.tracer)
		p.producers.release()
		p.consumers.release()
		p.pubsubs.release()
	})
}

// Wait blocks until every backend call goroutine of the plan has returned,
// the stragglers of aggregated endpoints included (each ends by its call
// deadline). Call it after Release, once no request is served from p.
func (p *Plan) Wait() {
	for _, ep := range p.endpoints {
		if ep != nil && ep.pipe != nil {
			ep.pipe.Wait()
		}
	}
	for _, a := range p.agents {
		if a.ep.pipe != nil {
			a.ep.pipe.Wait()
		}
	}
}

// reqState is the pooled per-request scratch of Serve.
type reqState struct {
	params router.Params
	in     proxy.Inbound
	buf    []byte // Allow, Location, Retry-After and X-RateLimit-* values
	route  []byte // the path routed on, when it is not ctx.Path() (routePath)
	sig    []byte // auth/signer's token
	ipKey  []byte // the rate-limit client address read from a header
	claims tokenClaims
	limit  ratelimit.Decision // the router rate limit's decision
	log    *accesslog.Entry   // nil without an access log
	trace  tracing.Request
	celIn  cel.Inbound // validation/cel's req_* source
	celAt  time.Time   // validation/cel's now, once per request
}

var statePool = sync.Pool{New: func() any { return new(reqState) }}

// Serve answers one request. It never panics: a bug on the request path
// answers the fixed 500 body. ctx is not retained after Serve returns.
func (p *Plan) Serve(ctx *fasthttp.RequestCtx) { p.ServeLogged(ctx, nil, nil) }

// ServeLogged is Serve filling e (when non-nil) with what the access log
// needs from the plan: the route, its backend count and the backend errors.
// A request routed to a builtin route goes to builtin (a nil builtin
// answers 404 for them).
func (p *Plan) ServeLogged(ctx *fasthttp.RequestCtx, e *accesslog.Entry, builtin BuiltinFunc) {
	st := statePool.Get().(*reqState)
	st.log = e
	defer p.finish(ctx, st)
	p.tracer.Start(&st.trace, ctx)
	// KrakenD's order: CORS wraps the whole router (so preflights are
	// answered for every path, known or not); security/http (host check,
	// HTTPS redirect, security headers) is the first gin middleware, so it
	// runs for matched routes and the 404/405 handlers but not for gin's
	// redirects, nor for the health route registered before it.
	if p.cors.Handle(ctx) {
		p.metrics.observe(ctx.Response.StatusCode(), -1)
		return
	}
	path := routePath(ctx, &st.route)
	res := p.table.Lookup(ctx.Method(), path, &st.params)
	bi := BuiltinNone
	if res.Kind == router.Found {
		bi = p.builtinAt(res.Route)
	}
	if res.Kind != router.Redirect && bi != BuiltinHealth && p.secure.Handle(ctx) {
		p.metrics.observe(ctx.Response.StatusCode(), -1)
		return
	}
	// The service's Lua and bot detector are gin middleware in KrakenD (in
	// that order): they run for matched routes and the 404/405 handlers,
	// not for redirects, nor for the builtin routes registered before them
	// (Lua: all; the bot detector: the health route).
	if p.luaSvc != nil && res.Kind != router.Redirect && bi == BuiltinNone && !p.serviceLua(ctx, res, st) {
		p.metrics.observe(ctx.Response.StatusCode(), -1)
		return
	}
	if res.Kind != router.Redirect && bi != BuiltinHealth && p.bots.Handle(ctx) {
		p.rejections.bot()
		p.metrics.observe(ctx.Response.StatusCode(), -1)
		return
	}
	switch res.Kind {
	case router.Found:
		if bi != BuiltinNone {
			if builtin == nil {
				p.notFound(ctx)
				break
			}
			builtin(ctx, bi)
			return
		}
		ep := p.endpoints[res.Route]
		if ep.routeStats == nil {
			p.serveEndpoint(ctx, ep, st)
			return
		}
		start := time.Now()
		connectionStats(p.stats, ctx)
		p.serveEndpoint(ctx, ep, st)
		ep.routeStats.Observe(ctx.Response.StatusCode(), len(ctx.Response.Body()), start)
		p.stats.Disconnection()
		return
	case router.Redirect:
		st.buf = append(st.buf[:0], res.Location...)
		if qs := ctx.URI().QueryString(); len(qs) > 0 {
			st.buf = append(append(st.buf, '?'), qs...)
		}
		ctx.Response.Header.SetCanonical(hdrLocation, st.buf)
		ctx.SetStatusCode(res.Code)
		if ctx.IsGet() || ctx.IsHead() {
			// Go's http.Redirect, which gin calls: a tiny HTML body for GET.
			ctx.SetContentTypeBytes(contentTypeHTML)
			if ctx.IsGet() {
				st.buf = appendRedirectBody(st.buf[:0], st.buf, res.Code)
				ctx.SetBody(st.buf)
			}
		}
	case router.Options:
		if p.healthPath != "" && string(path) == p.healthPath {
			// auto_options adds OPTIONS to the endpoints, not to the
			// health route: gin's 405.
			p.writeMethodNotAllowed(ctx, allowGet)
			break
		}
		st.buf = p.table.AppendAllow(st.buf[:0], res.Allowed)
		ctx.Response.Header.SetCanonical(hdrAllow, st.buf)
		ctx.Response.Header.SetCanonical(hdrXKrakenD, p.versionValue)
		ctx.SetStatusCode(fasthttp.StatusOK)
	case router.MethodNotAllowed:
		st.trace.Unrouted(true)
		p.methodNotAllowed(ctx, st, res.Allowed)
	default:
		st.trace.Unrouted(false)
		p.notFound(ctx)
	}
	p.metrics.observe(ctx.Response.StatusCode(), -1)
}

// connectionStats counts the request's connection in telemetry/metrics,
// with its TLS version and cipher suite over TLS. It reads them from the
// *tls.Conn itself: fasthttp's TLSConnectionState returns a pointer to a
// copy of the state, one heap allocation per request. A connection
// wrapped in a way that hides its *tls.Conn takes that path still.
func connectionStats(s *stats.Stats, ctx *fasthttp.RequestCtx) {
	if tc, ok := ctx.Conn().(*tls.Conn); ok {
		cs := tc.ConnectionState()
		s.ConnectionTLS(cs.Version, cs.CipherSuite)
		return
	}
	if !ctx.IsTLS() {
		s.Connection()
		return
	}
	cs := ctx.TLSConnectionState()
	s.ConnectionTLS(cs.Version, cs.CipherSuite)
}

// Guard runs, for a request to one of the gateway's own routes (the
// health check, or /__debug/ and /__echo/ when debug is set), the
// service layers KrakenD puts around it, and reports whether one of them
// answered: CORS wraps every route; security/http and the bot detector
// are gin middleware added after the health route, so they guard the
// debug and echo routes only.
func (p *Plan) Guard(ctx *fasthttp.RequestCtx, debug bool) (done bool) {
	if p.cors.Handle(ctx) {
		return true
	}
	if !debug {
		return false
	}
	if p.secure.Handle(ctx) {
		return true
	}
	if p.bots.Handle(ctx) {
		p.rejections.bot()
		return true
	}
	return false
}

// GuardCORS runs only the CORS layer, as KrakenD does for gin's
// trailing-slash redirects (answered before any gin middleware).
func (p *Plan) GuardCORS(ctx *fasthttp.RequestCtx) (done bool) { return p.cors.Handle(ctx) }

// routePath is the path gin routes on: the request's path percent-decoded
// but not normalized. fasthttp's Path() also collapses repeated slashes and
// resolves dot elements, which gin leaves to its fixed-path redirect
// (`//users` → 301 `/users`, or a 404 where that is off) and to
// RemoveExtraSlash. A path with neither is ctx.Path() itself.
func routePath(ctx *fasthttp.RequestCtx, buf *[]byte) []byte {
	raw := ctx.URI().PathOriginal()
	if len(raw) == 0 || raw[0] != '/' ||
		bytes.IndexByte(raw, '%') < 0 && !bytes.Contains(raw, doubleSlash) && !bytes.Contains(raw, slashDot) {
		return ctx.Path()
	}
	*buf = appendPathUnescaped((*buf)[:0], raw)
	if !bytes.Contains(*buf, doubleSlash) && !bytes.Contains(*buf, slashDot) {
		return ctx.Path()
	}
	return *buf
}

var (
	doubleSlash = []byte("//")
	slashDot    = []byte("/.")
)

// appendPathUnescaped decodes %XX escapes as fasthttp does for a path
// (an invalid escape stays as it is; '+' is kept).
func appendPathUnescaped(dst, src []byte) []byte {
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c == '%' && i+2 < len(src) {
			hi, ok1 := unhex(src[i+1])
			lo, ok2 := unhex(src[i+2])
			if ok1 && ok2 {
				dst = append(dst, hi<<4|lo)
				i += 2
				continue
			}
		}
		dst = append(dst, c)
	}
	return dst
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// finish recovers from a panic (last line of defence) and pools st.
func (p *Plan) finish(ctx *fasthttp.RequestCtx, st *reqState) {
	if r := recover(); r != nil {
		if p.panics != nil {
			p.panics.Inc()
		}
		p.log.Error().Interface("panic", r).Bytes("path", ctx.Path()).Bytes("stack", debug.Stack()).
			Msg("plan: request handler panicked")
		ctx.Response.Reset()
		p.writeError(ctx, fasthttp.StatusInternalServerError, bodyInternal)
		// st may be inconsistent: let the GC have it.
		return
	}
	if st.trace.Traced() {
		st.trace.End(ctx)
		if e := st.log; e != nil {
			e.TraceID = append(e.TraceID[:0], st.trace.TraceID()...)
		}
		st.trace.Reset()
	}
	st.in.Clear()
	st.params.Reset()
	st.claims.tok = nil
	st.limit = ratelimit.Decision{}
	st.log = nil
	st.celAt = time.Time{}
	if cap(st.buf) > 4<<10 {
		st.buf = nil
	}
	statePool.Put(st)
}

func writeFixed(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentTypeBytes(contentTypeJSON)
	ctx.SetBody(body)
}

// paramError returns the answer of KrakenD's param checker (skipped with
// router.disable_path_decoding) for a parameter that still holds
// percent-encoding after the path was decoded, or '?' or '#': the text
// lura writes, nil when every parameter is fine.
func paramError(ps *router.Params) []byte {
	for i := 0; i < ps.Len(); i++ {
		v := ps.Value(i)
		if !bytes.ContainsAny(v, "%?#") {
			continue
		}
		if bytes.IndexByte(v, '%') >= 0 {
			if _, err := url.PathUnescape(string(v)); err != nil {
				return []byte("error: " + err.Error())
			}
		}
		return textEncodedParams
	}
	return nil
}

var textEncodedParams = []byte("error: encoded url params")

// checkParams runs KrakenD's param checker unless the router disabled it.
func (p *Plan) checkParams(ps *router.Params) []byte {
	if p.rawParams || ps.Len() == 0 {
		return nil
	}
	return paramError(ps)
}

func (p *Plan) serveEndpoint(ctx *fasthttp.RequestCtx, ep *endpoint, st *reqState) {
	start := time.Now()
	// KrakenD's outermost endpoint wrapper: a bot gets its empty 403
	// before X-KrakenD, the parameter check or any other stage.
	if ep.bots.Handle(ctx) {
		p.rejections.bot()
		ep.metrics.observe(ctx.Response.StatusCode(), time.Since(start).Seconds())
		return
	}
	if msg := p.checkParams(&st.params); msg != nil {
		if p.jsonErrors {
			writeFixed(ctx, fasthttp.StatusBadRequest, bodyBadRequest)
		} else {
			ctx.SetStatusCode(fasthttp.StatusBadRequest)
			ctx.SetContentTypeBytes(contentTypeTextUTF8)
			ctx.SetBody(msg)
		}
		ep.metrics.observe(fasthttp.StatusBadRequest, time.Since(start).Seconds())
		return
	}
	if e := st.log; e != nil {
		e.Route, e.Backends = ep.route, ep.backends
	}
	in := &st.in
	in.Reset(&ctx.Request, &st.params)
	if st.trace.Traced() {
		in.Trace = &st.trace
		st.trace.SetRoute(ep.serverSpan, ep.route)
		st.trace.SetOpenCensusRoute(ep.trace)
	}
	in.ClientIP = p.clientIP.Append(in.ClientIP[:0], ctx.RemoteIP(), &ctx.Request.Header)
	if e := st.log; e != nil {
		e.ClientIP = append(e.ClientIP[:0], in.ClientIP...)
	}
	if ep.signer == nil {
		// krakend-jose's signer replaces lura's endpoint handler, which is
		// what sets X-KrakenD.
		ctx.Response.Header.SetCanonical(hdrXKrakenD, p.versionValue)
	}

	// KrakenD's endpoint handler chain: JWT, then the router rate limit (so
	// the header strategy sees propagated claims), then the proxy's JSON
	// schema check.
	if (ep.jwt != nil && !p.authenticate(ctx, ep, st)) || (ep.luaEP != nil && !p.luaEndpoint(ctx, ep, st)) ||
		(ep.limiter != nil && !p.rateLimit(ctx, ep, st)) ||
		(ep.cel != nil && !p.celRequest(ctx, ep, st)) || (ep.schema != nil && !p.validate(ctx, ep, st)) {
		ep.metrics.observe(ctx.Response.StatusCode(), time.Since(start).Seconds())
		return
	}

	st.trace.StartProxy(ep.trace, ep.proxySpan, &ctx.Request.Header)
	var pipeStart time.Time
	if ep.pipeStats != nil {
		pipeStart = time.Now()
	}
	if ep.noop != nil {
		p.serveNoOp(ctx, ep, in, st, start)
		ok := ctx.Response.StatusCode() < 400
		st.trace.EndProxy(ok, 0)
		ep.pipeStats.Observe(pipeStart, ok, !ok)
	} else {
		ex := ep.pipe.Acquire()
		r := ex.Run(in, start)
		st.trace.EndProxy(r.Complete, r.Failed)
		ep.pipeStats.Observe(pipeStart, r.Complete, r.Failed > 0)
		if ep.cel.HasResponse() && !r.Errored && !p.celResponse(ctx, ep, st, r) {
			ex.Release()
			ep.metrics.observe(ctx.Response.StatusCode(), time.Since(start).Seconds())
			return
		}
		if ep.signer != nil {
			p.writeSigned(ctx, ep, st, ex, r)
		} else {
			p.write(ctx, ep, st, ex, r)
			if ep.nullBody && r.Complete {
				ctx.SetBody(bodyNull)
			}
		}
		ex.Release()
		if bytes.Equal(ctx.Response.Header.PeekBytes(hdrCompleted), valFalse) {
			ep.metrics.observeIncomplete()
		}
	}
	if ep.limiter != nil {
		setRateHeaders(ctx, st)
	}
	ep.metrics.observe(ctx.Response.StatusCode(), time.Since(start).Seconds())
}

// serveNoOp passes a single backend's response through: status, headers
// (minus hop-by-hop) and body, never decoded; X-KrakenD-Completed is always
// false, as in KrakenD (the body is not inspected).
func (p *Plan) serveNoOp(ctx *fasthttp.RequestCtx, ep *endpoint, in *proxy.Inbound, st *reqState, start time.Time) {
	for i := range ep.shadows {
		ep.shadows[i].Call.Shadow(in, ep.shadows[i].Timeout)
	}
	if err := ep.noop.ServeNoOp(ctx, in, start.Add(ep.timeout)); err != nil {
		if c := ep.noopErrors[proxy.ReasonOf(err)]; c != nil {
			c.Inc()
		}
		var ce *proxy.CallError
		if e := st.log; e != nil {
			if errors.As(err, &ce) {
				e.Errors = proxy.AppendCallError(e.Errors[:0], ce.Method, ce.URL, ce.Err)
			} else {
				e.Errors = append(e.Errors[:0], err.Error()...)
			}
		}
		switch {
		case err == proxy.ErrOpen:
			p.serviceUnavailable(ctx, st, ep.noop.RetryAfter())
		case p.returnErrorMsg && !p.jsonErrors && errors.Is(err, ratelimit.ErrLimited):
			ctx.SetStatusCode(fasthttp.StatusInternalServerError)
			ctx.SetContentTypeBytes(contentTypeTextUTF8)
			st.buf = proxy.AppendCallError(st.buf[:0], nil, nil, err)
			ctx.SetBody(st.buf)
		case p.returnErrorMsg && !p.jsonErrors && errors.As(err, &ce):
			ctx.SetStatusCode(fasthttp.StatusInternalServerError)
			ctx.SetContentTypeBytes(contentTypeTextUTF8)
			st.buf = proxy.AppendCallError(st.buf[:0], ce.Method, ce.URL, ce.Err)
			ctx.SetBody(st.buf)
		default:
			p.writeError(ctx, fasthttp.StatusInternalServerError, bodyInternal)
		}
	}
	// X-KrakenD was set before the call unless a signer owns the endpoint.
	own := 0
	if ep.signer == nil {
		own = 1
	}
	st.buf = prependHeader(&ctx.Response.Header, hdrXKrakenD, nameXKrakenD, p.versionValue, own, st.buf)
	st.buf = prependHeader(&ctx.Response.Header, hdrCompleted, nameCompleted, valFalse, 0, st.buf)
}

// prependHeader makes own the first value of header key (name: the same as
// a string), the backend's values after it. KrakenD sets its X-KrakenD
// headers and then adds the no-op backend's, so when the backend is itself
// a gateway the client gets both values of each, the outer gateway's first
// (what Header.Get reads); we send the same. The first skip values are ours
// already. buf is scratch, returned for reuse.
func prependHeader(h *fasthttp.ResponseHeader, key []byte, name string, own []byte, skip int, buf []byte) []byte {
	vals := h.PeekAll(name)
	if len(vals) <= skip {
		h.SetCanonical(key, own)
		return buf
	}
	// The backend's values, each ended by '\n' (never inside a value):
	// they alias the header, which SetCanonical rewrites.
	buf = buf[:0]
	for _, v := range vals[skip:] {
		buf = append(append(buf, v...), '\n')
	}
	h.SetCanonical(key, own) // drops every earlier value
	addLines(h, key, buf)
	return buf
}

// addLines adds one header key: value per '\n'-ended line of lines.
func addLines(h *fasthttp.ResponseHeader, key, lines []byte) {
	for len(lines) > 0 {
		i := bytes.IndexByte(lines, '\n')
		h.AddBytesKV(key, lines[:i])
		lines = lines[i+1:]
	}
}

// write renders a pipe result like lura's endpoint handler: no data means
// an error status (500, or the backend's with return_error_code); data
// means 200, complete only when every backend answered and the data is not
// empty.
func (p *Plan) write(ctx *fasthttp.RequestCtx, ep *endpoint, st *reqState, ex *aggregate.Exchange, r *aggregate.Result) {
	if e := st.log; e != nil && !r.Complete {
		e.Errors = ex.AppendErrorText(e.Errors[:0])
	}
	if !r.HasData() {
		if r.Recovered {
			// gin's Recovery of KrakenD's panic: status only.
			ctx.SetStatusCode(fasthttp.StatusInternalServerError)
			ctx.Response.Header.SetNoDefaultContentType(true)
			return
		}
		ctx.Response.Header.SetCanonical(hdrCompleted, valFalse)
		if r.Unavailable {
			p.serviceUnavailable(ctx, st, r.RetryAfter)
			return
		}
		if r.Status != 0 {
			ctx.SetStatusCode(r.Status)
			ctx.Response.Header.SetNoDefaultContentType(true)
			if p.returnErrorMsg {
				if len(r.ErrContentType) > 0 {
					ctx.SetContentTypeBytes(r.ErrContentType)
				}
				ctx.SetBody(r.ErrBody)
			}
			return
		}
		if p.returnErrorMsg && !p.jsonErrors {
			// KrakenD's error text (router.return_error_msg).
			ctx.SetStatusCode(fasthttp.StatusInternalServerError)
			ctx.SetContentTypeBytes(contentTypeTextUTF8)
			st.buf = ex.AppendErrorText(st.buf[:0])
			ctx.SetBody(st.buf)
			return
		}
		p.writeError(ctx, fasthttp.StatusInternalServerError, bodyInternal)
		return
	}
	var complete bool
	if r.Raw != nil {
		complete = r.Complete && !emptyObject(r.Raw)
		ctx.SetContentTypeBytes(rawContentType)
		ctx.SetBody(r.Raw)
	} else {
		complete = r.Complete && nonEmpty(r)
		body, ct := ex.Scratch().Render(ep.output, r.Value, ctx.Request.Header.Peek("Accept"))
		ctx.SetContentType(ct)
		ctx.SetBody(body)
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	for k, vs := range r.Headers {
		// Headers a Lua script set (lura's Response.Metadata.Headers).
		for _, v := range vs {
			ctx.Response.Header.Add(k, v)
		}
	}
	if complete {
		ctx.Response.Header.SetCanonical(hdrCompleted, valTrue)
		if ep.cacheControl != nil {
			ctx.Response.Header.SetCanonical(hdrCacheControl, ep.cacheControl)
		}
		return
	}
	ctx.Response.Header.SetCanonical(hdrCompleted, valFalse)
}

// writeSigned answers like krakend-jose's signer handler, which replaces
// lura's endpoint handler: any backend failure is an empty 400; otherwise
// each keys_to_sign field holding an object becomes its JWS (a missing key
// set or kid is KrakenD's empty 401), and the data is written as gin's
// c.JSON does, status 200, without X-KrakenD, X-KrakenD-Completed or
// Cache-Control, whatever output_encoding says.
func (p *Plan) writeSigned(ctx *fasthttp.RequestCtx, ep *endpoint, st *reqState, ex *aggregate.Exchange, r *aggregate.Result) {
	if e := st.log; e != nil && !r.Complete {
		e.Errors = ex.AppendErrorText(e.Errors[:0])
	}
	if r.Failed > 0 || r.Unavailable || !r.HasData() {
		writeEmpty(ctx, fasthttp.StatusBadRequest)
		return
	}
	s := ex.Scratch()
	if o, err := r.Value.Object(); err == nil {
		for _, k := range ep.signer.Fields() {
			f := o.Get(k)
			if f == nil || f.Type() != fastjson.TypeObject {
				continue
			}
			st.buf, _ = response.Render(st.buf[:0], response.OutputJSON, f, nil)
			tok, err := ep.signer.Sign(st.sig[:0], st.buf)
			st.sig = tok
			if err != nil {
				if e := st.log; e != nil {
					e.Errors = append(e.Errors[:0], err.Error()...)
				}
				if errors.Is(err, auth.ErrNoSigningKey) {
					writeEmpty(ctx, fasthttp.StatusUnauthorized)
				} else {
					writeEmpty(ctx, fasthttp.StatusBadRequest)
				}
				return
			}
			o.Set(k, s.NewString(tok))
		}
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	if r.Value.Type() == fastjson.TypeNull {
		// lura's nil Data, which gin's c.JSON writes as null.
		ctx.SetContentTypeBytes(rawContentType)
		ctx.SetBodyString("null")
		return
	}
	body, ct := s.Render(response.OutputJSON, r.Value, nil)
	ctx.SetContentType(ct)
	ctx.SetBody(body)
}

// writeEmpty answers status with no body and no Content-Type (gin's
// AbortWithStatus).
func writeEmpty(ctx *fasthttp.RequestCtx, status int) {
	ctx.SetStatusCode(status)
	ctx.Response.ResetBody()
	ctx.Response.Header.SetNoDefaultContentType(true)
	ctx.Response.Header.DelBytes(hdrXKrakenD)
}

// nonEmpty mirrors lura's len(response.Data) > 0.
func nonEmpty(r *aggregate.Result) bool {
	o, err := r.Value.Object()
	return err == nil && o.Len() > 0
}

// emptyObject reports whether a valid JSON object is {} (whitespace allowed).
func emptyObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	if len(b) < 2 || b[0] != '{' {
		return false
	}
	return len(bytes.TrimSpace(b[1:len(b)-1])) == 0
}
