package config

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apigw/gateway/proto/duration"
	"github.com/apigw/gateway/proto/feature"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// compile turns a defaulted, valid Service into a Snapshot. It must only be
// called when Validate found nothing: it trusts the values.
func compile(s *Service) *gatewayv1.Snapshot {
	features := make(map[string]bool)
	snap := &gatewayv1.Snapshot{
		SchemaVersion: SchemaVersion,
		Service:       compileService(s, features),
		Endpoints:     make([]*gatewayv1.Endpoint, 0, len(s.Endpoints)),
	}
	for _, e := range s.Endpoints {
		if e != nil {
			snap.Endpoints = append(snap.Endpoints, compileEndpoint(s, e, features))
		}
	}
	snap.AsyncAgents = compileAgents(s, features)
	for f := range features {
		snap.Features = append(snap.Features, f)
	}
	sort.Strings(snap.Features)
	return snap
}

func compileService(s *Service, features map[string]bool) *gatewayv1.Service {
	out := &gatewayv1.Service{
		Name:     s.Name,
		Port:     uint32(s.Port),
		ListenIp: s.ListenIP,
		HttpServer: &gatewayv1.HTTPServer{
			MaxHeaderBytes:    s.MaxHeaderBytes,
			MaxShutdownWaitMs: ms(s.MaxShutdownWaitTime),
		},
		HttpClient: &gatewayv1.HTTPClient{
			MaxIdleConnectionsPerHost: s.MaxIdleConnectionsPerHost,
			DialerKeepAliveMs:         ms(s.DialerKeepAlive),
			DialerFallbackDelayMs:     ms(s.DialerFallbackDelay),
			DisableKeepAlives:         s.DisableKeepAlives,
			DisableCompression:        s.DisableCompression,
			AllowInsecureConnections:  s.AllowInsecureConnections,
			Tls:                       compileClientTLS(s),
		},
		Tls:          compileServerTLS(s.TLS),
		MaxBodyBytes: s.MaxBodyBytes,
		Metrics:      &gatewayv1.Metrics{},
	}
	hs, hc := out.HttpServer, out.HttpClient
	hs.ReadTimeoutMs, hs.ReadTimeoutNs = exact(s.ReadTimeout, features)
	hs.WriteTimeoutMs, hs.WriteTimeoutNs = exact(s.WriteTimeout, features)
	hs.IdleTimeoutMs, hs.IdleTimeoutNs = exact(s.IdleTimeout, features)
	hs.ReadHeaderTimeoutMs, hs.ReadHeaderTimeoutNs = exact(s.ReadHeaderTimeout, features)
	hc.IdleConnectionTimeoutMs, hc.IdleConnectionTimeoutNs = exact(s.IdleConnectionTimeout, features)
	hc.ResponseHeaderTimeoutMs, hc.ResponseHeaderTimeoutNs = exact(s.ResponseHeaderTimeout, features)
	hc.DialerTimeoutMs, hc.DialerTimeoutNs = exact(s.DialerTimeout, features)
	if out.Tls != nil {
		features[feature.TLSListener] = true
	}
	if s.UseH2C || (s.ExtraConfig.Router != nil && s.ExtraConfig.Router.UseH2C) {
		out.H2C = true
		features[feature.ListenerH2C] = true
	}
	if s.usesDNS {
		out.HttpClient.DnsCacheTtlMs = ms(dnsCacheTTL(s))
	}
	if out.HttpClient.Tls != nil {
		features[feature.TLSClient] = true
	}
	if r := s.ExtraConfig.Router; r != nil {
		out.Router = &gatewayv1.Router{
			ReturnErrorMsg:                r.ReturnErrorMsg,
			DisableAccessLog:              r.DisableAccessLog,
			LoggerSkipPaths:               r.LoggerSkipPaths,
			HealthPath:                    r.HealthPath,
			DisableHealth:                 r.DisableHealth,
			HideVersionHeader:             r.HideVersionHeader,
			AutoOptions:                   r.AutoOptions,
			DisableHandleMethodNotAllowed: r.DisableHandleMethodNotAllowed,
			RemoveExtraSlash:              r.RemoveExtraSlash,
			DisableRedirectTrailingSlash:  r.DisableRedirectTrailingSlash,
			ForwardedByClientIp:           r.ForwardedByClientIP,
			RemoteIpHeaders:               canonicalHeaders(r.RemoteIPHeaders),
			TrustedProxies:                r.TrustedProxies,
			ErrorBody_404:                 r.ErrorBody404,
			ErrorBody_405:                 r.ErrorBody405,
			DisablePathDecoding:           r.DisablePathDecoding,
			DisableRedirectFixedPath:      r.DisableRedirectFixedPath,
		}
	}
	out.DebugEndpoint, out.EchoEndpoint = s.DebugEndpoint, s.EchoEndpoint
	if e := s.ExtraConfig.Errors; e != nil && e.JSON {
		if out.Router == nil {
			out.Router = &gatewayv1.Router{}
		}
		out.Router.JsonErrorBodies = true
	}
	if l := s.ExtraConfig.Logging; l != nil {
		out.Logging = &gatewayv1.Logging{
			Level:  logLevels[strings.ToUpper(l.Level)],
			Prefix: l.Prefix,
			Stdout: l.Stdout,
			Format: l.Format,
			Syslog: l.Syslog,
			// KrakenD (krakend-gologging) falls back to local3.
			SyslogFacility: syslogFacility(l.SyslogFacility),
		}
		if l.Format == "custom" {
			out.Logging.CustomFormat = l.CustomFormat
		}
	}
	if m := s.ExtraConfig.Metrics; m != nil {
		if m.ListenAddress == "" {
			m.ListenAddress = ":8090" // krakend-metrics' default
		}
		out.Metrics = &gatewayv1.Metrics{
			Enabled:          true,
			ListenAddress:    m.ListenAddress,
			CollectionTimeMs: m.CollectionTime.Milliseconds(),
			ProxyDisabled:    m.ProxyDisabled,
			RouterDisabled:   m.RouterDisabled,
			BackendDisabled:  m.BackendDisabled,
			EndpointDisabled: m.EndpointDisabled,
		}
	}
	if o := s.ExtraConfig.OpenTelemetry; o != nil {
		out.Opentelemetry = compileOTel(s, o, features)
	} else if oc := openCensusActive(s); oc != nil {
		out.Opentelemetry = compileOpenCensus(s, oc, features)
	}
	if s.ExtraConfig.Logstash != nil && out.Logging != nil {
		out.Logging.Logstash = true
		features[feature.TelemetryLogstash] = true
	}
	if i := s.ExtraConfig.Influx; i != nil && s.ExtraConfig.Metrics != nil {
		out.Influx = compileInflux(i)
		features[feature.TelemetryInflux] = true
	}
	if g := s.ExtraConfig.GELF; g != nil {
		out.Gelf = compileGELF(g)
		features[feature.TelemetryGELF] = true
	}
	// The service-level auth/validator (shared_cache_duration) has no
	// snapshot field: the edge caches keys per JWKS source.
	if r := s.ExtraConfig.Revoker; r != nil {
		out.Revoker = compileRevoker(r)
		features[feature.AuthRevoker] = true
	}
	if c := s.ExtraConfig.CORS; c != nil {
		out.Cors = compileCORS(c)
		features[feature.SecurityCORS] = true
	}
	if sh := s.ExtraConfig.Security; sh != nil {
		out.Security = compileSecurityHTTP(sh)
		features[feature.SecurityHTTP] = true
	}
	if b := s.ExtraConfig.BotDetector; b != nil {
		out.BotDetector = compileBotDetector(b)
		features[feature.SecurityBotDetector] = true
	}
	if l := s.ExtraConfig.LuaEndpoint; l != nil {
		out.LuaEndpoint = compileLua(l)
		out.LuaEndpoint.Post, out.LuaEndpoint.SkipNext = "", false
		features[feature.ModifierLuaService] = true
	}
	// The store is compiled even when no endpoint uses it; the feature is
	// only listed when one does (an edge without it could serve the rest).
	if c := s.ExtraConfig.ClusterRateLimit; c != nil {
		out.ClusterRateLimit = compileClusterRateLimit(c)
	}
	return out
}

