package plan

import (
	"context"
	"errors"
	"fmt"
	"github.com/apigw/gateway/proto/feature"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/apigw/gateway/edge/aggregate"
	"github.com/apigw/gateway/edge/auth"
	"github.com/apigw/gateway/edge/cel"
	"github.com/apigw/gateway/edge/lua"
	"github.com/apigw/gateway/edge/modifier"
	"github.com/apigw/gateway/edge/mq"
	"github.com/apigw/gateway/edge/proxy"
	"github.com/apigw/gateway/edge/qos"
	"github.com/apigw/gateway/edge/response"
	"github.com/apigw/gateway/edge/router"
	"github.com/apigw/gateway/edge/schema"
	"github.com/apigw/gateway/edge/security"
	"github.com/apigw/gateway/edge/stats"
	"github.com/apigw/gateway/edge/tlsconf"
	"github.com/apigw/gateway/edge/tracing"
	"github.com/apigw/gateway/proto/duration"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/proto/violation"
)

// SchemaVersion is the newest Snapshot.schema_version this edge serves.
const SchemaVersion uint32 = 1

// Version is the gateway version announced in X-KrakenD and User-Agent.
const Version = "apigw-1"

// DefaultTimeout applies when an endpoint carries no timeout (the control
// plane resolves it; this only guards hand-built snapshots).
const DefaultTimeout = 2 * time.Second

// SupportedFeatures lists the snapshot features this build can serve, sorted.
func SupportedFeatures() []string { return feature.All() }

// DefaultJWKSWait bounds how long Build waits for the first fetch of a JWKS
// no earlier plan used (Deps.JWKSWait).
const DefaultJWKSWait = 2 * time.Second

// Deps carries what outlives a single plan.
type Deps struct {
	Logger zerolog.Logger
	// Upstreams is the registry of upstream clients reused across plans;
	// nil makes Build create one owned by the plan (tests), closed with it.
	Upstreams *Upstreams
	// DisabledFeatures are features this edge refuses (test hook, version
	// skew); Build returns a *BuildError naming them.
	DisabledFeatures []string
	// Metrics receives the data-plane metrics; nil disables them.
	Metrics *Metrics
	// Resolver resolves sd: dns backends' SRV names and their targets;
	// nil means net.DefaultResolver (tests point it at their own DNS).
	Resolver *net.Resolver

	// Keys is the process-wide JWKS and validator registry (auth.NewKeys):
	// create it once per edge process and pass it to every Build, so a push
	// that keeps an endpoint's auth/validator keeps its keys and verified
	// tokens. nil makes Build create one owned by the plan (tests).
	Keys *auth.Keys
	// Revocations is the edge's revocation set (restored from edge/lkg,
	// fed by the sync stream). Every JWT endpoint checks it on
	// every request, and a successful Build applies the snapshot's
	// service.revoker to it. nil disables revocation; a snapshot with
	// service.revoker then fails to build.
	Revocations *auth.Revocations
	// QoS is the process-wide registry of rate limiters, circuit breakers,
	// HTTP caches and cluster rate-limit stores (qos.New): their state
	// survives swaps for unchanged routes and backends. nil makes Build
	// create one owned by the plan (tests).
	QoS *qos.Registry
	// JWKSWait bounds how long Build waits for the first fetch of a JWKS no
	// earlier plan used; 0 means DefaultJWKSWait. A JWKS that is not loaded
	// by then is not an error: its endpoints answer 401 until a background
	// fetch succeeds.
	JWKSWait time.Duration
	// Tracers is the process-wide registry of tracers
	// (telemetry/opentelemetry): a push with the same settings keeps the
	// exporters. nil makes Build create a tracer owned by the plan.
	Tracers *tracing.Registry
	// Stats is the process-wide telemetry/metrics registry (KrakenD's
	// /__stats); nil counts nothing.
	Stats *stats.Stats
	// Producers is the process-wide registry of AMQP producer connections
	// (backend/amqp/producer): a push that keeps a producer keeps its
	// connection. nil makes Build create one owned by the plan.
	Producers *mq.Producers
	// Consumers is the same for backend/amqp/consumer connections.
	Consumers *mq.Consumers
	// PubSub is the same for the backend/pubsub/* backends (its servers
	// are the process's NATS_SERVER_URL and RABBIT_SERVER_URL); nil: the
	// plan makes its own from the environment.
	PubSub *mq.PubSub
	// DebugEndpoint routes /__debug/* whatever the snapshot says
	// (`gw-edge run -d`), as the edge's server serves it.
	DebugEndpoint bool
}

// BuildError lists why a snapshot cannot be served: every violation Build
// found, not only the first. Its message is the one rendering of them (the
// edge's logs, NACK detail and gw-edge run all show it).
type BuildError struct{ Violations []*gatewayv1.FieldViolation }

