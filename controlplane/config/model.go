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
	// AsyncAgents is async_agent; an entry that could not be decoded is nil.
	AsyncAgents []*AsyncAgent

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
	// ClientTLS is client_tls; nil when absent.
	ClientTLS *ClientTLS
	// TLS is the enabled tls block; nil for plain HTTP.
	TLS *TLS

	// DNSCacheTTL is the re-resolution period of sd: dns backends.
	DNSCacheTTL    time.Duration
	DNSCacheTTLSet bool
	// SequentialStart is accepted for compatibility; it has no effect.
	SequentialStart bool
	// UseH2C serves HTTP/2 without TLS on the listener (root use_h2c, or
	// the router namespace's: KrakenD honours either).
	UseH2C bool
	// DebugEndpoint and EchoEndpoint serve KrakenD's /__debug/ and /__echo/.
	DebugEndpoint bool
	EchoEndpoint  bool

	// MaxBodyBytes bounds request and backend response bodies. KrakenD CE has
	// no such key; it is always the default set by Defaults.
	MaxBodyBytes int64

	ExtraConfig ServiceExtra

	// positions maps a violation path to where its value starts in the file.
	positions map[string]position
	// usesDNS is set by validation when a backend uses sd: dns.
	usesDNS bool
	// warnings collects what Decode and Defaults accepted but want the
	// operator to know: keys without effect, values KrakenD overrides,
	// values normalised.
	warnings violations
	// readFile reads the files the configuration names (Lua sources);
	// nil: none can be read.
	readFile ReadFunc
}

// ServiceExtra holds the supported service-level extra_config namespaces.
// A nil field means the namespace is absent.
type ServiceExtra struct {
	Router           *Router
	Logging          *Logging
	Metrics          *Metrics
	JWT              *ServiceJWT
	Revoker          *Revoker
	ClusterRateLimit *ClusterRateLimit
	CORS             *CORS
	Security         *SecurityHTTP
	// Errors is our `apigw/errors` namespace.
	Errors *Errors
	// OpenTelemetry is `telemetry/opentelemetry`.
	OpenTelemetry *OpenTelemetry
	// BotDetector is `security/bot-detector`.
	BotDetector *BotDetector
	// LuaEndpoint is the service-level `modifier/lua-endpoint`.
	LuaEndpoint *Lua
	// GELF is `telemetry/gelf`.
	GELF *GELF
	// Logstash is `telemetry/logstash`.
	Logstash *Logstash
	// Influx is `telemetry/influx`.
	Influx *Influx
	// OpenCensus is `telemetry/opencensus`.
	OpenCensus *OpenCensus
}

// Errors is the `apigw/errors` namespace: how the edge words its own
// error answers.
type Errors struct {
	// JSON gives gateway errors the fixed {"error":"<code>"} bodies instead
	// of KrakenD's bytes.
	JSON bool
}

// Router is the `router` namespace (KrakenD's gin engine options).
type Router struct {
	// UseH2C is gin's UseH2C: h2c on the listener, as the root use_h2c.
	UseH2C                        bool
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
	ErrorBody404             []byte
	ErrorBody405             []byte
	DisablePathDecoding      bool
	DisableRedirectFixedPath bool
}

