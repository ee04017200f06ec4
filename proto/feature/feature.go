// Package feature is the vocabulary of Snapshot.features: the optional
// capabilities a snapshot may need and an edge may support. The control
// plane's compiler lists the features a config uses; an edge announces the
// ones it can serve in Hello and NACKs a snapshot that needs one it lacks
// (an older build, or one started with --disable-feature). Both sides take
// the names from here, beside the contract, so they cannot drift apart.
//
// It imports nothing, so the edge, the control plane and the CLI may all
// depend on it.
package feature

import "slices"

// The features, named after the configuration that needs them.
const (
	EncodingXML     = "encoding.xml"     // a backend encoding or output_encoding xml
	EncodingRSS     = "encoding.rss"     // a backend encoding rss
	OutputYAML      = "output.yaml"      // negotiate or yaml output
	RouteCatchAll   = "route.catch_all"  // an endpoint ending in "/*"
	ProxySequential = "proxy.sequential" // proxy.sequential
	ProxyShadow     = "proxy.shadow"     // a shadow backend
	ProxyStatic     = "proxy.static"     // proxy.static
	ProxyFlatmap    = "proxy.flatmap"    // proxy.flatmap_filter

	AuthJWT              = "auth.jwt"               // an endpoint has auth/validator
	AuthRevoker          = "auth.revoker"           // the service has auth/revoker
	AuthSigner           = "auth.signer"            // an endpoint has auth/signer
	QoSRateLimit         = "qos.ratelimit"          // qos/ratelimit/router or qos/ratelimit/proxy
	QoSRateLimitCluster  = "qos.ratelimit.cluster"  // a router rate limit sets cluster: true
	QoSCircuitBreaker    = "qos.circuit_breaker"    // qos/circuit-breaker
	QoSHTTPCache         = "qos.http_cache"         // qos/http-cache
	SecurityCORS         = "security.cors"          // security/cors
	SecurityHTTP         = "security.http"          // security/http
	SecurityBotDetector  = "security.bot_detector"  // security/bot-detector
	ModifierMartian      = "modifier.martian"       // modifier/martian
	ModifierLua          = "modifier.lua"           // modifier/lua-endpoint, modifier/lua-proxy or modifier/lua-backend
	ModifierLuaService   = "modifier.lua_service"   // service-level modifier/lua-endpoint
	ValidationJSONSchema = "validation.json_schema" // validation/json-schema
	ValidationCEL        = "validation.cel"         // validation/cel (endpoint or backend)
	TLSListener          = "tls.listener"           // the service's tls (enabled)
	TLSClient            = "tls.client"             // client_tls (or allow_insecure_connections)
	SDDNS                = "sd.dns"                 // a backend with sd: dns
	ListenerH2C          = "listener.h2c"           // use_h2c: true
	BackendGraphQL       = "backend.graphql"        // backend/graphql
	// DurationSubMs: a timeout or rate-limit period that is not a whole
	// number of milliseconds ("150us"), carried in a *_ns field.
	DurationSubMs = "duration.sub_ms"

	TelemetryOpenTelemetry = "telemetry.opentelemetry" // telemetry/opentelemetry (tracing)
	// TelemetryOpenTelemetryMetrics: telemetry/opentelemetry with a metrics
	// exporter (prometheus, or OTLP without disable_metrics).
	TelemetryOpenTelemetryMetrics = "telemetry.opentelemetry.metrics"
	TelemetryGELF                 = "telemetry.gelf"     // telemetry/gelf
	TelemetryLogstash             = "telemetry.logstash" // telemetry/logstash
	TelemetryInflux               = "telemetry.influx"   // telemetry/influx
	// TelemetryOpenCensus: telemetry/opencensus compiled onto the tracer
	// (Jaeger and Zipkin exporters, krakend-opencensus' span shapes).
	TelemetryOpenCensus = "telemetry.opencensus"
	// TelemetryOpenCensusPrometheus: telemetry/opencensus exporters.prometheus
	// (the ochttp views on their own listener, path_aggregation).
	TelemetryOpenCensusPrometheus = "telemetry.opencensus.prometheus"
	AsyncAMQP                     = "async.amqp"            // an async_agent with the async/amqp driver
	BackendAMQPProducer           = "backend.amqp.producer" // a backend with backend/amqp/producer
	BackendAMQPConsumer           = "backend.amqp.consumer" // a backend with backend/amqp/consumer
	BackendPubSub                 = "backend.pubsub"        // a backend with backend/pubsub/publisher or /subscriber
)

// All returns every feature, sorted.
func All() []string {
	all := []string{
		EncodingXML, EncodingRSS, OutputYAML, RouteCatchAll, ProxySequential, ProxyShadow, ProxyStatic, ProxyFlatmap,
		AuthJWT, AuthRevoker, AuthSigner, QoSRateLimit, QoSRateLimitCluster, QoSCircuitBreaker, QoSHTTPCache,
		SecurityCORS, SecurityHTTP, SecurityBotDetector, ModifierMartian, ModifierLua, ModifierLuaService, ValidationJSONSchema, ValidationCEL, TelemetryOpenTelemetry,
		TelemetryOpenTelemetryMetrics, TelemetryGELF, TelemetryLogstash, TelemetryInflux, TelemetryOpenCensus, TelemetryOpenCensusPrometheus, TLSListener, TLSClient, SDDNS, BackendGraphQL, ListenerH2C, DurationSubMs,
		AsyncAMQP, BackendAMQPProducer, BackendAMQPConsumer, BackendPubSub,
	}
	slices.Sort(all)
	return all
}
