package config

import (
	"cmp"
	"sort"
	"strconv"
	"strings"

	"github.com/apigw/gateway/internal/gologfmt"
)

// namespace is one supported extra_config namespace at one level (service,
// endpoint or backend; T is that level's extra struct). Supporting a new
// namespace is one entry in the level's table plus its decode function.
type namespace[T any] struct {
	name   string // the v3 (short) name
	decode func(d *decoder, n *node, p path, dst *T)
}

// Supported namespaces per level.
var (
	serviceNamespaces = []namespace[ServiceExtra]{
		{"router", func(d *decoder, n *node, p path, x *ServiceExtra) { x.Router = d.router(n, p) }},
		{"telemetry/logging", func(d *decoder, n *node, p path, x *ServiceExtra) { x.Logging = d.logging(n, p) }},
		{"telemetry/metrics", func(d *decoder, n *node, p path, x *ServiceExtra) { x.Metrics = d.metrics(n, p) }},
		{"auth/validator", func(d *decoder, n *node, p path, x *ServiceExtra) { x.JWT = d.serviceJWT(n, p) }},
		{"auth/revoker", func(d *decoder, n *node, p path, x *ServiceExtra) { x.Revoker = d.revoker(n, p) }},
		{"qos/ratelimit/cluster", func(d *decoder, n *node, p path, x *ServiceExtra) { x.ClusterRateLimit = d.clusterRateLimit(n, p) }},
		{"security/cors", func(d *decoder, n *node, p path, x *ServiceExtra) { x.CORS = d.cors(n, p) }},
		{"security/http", func(d *decoder, n *node, p path, x *ServiceExtra) { x.Security = d.securityHTTP(n, p) }},
		{"security/bot-detector", func(d *decoder, n *node, p path, x *ServiceExtra) { x.BotDetector = d.botDetector(n, p) }},
		{"modifier/lua-endpoint", func(d *decoder, n *node, p path, x *ServiceExtra) { x.LuaEndpoint = d.luaEndpoint(n, p) }},
		{"apigw/errors", func(d *decoder, n *node, p path, x *ServiceExtra) { x.Errors = d.errorsNS(n, p) }},
		{"telemetry/opentelemetry", func(d *decoder, n *node, p path, x *ServiceExtra) { x.OpenTelemetry = d.openTelemetry(n, p) }},
		{"telemetry/gelf", func(d *decoder, n *node, p path, x *ServiceExtra) { x.GELF = d.gelf(n, p) }},
		{"telemetry/logstash", func(d *decoder, n *node, p path, x *ServiceExtra) { x.Logstash = d.logstash(n, p) }},
		{"telemetry/influx", func(d *decoder, n *node, p path, x *ServiceExtra) { x.Influx = d.influx(n, p) }},
		{"telemetry/opencensus", func(d *decoder, n *node, p path, x *ServiceExtra) { x.OpenCensus = d.openCensus(n, p) }},
	}
	endpointNamespaces = []namespace[EndpointExtra]{
		{"proxy", func(d *decoder, n *node, p path, x *EndpointExtra) { x.Proxy = d.endpointProxy(n, p) }},
		{"auth/validator", func(d *decoder, n *node, p path, x *EndpointExtra) { x.JWT = d.jwtValidator(n, p) }},
		{"apigw/jwt", func(d *decoder, n *node, p path, x *EndpointExtra) { x.JWTLimits = d.jwtLimits(n, p) }},
		{"qos/ratelimit/router", func(d *decoder, n *node, p path, x *EndpointExtra) { x.RateLimit = d.routerRateLimit(n, p) }},
		{"validation/json-schema", func(d *decoder, n *node, p path, x *EndpointExtra) { d.rawObject(&x.JSONSchema)(n, p) }},
		{"security/bot-detector", func(d *decoder, n *node, p path, x *EndpointExtra) { x.BotDetector = d.botDetector(n, p) }},
		{"validation/cel", func(d *decoder, n *node, p path, x *EndpointExtra) { x.CEL = d.celChecks(n, p) }},
		{"telemetry/opentelemetry", func(d *decoder, n *node, p path, x *EndpointExtra) { x.Trace = d.endpointOTel(n, p) }},
		{"modifier/lua-proxy", func(d *decoder, n *node, p path, x *EndpointExtra) { x.LuaProxy = d.lua(n, p) }},
		{"modifier/lua-endpoint", func(d *decoder, n *node, p path, x *EndpointExtra) { x.LuaEndpoint = d.luaEndpoint(n, p) }},
		{"auth/signer", func(d *decoder, n *node, p path, x *EndpointExtra) { x.Signer = d.signer(n, p) }},
		{"telemetry/opencensus", func(d *decoder, n *node, p path, x *EndpointExtra) { x.OpenCensusPath = d.openCensusPath(n, p) }},
	}
	backendNamespaces = []namespace[BackendExtra]{
		{"backend/http", func(d *decoder, n *node, p path, x *BackendExtra) { x.HTTP = d.backendHTTP(n, p) }},
		{"backend/http/client", func(d *decoder, n *node, p path, x *BackendExtra) { x.HTTPClient = d.backendHTTPClient(n, p) }},
		{"proxy", func(d *decoder, n *node, p path, x *BackendExtra) { x.Proxy = d.backendProxy(n, p) }},
		{"qos/ratelimit/proxy", func(d *decoder, n *node, p path, x *BackendExtra) { x.RateLimit = d.backendRateLimit(n, p) }},
		{"qos/circuit-breaker", func(d *decoder, n *node, p path, x *BackendExtra) { x.CircuitBreaker = d.circuitBreaker(n, p) }},
		{"qos/http-cache", func(d *decoder, n *node, p path, x *BackendExtra) { x.HTTPCache = d.httpCache(n, p) }},
		{"modifier/martian", func(d *decoder, n *node, p path, x *BackendExtra) { x.Martian = d.martian(n, p) }},
		{"validation/cel", func(d *decoder, n *node, p path, x *BackendExtra) { x.CEL = d.celChecks(n, p) }},
		{"telemetry/opentelemetry", func(d *decoder, n *node, p path, x *BackendExtra) { x.Trace = d.backendOTel(n, p) }},
		{"modifier/lua-backend", func(d *decoder, n *node, p path, x *BackendExtra) { x.LuaBackend = d.lua(n, p) }},
		{"backend/amqp/producer", func(d *decoder, n *node, p path, x *BackendExtra) { x.AMQPProducer = d.amqpProducer(n, p) }},
		{"backend/amqp/consumer", func(d *decoder, n *node, p path, x *BackendExtra) { x.AMQPConsumer = d.amqpConsumerBackend(n, p) }},
		{"backend/pubsub/publisher", func(d *decoder, n *node, p path, x *BackendExtra) { x.PubSubPublisher = d.pubSub("topic_url")(n, p) }},
		{"backend/pubsub/subscriber", func(d *decoder, n *node, p path, x *BackendExtra) {
			x.PubSubSubscriber = d.pubSub("subscription_url")(n, p)
		}},
		{"backend/graphql", func(d *decoder, n *node, p path, x *BackendExtra) { x.GraphQL = d.graphQL(n, p) }},
		{"telemetry/opencensus", func(d *decoder, n *node, p path, x *BackendExtra) { x.OpenCensusPath = d.openCensusPath(n, p) }},
	}
)