func compileEndpoint(s *Service, e *Endpoint, features map[string]bool) *gatewayv1.Endpoint {
	name := e.Method + " " + e.Endpoint
	timeoutMs, timeoutNs := exact(deref(e.Timeout), features)
	out := &gatewayv1.Endpoint{
		Name:              name,
		Path:              e.Endpoint,
		Method:            e.Method,
		TimeoutMs:         timeoutMs,
		TimeoutNs:         timeoutNs,
		CacheTtlMs:        ms(deref(e.CacheTTL)),
		OutputEncoding:    e.OutputEncoding,
		InputHeaders:      allowList(e.InputHeaders),
		InputQueryStrings: allowList(e.InputQueryStrings),
		ConcurrentCalls:   uint32(deref(e.ConcurrentCalls)),
		DisableRest:       s.DisableRest,
		CatchAll:          strings.HasSuffix(e.Endpoint, "/*"),
	}
	answering := 0
	var r route
	for _, b := range e.Backend {
		if b != nil && b.ExtraConfig.AMQPProducer != nil {
			// The producer's keys name endpoint parameters.
			r = (&validator{s: s}).parseRoute("", e.Endpoint, s.DisableRest)
			break
		}
	}
	for i, b := range e.Backend {
		if b == nil {
			continue
		}
		cb := compileBackend(name, i, b, features)
		if c := b.ExtraConfig.AMQPConsumer; c != nil {
			cb.AmqpConsumer = compileAMQPConsumerBackend(c, b.Host[0])
			cb.Hosts = b.Host[:1]
			features[feature.BackendAMQPConsumer] = true
		} else if pr := b.ExtraConfig.AMQPProducer; pr != nil {
			cb.AmqpProducer = compileAMQPProducer(pr, r)
			cb.Hosts = b.Host[:1]
			features[feature.BackendAMQPProducer] = true
		} else if b.ExtraConfig.PubSubPublisher != nil || b.ExtraConfig.PubSubSubscriber != nil {
			cb.Pubsub = compilePubSub(b)
			cb.Hosts = b.Host[:1]
			features[feature.BackendPubSub] = true
		}
		if o := s.ExtraConfig.OpenTelemetry; o != nil {
			cb.Trace = compileTraceLayer(override(o.Layers.Backend, b.ExtraConfig.Trace))
			if otelMetrics(o) {
				cb.Metrics = compileBackendMetrics(override(o.Layers.Backend, b.ExtraConfig.Trace))
			}
		} else if oc := openCensusActive(s); oc != nil {
			cb.Trace = &gatewayv1.TraceLayer{Disabled: !oc.layers().Backend}
			if oc.Prometheus != nil {
				compileOCPath(cb.Trace, b.ExtraConfig.OpenCensusPath, b.URLPattern)
			}
		}
		if !cb.GetShadow() {
			answering++
		}
		out.Backends = append(out.Backends, cb)
	}
	if px := e.ExtraConfig.Proxy; px != nil {
		out.Sequential = px.Sequential
		out.SequentialPropagatedParams = px.SequentialPropagatedParams
		if st := px.Static; st != nil {
			out.Static = &gatewayv1.Static{Strategy: st.Strategy, Data: st.Data}
			features[feature.ProxyStatic] = true
		}
		// KrakenD applies the endpoint flatmap only after a merge, so with a
		// single answering backend it is ignored (and not compiled).
		if answering > 1 {
			out.Flatmap = flatmapOps(px.FlatmapFilter)
		}
	}
	if j := e.ExtraConfig.JWT; j != nil {
		out.Jwt = compileJWT(j, e.ExtraConfig.JWTLimits)
		features[feature.AuthJWT] = true
	}
	if c := compileCEL(e.ExtraConfig.CEL, e.ExtraConfig.JWT != nil); c != nil {
		out.Cel = c
		features[feature.ValidationCEL] = true
	}
	if rl := e.ExtraConfig.RateLimit; rl != nil {
		out.RateLimit = compileRouterRateLimit(rl, features)
		features[feature.QoSRateLimit] = true
		if rl.Cluster {
			features[feature.QoSRateLimitCluster] = true
		}
	}
	if o := s.ExtraConfig.OpenTelemetry; o != nil {
		out.Trace = compileTraceLayer(override(o.Layers.Proxy, e.ExtraConfig.Trace))
		if otelMetrics(o) {
			out.Metrics = compileMetricsLayer(override(o.Layers.Proxy, e.ExtraConfig.Trace))
		}
	} else if oc := openCensusActive(s); oc != nil {
		out.Trace = &gatewayv1.TraceLayer{Disabled: !oc.layers().Pipe}
		if oc.Prometheus != nil {
			compileOCPath(out.Trace, e.ExtraConfig.OpenCensusPath, e.Endpoint)
		}
	}
	if b := e.ExtraConfig.BotDetector; b != nil {
		out.BotDetector = compileBotDetector(b)
		features[feature.SecurityBotDetector] = true
	}
	if l := e.ExtraConfig.LuaProxy; l != nil {
		out.LuaProxy = compileLua(l)
		features[feature.ModifierLua] = true
	}
	if l := e.ExtraConfig.LuaEndpoint; l != nil {
		out.LuaEndpoint = compileLua(l)
		out.LuaEndpoint.Post, out.LuaEndpoint.SkipNext = "", false
		features[feature.ModifierLua] = true
	}
	if sg := e.ExtraConfig.Signer; sg != nil {
		out.Signer = compileSigner(sg)
		features[feature.AuthSigner] = true
	}
	if e.ExtraConfig.JSONSchema != nil {
		out.JsonSchema = e.ExtraConfig.JSONSchema
		features[feature.ValidationJSONSchema] = true
	}
	if out.Sequential {
		features[feature.ProxySequential] = true
	}
	if len(out.Flatmap) > 0 {
		features[feature.ProxyFlatmap] = true
	}
	if out.CatchAll {
		features[feature.RouteCatchAll] = true
	}
	switch out.OutputEncoding {
	case "xml":
		features[feature.EncodingXML] = true
	case "yaml", "negotiate":
		features[feature.OutputYAML] = true
	}
	return out
}

