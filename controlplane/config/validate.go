package config

import (
	"math"
	"net"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apigw/gateway/internal/gologfmt"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Accepted values, in the order they are listed to the user.
var (
	endpointMethods  = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}
	outputEncodings  = []string{"json", "json-collection", "string", "no-op", "negotiate", "xml", "yaml"}
	backendEncodings = []string{"json", "safejson", "string", "no-op", "xml", "rss"}
	staticStrategies = []string{"always", "success", "complete", "errored", "incomplete"}
	flatmapTypes     = []string{"move", "del", "append"}
	logFormats       = []string{"default", "logstash", "custom"}
	sdNames          = []string{"static", "dns"}
	sdSchemes        = []string{"http", "https"}
	// logLevels maps KrakenD (go-logging) levels to zerolog levels.
	logLevels = map[string]string{
		"DEBUG":    "debug",
		"INFO":     "info",
		"WARNING":  "warn",
		"ERROR":    "error",
		"CRITICAL": "error",
	}
	logLevelNames = []string{"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
)

const (
	encodingNoOp = "no-op"
	// maxConcurrentCalls bounds concurrent_calls: each call is a full
	// upstream request, so large values multiply backend load.
	maxConcurrentCalls = 10
)

var (
	// placeholder is KrakenD's url_pattern placeholder syntax.
	placeholder = regexp.MustCompile(`\{([\w\-\.:/]+)\}`)
	// respPlaceholder is a sequential-proxy reference to an earlier backend:
	// {resp0_field} or {resp0_a.b}.
	respPlaceholder = regexp.MustCompile(`^resp(\d+)_(.+)$`)
	// propagatedParam is an entry of sequential_propagated_params:
	// resp0_field, or resp0 alone for the raw body.
	propagatedParam = regexp.MustCompile(`^resp(\d+)(_.+)?$`)
)

// Validate checks a decoded configuration (normally after [Defaults]) and
// returns every violation, sorted by path and capped at [MaxViolations]. It
// never stops at the first problem. Besides values it checks references
// (url_pattern placeholders against endpoint parameters and earlier
// sequential backends, hosts against the service host list) and route
// conflicts in the same pass.
func Validate(s *Service) []*gatewayv1.FieldViolation {
	if s == nil {
		return []*gatewayv1.FieldViolation{{Kind: KindRequired, Detail: "no configuration"}}
	}
	return finish(validate(s), s.positions)
}

func validate(s *Service) []*gatewayv1.FieldViolation {
	v := &validator{s: s}
	v.service()
	var routes routeTable
	for i, e := range s.Endpoints {
		if e != nil {
			v.endpoint(path("endpoints").index(i), i, e, &routes)
		}
	}
	v.agents()
	v.warnDNSCacheTTL()
	return v.vs.list
}

// validator walks one Service.
type validator struct {
	s  *Service
	vs violations
	// shared is the first shared qos/http-cache met, nil before.
	shared *sharedCache
}

func (v *validator) healthPath() string {
	r := v.s.ExtraConfig.Router
	if r == nil {
		return DefaultHealthPath
	}
	if r.DisableHealth {
		return ""
	}
	return r.HealthPath
}

func (v *validator) service() {
	s := v.s
	switch {
	case s.Version == nil:
		v.vs.add("version", KindRequired, "version is required; this gateway reads KrakenD configuration version 3")
	case *s.Version != 3:
		v.vs.add("version", KindUnsupported, "version %d is not supported; allowed: 3", *s.Version)
	}
	if s.Port < 1 || s.Port > 65535 {
		v.vs.add("port", KindInvalid, "%d: must be between 1 and 65535", s.Port)
	}
	if s.ListenIP != "" {
		if _, err := netip.ParseAddr(s.ListenIP); err != nil {
			v.vs.add("listen_ip", KindInvalid, "%q is not an IP address", s.ListenIP)
		}
	}
	if s.Timeout != nil {
		v.positive("timeout", *s.Timeout)
	}
	if s.CacheTTL != nil {
		v.nonNegative("cache_ttl", *s.CacheTTL)
	}
	v.oneOf("output_encoding", s.OutputEncoding, outputEncodings)
	for i, h := range s.Host {
		if h == "" {
			v.vs.add(path("host").index(i), KindInvalid, "empty host")
		}
	}
	for _, d := range []struct {
		name  path
		value time.Duration
	}{
		{"read_timeout", s.ReadTimeout},
		{"write_timeout", s.WriteTimeout},
		{"idle_timeout", s.IdleTimeout},
		{"read_header_timeout", s.ReadHeaderTimeout},
		{"max_shutdown_wait_time", s.MaxShutdownWaitTime},
		{"idle_connection_timeout", s.IdleConnectionTimeout},
		{"response_header_timeout", s.ResponseHeaderTimeout},
		{"expect_continue_timeout", s.ExpectContinueTimeout},
		{"dialer_timeout", s.DialerTimeout},
		{"dialer_keep_alive", s.DialerKeepAlive},
		{"dialer_fallback_delay", s.DialerFallbackDelay},
		{"dns_cache_ttl", s.DNSCacheTTL},
	} {
		v.nonNegative(d.name, d.value)
	}
	for _, n := range []struct {
		name  path
		value int64
	}{
		{"max_header_bytes", s.MaxHeaderBytes},
		{"max_idle_connections", s.MaxIdleConnections},
		{"max_idle_connections_per_host", s.MaxIdleConnectionsPerHost},
	} {
		if n.value < 0 {
			v.vs.add(n.name, KindInvalid, "%d: must not be negative", n.value)
		}
	}
	x := path("extra_config")
	if r := s.ExtraConfig.Router; r != nil {
		v.router(x.key("router"), r)
	}
	if l := s.ExtraConfig.Logging; l != nil {
		v.logging(x.key("telemetry/logging"), l)
	}
	if m := s.ExtraConfig.Metrics; m != nil {
		v.metrics(x.key("telemetry/metrics"), m)
	}
	if o := s.ExtraConfig.OpenTelemetry; o != nil {
		v.openTelemetry(x.key("telemetry/opentelemetry"), o)
	}
	if g := s.ExtraConfig.GELF; g != nil {
		v.gelf(x.key("telemetry/gelf"), g)
	}
	if i := s.ExtraConfig.Influx; i != nil {
		v.influx(x.key("telemetry/influx"), i)
	}
	if oc := s.ExtraConfig.OpenCensus; oc != nil {
		v.openCensus(x.key("telemetry/opencensus"), oc)
	}
	if j := s.ExtraConfig.JWT; j != nil {
		v.serviceJWT(x.key("auth/validator"), j)
	}
	if r := s.ExtraConfig.Revoker; r != nil {
		v.revoker(x.key("auth/revoker"), r)
	}
	if c := s.ExtraConfig.ClusterRateLimit; c != nil {
		v.clusterRateLimit(x.key("qos/ratelimit/cluster"), c)
	}
	if c := s.ExtraConfig.CORS; c != nil {
		v.cors(x.key("security/cors"), c)
	}
	if sh := s.ExtraConfig.Security; sh != nil {
		v.securityHTTP(x.key("security/http"), sh)
	}
	if b := s.ExtraConfig.BotDetector; b != nil {
		v.botDetector(x.key("security/bot-detector"), b)
	}
	if l := s.ExtraConfig.LuaEndpoint; l != nil {
		v.lua(x.key("modifier/lua-endpoint"), l)
	}
}

func (v *validator) router(p path, r *Router) {
	if r.HealthPath != "" && (!strings.HasPrefix(r.HealthPath, "/") || strings.ContainsAny(r.HealthPath, "{}*?# \t\r\n")) {
		v.vs.add(p.field("health_path"), KindInvalid, "%q: must start with \"/\" and be a plain path", r.HealthPath)
	}
	for i, sp := range r.LoggerSkipPaths {
		if !strings.HasPrefix(sp, "/") {
			v.vs.add(p.field("logger_skip_paths").index(i), KindInvalid, "%q: must start with \"/\"", sp)
		}
	}
	v.headerNames(p.field("remote_ip_headers"), r.RemoteIPHeaders, false)
	for i, tp := range r.TrustedProxies {
		_, perr := netip.ParsePrefix(tp)
		_, aerr := netip.ParseAddr(tp)
		if perr != nil && aerr != nil {
			v.vs.add(p.field("trusted_proxies").index(i), KindInvalid, "%q is neither an IP address nor a CIDR prefix", tp)
		}
	}
}

func (v *validator) logging(p path, l *Logging) {
	if _, ok := logLevels[strings.ToUpper(l.Level)]; !ok {
		v.vs.unsupportedValue(p.field("level"), l.Level, logLevelNames)
	}
	v.oneOf(p.field("format"), l.Format, logFormats)
	if l.Format == "custom" {
		// KrakenD does not start with a pattern go-logging refuses.
		if _, err := gologfmt.Parse(l.CustomFormat); err != nil {
			v.vs.add(p.field("custom_format"), KindInvalid, "format custom needs a go-logging pattern (%%{time} %%{level} %%{message}...): %v", err)
		}
	}
}

func (v *validator) metrics(p path, m *Metrics) {
	v.nonNegative(p.field("collection_time"), m.CollectionTime)
	host, port, err := net.SplitHostPort(m.ListenAddress)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n < 0 || n > 65535 {
		v.vs.add(p.field("listen_address"), KindInvalid, "%q: want [host]:port", m.ListenAddress)
		return
	}
	if int64(n) == v.s.Port && (host == "" || v.s.ListenIP == "" || host == v.s.ListenIP) {
		v.vs.add(p.field("listen_address"), KindDuplicate, "%q: the service already listens on port %d", m.ListenAddress, n)
	}
}

func (v *validator) endpoint(p path, index int, e *Endpoint, routes *routeTable) {
	r := v.parseRoute(p.field("endpoint"), e.Endpoint, v.s.DisableRest)
	methodOK := v.endpointMethod(p.field("method"), e.Method)
	if r.ok && methodOK {
		if prev, dup := routes.conflict(e.Method, r, index); dup {
			other := v.s.Endpoints[prev]
			if other.Endpoint == e.Endpoint {
				v.vs.add(p.field("endpoint"), KindDuplicate, "%s %s is also declared by endpoints[%d]", e.Method, e.Endpoint, prev)
			} else {
				v.vs.add(p.field("endpoint"), KindDuplicate,
					"%s %s conflicts with endpoints[%d] (%s %s): parameters match by position, so both match the same requests",
					e.Method, e.Endpoint, prev, other.Method, other.Endpoint)
			}
		}
	}

	if e.ConcurrentCalls != nil {
		switch n := *e.ConcurrentCalls; {
		case n < 1:
			v.vs.add(p.field("concurrent_calls"), KindInvalid, "%d: must be at least 1", n)
		case n > maxConcurrentCalls:
			v.vs.add(p.field("concurrent_calls"), KindTooMany, "%d: at most %d concurrent calls are allowed", n, maxConcurrentCalls)
		}
	}
	if e.Timeout != nil {
		v.positive(p.field("timeout"), *e.Timeout)
	}
	if e.CacheTTL != nil {
		v.nonNegative(p.field("cache_ttl"), *e.CacheTTL)
	}
	v.headerNames(p.field("input_headers"), e.InputHeaders, true)
	v.nonEmpty(p.field("input_query_strings"), e.InputQueryStrings, "query string name")
	v.oneOf(p.field("output_encoding"), e.OutputEncoding, outputEncodings)

	answering := 0
	for _, b := range e.Backend {
		if b != nil && !b.shadow() {
			answering++
		}
	}
	bp := p.field("backend")
	switch {
	case len(e.Backend) == 0:
		v.vs.add(bp, KindRequired, "an endpoint needs at least one backend")
	case answering == 0:
		v.vs.add(bp, KindRequired, "every backend is a shadow backend; at least one must answer the client")
	case e.OutputEncoding == encodingNoOp && answering > 1:
		v.vs.add(bp, KindTooMany, "output_encoding no-op passes one backend response through; found %d backends", answering)
	}
	v.luaPassThrough(p, e, answering)

	var sequential bool
	x := p.field("extra_config")
	if px := e.ExtraConfig.Proxy; px != nil {
		sequential = px.Sequential
		v.endpointProxy(x.key("proxy"), e, px)
	}
	if j := e.ExtraConfig.JWT; j != nil {
		v.jwt(x.key("auth/validator"), j)
	}
	if b := e.ExtraConfig.BotDetector; b != nil {
		v.botDetector(x.key("security/bot-detector"), b)
	}
	if c := e.ExtraConfig.CEL; c != nil {
		noop := ""
		if e.OutputEncoding == encodingNoOp {
			noop = "endpoint"
		}
		v.celChecks(x.key("validation/cel"), c, e.ExtraConfig.JWT != nil, noop)
	}
	if l := e.ExtraConfig.LuaProxy; l != nil {
		v.lua(x.key("modifier/lua-proxy"), l)
	}
	if l := e.ExtraConfig.LuaEndpoint; l != nil {
		v.lua(x.key("modifier/lua-endpoint"), l)
	}
	if sg := e.ExtraConfig.Signer; sg != nil {
		v.signer(p, e, sg)
	}
	if l := e.ExtraConfig.JWTLimits; l != nil {
		v.jwtLimits(x.key("apigw/jwt"), l, e.ExtraConfig.JWT)
	}
	if rl := e.ExtraConfig.RateLimit; rl != nil {
		v.routerRateLimit(x.key("qos/ratelimit/router"), rl, r)
	}
	v.otelOverride(x.key("telemetry/opentelemetry"), e.ExtraConfig.Trace, "proxy")
	for j, b := range e.Backend {
		if b != nil {
			v.backend(bp.index(j), j, e, b, r, sequential)
		}
	}
}

func (v *validator) endpointMethod(p path, method string) bool {
	switch {
	case oneOf(method, endpointMethods):
		return true
	case method == "HEAD" || method == "OPTIONS":
		v.vs.add(p, KindUnsupported, "%s is answered by the router (see router.auto_options), not declared as an endpoint; allowed: %s",
			method, strings.Join(endpointMethods, ", "))
	default:
		v.vs.unsupportedValue(p, method, endpointMethods)
	}
	return false
}

func (v *validator) endpointProxy(p path, e *Endpoint, px *EndpointProxy) {
	for i, name := range px.SequentialPropagatedParams {
		ip := p.field("sequential_propagated_params").index(i)
		m := propagatedParam.FindStringSubmatch(name)
		switch {
		case !px.Sequential:
			v.vs.add(ip, KindInvalid, "%q: propagated params need sequential: true", name)
		case m == nil:
			v.vs.add(ip, KindInvalid, "%q: want respN or respN_field", name)
		case atoi(m[1]) >= len(e.Backend):
			v.vs.add(ip, KindNotFound, "%q: the endpoint has no backend %s", name, m[1])
		}
	}
	if len(px.SequentialPropagatedParams) > 0 && !laterLuaBackend(e) {
		v.s.warnings.add(p.field("sequential_propagated_params"), KindNoEffect, "accepted but has no effect: KrakenD exposes these "+
			"values to the modifier/lua-backend scripts of the backends after the first, and this endpoint has none")
	}
	if st := px.Static; st != nil {
		sp := p.field("static")
		v.oneOf(sp.field("strategy"), st.Strategy, staticStrategies)
		if st.Data == nil {
			v.vs.add(sp.field("data"), KindRequired, "static responses need a data object")
		}
	}
	v.flatmap(p.field("flatmap_filter"), px.FlatmapFilter)
}

func (v *validator) backend(p path, index int, e *Endpoint, b *Backend, r route, sequential bool) {
	v.urlPattern(p.field("url_pattern"), index, b.URLPattern, r, sequential, e.ExtraConfig.JWT != nil)

	if len(b.Host) == 0 {
		v.vs.add(p.field("host"), KindRequired, "no host: set host here or at the service level")
	}
	amqp := true
	switch {
	case b.ExtraConfig.AMQPConsumer != nil:
		v.amqpConsumerBackend(p, b, b.ExtraConfig.AMQPConsumer)
		if b.ExtraConfig.AMQPProducer != nil {
			v.vs.add(p.field("extra_config"), KindInvalid, "a backend is either an AMQP consumer or an AMQP producer (KrakenD uses the consumer)")
		}
	case b.ExtraConfig.AMQPProducer != nil:
		v.amqpProducer(p, b, b.ExtraConfig.AMQPProducer, r)
	default:
		amqp = false
	}
	pubsub := b.ExtraConfig.PubSubPublisher != nil || b.ExtraConfig.PubSubSubscriber != nil
	if pubsub {
		v.pubSubBackend(p, b)
	}
	amqp = amqp || pubsub // a messaging backend: no HTTP client
	if amqp {
		// The host is the broker's URL (checked above). The rest of the
		// backend stack applies as to an HTTP backend, but for what wraps
		// KrakenD's HTTP client, which an AMQP backend never calls.
		v.oneOf(p.field("sd"), b.SD, []string{DefaultSD})
		x := p.field("extra_config")
		for _, ns := range []struct {
			name string
			set  bool
		}{{"modifier/martian", b.ExtraConfig.Martian != nil}, {"qos/http-cache", b.ExtraConfig.HTTPCache != nil}} {
			if ns.set {
				v.s.warnings.add(x.key(ns.name), KindNoEffect,
					"accepted but has no effect on a messaging (AMQP or Pub/Sub) backend: KrakenD applies it to the HTTP client, which such a backend does not use")
			}
		}
		// KrakenD's GraphQL middleware wraps the backend proxy, so a
		// producer publishes the GraphQL request; a consumer sends nothing.
		if (b.ExtraConfig.AMQPConsumer != nil || b.ExtraConfig.PubSubSubscriber != nil) && b.ExtraConfig.GraphQL != nil {
			v.s.warnings.add(x.key("backend/graphql"), KindNoEffect,
				"accepted but has no effect on an AMQP consumer or a Pub/Sub subscriber: it sends no request (on a producer or publisher the GraphQL request is what is published)")
		}
	}
	dns := !amqp && v.sdDNS(p, b)
	for i, h := range b.Host {
		if dns || amqp {
			break
		}
		hp := p.field("host").index(i)
		if b.hostInherited {
			if h == "" {
				continue // reported once, on the service
			}
			hp = path("host").index(i)
		}
		if _, err := sanitizeHost(h, b.DisableHostSanitize); err != nil {
			v.vs.add(hp, KindInvalid, "%q: %v", h, err)
		}
	}
	if !amqp {
		v.oneOf(p.field("sd"), b.SD, sdNames)
	}
	if !isToken(b.Method) {
		v.vs.add(p.field("method"), KindInvalid, "%q is not an HTTP method", b.Method)
	}
	if v.oneOf(p.field("encoding"), b.Encoding, backendEncodings) &&
		e.OutputEncoding == encodingNoOp && b.Encoding != encodingNoOp {
		v.vs.add(p.field("encoding"), KindInvalid, "%q: must be no-op (or omitted) when the endpoint's output_encoding is no-op", b.Encoding)
	}
	v.nonEmpty(p.field("allow"), b.Allow, "field path")
	v.nonEmpty(p.field("deny"), b.Deny, "field path")
	for _, k := range sortedKeys(b.Mapping) {
		switch {
		case k == "":
			v.vs.add(p.field("mapping").key(k), KindInvalid, "empty field name")
		case b.Mapping[k] == "":
			v.vs.add(p.field("mapping").key(k), KindInvalid, "empty new name for %q", k)
		}
	}
	v.headerNames(p.field("input_headers"), b.InputHeaders, true)
	v.nonEmpty(p.field("input_query_strings"), b.InputQueryStrings, "query string name")

	x := p.field("extra_config")
	if h := b.ExtraConfig.HTTP; h != nil && h.ReturnErrorDetails != nil && *h.ReturnErrorDetails == "" {
		v.vs.add(x.key("backend/http").field("return_error_details"), KindInvalid,
			"must be a non-empty name (failed responses carry it as error_<name>)")
	}
	if px := b.ExtraConfig.Proxy; px != nil {
		pp := x.key("proxy")
		v.flatmap(pp.field("flatmap_filter"), px.FlatmapFilter)
		if px.ShadowTimeout != nil {
			v.positive(pp.field("shadow_timeout"), *px.ShadowTimeout)
		}
	}
	if c := b.ExtraConfig.CEL; c != nil {
		noop := ""
		if e.OutputEncoding == encodingNoOp {
			noop = "backend"
		}
		if px := b.ExtraConfig.Proxy; px != nil && px.Shadow {
			v.vs.add(x.key("validation/cel"), KindUnsupported, "not supported on a shadow backend (its copy is fired and forgotten, without the backend stack's checks)")
		} else {
			v.celChecks(x.key("validation/cel"), c, false, noop)
		}
	}
	if rl := b.ExtraConfig.RateLimit; rl != nil {
		v.backendRateLimit(x.key("qos/ratelimit/proxy"), rl)
	}
	if cb := b.ExtraConfig.CircuitBreaker; cb != nil {
		v.circuitBreaker(x.key("qos/circuit-breaker"), cb)
	}
	if c := b.ExtraConfig.HTTPCache; c != nil {
		v.httpCache(x.key("qos/http-cache"), c, b)
	}
	if m := b.ExtraConfig.Martian; m != nil {
		v.martian(x.key("modifier/martian"), m)
	}
	if l := b.ExtraConfig.LuaBackend; l != nil {
		v.lua(x.key("modifier/lua-backend"), l)
	}
	if g := b.ExtraConfig.GraphQL; g != nil {
		v.graphQL(x.key("backend/graphql"), g, r, e)
	}
	v.otelOverride(x.key("telemetry/opentelemetry"), b.ExtraConfig.Trace, "backend")
}

// urlPattern checks a backend url_pattern and its placeholders: each one
// must be an endpoint parameter, a claim of the validated token ({JWT.sub},
// which needs the endpoint's auth/validator) or, in a sequential endpoint, a
// field of an earlier backend's response ({resp0_id}).
func (v *validator) urlPattern(p path, index int, pattern string, r route, sequential, hasJWT bool) {
	switch {
	case pattern == "":
		v.vs.add(p, KindRequired, "url_pattern is required")
		return
	case !strings.HasPrefix(pattern, "/"):
		v.vs.add(p, KindInvalid, "%q must start with \"/\"", pattern)
	}
	if rest := placeholder.ReplaceAllString(pattern, ""); strings.ContainsAny(rest, "{}") {
		v.vs.add(p, KindInvalid, "%q: malformed placeholder (want {name} with letters, digits, _ - . : /)", pattern)
	}
	if !r.ok {
		return // the endpoint path has its own violations; its parameters are unknown
	}
	for _, m := range placeholder.FindAllStringSubmatch(pattern, -1) {
		name := m[1]
		if r.hasParam(name) {
			continue
		}
		if strings.HasPrefix(name, "JWT.") && len(name) > len("JWT.") {
			if !hasJWT {
				v.vs.add(p, KindNotFound, "{%s} needs a validated token: the endpoint has no extra_config \"auth/validator\"", name)
			}
			continue
		}
		if rm := respPlaceholder.FindStringSubmatch(name); rm != nil {
			switch n := atoi(rm[1]); {
			case !sequential:
				v.vs.add(p, KindInvalid, "{%s} refers to a previous backend's response, which needs extra_config proxy.sequential: true", name)
			case n >= index:
				v.vs.add(p, KindNotFound, "{%s} refers to backend %d, which does not run before backend %d", name, n, index)
			}
			continue
		}
		v.vs.add(p, KindNotFound, "{%s} is not a parameter of the endpoint (parameters: %s)", name, paramList(r.params))
	}
}

func (v *validator) flatmap(p path, ops []FlatmapOp) {
	for i, op := range ops {
		op, ip := op, p.index(i)
		switch op.Type {
		case "":
			v.vs.add(ip.field("type"), KindRequired, "an operation type is required; allowed: %s", strings.Join(flatmapTypes, ", "))
		case "move", "append":
			if len(op.Args) != 2 {
				v.vs.add(ip.field("args"), KindInvalid, "%s takes exactly 2 args (source and destination), got %d", op.Type, len(op.Args))
			}
		case "del":
			if len(op.Args) == 0 {
				v.vs.add(ip.field("args"), KindInvalid, "del takes at least 1 arg")
			}
		default:
			v.vs.unsupportedValue(ip.field("type"), op.Type, flatmapTypes)
		}
		v.nonEmpty(ip.field("args"), op.Args, "path")
	}
}

// headerNames checks a list of header names; "*" is allowed when wildcard.
func (v *validator) headerNames(p path, names []string, wildcard bool) {
	for i, n := range names {
		switch {
		case n == "":
			v.vs.add(p.index(i), KindInvalid, "empty header name")
		case n == "*" && wildcard:
		case !isToken(n):
			v.vs.add(p.index(i), KindInvalid, "%q is not a valid header name", n)
		}
	}
}

func (v *validator) nonEmpty(p path, list []string, what string) {
	for i, s := range list {
		if s == "" {
			v.vs.add(p.index(i), KindInvalid, "empty %s", what)
		}
	}
}

// oneOf reports value if it is not in allowed and says whether it is.
func (v *validator) oneOf(p path, value string, allowed []string) bool {
	if oneOf(value, allowed) {
		return true
	}
	v.vs.unsupportedValue(p, value, allowed)
	return false
}

func (v *validator) positive(p path, d time.Duration) {
	if d <= 0 {
		v.vs.add(p, KindInvalid, "%s: must be greater than 0", d)
	}
}

// maxSeconds is the largest whole number of seconds a time.Duration holds
// (so that any accepted value also fits in milliseconds).
const maxSeconds = math.MaxInt64 / int64(time.Second)

// seconds checks an integer number of seconds (KrakenD's cache_duration,
// TTL, circuit breaker interval and timeout).
func (v *validator) seconds(p path, n, min int64) {
	switch {
	case n < min:
		v.vs.add(p, KindInvalid, "%d: must be at least %d", n, min)
	case n > maxSeconds:
		v.vs.add(p, KindInvalid, "%d: must be at most %d seconds", n, maxSeconds)
	}
}

// noRepeats reports entries that repeat an earlier one.
func (v *validator) noRepeats(p path, list []string) {
	first := make(map[string]int, len(list))
	for i, s := range list {
		if prev, dup := first[s]; dup && s != "" {
			v.vs.add(p.index(i), KindDuplicate, "%q repeats entry [%d]", s, prev)
			continue
		}
		first[s] = i
	}
}

func (v *validator) nonNegative(p path, d time.Duration) {
	if d < 0 {
		v.vs.add(p, KindInvalid, "%s: must not be negative", d)
	}
}

func (b *Backend) shadow() bool {
	return b.ExtraConfig.Proxy != nil && b.ExtraConfig.Proxy.Shadow
}

func oneOf(v string, list []string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// isToken reports whether s is an RFC 9110 token (header names, methods).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return int(^uint(0) >> 1) // out of range: larger than any index
	}
	return n
}

func paramList(params []string) string {
	if len(params) == 0 {
		return "none"
	}
	return strings.Join(params, ", ")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// laterLuaBackend reports whether a backend after the first has a
// modifier/lua-backend: the only reader of sequential_propagated_params.
func laterLuaBackend(e *Endpoint) bool {
	for i, b := range e.Backend {
		if i > 0 && b != nil && b.ExtraConfig.LuaBackend != nil {
			return true
		}
	}
	return false
}