// namespaceAliases maps KrakenD's historical long namespace names to their
// v3 names (krakend-ce cmd/krakend-ce/main.go). Both spellings are accepted.
var namespaceAliases = map[string]string{
	"github.com/devopsfaith/krakend/proxy":                         "proxy",
	"github_com/luraproject/lura/router/gin":                       "router",
	"github.com/devopsfaith/krakend-jose/validator":                "auth/validator",
	"github.com/devopsfaith/krakend-jose/signer":                   "auth/signer",
	"github_com/devopsfaith/bloomfilter":                           "auth/revoker",
	"github.com/devopsfaith/krakend-httpcache":                     "qos/http-cache",
	"github.com/devopsfaith/krakend-circuitbreaker/gobreaker":      "qos/circuit-breaker",
	"github_com/devopsfaith/krakend-cors":                          "security/cors",
	"github_com/devopsfaith/krakend-httpsecure":                    "security/http",
	"github_com/devopsfaith/krakend-botdetector":                   "security/bot-detector",
	"github.com/devopsfaith/krakend-cel":                           "validation/cel",
	"github.com/devopsfaith/krakend-martian":                       "modifier/martian",
	"github.com/devopsfaith/krakend-lua/router":                    "modifier/lua-endpoint",
	"github.com/devopsfaith/krakend-lua/proxy":                     "modifier/lua-proxy",
	"github.com/devopsfaith/krakend-lua/proxy/backend":             "modifier/lua-backend",
	"github.com/devopsfaith/krakend-jsonschema":                    "validation/json-schema",
	"github.com/devopsfaith/krakend/http":                          "backend/http",
	"github.com/devopsfaith/krakend-amqp/produce":                  "backend/amqp/producer",
	"github.com/devopsfaith/krakend-amqp/consume":                  "backend/amqp/consumer",
	"github.com/devopsfaith/krakend-amqp/agent":                    "async/amqp",
	"github.com/devopsfaith/krakend-pubsub/publisher":              "backend/pubsub/publisher",
	"github.com/devopsfaith/krakend-pubsub/subscriber":             "backend/pubsub/subscriber",
	"github.com/devopsfaith/krakend/transport/http/client/graphql": "backend/graphql",
	"github_com/devopsfaith/krakend-gologging":                     "telemetry/logging",
	"github_com/devopsfaith/krakend-metrics":                       "telemetry/metrics",
	"github_com/devopsfaith/krakend-gelf":                          "telemetry/gelf",
	"github_com/devopsfaith/krakend-logstash":                      "telemetry/logstash",
	"github_com/letgoapp/krakend-influx":                           "telemetry/influx",
	"github_com/devopsfaith/krakend-opencensus":                    "telemetry/opencensus",
}