func compileBackend(endpointName string, index int, b *Backend, features map[string]bool) *gatewayv1.Backend {
	out := &gatewayv1.Backend{
		Name:                endpointName + " backend[" + strconv.Itoa(index) + "]",
		UrlPattern:          b.URLPattern,
		Method:              b.Method,
		Encoding:            b.Encoding,
		IsCollection:        b.IsCollection,
		Target:              b.Target,
		Allow:               b.Allow,
		Deny:                b.Deny,
		Mapping:             b.Mapping,
		Group:               b.Group,
		InputHeaders:        allowList(b.InputHeaders),
		InputQueryStrings:   allowList(b.InputQueryStrings),
		DisableHostSanitize: b.DisableHostSanitize,
	}
	if b.SD == "dns" {
		// host[0] is the SRV name (validated); the edge resolves it.
		out.Sd, out.SdScheme, out.Hosts = "dns", b.SDScheme, b.Host[:1]
		if out.SdScheme == "" {
			out.SdScheme = "http"
		}
		features[feature.SDDNS] = true
	} else {
		for _, h := range b.Host {
			if clean, err := sanitizeHost(h, b.DisableHostSanitize); err == nil {
				out.Hosts = append(out.Hosts, clean)
			}
		}
	}
	if h := b.ExtraConfig.HTTP; h != nil {
		out.ReturnErrorCode = h.ReturnErrorCode
		out.ReturnErrorDetails = deref(h.ReturnErrorDetails)
	}
	if hc := b.ExtraConfig.HTTPClient; hc != nil {
		out.SendBodyOnRedirect = hc.SendBodyOnRedirect
	}
	if px := b.ExtraConfig.Proxy; px != nil {
		out.Flatmap = flatmapOps(px.FlatmapFilter)
		out.Shadow = px.Shadow
		if px.Shadow {
			out.ShadowTimeoutMs, out.ShadowTimeoutNs = exact(deref(px.ShadowTimeout), features)
			features[feature.ProxyShadow] = true
		}
	}
	if rl := b.ExtraConfig.RateLimit; rl != nil {
		out.RateLimit = compileBackendRateLimit(rl, features)
		features[feature.QoSRateLimit] = true
	}
	if cb := b.ExtraConfig.CircuitBreaker; cb != nil {
		out.CircuitBreaker = compileCircuitBreaker(cb)
		features[feature.QoSCircuitBreaker] = true
	}
	if c := b.ExtraConfig.HTTPCache; c != nil {
		out.HttpCache = compileHTTPCache(c)
		features[feature.QoSHTTPCache] = true
	}
	if m := b.ExtraConfig.Martian; m != nil {
		out.Martian = compileMartian(m)
		features[feature.ModifierMartian] = true
	}
	if c := compileCEL(b.ExtraConfig.CEL, false); c != nil {
		out.Cel = c
		features[feature.ValidationCEL] = true
	}
	if l := b.ExtraConfig.LuaBackend; l != nil {
		out.LuaBackend = compileLua(l)
		features[feature.ModifierLua] = true
	}
	if g := b.ExtraConfig.GraphQL; g != nil {
		out.Graphql = compileGraphQL(g)
		features[feature.BackendGraphQL] = true
	}
	if len(out.Flatmap) > 0 {
		features[feature.ProxyFlatmap] = true
	}
	if out.Encoding == "xml" {
		features[feature.EncodingXML] = true
	}
	if out.Encoding == "rss" {
		features[feature.EncodingRSS] = true
	}
	return out
}

