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
	DefaultMaxHeaderBytes            = 1 << 20 // net/http's DefaultMaxHeaderBytes, which KrakenD inherits
	// DefaultMaxBodyBytes bounds request and backend response bodies. KrakenD
	// CE has no limit; ours is fixed (there is no configuration key).
	DefaultMaxBodyBytes = 10 << 20
)

// Defaults fills every unset value of s in place, so that Validate and the
// compiler see the configuration the gateway will actually run. It is the
// only place defaults live. It also normalises spelling the way KrakenD
// does: methods are upper-cased and header names canonicalised
// (textproto.CanonicalMIMEHeaderKey; "*" is kept).
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
		if b.Encoding == "" {
			// KrakenD forces no-op decoding under a no-op endpoint.
			b.Encoding = DefaultEncoding
			if e.OutputEncoding == encodingNoOp {
				b.Encoding = encodingNoOp
			}
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