// normalizeNamespace returns the v3 name of an extra_config key.
func normalizeNamespace(key string) string {
	if short, ok := namespaceAliases[key]; ok {
		return short
	}
	return key
}

// decodeExtraConfig decodes an extra_config object with the namespaces of
// one level. Inside a supported namespace, paths use its v3 name whichever
// spelling the file used (`extra_config["router"]` for
// "github_com/luraproject/lura/router/gin"), so the validator can name them;
// the position in the detail still points at the text as written.
func decodeExtraConfig[T any](d *decoder, n *node, p path, table []namespace[T], dst *T) {
	seen := make(map[string]string, len(n.members)) // v3 name -> key as written
	for _, m := range d.members(n, p, path.key) {
		if isCommentKey(m.key) {
			continue
		}
		mp := p.key(m.key)
		name := normalizeNamespace(m.key)
		if first, dup := seen[name]; dup && first != m.key {
			d.vs.add(mp, KindDuplicate, "namespace %q is also configured as %q", name, first)
		}
		seen[name] = m.key
		ns, ok := findNamespace(table, name)
		if !ok {
			d.vs.add(mp, KindUnsupported, "%s; supported here: %s", describeNamespace(m.key, name), namespaceList(table))
			continue
		}
		if m.val.kind == typeNull {
			continue
		}
		np := p.key(name)
		d.record(np, m.val)
		ns.decode(d, m.val, np, dst)
	}
}

func findNamespace[T any](table []namespace[T], name string) (namespace[T], bool) {
	for _, ns := range table {
		if ns.name == name {
			return ns, true
		}
	}
	return namespace[T]{}, false
}

func describeNamespace(key, name string) string {
	if key != name {
		return "namespace " + strconv.Quote(key) + " (" + name + ") is not supported at this level"
	}
	return "namespace " + strconv.Quote(key) + " is not supported at this level"
}