func flatmapOps(ops []FlatmapOp) []*gatewayv1.FlatmapOp {
	if len(ops) == 0 {
		return nil
	}
	out := make([]*gatewayv1.FlatmapOp, len(ops))
	for i, op := range ops {
		out[i] = &gatewayv1.FlatmapOp{Type: op.Type, Args: op.Args}
	}
	return out
}

// allowList drops repeated names; a list holding "*" becomes ["*"], which
// is what KrakenD does with it (forward everything).
func allowList(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(names))
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n == "*" {
			return []string{"*"}
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// ms converts a duration to milliseconds, rounding a fraction up so that a
// positive duration never becomes 0 ("not set").
// ms is d in whole milliseconds, rounded up, for a field that has no
// nanosecond sibling (a TTL, a cooldown: sub-millisecond precision would not
// change what they do).
func ms(d time.Duration) int64 {
	v, _ := duration.Split(d)
	return v
}

// exact splits d for a *_ms/*_ns field pair (duration.Split) and records
// feature.DurationSubMs when the nanoseconds are needed, so an edge that
// would read only the rounded milliseconds NACKs the snapshot.
func exact(d time.Duration, features map[string]bool) (ms, ns int64) {
	ms, ns = duration.Split(d)
	if ns != 0 {
		features[feature.DurationSubMs] = true
	}
	return ms, ns
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