func (e *BuildError) Error() string {
	if len(e.Violations) == 0 {
		return "build plan: snapshot cannot be served"
	}
	var b strings.Builder
	b.WriteString("build plan: ")
	for i, v := range e.Violations {
		if i > 0 {
			b.WriteString("; ")
		}
		if v.GetPath() != "" {
			b.WriteString(v.GetPath())
			b.WriteString(": ")
		}
		b.WriteString(v.GetKind())
		b.WriteString(": ")
		b.WriteString(v.GetDetail())
	}
	return b.String()
}

// builder accumulates violations while compiling a snapshot.
type builder struct {
	snap       *gatewayv1.Snapshot
	deps       Deps
	upstreams  *Upstreams
	keys       []clientIdentity                 // upstream leases taken, one per identity
	clients    map[clientIdentity]*proxy.Client // the clients of keys: backends with one identity share one
	created    map[clientIdentity]bool          // identities whose client this build created
	violations []*gatewayv1.FieldViolation
	labels     []labelUse // metric label values this build's children use

	// Long-lived state this build holds; handed to the Plan, or given back
	// when the build fails.
	authKeys   *auth.Keys
	ownKeys    bool
	jwksCtx    context.Context // bounds first JWKS fetches (jwksContext)
	jwksCancel context.CancelFunc
	validators []*auth.Validator
	signers    []*auth.Signer
	qosReg     *qos.Registry
	ownQoS     bool
	lease      *qos.Lease

	clientTLSDone bool
	clientTLSErr  bool
	clientTLSCfg  proxy.ClientTLS
	tracer        *tracing.Tracer                      // nil without telemetry/opentelemetry
	producers     mqRefs[*mq.Producers, *mq.Producer]  // from Deps.Producers, or a registry of its own
	consumers     mqRefs[*mq.Consumers, *mq.Consumer]  // from Deps.Consumers, or a registry of its own
	pubsubs       mqRefs[*mq.PubSub, *mq.PubSubClient] // from Deps.PubSub, or a registry of its own
	clientIP      *proxy.ClientIP                      // the plan's, for the rate-limit key check
	inAgent       bool                                 // compiling an async agent's pipe
}

// userAgent is the User-Agent of backend calls: KrakenD's router sets its
// own for endpoints; an agent's calls carry Go's client default, as
// KrakenD's do.
func (b *builder) userAgent() string {
	if b.inAgent {
		return "Go-http-client/1.1"
	}
	return "KrakenD Version " + Version
}

// clientIPTrusts reports whether router.trusted_proxies names a proxy.
func (b *builder) clientIPTrusts() bool { return b.clientIP != nil && b.clientIP.Trusts() }

// yieldEvery is how many endpoints Build compiles between yields of its
// goroutine: about 10 µs of work per endpoint (90 ms of CPU for 10,000),
// so well under a millisecond between yields.
const yieldEvery = 64

// MaxEndpoints is the most endpoints an edge builds from one snapshot.
const MaxEndpoints = 100_000

func (b *builder) violate(path string, kind violation.Kind, detail string) {
	b.violations = append(b.violations, &gatewayv1.FieldViolation{Path: path, Kind: kind.String(), Detail: detail})
}

// Build compiles a snapshot into an immutable Plan: the router table, every
// endpoint's pipe (upstream clients, request templates, formatters), the
// prebuilt header values and metric children. err is a *BuildError when
// the snapshot cannot be served; no upstream reference is kept then.
func Build(snap *gatewayv1.Snapshot, deps Deps) (*Plan, error) {
	if snap == nil {
		return nil, &BuildError{Violations: []*gatewayv1.FieldViolation{{Path: "", Kind: violation.Required.String(), Detail: "no snapshot"}}}
	}
	b := &builder{snap: snap, deps: deps, upstreams: deps.Upstreams,
		clients: map[clientIdentity]*proxy.Client{}, created: map[clientIdentity]bool{}}
	own := b.upstreams == nil
	if own {
		b.upstreams = NewUpstreams()
	}
	p, err := b.build()
	if b.jwksCancel != nil {
		b.jwksCancel()
	}
	if err != nil {
		b.upstreams.release(b.keys, b.created)
		if own {
			b.upstreams.Close()
		}
		b.releaseState()
		b.deps.Metrics.sweep(b.labels)
		return nil, err
	}
	b.deps.Metrics.hold(b.labels)
	p.metricsOwner, p.labels = b.deps.Metrics, b.labels
	p.upstreams, p.upstreamKeys = b.upstreams, b.keys
	if own {
		p.ownUpstreams = b.upstreams
	}
	p.validators, p.signers, p.lease = b.validators, b.signers, b.lease
	if b.ownKeys {
		p.ownKeys = b.authKeys
	}
	if b.ownQoS {
		p.ownQoS = b.qosReg
	}
	p.tracer, p.tracers = b.tracer, deps.Tracers
	if b.statsOn() != nil {
		p.stats = deps.Stats
	}
	p.producers, p.consumers, p.pubsubs = b.producers, b.consumers, b.pubsubs
	if deps.Revocations != nil {
		deps.Revocations.Configure(snap.GetService().GetRevoker())
	}
	return p, nil
}