// Logging is the `telemetry/logging` namespace.
type Logging struct {
	// Level is the KrakenD level name as written (DEBUG, INFO, WARNING,
	// ERROR, CRITICAL; any case).
	Level  string
	Prefix string
	Stdout bool
	// Format is default, logstash or custom.
	Format         string
	Syslog         bool
	SyslogFacility string
	// CustomFormat is go-logging's pattern for format custom.
	CustomFormat string
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
	JWT   *JWTValidator
	// JWTLimits is our `apigw/jwt` namespace: token lifetime rules for
	// the endpoint's auth/validator (KrakenD has none).
	JWTLimits *JWTLimits
	RateLimit *RouterRateLimit
	// JSONSchema is the canonical JSON of the `validation/json-schema`
	// document; nil when absent.
	JSONSchema []byte
	// Trace is the proxy layer of `telemetry/opentelemetry`, nil when the
	// endpoint does not override the service's.
	Trace *OTelLayer
	// BotDetector is the endpoint's `security/bot-detector`.
	BotDetector *BotDetector
	// CEL is the endpoint's `validation/cel`; nil when absent.
	CEL []CELCheck
	// LuaProxy is `modifier/lua-proxy`.
	LuaProxy *Lua
	// LuaEndpoint is the endpoint's `modifier/lua-endpoint`.
	LuaEndpoint *Lua
	// Signer is `auth/signer`.
	Signer *Signer
	// OpenCensusPath is `telemetry/opencensus` path_aggregation ("" when
	// unset: "pattern").
	OpenCensusPath string
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
	SDScheme            string
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
	HTTP           *BackendHTTP
	Proxy          *BackendProxy
	RateLimit      *BackendRateLimit
	CircuitBreaker *CircuitBreaker
	HTTPCache      *HTTPCache
	Martian        *Martian
	// HTTPClient is `backend/http/client`.
	HTTPClient *BackendHTTPClient
	// AMQPProducer is `backend/amqp/producer`.
	AMQPProducer *AMQPProducer
	// AMQPConsumer is `backend/amqp/consumer`.
	AMQPConsumer *AMQPConsumerBackend
	// PubSubPublisher is `backend/pubsub/publisher` (topic_url).
	PubSubPublisher *PubSub
	// PubSubSubscriber is `backend/pubsub/subscriber` (subscription_url).
	PubSubSubscriber *PubSub
	// GraphQL is `backend/graphql`.
	GraphQL *GraphQL
	// Trace is the backend layer of `telemetry/opentelemetry`, nil when the
	// backend does not override the service's.
	Trace *OTelLayer
	// CEL is the backend's `validation/cel`; nil when absent.
	CEL []CELCheck
	// LuaBackend is `modifier/lua-backend`.
	LuaBackend *Lua
	// OpenCensusPath is `telemetry/opencensus` path_aggregation ("" when
	// unset: "pattern").
	OpenCensusPath string
}