func namespaceList[T any](table []namespace[T]) string {
	names := make([]string, 0, len(table))
	for _, ns := range table {
		names = append(names, ns.name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// gin's default multipart memory (32 MiB), the only non-zero value accepted
// for router.max_multipart_memory.
const ginMultipartMemory = 32 << 20

func (d *decoder) router(n *node, p path) *Router {
	r := &Router{}
	d.object(n, p, objectSpec{
		fields: map[string]handler{
			"return_error_msg":                  d.boolean(&r.ReturnErrorMsg),
			"auto_options":                      d.boolean(&r.AutoOptions),
			"disable_access_log":                d.boolean(&r.DisableAccessLog),
			"logger_skip_paths":                 d.strings(&r.LoggerSkipPaths),
			"health_path":                       d.str(&r.HealthPath),
			"disable_health":                    d.boolean(&r.DisableHealth),
			"hide_version_header":               d.boolean(&r.HideVersionHeader),
			"forwarded_by_client_ip":            d.boolean(&r.ForwardedByClientIP),
			"remote_ip_headers":                 d.strings(&r.RemoteIPHeaders),
			"trusted_proxies":                   d.strings(&r.TrustedProxies),
			"remove_extra_slash":                d.boolean(&r.RemoveExtraSlash),
			"disable_redirect_trailing_slash":   d.boolean(&r.DisableRedirectTrailingSlash),
			"disable_handle_method_not_allowed": d.boolean(&r.DisableHandleMethodNotAllowed),
			"disable_path_decoding":             d.boolean(&r.DisablePathDecoding),
			"disable_redirect_fixed_path":       d.boolean(&r.DisableRedirectFixedPath),
			"error_body": func(n *node, p path) {
				d.object(n, p, objectSpec{fields: map[string]handler{
					"404": d.rawValue(&r.ErrorBody404),
					"405": d.rawValue(&r.ErrorBody405),
				}})
			},
			// gin options this gateway does not implement: accepted only
			// with their default value (use_h2c is implemented).
			"app_engine": d.falseOnly("app_engine"),
			"use_h2c":    d.boolean(&r.UseH2C),
			"max_multipart_memory": func(n *node, p path) {
				if v, ok := d.int64(n, p); ok && v != 0 && v != ginMultipartMemory {
					d.vs.add(p, KindUnsupported, "max_multipart_memory is not supported; the only accepted value is %d (the default)", ginMultipartMemory)
				}
			},
		},
		notSupported: map[string]string{
			"max_payload":     "max_payload is a KrakenD Enterprise option",
			"decompress_gzip": "decompress_gzip is a KrakenD Enterprise option",
			"disable_gzip":    "disable_gzip is a KrakenD Enterprise option",
		},
	})
	return r
}

// rawValue stores the canonical JSON of any value.
func (d *decoder) rawValue(dst *[]byte) handler {
	return func(n *node, _ path) { *dst = canonicalJSON(n) }
}

func (d *decoder) logging(n *node, p path) *Logging {
	l := &Logging{}
	d.object(n, p, objectSpec{
		fields: map[string]handler{
			"level":  d.str(&l.Level),
			"prefix": d.str(&l.Prefix),
			"stdout": d.boolean(&l.Stdout),
			"format": d.str(&l.Format),
			"syslog": d.boolean(&l.Syslog),
			"custom_format": func(n *node, p path) {
				d.str(&l.CustomFormat)(n, p)
				if n.kind != typeString {
					return
				}
				if pat, err := gologfmt.Parse(n.text); err == nil {
					for _, v := range pat.CallSiteVerbs() {
						d.ws.add(p, KindApproximated, "%%{%s}: the edge's log events carry no call site; it renders as go-logging does without one (???:0, ???, or nothing for callpath)", v)
					}
				}
			},
			"syslog_facility": func(n *node, p path) {
				d.str(&l.SyslogFacility)(n, p)
				if n.kind == typeString && syslogFacility(n.text) != strings.ToLower(n.text) {
					d.ws.add(p, KindNormalized, "%q is not local0..local7: local3 is used, as KrakenD does", n.text)
				}
			},
		},
	})
	if l.CustomFormat != "" && l.Format != "custom" {
		d.ws.add(p.field("custom_format"), KindNoEffect, "custom_format is only used with format custom (format is %q)", cmp.Or(l.Format, "default"))
	}
	return l
}

func (d *decoder) metrics(n *node, p path) *Metrics {
	m := &Metrics{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"listen_address":    d.str(&m.ListenAddress),
		"collection_time":   d.duration(&m.CollectionTime),
		"proxy_disabled":    d.boolean(&m.ProxyDisabled),
		"router_disabled":   d.boolean(&m.RouterDisabled),
		"backend_disabled":  d.boolean(&m.BackendDisabled),
		"endpoint_disabled": d.boolean(&m.EndpointDisabled),
	}})
	return m
}

func (d *decoder) endpointProxy(n *node, p path) *EndpointProxy {
	x := &EndpointProxy{}
	d.object(n, p, objectSpec{
		fields: map[string]handler{
			"sequential":                   d.boolean(&x.Sequential),
			"sequential_propagated_params": d.strings(&x.SequentialPropagatedParams),
			"flatmap_filter":               d.flatmap(&x.FlatmapFilter),
			"force_sandboxed_request":      d.noEffect(d.boolean(&x.ForceSandboxedRequest), "every backend call already gets its own copy of the request"),
			"static": func(n *node, p path) {
				st := &Static{}
				d.object(n, p, objectSpec{fields: map[string]handler{
					"strategy": d.str(&st.Strategy),
					"data":     d.rawObject(&st.Data),
				}})
				x.Static = st
			},
		},
		notSupported: map[string]string{
			"combiner": "custom response combiners need a custom KrakenD build and are not supported",
		},
	})
	return x
}

func (d *decoder) backendHTTP(n *node, p path) *BackendHTTP {
	x := &BackendHTTP{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"return_error_code":    d.boolean(&x.ReturnErrorCode),
		"return_error_details": d.optStr(&x.ReturnErrorDetails),
	}})
	return x
}

func (d *decoder) backendProxy(n *node, p path) *BackendProxy {
	x := &BackendProxy{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"flatmap_filter": d.flatmap(&x.FlatmapFilter),
		"shadow":         d.boolean(&x.Shadow),
		"shadow_timeout": d.optDuration(&x.ShadowTimeout),
	}})
	return x
}

// errorsNS decodes our `apigw/errors` namespace.
func (d *decoder) errorsNS(n *node, p path) *Errors {
	e := &Errors{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"json": d.boolean(&e.JSON),
	}})
	return e
}

// backendHTTPClient decodes `backend/http/client`.
func (d *decoder) backendHTTPClient(n *node, p path) *BackendHTTPClient {
	x := &BackendHTTPClient{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"send_body_on_redirect": d.boolean(&x.SendBodyOnRedirect),
	}})
	return x
}

// syslogFacility is the facility krakend-gologging uses for name: local0
// to local7, local3 for anything else.
func syslogFacility(name string) string {
	switch n := strings.ToLower(name); n {
	case "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7":
		return n
	}
	return "local3"
}