// releaseState gives back the validators, the QoS lease and what the build
// created for itself (a failed build).
func (b *builder) releaseState() {
	releaseTracer(b.deps.Tracers, b.tracer)
	b.producers.release()
	b.consumers.release()
	b.pubsubs.release()
	for _, v := range b.validators {
		v.Close()
	}
	for _, s := range b.signers {
		s.Close()
	}
	if b.lease != nil {
		b.lease.Release()
	}
	if b.ownQoS {
		b.qosReg.Close()
	}
	if b.ownKeys {
		b.authKeys.Close()
	}
}

// keysRegistry returns Deps.Keys, or a registry owned by the plan.
func (b *builder) keysRegistry() (*auth.Keys, error) {
	if b.authKeys == nil {
		if b.deps.Keys != nil {
			b.authKeys = b.deps.Keys
		} else {
			k, err := auth.NewKeys(auth.KeysConfig{Logger: b.deps.Logger})
			if err != nil {
				return nil, err
			}
			b.authKeys, b.ownKeys = k, true
		}
	}
	return b.authKeys, nil
}

// qosLease returns the lease of this build on Deps.QoS (or on a registry
// owned by the plan).
func (b *builder) qosLease() (*qos.Lease, error) {
	if b.lease == nil {
		reg := b.deps.QoS
		if reg == nil {
			var err error
			if reg, err = qos.New(qos.Config{Logger: b.deps.Logger, OnBreakerStateChange: b.deps.Metrics.BreakerChanged}); err != nil {
				return nil, err
			}
			b.qosReg, b.ownQoS = reg, true
		}
		b.lease = reg.NewLease()
	}
	return b.lease, nil
}