// BackendHTTPClient is the `backend/http/client` namespace.
type BackendHTTPClient struct {
	SendBodyOnRedirect bool
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

// ServiceJWT is the service-level `auth/validator` namespace, which only
// sizes KrakenD's JWK cache shared by all endpoints.
type ServiceJWT struct {
	// SharedCacheDuration (seconds) is accepted for compatibility and has no
	// effect: the edge caches keys per JWKS source (see JWTValidator).
	SharedCacheDuration *int64
}

// JWTValidator is the endpoint-level `auth/validator` namespace.
type JWTValidator struct {
	Alg                  string
	JWKURL               string
	JWKLocalPath         string
	Cache                bool
	CacheDuration        *int64 // seconds
	DisableJWKSecurity   bool
	FailedJWKKeyCooldown time.Duration
	Audience             []string
	Issuer               string
	Leeway               *time.Duration
	Roles                []string
	RolesKey             string
	RolesKeyIsNested     bool
	Scopes               []string
	ScopesKey            string
	ScopesMatcher        string
	// PropagateClaims holds [claim, header] pairs. An entry that is not a
	// pair of strings is reported by Decode and left empty here, so the
	// slice stays aligned with the file.
	PropagateClaims              []ClaimHeader
	PropagateClaimsPreserveArray bool
	AuthHeaderName               string
	CookieKey                    string
	KeyIdentifyStrategy          string
	OperationDebug               bool
	// TLS is cipher_suites, jwk_fingerprints and jwk_local_ca.
	TLS JWKSTLS
}

// ClaimHeader is one `propagate_claims` entry.
type ClaimHeader struct {
	Claim  string
	Header string
}

// JWTLimits is the endpoint-level `apigw/jwt` namespace (ours).
type JWTLimits struct {
	// RequireExp refuses tokens without exp; nil when absent.
	RequireExp *bool
	// MaxTokenLifetime bounds exp - iat (iat then required); nil when absent.
	MaxTokenLifetime *time.Duration
}

// Revoker is the service-level `auth/revoker` namespace.
type Revoker struct {
	N         *int64
	P         *float64
	TTL       *int64 // seconds
	TokenKeys []string
	HashName  string
	// Port is accepted for compatibility and has no effect: revocations reach
	// edges over the sync stream, not through a per-node RPC port.
	Port int64
}

// RouterRateLimit is the endpoint-level `qos/ratelimit/router` namespace.
type RouterRateLimit struct {
	MaxRate        float64
	Capacity       *int64
	ClientMaxRate  float64
	ClientCapacity *int64
	Strategy       string
	Key            string
	Every          *time.Duration
	NumShards      *int64
	CleanupPeriod  *time.Duration
	// CleanupThreads is accepted for compatibility and has no effect.
	CleanupThreads int64
	// Cluster is our extension: share the client buckets through the
	// service's `qos/ratelimit/cluster` store.
	Cluster bool
}

// ClusterRateLimit is our service-level `qos/ratelimit/cluster` namespace.
type ClusterRateLimit struct {
	Address     string
	KeyPrefix   string
	DialTimeout *time.Duration
}

// BackendRateLimit is the backend-level `qos/ratelimit/proxy` namespace.
type BackendRateLimit struct {
	MaxRate  *float64
	Capacity *int64
	Every    *time.Duration
}

// CircuitBreaker is the backend-level `qos/circuit-breaker` namespace.
// Interval and Timeout are integer seconds, as in KrakenD.
type CircuitBreaker struct {
	Interval        *int64
	Timeout         *int64
	MaxErrors       *int64
	Name            string
	LogStatusChange bool
}

// HTTPCache is the backend-level `qos/http-cache` namespace.
type HTTPCache struct {
	Shared   bool
	MaxSize  *int64 // bytes
	MaxItems *int64
}

// CORS is the service-level `security/cors` namespace.
type CORS struct {
	AllowOrigins         []string
	AllowMethods         []string
	AllowHeaders         []string
	ExposeHeaders        []string
	AllowCredentials     bool
	MaxAge               time.Duration
	AllowPrivateNetwork  bool
	OptionsPassthrough   bool
	OptionsSuccessStatus *int64
	// Debug is accepted for compatibility and has no effect.
	Debug bool
}

// SecurityHTTP is the service-level `security/http` namespace.
type SecurityHTTP struct {
	AllowedHosts            []string
	AllowedHostsAreRegex    bool
	HostProxyHeaders        []string
	STSSeconds              int64
	STSIncludeSubdomains    bool
	ForceSTSHeader          bool
	FrameDeny               bool
	CustomFrameOptionsValue string
	ContentSecurityPolicy   string
	ContentTypeNosniff      bool
	BrowserXSSFilter        bool
	ReferrerPolicy          string
	SSLRedirect             bool
	SSLHost                 string
	SSLProxyHeaders         map[string]string
	IsDevelopment           bool
}

// Martian is one node of the backend-level `modifier/martian` DSL: an
// object with a single key naming the modifier type. Only the fields of
// its Type are meaningful.
type Martian struct {
	Type string // one of martianTypes
	// Scope is nil when absent (Defaults fills it) and empty when written as [].
	Scope []string
	// header.Modifier, querystring.Modifier.
	Name  string
	Value string
	// header.Blacklist.
	Names []string
	// body.Modifier: Body is the decoded base64 `body`.
	ContentType string
	Body        []byte
	// fifo.Group and priority.Group (Priorities aligned with Modifiers). A
	// nested modifier that could not be decoded is nil.
	Modifiers       []*Martian
	AggregateErrors bool
	Priorities      []int64
	// header.Copy.
	From, To string
	// header.Id, header.RegexFilter (the header read); stash.Modifier's
	// headerName.
	Header string
	Regex  string
	// Filters: the modifier run on a match and the else modifier.
	Then, Else *Martian
	// url.Modifier, url.Filter, url.Verifier.
	Scheme, Host, Path, Query string
	// cookie.Modifier (Name, Value and these; Path is the cookie's).
	Domain, Expires  string
	Secure, HTTPOnly bool
	MaxAge           int64
	// status.Modifier, status.Verifier.
	StatusCode int64
	// port.Modifier, port.Filter.
	Port                     int64
	DefaultForScheme, Remove bool
	// static.Modifier: a directory of the edge's disk and request paths
	// mapped to files under it.
	RootPath      string
	ExplicitPaths map[string]string
}
