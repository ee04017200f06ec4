package config

import (
	"net/textproto"
	"strings"
	"time"
)

// Defaults applied by [Defaults]. KrakenD's own defaults unless noted.
const (
	DefaultPort                      = 8080
	DefaultTimeout                   = 2 * time.Second
	DefaultOutputEncoding            = "json"
	DefaultMethod                    = "GET"
	DefaultEncoding                  = "json"
	DefaultConcurrentCalls           = 1
	DefaultInputHeader               = "Content-Type" // the only header forwarded when input_headers is empty
	DefaultSD                        = "static"
	DefaultStaticStrategy            = "always"
	DefaultHealthPath                = "/__health"
	DefaultLogLevel                  = "INFO"
	DefaultLogFormat                 = "default"
	DefaultMetricsListenAddress      = ":8090"
	DefaultMaxIdleConnectionsPerHost = 250
	// DefaultMaxHeaderBytes is 64 KiB, not the 1 MiB KrakenD inherits from
	// net/http: the edge's fasthttp server preallocates a read buffer of this
	// size for every open connection, so 1 MiB would pin 10 GB for 10k
	// keep-alive clients. An explicit max_header_bytes is honoured as written.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultMaxBodyBytes bounds request and backend response bodies. KrakenD
	// CE has no limit; ours is fixed (there is no configuration key).
	DefaultMaxBodyBytes = 10 << 20

	// auth/validator.
	DefaultJWKCacheDuration    = 900 * time.Second
	DefaultJWTLeeway           = time.Second
	DefaultRolesKey            = "roles"
	DefaultScopesMatcher       = "any"
	DefaultAuthHeaderName      = "Authorization"
	DefaultCookieKey           = "access_token"
	DefaultKeyIdentifyStrategy = "kid"

	// qos/ratelimit/router and qos/ratelimit/proxy.
	DefaultRateLimitEvery         = time.Second
	DefaultRateLimitShards        = 2048
	DefaultRateLimitCleanupPeriod = time.Minute
	// DefaultRateLimitStrategy applies when client_max_rate is set without a
	// strategy (KrakenD then silently disables the client limit).
	DefaultRateLimitStrategy = "ip"

	// qos/ratelimit/cluster (our extension).
	DefaultClusterKeyPrefix   = "apigw:rl:"
	DefaultClusterDialTimeout = 50 * time.Millisecond

	// DefaultHTTPCacheMaxSize bounds a qos/http-cache that sets neither
	// max_size nor max_items (unbounded in KrakenD).
	DefaultHTTPCacheMaxSize = 64 << 20

	// security/cors: rs/cors's 204 (the lists are DefaultCORS* variables).
	DefaultCORSOptionsSuccessStatus = 204
)

// Default lists of security/cors. Callers must not modify them.
var (
	DefaultCORSAllowOrigins = []string{"*"}
	DefaultCORSAllowMethods = []string{"GET", "POST", "HEAD"}
	DefaultCORSAllowHeaders = []string{"*"}
)