func (b *builder) build() (*Plan, error) {
	snap := b.snap
	if v := snap.GetSchemaVersion(); v > SchemaVersion {
		b.violate("schema_version", violation.Unsupported, fmt.Sprintf("schema version %d is newer than this edge understands (%d)", v, SchemaVersion))
	}
	supported := SupportedFeatures()
	for i, f := range snap.GetFeatures() {
		switch {
		case !slices.Contains(supported, f):
			b.violate(fmt.Sprintf("features[%d]", i), violation.Unsupported, fmt.Sprintf("feature %q is not supported by this edge (supported: %s)", f, strings.Join(supported, ", ")))
		case slices.Contains(b.deps.DisabledFeatures, f):
			b.violate(fmt.Sprintf("features[%d]", i), violation.Unsupported, fmt.Sprintf("feature %q is disabled on this edge", f))
		}
	}

	svc := snap.GetService()
	rt := svc.GetRouter()
	p := &Plan{
		svc:            svc,
		log:            b.deps.Logger,
		returnErrorMsg: rt.GetReturnErrorMsg(),
		jsonErrors:     rt.GetJsonErrorBodies(),
		rawParams:      rt.GetDisablePathDecoding(),
	}
	if b.deps.Metrics != nil {
		p.metrics = b.deps.Metrics.unmatched
		p.rejections = b.deps.Metrics.rejections
		p.panics = b.deps.Metrics.panicCounter(panicRequest)
	}
	if !rt.GetDisableHealth() {
		p.healthPath = rt.GetHealthPath()
		if p.healthPath == "" {
			p.healthPath = DefaultHealthPath
		}
	}
	if len(rt.GetErrorBody_404()) > 0 {
		p.body404 = rt.GetErrorBody_404()
	}
	if len(rt.GetErrorBody_405()) > 0 {
		p.body405 = rt.GetErrorBody_405()
	}
	p.versionValue = []byte("Version " + Version)
	if rt.GetHideVersionHeader() {
		p.versionValue = []byte("Version undefined")
	}
	clientIP, err := proxy.NewClientIP(proxy.ClientIPConfig{
		ForwardedByClientIP: rt.GetForwardedByClientIp(),
		RemoteIPHeaders:     rt.GetRemoteIpHeaders(),
		TrustedProxies:      rt.GetTrustedProxies(),
	})
	if err != nil {
		b.violate("service.router.trusted_proxies", violation.Invalid, err.Error())
	}
	p.clientIP, b.clientIP = clientIP, clientIP
	if spec := svc.GetTls(); spec != nil {
		if p.tls, err = tlsconf.NewServer(spec, b.deps.Logger); err != nil {
			b.violateTLS(err)
		}
	}
	if svc.GetRevoker() != nil && b.deps.Revocations == nil {
		b.violate("service.extra_config.auth/revoker", violation.Unsupported, "this edge has no revocation set to enforce auth/revoker with")
	}
	// The edge's own bounds: a snapshot is checked by the control plane,
	// but an edge never allocates what a snapshot says without a ceiling.
	if rv := svc.GetRevoker(); rv.GetN() > auth.MaxRevocationN {
		b.violate("service.extra_config.auth/revoker.N", violation.Invalid, fmt.Sprintf("%d is above this edge's limit of %d", rv.GetN(), auth.MaxRevocationN))
	}
	if rv := svc.GetRevoker(); rv.GetP() != 0 && rv.GetP() < auth.MinRevocationP {
		b.violate("service.extra_config.auth/revoker.P", violation.Invalid, fmt.Sprintf("%g is below this edge's limit of %g", rv.GetP(), auth.MinRevocationP))
	}
	if n := len(snap.GetEndpoints()); n > MaxEndpoints {
		b.violate("endpoints", violation.TooMany, fmt.Sprintf("%d endpoints, this edge accepts at most %d", n, MaxEndpoints))
		return nil, &BuildError{Violations: b.violations}
	}
	if p.cors, err = security.NewCORS(svc.GetCors()); err != nil {
		b.violate("service.extra_config.security/cors", violation.Invalid, err.Error())
	}
	if p.secure, err = security.NewSecure(svc.GetSecurity()); err != nil {
		b.violate("service.extra_config.security/http", violation.Invalid, err.Error())
	}
	if p.bots, err = security.NewBotDetector(svc.GetBotDetector()); err != nil {
		b.violate("service.extra_config.security/bot-detector", violation.Invalid, err.Error())
	}
	if l := svc.GetLuaEndpoint(); l != nil {
		p.luaSvc = b.luaScript("service.extra_config.modifier/lua-endpoint", "service lua-endpoint", l)
	}

	if o := svc.GetOpentelemetry(); o != nil {
		var err error
		if b.deps.Tracers != nil {
			b.tracer, err = b.deps.Tracers.Acquire(o)
		} else {
			b.tracer, err = tracing.New(o, tracing.Options{Logger: b.deps.Logger, Version: Version})
		}
		if err != nil {
			b.violate("service.opentelemetry", violation.Invalid, err.Error())
		}
	}
	p.tracer = b.tracer

	routes := make([]router.Route, len(snap.GetEndpoints()))
	p.endpoints = make([]*endpoint, len(snap.GetEndpoints()))
	for i, e := range snap.GetEndpoints() {
		routes[i] = router.Route{Method: e.GetMethod(), Pattern: e.GetPath(), AllowMixed: e.GetDisableRest()}
	}
	builtin, kinds := builtinRoutes(p.healthPath, b.deps.DebugEndpoint || svc.GetDebugEndpoint(), svc.GetEchoEndpoint())
	routes = append(routes, builtin...)
	p.builtins = kinds
	table, err := router.New(router.Config{
		Routes:                 routes,
		RedirectTrailingSlash:  !rt.GetDisableRedirectTrailingSlash(),
		HandleMethodNotAllowed: !rt.GetDisableHandleMethodNotAllowed(),
		AutoOptions:            rt.GetAutoOptions(),
		RemoveExtraSlash:       rt.GetRemoveExtraSlash(),
		RedirectFixedPath:      !rt.GetDisableRedirectFixedPath(),
	})
	if err != nil {
		b.routeViolations(err)
	}
	p.table = table
	if table != nil {
		for i, e := range snap.GetEndpoints() {
			p.endpoints[i] = b.endpoint(i, e, table.ParamNames(i))
			if ep := p.endpoints[i]; ep != nil && ep.timeout > p.luaSvcTimeout {
				p.luaSvcTimeout = ep.timeout
			}
			if i%yieldEvery == yieldEvery-1 {
				// A build runs for a tenth of a second of CPU or more on a
				// goroutine the scheduler preempts only every 10 ms: a
				// request waking on a busy P would wait that long (the
				// swap's p99). Yielding lets it run within a millisecond;
				// a yield costs well under 1%.
				runtime.Gosched()
			}
		}
	}
	if p.luaSvcTimeout == 0 {
		p.luaSvcTimeout = 2 * time.Second // KrakenD's default endpoint timeout
	}
	p.agents = b.agents()
	if len(b.violations) > 0 {
		return nil, &BuildError{Violations: b.violations}
	}
	return p, nil
}

// violateTLS reports a TLS file that cannot be used, at the key naming it.
func (b *builder) violateTLS(err error) {
	var fe *tlsconf.FileError
	if errors.As(err, &fe) {
		b.violate("service."+fe.Path, violation.Invalid, err.Error())
		return
	}
	b.violate("service", violation.Invalid, err.Error())
}

// clientTLS loads the service's client_tls once per build; ok is false
// when it cannot be loaded (reported once).
func (b *builder) clientTLS() (proxy.ClientTLS, bool) {
	if !b.clientTLSDone {
		b.clientTLSDone = true
		cfg, key, err := tlsconf.NewClient(b.snap.GetService().GetHttpClient().GetTls())
		if err != nil {
			b.violateTLS(err)
			b.clientTLSErr = true
		}
		b.clientTLSCfg = proxy.ClientTLS{Config: cfg, Key: key}
	}
	return b.clientTLSCfg, !b.clientTLSErr
}

