package config

import (
	"time"
)

// Service is a decoded KrakenD v3 configuration: the root object of the file
// (KrakenD's ServiceConfig). It is produced by [Decode], completed by
// [Defaults] and checked by [Validate].
//
// Optional settings whose explicit zero differs from "not set" are pointers;
// nil means the key was absent. Slices of endpoints and backends stay aligned
// with the file: an element that could not be decoded (not an object) is nil.
// A Service is not safe for concurrent mutation.
type Service struct {
	Schema         string
	Version        *int64
	Name           string
	Port           int64
	ListenIP       string
	Timeout        *time.Duration
	CacheTTL       *time.Duration
	OutputEncoding string
	Host           []string
	Endpoints      []*Endpoint
	DisableRest    bool

	// HTTP server settings.
	ReadTimeout         time.Duration
	WriteTimeout        time.Duration
	IdleTimeout         time.Duration
	ReadHeaderTimeout   time.Duration
	MaxHeaderBytes      int64
	MaxShutdownWaitTime time.Duration

	// HTTP client (upstream transport) settings.
	MaxIdleConnections        int64
	MaxIdleConnectionsPerHost int64
	IdleConnectionTimeout     time.Duration
	ResponseHeaderTimeout     time.Duration
	ExpectContinueTimeout     time.Duration
	DialerTimeout             time.Duration
	DialerKeepAlive           time.Duration
	DialerFallbackDelay       time.Duration
	DisableKeepAlives         bool
	DisableCompression        bool
	AllowInsecureConnections  bool

	// Accepted for compatibility; they have no effect (see decodeService).
	DNSCacheTTL     time.Duration
	SequentialStart bool

	// MaxBodyBytes bounds request and backend response bodies. KrakenD CE has
	// no such key; it is always the default set by Defaults.
	MaxBodyBytes int64

	ExtraConfig ServiceExtra

	// positions maps a violation path to where its value starts in the file.
	positions map[string]position
}

// ServiceExtra holds the supported service-level extra_config namespaces.
// A nil field means the namespace is absent.
type ServiceExtra struct {
	Router  *Router
	Logging *Logging
	Metrics *Metrics
}

// Router is the `router` namespace (KrakenD's gin engine options).
type Router struct {
	ReturnErrorMsg                bool
	AutoOptions                   bool
	DisableAccessLog              bool
	LoggerSkipPaths               []string
	HealthPath                    string
	DisableHealth                 bool
	HideVersionHeader             bool
	ForwardedByClientIP           bool
	RemoteIPHeaders               []string
	TrustedProxies                []string
	RemoveExtraSlash              bool
	DisableRedirectTrailingSlash  bool
	DisableHandleMethodNotAllowed bool
	// ErrorBody404 and ErrorBody405 are canonical JSON documents (nil when unset).
	ErrorBody404 []byte
	ErrorBody405 []byte
}

// Logging is the `telemetry/logging` namespace.
type Logging struct {
	// Level is the KrakenD level name as written (DEBUG, INFO, WARNING,
	// ERROR, CRITICAL; any case).
	Level  string
	Prefix string
	Stdout bool
	// Format is default or logstash.
	Format string
}

// Metrics is the `telemetry/metrics` namespace.
type Metrics struct {
	ListenAddress    string
	CollectionTime   time.Duration
	ProxyDisabled    bool
	RouterDisabled   bool
	BackendDisabled  bool
	EndpointDisabled bool
}

// Endpoint is one entry of `endpoints`.
type Endpoint struct {
	Endpoint          string
	Method            string
	Backend           []*Backend
	ConcurrentCalls   *int64
	Timeout           *time.Duration
	CacheTTL          *time.Duration
	InputHeaders      []string
	InputQueryStrings []string
	OutputEncoding    string
	ExtraConfig       EndpointExtra
}

// EndpointExtra holds the supported endpoint-level extra_config namespaces.
type EndpointExtra struct {
	Proxy *EndpointProxy
}

// EndpointProxy is the endpoint-level `proxy` namespace.
type EndpointProxy struct {
	Sequential                 bool
	SequentialPropagatedParams []string
	Static                     *Static
	FlatmapFilter              []FlatmapOp
	// ForceSandboxedRequest is accepted for compatibility: every backend of
	// an aggregate already receives its own copy of the request.
	ForceSandboxedRequest bool
}

// Static is `proxy.static`.
type Static struct {
	Strategy string
	// Data is the canonical JSON of the `data` object; nil when absent.
	Data []byte
}

// FlatmapOp is one `flatmap_filter` operation.
type FlatmapOp struct {
	Type string
	Args []string
}

// Backend is one entry of an endpoint's `backend` list.
type Backend struct {
	URLPattern          string
	Host                []string
	SD                  string
	DisableHostSanitize bool
	Method              string
	Encoding            string
	IsCollection        bool
	Target              string
	Allow               []string
	Deny                []string
	Mapping             map[string]string
	Group               string
	InputHeaders        []string
	InputQueryStrings   []string
	ExtraConfig         BackendExtra

	// hostInherited is set by Defaults when Host was copied from the
	// service's `host`; violations then name the service entries.
	hostInherited bool
}

// BackendExtra holds the supported backend-level extra_config namespaces.
type BackendExtra struct {
	HTTP  *BackendHTTP
	Proxy *BackendProxy
}

// BackendHTTP is the `backend/http` namespace.
type BackendHTTP struct {
	ReturnErrorCode bool
	// ReturnErrorDetails is nil when absent; present, it must not be empty.
	ReturnErrorDetails *string
}

// BackendProxy is the backend-level `proxy` namespace.
type BackendProxy struct {
	FlatmapFilter []FlatmapOp
	Shadow        bool
	ShadowTimeout *time.Duration
}