// Defaults fills every unset value of s in place, so that Validate and the
// compiler see the configuration the gateway will actually run. It is the
// only place defaults live. It also normalises spelling the way KrakenD
// does: methods are upper-cased, header names canonicalised
// (textproto.CanonicalMIMEHeaderKey; "*" is kept) and CORS origins
// lower-cased.
//
// Inherited values (the endpoint timeout from the service timeout, backend
// hosts from the service host, ...) are taken from the service only when
// the service value is itself valid; an invalid one is reported once, on
// the service, by Validate. Defaults is idempotent and accepts any Service,
// including one Decode could only partly fill.
func Defaults(s *Service) {
	if s == nil {
		return
	}
	if s.Port == 0 {
		s.Port = DefaultPort
	}
	if s.Timeout == nil {
		s.Timeout = ptr(DefaultTimeout)
	}
	if s.CacheTTL == nil {
		s.CacheTTL = ptr(time.Duration(0))
	}
	if s.OutputEncoding == "" {
		s.OutputEncoding = DefaultOutputEncoding
	}
	if s.MaxHeaderBytes == 0 {
		s.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if s.MaxIdleConnectionsPerHost == 0 {
		s.MaxIdleConnectionsPerHost = DefaultMaxIdleConnectionsPerHost
	}
	if s.MaxBodyBytes == 0 {
		s.MaxBodyBytes = DefaultMaxBodyBytes
	}

	x := &s.ExtraConfig
	if x.Router == nil {
		x.Router = &Router{}
	}
	if x.Router.HealthPath == "" {
		x.Router.HealthPath = DefaultHealthPath
	}
	if x.Logging == nil {
		// Without the namespace KrakenD still logs to stdout.
		x.Logging = &Logging{Stdout: true}
	}
	if x.Logging.Level == "" {
		x.Logging.Level = DefaultLogLevel
	}
	if x.Logging.Format == "" {
		x.Logging.Format = DefaultLogFormat
	}
	if x.Metrics != nil && x.Metrics.ListenAddress == "" {
		x.Metrics.ListenAddress = DefaultMetricsListenAddress
	}
	if c := x.ClusterRateLimit; c != nil {
		if c.KeyPrefix == "" {
			c.KeyPrefix = DefaultClusterKeyPrefix
		}
		if c.DialTimeout == nil {
			c.DialTimeout = ptr(DefaultClusterDialTimeout)
		}
	}
	if x.CORS != nil {
		corsDefaults(x.CORS)
	}

	inherited := endpointInheritance{
		timeout:        DefaultTimeout,
		outputEncoding: DefaultOutputEncoding,
	}
	if *s.Timeout > 0 {
		inherited.timeout = *s.Timeout
	}
	if *s.CacheTTL > 0 {
		inherited.cacheTTL = *s.CacheTTL
	}
	if oneOf(s.OutputEncoding, outputEncodings) {
		inherited.outputEncoding = s.OutputEncoding
	}
	for _, e := range s.Endpoints {
		if e != nil {
			endpointDefaults(e, s, inherited)
		}
	}
	agentDefaults(s, inherited)
}

// endpointInheritance holds the service values endpoints inherit.
type endpointInheritance struct {
	timeout        time.Duration
	cacheTTL       time.Duration
	outputEncoding string
}

func endpointDefaults(e *Endpoint, s *Service, inherited endpointInheritance) {
	e.Method = strings.ToUpper(e.Method)
	if e.Method == "" {
		e.Method = DefaultMethod
	}
	if e.Timeout == nil {
		e.Timeout = ptr(inherited.timeout)
	}
	if e.CacheTTL == nil {
		e.CacheTTL = ptr(inherited.cacheTTL)
	}
	if e.ConcurrentCalls == nil {
		e.ConcurrentCalls = ptr(int64(DefaultConcurrentCalls))
	}
	if e.OutputEncoding == "" {
		e.OutputEncoding = inherited.outputEncoding
	}
	e.InputHeaders = canonicalHeaders(e.InputHeaders)
	if len(e.InputHeaders) == 0 {
		e.InputHeaders = []string{DefaultInputHeader}
	}
	if px := e.ExtraConfig.Proxy; px != nil && px.Static != nil && px.Static.Strategy == "" {
		px.Static.Strategy = DefaultStaticStrategy
	}
	if j := e.ExtraConfig.JWT; j != nil {
		jwtDefaults(j)
	}
	if rl := e.ExtraConfig.RateLimit; rl != nil {
		routerRateLimitDefaults(rl)
	}

	shadowTimeout := *e.Timeout
	if shadowTimeout <= 0 {
		shadowTimeout = inherited.timeout
	}
	for _, b := range e.Backend {
		if b == nil {
			continue
		}
		b.Method = strings.ToUpper(b.Method)
		if b.Method == "" {
			b.Method = e.Method
		}
		switch {
		case e.OutputEncoding == encodingNoOp && b.Encoding != "" && b.Encoding != encodingNoOp && oneOf(b.Encoding, backendEncodings):
			// KrakenD forces no-op decoding under a no-op endpoint.
			s.warnings.add(backendPath(s, e, b).field("encoding"), KindNormalized,
				"%q under a no-op endpoint: KrakenD decodes nothing and passes the response through (read as \"no-op\")", b.Encoding)
			b.Encoding = encodingNoOp
		case b.Encoding == "" && e.OutputEncoding == encodingNoOp:
			b.Encoding = encodingNoOp
		case b.Encoding == "":
			b.Encoding = DefaultEncoding
		}
		if len(b.Host) == 0 && len(s.Host) > 0 {
			b.Host = append([]string(nil), s.Host...)
			b.hostInherited = true
		}
		if b.SD == "" {
			b.SD = DefaultSD
		}
		b.InputHeaders = canonicalHeaders(b.InputHeaders)
		if px := b.ExtraConfig.Proxy; px != nil && px.Shadow && px.ShadowTimeout == nil {
			px.ShadowTimeout = ptr(shadowTimeout)
		}
		if rl := b.ExtraConfig.RateLimit; rl != nil {
			backendRateLimitDefaults(rl)
		}
		if c := b.ExtraConfig.HTTPCache; c != nil && c.MaxSize == nil && c.MaxItems == nil {
			c.MaxSize = ptr(int64(DefaultHTTPCacheMaxSize))
		}
		martianDefaults(b.ExtraConfig.Martian)
	}
}

// canonicalHeaders returns the canonical form of header names. Repeats
// are kept here (so violation indexes match the file) and dropped by the
// compiler.
func canonicalHeaders(names []string) []string {
	if len(names) == 0 {
		return names
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = textproto.CanonicalMIMEHeaderKey(n)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// jwtDefaults fills the endpoint validator's defaults (krakend-jose's,
// except cache_duration, which the edge uses whatever `cache` says) and
// canonicalises header names.
func jwtDefaults(j *JWTValidator) {
	if j.CacheDuration == nil {
		j.CacheDuration = ptr(int64(DefaultJWKCacheDuration / time.Second))
	}
	if j.Leeway == nil {
		j.Leeway = ptr(DefaultJWTLeeway)
	}
	if j.RolesKey == "" {
		j.RolesKey = DefaultRolesKey
	}
	if j.ScopesMatcher == "" {
		j.ScopesMatcher = DefaultScopesMatcher
	}
	if j.AuthHeaderName == "" {
		j.AuthHeaderName = DefaultAuthHeaderName
	}
	j.AuthHeaderName = textproto.CanonicalMIMEHeaderKey(j.AuthHeaderName)
	if j.CookieKey == "" {
		j.CookieKey = DefaultCookieKey
	}
	if j.KeyIdentifyStrategy == "" {
		j.KeyIdentifyStrategy = DefaultKeyIdentifyStrategy
	}
	for i := range j.PropagateClaims {
		j.PropagateClaims[i].Header = textproto.CanonicalMIMEHeaderKey(j.PropagateClaims[i].Header)
	}
}

// defaultCapacity is KrakenD's bucket size for a rate: the rate rounded
// down, at least 1. Out-of-range rates are Validate's to report.
func defaultCapacity(rate float64) int64 {
	if rate < 1 || rate > maxRate {
		return 1
	}
	return int64(rate)
}

func routerRateLimitDefaults(r *RouterRateLimit) {
	if r.Capacity == nil && r.MaxRate > 0 {
		r.Capacity = ptr(defaultCapacity(r.MaxRate))
	}
	// KrakenD's default client_capacity is 1 whenever max_rate (sic) is
	// below 1; we size the client bucket from client_max_rate, as it does
	// for the global one.
	if r.ClientCapacity == nil && r.ClientMaxRate > 0 {
		r.ClientCapacity = ptr(defaultCapacity(r.ClientMaxRate))
	}
	// KrakenD silently disables the client limit without a strategy.
	if r.Strategy == "" && r.ClientMaxRate > 0 {
		r.Strategy = DefaultRateLimitStrategy
	}
	if r.Every == nil {
		r.Every = ptr(DefaultRateLimitEvery)
	}
	switch {
	case r.NumShards == nil:
		r.NumShards = ptr(int64(DefaultRateLimitShards))
	case *r.NumShards == 0:
		*r.NumShards = 1 // KrakenD: 0 or 1 shard is one map
	}
	if r.CleanupPeriod == nil {
		r.CleanupPeriod = ptr(DefaultRateLimitCleanupPeriod)
	}
	if r.Key != "" && (r.Strategy == "ip" || r.Strategy == "header") {
		r.Key = textproto.CanonicalMIMEHeaderKey(r.Key)
	}
}

func backendRateLimitDefaults(r *BackendRateLimit) {
	if r.Capacity == nil && r.MaxRate != nil && *r.MaxRate > 0 {
		r.Capacity = ptr(defaultCapacity(*r.MaxRate))
	}
	if r.Every == nil {
		r.Every = ptr(DefaultRateLimitEvery)
	}
}

// corsDefaults fills KrakenD's CORS defaults and normalises spelling as
// rs/cors does: origins lower-cased, methods upper-cased, header names
// canonicalised. An empty list is the default, as in KrakenD.
func corsDefaults(c *CORS) {
	if len(c.AllowOrigins) == 0 {
		c.AllowOrigins = append([]string(nil), DefaultCORSAllowOrigins...)
	}
	for i, o := range c.AllowOrigins {
		c.AllowOrigins[i] = strings.ToLower(o)
	}
	if len(c.AllowMethods) == 0 {
		c.AllowMethods = append([]string(nil), DefaultCORSAllowMethods...)
	}
	for i, m := range c.AllowMethods {
		c.AllowMethods[i] = strings.ToUpper(m)
	}
	if len(c.AllowHeaders) == 0 {
		c.AllowHeaders = append([]string(nil), DefaultCORSAllowHeaders...)
	}
	c.AllowHeaders = canonicalHeaders(c.AllowHeaders)
	c.ExposeHeaders = canonicalHeaders(c.ExposeHeaders)
	if c.OptionsSuccessStatus == nil {
		c.OptionsSuccessStatus = ptr(int64(DefaultCORSOptionsSuccessStatus))
	}
}

// martianDefaults fills absent scopes with martian's default (every scope
// the modifier implements: querystring.Modifier only modifies requests) and
// canonicalises header names.
func martianDefaults(m *Martian) {
	if m == nil {
		return
	}
	if m.Scope == nil {
		m.Scope = []string{scopeRequest, scopeResponse}
		if oneOf(m.Type, martianRequestOnly) {
			m.Scope = []string{scopeRequest}
		}
		if oneOf(m.Type, martianResponseOnly) {
			m.Scope = []string{scopeResponse}
		}
	}
	switch m.Type {
	case martianHeader, martianAppend, martianHdrFilter:
		m.Name = textproto.CanonicalMIMEHeaderKey(m.Name)
	case martianCopy:
		m.From, m.To = textproto.CanonicalMIMEHeaderKey(m.From), textproto.CanonicalMIMEHeaderKey(m.To)
	case martianID, martianStash:
		if m.Header != "" {
			m.Header = textproto.CanonicalMIMEHeaderKey(m.Header)
		}
	}
	if m.Type == martianBlacklist {
		m.Names = canonicalHeaders(m.Names)
	}
	for _, c := range m.Modifiers {
		martianDefaults(c)
	}
	martianDefaults(m.Then)
	martianDefaults(m.Else)
}

// backendPath finds the path of backend b of endpoint e. It is linear in
// the number of endpoints: call it only to report something.
func backendPath(s *Service, e *Endpoint, b *Backend) path {
	for i, x := range s.Endpoints {
		if x != e {
			continue
		}
		for j, y := range e.Backend {
			if y == b {
				return path("endpoints").index(i).field("backend").index(j)
			}
		}
	}
	for i, a := range s.AsyncAgents {
		if a == nil || a.pipe != e {
			continue
		}
		for j, y := range e.Backend {
			if y == b {
				return path("async_agent").index(i).field("backend").index(j)
			}
		}
	}
	return ""
}