func (b *builder) routeViolations(err error) {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var re *router.RouteError
		if !errors.As(e, &re) {
			b.violate("endpoints", violation.Invalid, e.Error())
			continue
		}
		kind := violation.Invalid
		if errors.Is(re.Err, router.ErrDuplicate) {
			kind = violation.Duplicate
		}
		if re.Index >= len(b.snap.GetEndpoints()) {
			// A builtin route (builtin.go): the health path is the one
			// the snapshot chooses.
			b.violate("service.router.health_path", kind, fmt.Sprintf("%s %q: %v", re.Method, re.Pattern, re.Err))
			continue
		}
		b.violate(fmt.Sprintf("endpoints[%d].endpoint", re.Index), kind,
			fmt.Sprintf("%s %q: %v", re.Method, re.Pattern, re.Err))
	}
}

// graphQLConfig is the proxy form of a backend's backend/graphql; nil
// without it.
func graphQLConfig(g *gatewayv1.GraphQL, e *gatewayv1.Endpoint) *proxy.GraphQLConfig {
	if g == nil {
		return nil
	}
	return &proxy.GraphQLConfig{Mutation: g.GetMutation(), Get: g.GetGet(), Query: g.GetQuery(),
		OperationName: g.GetOperationName(), Variables: g.GetVariables(), Claims: urlPatternClaims(e)}
}

// urlPatternClaims lists the claims the url_patterns of e's backends name
// ({JWT.<claim>}): those krakend-jose exposes as request parameters.
func urlPatternClaims(e *gatewayv1.Endpoint) []string {
	var claims []string
	for _, be := range e.GetBackends() {
		rest := be.GetUrlPattern()
		for {
			i := strings.Index(rest, "{JWT.")
			if i < 0 {
				break
			}
			rest = rest[i+len("{JWT."):]
			j := strings.IndexByte(rest, '}')
			if j < 0 {
				break
			}
			if c := rest[:j]; !slices.Contains(claims, c) {
				claims = append(claims, c)
			}
			rest = rest[j+1:]
		}
	}
	return claims
}

// endpoint compiles one endpoint; problems become violations and nil.
func (b *builder) endpoint(i int, e *gatewayv1.Endpoint, params []string) *endpoint {
	return b.endpointAt(fmt.Sprintf("endpoints[%d]", i), e, params)
}

// endpointAt compiles the endpoint e found at path (an endpoint, or the
// pipe of an async agent).
func (b *builder) endpointAt(path string, e *gatewayv1.Endpoint, params []string) *endpoint {
	nviol := len(b.violations)
	svc := b.snap.GetService()
	ep := &endpoint{name: e.GetName(), route: e.GetPath(), timeout: duration.Join(e.GetTimeoutMs(), e.GetTimeoutNs())}
	if ep.timeout <= 0 {
		ep.timeout = DefaultTimeout
	}
	if ttl := time.Duration(e.GetCacheTtlMs()) * time.Millisecond; ttl.Seconds() != 0 {
		ep.cacheControl = []byte("public, max-age=" + strconv.Itoa(int(ttl.Seconds())))
	}
	if e.GetCatchAll() != strings.HasSuffix(e.GetPath(), "/*") {
		b.violate(path+".endpoint", violation.Invalid, "catch_all must be set exactly when the path ends with /*")
	}
	out, err := response.ParseOutput(e.GetOutputEncoding())
	if err != nil {
		b.violate(path+".output_encoding", violation.Unsupported, err.Error())
	}
	ep.output = out
	if b.tracer != nil && !b.tracer.Skipped(e.GetPath()) {
		base := []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(e.GetMethod()), semconv.HTTPRoute(e.GetPath())}
		ep.trace = b.tracer.Layer(e.GetTrace(), e.GetMetrics(), "proxy", "", base, base...)
		ep.proxySpan = b.tracer.ProxySpanName(e.GetPath())
		ep.serverSpan = b.tracer.ServerSpanName(e.GetName(), e.GetPath())
	}
	if m := b.statsOn(); m != nil {
		if !m.GetRouterDisabled() {
			ep.routeStats = b.deps.Stats.Route(e.GetPath())
		}
		if !m.GetProxyDisabled() {
			ep.pipeStats = b.deps.Stats.Layer("pipe", e.GetPath())
		}
	}
	b.endpointAuth(path, e, ep)
	b.endpointSigner(path, e, ep)
	b.endpointRateLimit(path, e, ep, params)
	if ep.bots, err = security.NewBotDetector(e.GetBotDetector()); err != nil {
		b.violate(path+".extra_config.security/bot-detector", violation.Invalid, err.Error())
	}
	if ep.schema, err = schema.New(e.GetJsonSchema()); err != nil {
		b.violate(path+".extra_config.validation/json-schema", violation.Invalid, err.Error())
	}
	if ep.cel, err = cel.New(e.GetCel()); err != nil {
		b.violate(path+".extra_config.validation/cel", violation.Invalid, err.Error())
	}
	ep.celIn = celInbound(e, params)

	var answering []aggregate.Backend
	var shadows []aggregate.Shadow
	var calls []*proxy.Backend
	var formats []*response.Formatter
	for j, be := range e.GetBackends() {
		bpath := fmt.Sprintf("%s.backend[%d]", path, j)
		call := b.backendCall(bpath, e, be, params)
		if be.GetShadow() {
			if be.GetCel() != nil {
				b.violate(bpath+".extra_config.validation/cel", violation.Unsupported, "not supported on a shadow backend")
				continue
			}
			if call != nil {
				timeout := duration.Join(be.GetShadowTimeoutMs(), be.GetShadowTimeoutNs())
				if timeout <= 0 {
					timeout = ep.timeout
				}
				shadows = append(shadows, aggregate.Shadow{Call: call, Timeout: timeout})
			}
			continue
		}
		f, err := response.NewFormatter(be)
		if err != nil {
			b.violate(bpath, violation.Invalid, err.Error())
			continue
		}
		calls, formats = append(calls, call), append(formats, f)
		ab := aggregate.Backend{
			Call:            call,
			Format:          f,
			ReturnErrorCode: be.GetReturnErrorCode(),
			MaxBodySize:     int(svc.GetMaxBodyBytes()),
			ErrPrefix:       "[" + be.GetMethod() + " " + krakendPattern(be.GetUrlPattern()) + "]:",
		}
		if alias := be.GetReturnErrorDetails(); alias != "" {
			ab.ErrorDetailsKey = "error_" + alias
		}
		if l := be.GetLuaBackend(); l != nil {
			ab.Lua = b.luaScript(bpath+".extra_config.modifier/lua-backend", be.GetName()+" lua-backend", l)
		}
		ab.Errors = b.deps.Metrics.backend(be.GetName(), b.deps.Logger)
		ab.Latency = b.deps.Metrics.backendLatency(be.GetName())
		b.labels = append(b.labels, labelUse{backend: true, name: be.GetName()})
		answering = append(answering, ab)
	}
	if len(b.violations) > nviol {
		return nil
	}
	if len(answering) == 0 {
		b.violate(path+".backend", violation.Required, "an endpoint needs at least one non-shadow backend")
		return nil
	}
	ep.shadows = shadows
	ep.backends = len(answering)
	ep.metrics = b.deps.Metrics.endpoint(e.GetName())
	b.labels = append(b.labels, labelUse{name: e.GetName()})

	noOpBackends := 0
	for _, f := range formats {
		if f.NoOp() {
			noOpBackends++
		}
	}
	if l := e.GetLuaEndpoint(); l != nil {
		ep.luaEP = b.luaScript(path+".extra_config.modifier/lua-endpoint", e.GetName()+" lua-endpoint", l)
	}
	ep.paramNames = params
	var proxyLua *lua.Script
	if l := e.GetLuaProxy(); l != nil {
		proxyLua = b.luaScript(path+".extra_config.modifier/lua-proxy", e.GetName()+" lua-proxy", l)
	}
	if len(b.violations) > nviol {
		return nil
	}
	switch {
	case out == response.OutputNoOp || (noOpBackends > 0 && len(answering) == 1):
		// KrakenD: a no-op pipe passes one backend's response through
		// untouched. (A no-op backend among several contributes no data to
		// the merge: aggregate.)
		if len(answering) != 1 {
			b.violate(path+".backend", violation.TooMany, "a no-op endpoint (output_encoding or backend encoding no-op) takes exactly one backend")
			return nil
		}
		if chk, _ := calls[0].CEL(); chk != nil || ep.cel.HasResponse() {
			b.violate(path+".extra_config.validation/cel", violation.Unsupported,
				"a no-op endpoint streams its response: only endpoint-level request expressions run there")
			return nil
		}
		if proxyLua != nil || answering[0].Lua != nil || ep.luaEP != nil {
			b.violate(path, violation.Unsupported, "modifier/lua-* on a no-op pass-through endpoint is not supported")
			return nil
		}
		ep.noop = calls[0]
		ep.noopErrors = answering[0].Errors
		return ep
	}

	var static *response.Static
	if st := e.GetStatic(); st != nil {
		static, err = response.NewStatic(st)
		if err != nil {
			b.violate(path+".extra_config.proxy.static", violation.Invalid, err.Error())
			return nil
		}
	}
	var flat *response.Flatmap
	if len(e.GetFlatmap()) > 0 {
		flat, err = response.NewFlatmap(e.GetFlatmap())
		if err != nil {
			b.violate(path+".extra_config.proxy.flatmap_filter", violation.Invalid, err.Error())
			return nil
		}
	}
	pipe, err := aggregate.New(aggregate.Config{
		Backends:        answering,
		Shadows:         shadows,
		Sequential:      e.GetSequential(),
		ConcurrentCalls: int(e.GetConcurrentCalls()),
		Timeout:         ep.timeout,
		Flatmap:         flat,
		Static:          static,
		Raw:             out == response.OutputJSON && len(answering) == 1 && formats[0].Identity() && ep.signer == nil,
		Panics:          b.deps.Metrics.panicCounter(panicBackendCall),
		Lua:             proxyLua,
		ParamNames:      params,
		Propagated:      aggregate.ParsePropagated(e.GetSequentialPropagatedParams(), len(answering)),
	})
	if err != nil {
		b.violate(path, violation.Invalid, err.Error())
		return nil
	}
	ep.pipe = pipe
	ep.nullBody = out == response.OutputJSON && len(answering) == 1 && static == nil && flat == nil && producerOnly(e)
	return ep
}

// backendCall compiles the request side of one backend and takes a
// reference on its upstream client.
func (b *builder) backendCall(path string, e *gatewayv1.Endpoint, be *gatewayv1.Backend, params []string) *proxy.Backend {
	svc := b.snap.GetService()
	hc := svc.GetHttpClient()
	if be.GetAmqpProducer() != nil {
		return b.producerCall(path, e, be, params)
	}
	if be.GetAmqpConsumer() != nil {
		return b.consumerCall(path, e, be, params)
	}
	if be.GetPubsub() != nil {
		return b.pubSubCall(path, e, be, params)
	}
	if len(be.GetHosts()) == 0 {
		b.violate(path+".host", violation.Required, "no host for this backend (neither backend nor service host)")
		return nil
	}
	ccfg := proxy.ClientConfig{
		Hosts:               be.GetHosts(),
		MaxConns:            max(proxy.DefaultMaxConns, int(hc.GetMaxIdleConnectionsPerHost())),
		MaxIdleConnDuration: duration.Join(hc.GetIdleConnectionTimeoutMs(), hc.GetIdleConnectionTimeoutNs()),
		DialTimeout:         duration.Join(hc.GetDialerTimeoutMs(), hc.GetDialerTimeoutNs()),
		DialerKeepAlive:     time.Duration(hc.GetDialerKeepAliveMs()) * time.Millisecond,
		DialerFallbackDelay: time.Duration(hc.GetDialerFallbackDelayMs()) * time.Millisecond,
		ResponseTimeout:     duration.Join(hc.GetResponseHeaderTimeoutMs(), hc.GetResponseHeaderTimeoutNs()),
		MaxResponseBodySize: int(svc.GetMaxBodyBytes()),
		DisableKeepAlives:   hc.GetDisableKeepAlives(),
		InsecureSkipVerify:  hc.GetAllowInsecureConnections(),
		DisableCompression:  hc.GetDisableCompression(),
	}
	if be.GetSd() == "dns" {
		ccfg.SD = proxy.SD{Name: be.GetHosts()[0], Scheme: be.GetSdScheme(),
			TTL: time.Duration(hc.GetDnsCacheTtlMs()) * time.Millisecond, Resolver: b.deps.Resolver}
	}
	tlsCfg, ok := b.clientTLS()
	if !ok {
		return nil
	}
	ccfg.TLS = tlsCfg
	if err := ccfg.Validate(); err != nil {
		b.violate(path+".host", violation.Invalid, err.Error())
		return nil
	}
	client, ok := b.client(path, ccfg)
	if !ok {
		return nil
	}
	method := be.GetMethod()
	if method == "" {
		method = e.GetMethod()
	}
	guard, ok := b.backendQoS(path, e, be)
	if !ok {
		return nil
	}
	mod, err := modifier.New(be.GetMartian(), modifier.WithMaxBodyBytes(int(svc.GetMaxBodyBytes())))
	if err != nil {
		b.violate(path+".extra_config.modifier/martian", violation.Invalid, err.Error())
		return nil
	}
	checks, ok := b.backendCEL(path, be)
	if !ok {
		return nil
	}
	call, err := proxy.NewBackend(proxy.BackendConfig{
		Name:            be.GetName(),
		Client:          client,
		Method:          method,
		URLPattern:      be.GetUrlPattern(),
		ParamNames:      params,
		CatchAll:        e.GetCatchAll(),
		Sequential:      e.GetSequential(),
		EndpointHeaders: e.GetInputHeaders(),
		BackendHeaders:  be.GetInputHeaders(),
		EndpointQuery:   e.GetInputQueryStrings(),
		BackendQuery:    be.GetInputQueryStrings(),
		UserAgent:       b.userAgent(),
		Breaker:         guard.breaker,
		Limiter:         guard.limiter,
		Cache:           guard.cache,
		Modifier:        mod,
		Reroutes:        be.GetLuaBackend().GetPre() != "", // url() may name another host
		CEL:             checks,
		CELParams:       celParamNames(params),

		SendBodyOnRedirect: be.GetSendBodyOnRedirect(),
		Trace:              b.backendTrace(e, be),
		Stats:              b.backendStats(be),
		GraphQL:            graphQLConfig(be.GetGraphql(), e),
	})
	if err != nil {
		b.violate(path+".url_pattern", violation.Invalid, err.Error())
		return nil
	}
	return call
}

// client returns the upstream client for cfg: the one this build already
// holds for the same transport settings, or one leased from the registry
// (one lease per identity and plan). Backends share it; what is theirs
// alone (name, metrics, breaker, rate limit) lives in their proxy.Backend.
func (b *builder) client(path string, cfg proxy.ClientConfig) (*proxy.Client, bool) {
	key := identityOf(cfg)
	if c, ok := b.clients[key]; ok {
		return c, true
	}
	c, created, err := b.upstreams.acquire(key, cfg)
	if created {
		b.created[key] = true
	}
	if err != nil {
		b.violate(path+".host", violation.Invalid, err.Error())
		return nil, false
	}
	b.keys = append(b.keys, key)
	b.clients[key] = c
	return c, true
}

// backendCEL compiles a backend's validation/cel (nil without it); false
// when it does not compile (a violation is recorded).
func (b *builder) backendCEL(path string, be *gatewayv1.Backend) (*cel.Checks, bool) {
	checks, err := cel.New(be.GetCel())
	if err != nil {
		b.violate(path+".extra_config.validation/cel", violation.Invalid, err.Error())
		return nil, false
	}
	return checks, true
}

// statsOn returns the snapshot's telemetry/metrics when the edge counts
// KrakenD's stats for it, else nil.
func (b *builder) statsOn() *gatewayv1.Metrics {
	if m := b.snap.GetService().GetMetrics(); m.GetEnabled() && b.deps.Stats != nil {
		return m
	}
	return nil
}

// backendStats is a backend's telemetry/metrics series ("backend" layer,
// named by its url_pattern as in krakend-metrics); nil when not counted.
func (b *builder) backendStats(be *gatewayv1.Backend) *stats.Layer {
	if m := b.statsOn(); m != nil && !m.GetBackendDisabled() {
		return b.deps.Stats.Layer("backend", be.GetUrlPattern())
	}
	return nil
}

// backendTrace prepares a backend's tracing layer: nil without a tracer,
// for a skipped endpoint (skip_paths) or with layers.backend.traces
// disable_stage.
func (b *builder) backendTrace(e *gatewayv1.Endpoint, be *gatewayv1.Backend) *tracing.Layer {
	if b.tracer == nil || b.tracer.Skipped(e.GetPath()) {
		return nil
	}
	base := []attribute.KeyValue{
		semconv.HTTPRoute(be.GetUrlPattern()),
		attribute.String("krakend.endpoint.route", e.GetPath()),
		attribute.String("krakend.endpoint.method", e.GetMethod()),
	}
	mbase := append([]attribute.KeyValue{semconv.HTTPRequestMethodKey.String(be.GetMethod())}, base...)
	return b.tracer.Layer(be.GetTrace(), be.GetMetrics(), "backend", be.GetUrlPattern(), mbase, base...)
}

// releaseTracer gives a tracer back to its registry, or shuts down one the
// plan owned.
func releaseTracer(reg *tracing.Registry, t *tracing.Tracer) {
	switch {
	case t == nil:
	case reg != nil:
		reg.Release(t)
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = t.Shutdown(ctx)
		cancel()
	}
}

// celInbound prepares the endpoint's req_* settings for validation/cel.
func celInbound(e *gatewayv1.Endpoint, params []string) cel.Inbound {
	in := cel.Inbound{ParamNames: celParamNames(params), UserAgent: "KrakenD Version " + Version}
	for _, h := range e.GetInputHeaders() {
		if h == "*" {
			in.AllHeaders = true
		}
	}
	if !in.AllHeaders {
		in.HeaderNames = e.GetInputHeaders()
		if len(in.HeaderNames) == 0 {
			in.HeaderNames = []string{"Content-Type"} // lura's default
		}
	}
	for _, q := range e.GetInputQueryStrings() {
		if q == "*" {
			in.AllQuery = true
		}
	}
	if !in.AllQuery {
		in.QueryNames = e.GetInputQueryStrings()
	}
	return in
}

// celParamNames are lura's parameter names: the first letter upper-cased
// ({id} is req_params.Id).
func celParamNames(params []string) []string {
	out := make([]string, len(params))
	for i, n := range params {
		if n != "" {
			out[i] = strings.ToUpper(n[:1]) + n[1:]
		}
	}
	return out
}

// luaScript compiles one modifier/lua-* stage; name is its log name.
func (b *builder) luaScript(path, name string, l *gatewayv1.LuaScript) *lua.Script {
	cfg := lua.Config{
		Name:          name,
		Pre:           l.GetPre(),
		Post:          l.GetPost(),
		AllowOpenLibs: l.GetAllowOpenLibs(),
		SkipNext:      l.GetSkipNext(),
		UserAgent:     "KrakenD Version " + Version,
		Log:           b.deps.Logger,
	}
	for _, s := range l.GetSources() {
		cfg.Sources = append(cfg.Sources, lua.Source{Name: s.GetName(), Text: s.GetText()})
	}
	s, err := lua.New(cfg)
	if err != nil {
		b.violate(path, violation.Invalid, err.Error())
		return nil
	}
	return s
}

// producerOnly reports whether e's only answering backend is an AMQP
// producer or a Pub/Sub publisher.
func producerOnly(e *gatewayv1.Endpoint) bool {
	n, producer := 0, false
	for _, be := range e.GetBackends() {
		if be.GetShadow() {
			continue
		}
		n++
		producer = be.GetAmqpProducer() != nil || (be.GetPubsub() != nil && !be.GetPubsub().GetSubscriber())
	}
	return n == 1 && producer
}
