package config

import (
	"net"
	"strconv"
	"strings"

	"github.com/apigw/gateway/proto/feature"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// OpenTelemetry is the service-level `telemetry/opentelemetry` namespace,
// shaped as krakend-otel v0.13 reads it. The edge exports traces over OTLP
// (gRPC or HTTP) and the metrics instruments krakend-otel defines through
// its exporters: a Prometheus listener of their own, or OTLP pushes every
// metric_reporting_period seconds.
type OpenTelemetry struct {
	ServiceName    string
	ServiceVersion string
	DeployEnv      string
	// TraceSampleRate nil means krakend-otel's default, 1.
	TraceSampleRate       *float64
	MetricReportingPeriod int64
	// SkipPaths empty means krakend-otel's defaults.
	SkipPaths  []string
	OTLP       []OTLPExporter
	Prometheus []PrometheusExporter
	Layers     OTelLayers
	// SemConv is layers.global.semantic_convention: "1.27" selects the
	// semantic-convention metric names.
	SemConv string
}

// OTLPExporter is one `exporters.otlp[]` entry.
type OTLPExporter struct {
	Name           string
	Host           string
	Port           int64
	UseHTTP        bool
	DisableMetrics bool
	DisableTraces  bool
	// CustomMetricReportingPeriod overrides the service's period when at
	// least 1 (seconds).
	CustomMetricReportingPeriod int64
}

// PrometheusExporter is one `exporters.prometheus[]` entry.
type PrometheusExporter struct {
	Name           string
	Host           string
	Port           int64
	ProcessMetrics bool
	GoMetrics      bool
	DisableMetrics bool
}

// OTelLayers is `layers`, at the service level or as an endpoint's or a
// backend's override.
type OTelLayers struct {
	Global  *OTelLayer
	Proxy   *OTelLayer
	Backend *OTelLayer // layers.backend.traces
}

// OTelLayer is one layer: its tracing part and its metrics part. For the
// backend layer the tracing part is layers.backend.traces and the metrics
// part layers.backend.metrics (Metrics; nil means krakend-otel's default,
// round_trip and read_payload on).
type OTelLayer struct {
	DisableTraces      bool
	DisablePropagation bool // global only
	ReportHeaders      bool
	SkipHeaders        []string
	Attributes         []KeyValue

	DisableMetrics    bool       // global and proxy
	MetricsAttributes []KeyValue // global and proxy
	Metrics           *OTelBackendMetrics
}

// OTelBackendMetrics is layers.backend.metrics.
type OTelBackendMetrics struct {
	DisableStage bool
	RoundTrip    bool
	ReadPayload  bool
	Attributes   []KeyValue
}

// KeyValue is one static attribute.
type KeyValue struct {
	Key   string
	Value string
}

// DefaultOTelSkipPaths are krakend-otel's skip_paths when none are given.
var DefaultOTelSkipPaths = []string{"/__health", "/__debug/", "/__echo/", "/__stats/"}

const (
	whyOTelConnection = "the edge's HTTP client exposes no DNS, connect or TLS events to record"
	whyReadPayload    = "the edge's HTTP client reads the body within the call: http.client.response.read.size, " +
		"size-hist and errors are recorded, the read time instruments (time, time-hist) are not"
)

// noEffectTree decodes a value with h and warns at every value inside it
// (each key of an object, each element of a list, recursively) that it has
// no effect, saying why: a whole block krakend-otel reads and this gateway
// does not apply.
func (d *decoder) noEffectTree(h handler, why string) handler {
	return func(n *node, p path) {
		h(n, p)
		d.warnTree(n, p, why)
	}
}

func (d *decoder) warnTree(n *node, p path, why string) {
	switch n.kind {
	case typeObject:
		for _, m := range n.members {
			if !isCommentKey(m.key) {
				d.warnTree(m.val, p.field(m.key), why)
			}
		}
	case typeArray:
		for i, item := range n.items {
			d.warnTree(item, p.index(i), why)
		}
	default:
		d.ws.add(p, KindNoEffect, "accepted but has no effect: %s", why)
	}
}

func (d *decoder) openTelemetry(n *node, p path) *OpenTelemetry {
	o := &OpenTelemetry{MetricReportingPeriod: 30}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"service_name":            d.str(&o.ServiceName),
		"service_version":         d.str(&o.ServiceVersion),
		"deploy_env":              d.str(&o.DeployEnv),
		"trace_sample_rate":       d.optNumber(&o.TraceSampleRate),
		"metric_reporting_period": d.integer(&o.MetricReportingPeriod),
		"skip_paths":              d.strings(&o.SkipPaths),
		"exporters": func(n *node, p path) {
			d.object(n, p, objectSpec{fields: map[string]handler{
				"otlp": func(n *node, p path) {
					d.list(n, p, func(_ int, n *node, p path) { o.OTLP = append(o.OTLP, d.otlpExporter(n, p)) })
				},
				"prometheus": func(n *node, p path) {
					d.list(n, p, func(_ int, n *node, p path) { o.Prometheus = append(o.Prometheus, d.promExporter(n, p)) })
				},
			}})
		},
		"layers": func(n *node, p path) { o.Layers = d.otelLayers(n, p, true, &o.SemConv) },
	}})
	return o
}

func (d *decoder) otlpExporter(n *node, p path) OTLPExporter {
	var e OTLPExporter
	d.object(n, p, objectSpec{fields: map[string]handler{
		"name":                           d.str(&e.Name),
		"host":                           d.str(&e.Host),
		"port":                           d.integer(&e.Port),
		"use_http":                       d.boolean(&e.UseHTTP),
		"disable_metrics":                d.boolean(&e.DisableMetrics),
		"disable_traces":                 d.boolean(&e.DisableTraces),
		"custom_metric_reporting_period": d.integer(&e.CustomMetricReportingPeriod),
	}})
	return e
}

func (d *decoder) promExporter(n *node, p path) PrometheusExporter {
	var e PrometheusExporter
	d.object(n, p, objectSpec{fields: map[string]handler{
		"name":            d.str(&e.Name),
		"host":            d.str(&e.Host),
		"port":            d.integer(&e.Port),
		"process_metrics": d.boolean(&e.ProcessMetrics),
		"go_metrics":      d.boolean(&e.GoMetrics),
		"disable_metrics": d.boolean(&e.DisableMetrics),
	}})
	return e
}

// otelLayers decodes `layers`; global is false for an endpoint's or a
// backend's override, where krakend-otel reads only proxy or backend.
func (d *decoder) otelLayers(n *node, p path, global bool, semconv *string) OTelLayers {
	var l OTelLayers
	fields := map[string]handler{
		"proxy":   func(n *node, p path) { l.Proxy = d.otelLayer(n, p, nil) },
		"backend": func(n *node, p path) { l.Backend = d.otelBackendLayer(n, p) },
	}
	if global {
		fields["global"] = func(n *node, p path) { l.Global = d.otelLayer(n, p, semconv) }
	}
	d.object(n, p, objectSpec{fields: fields})
	return l
}

// otelLayer decodes the global layer (semconv non-nil receives its
// semantic_convention) or a proxy layer.
func (d *decoder) otelLayer(n *node, p path, semconv *string) *OTelLayer {
	l := &OTelLayer{}
	fields := map[string]handler{
		"disable_metrics":           d.boolean(&l.DisableMetrics),
		"disable_traces":            d.boolean(&l.DisableTraces),
		"report_headers":            d.boolean(&l.ReportHeaders),
		"skip_headers":              d.strings(&l.SkipHeaders),
		"metrics_static_attributes": d.attributes(&l.MetricsAttributes),
		"traces_static_attributes":  d.attributes(&l.Attributes),
	}
	if semconv != nil {
		fields["disable_propagation"] = d.boolean(&l.DisablePropagation)
		fields["semantic_convention"] = d.approximated(d.str(semconv),
			"it selects the metric instrument names (\"1.27\": http.server.request.duration...), but spans always carry "+
				"the stable HTTP semantic-convention attribute names (http.request.method, http.route, http.response.status_code, url.full)")
	}
	d.object(n, p, objectSpec{fields: fields})
	return l
}

// otelBackendLayer decodes layers.backend: its traces part and its
// metrics part.
func (d *decoder) otelBackendLayer(n *node, p path) *OTelLayer {
	l := &OTelLayer{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"metrics": func(n *node, p path) {
			m := &OTelBackendMetrics{}
			var detailed bool
			d.object(n, p, objectSpec{fields: map[string]handler{
				"disable_stage": d.boolean(&m.DisableStage),
				"round_trip":    d.boolean(&m.RoundTrip),
				"read_payload": func(n *node, p path) {
					d.boolean(&m.ReadPayload)(n, p)
					if m.ReadPayload {
						d.ws.add(p, KindApproximated, "applied, but not exactly as KrakenD does: %s", whyReadPayload)
					}
				},
				"detailed_connection": func(n *node, p path) {
					d.boolean(&detailed)(n, p)
					if detailed {
						d.ws.add(p, KindNoEffect, "accepted but has no effect: %s", whyOTelConnection)
					}
				},
				"static_attributes": d.attributes(&m.Attributes),
			}})
			l.Metrics = m
		},
		"traces": func(n *node, p path) {
			var roundTrip, readPayload, detailed bool
			d.object(n, p, objectSpec{fields: map[string]handler{
				"disable_stage": d.boolean(&l.DisableTraces),
				"round_trip": d.approximated(d.boolean(&roundTrip),
					"each backend call has one client span covering the request and the response; it is always recorded"),
				"read_payload": d.approximated(d.boolean(&readPayload),
					"the response body is read within the backend call's span, which has no separate payload span"),
				"detailed_connection": func(n *node, p path) {
					d.boolean(&detailed)(n, p)
					if detailed {
						d.ws.add(p, KindNoEffect, "accepted but has no effect: %s", whyOTelConnection)
					}
				},
				"static_attributes": d.attributes(&l.Attributes),
				"report_headers":    d.boolean(&l.ReportHeaders),
				"skip_headers":      d.strings(&l.SkipHeaders),
			}})
		},
	}})
	return l
}

// attributes decodes a list of {"key","value"} objects.
func (d *decoder) attributes(dst *[]KeyValue) handler {
	return func(n *node, p path) {
		var out []KeyValue
		d.list(n, p, func(_ int, n *node, p path) {
			var kv KeyValue
			d.object(n, p, objectSpec{fields: map[string]handler{
				"key":   d.str(&kv.Key),
				"value": d.str(&kv.Value),
			}})
			out = append(out, kv)
		})
		*dst = out
	}
}

// endpointOTel decodes an endpoint's `telemetry/opentelemetry`: as in
// krakend-otel, the namespace is a layers object whose proxy part
// overrides the service's proxy layer for this endpoint (its backend part
// is read from each backend's own namespace, not from here).
func (d *decoder) endpointOTel(n *node, p path) *OTelLayer {
	var l *OTelLayer
	d.object(n, p, objectSpec{fields: map[string]handler{
		"proxy": func(n *node, p path) { l = d.otelLayer(n, p, nil) },
		"backend": d.noEffectTree(func(n *node, p path) { d.otelBackendLayer(n, p) },
			"krakend-otel reads a backend's layer from that backend's own telemetry/opentelemetry"),
	}})
	return l
}

// backendOTel decodes a backend's `telemetry/opentelemetry`: its backend
// part overrides the service's backend layer.
func (d *decoder) backendOTel(n *node, p path) *OTelLayer {
	var l *OTelLayer
	d.object(n, p, objectSpec{fields: map[string]handler{
		"backend": func(n *node, p path) { l = d.otelBackendLayer(n, p) },
		"proxy": d.noEffectTree(func(n *node, p path) { d.otelLayer(n, p, nil) },
			"krakend-otel reads the proxy layer from the endpoint's telemetry/opentelemetry"),
	}})
	return l
}

func (v *validator) openTelemetry(p path, o *OpenTelemetry) {
	if r := o.TraceSampleRate; r != nil && (*r < 0 || *r > 1) {
		v.vs.add(p.field("trace_sample_rate"), KindInvalid, "%v: want a ratio between 0 and 1", *r)
	}
	names := make(map[string]string)
	unique := func(ep path, name string) {
		if prev, dup := names[name]; dup {
			v.vs.add(ep.field("name"), KindDuplicate, "%q is also the name of %s", name, prev)
			return
		}
		names[name] = string(ep)
	}
	ep := p.field("exporters")
	for i, e := range o.OTLP {
		xp := ep.field("otlp").index(i)
		unique(xp, e.Name)
		if e.Host == "" {
			v.vs.add(xp.field("host"), KindRequired, "an OTLP exporter needs the collector's host")
		}
		if e.Port < 0 || e.Port > 65535 {
			v.vs.add(xp.field("port"), KindInvalid, "%d: want a port between 0 and 65535", e.Port)
		}
		if e.CustomMetricReportingPeriod < 0 {
			v.vs.add(xp.field("custom_metric_reporting_period"), KindInvalid, "%d: want a period in seconds, 0 or more", e.CustomMetricReportingPeriod)
		}
	}
	listeners := make(map[string]string)
	for i, e := range o.Prometheus {
		xp := ep.field("prometheus").index(i)
		unique(xp, e.Name)
		if e.Port < 0 || e.Port > 65535 {
			v.vs.add(xp.field("port"), KindInvalid, "%d: want a port between 0 and 65535", e.Port)
			continue
		}
		if e.DisableMetrics {
			continue
		}
		addr := prometheusAddr(e)
		if prev, dup := listeners[addr]; dup {
			v.vs.add(xp.field("port"), KindDuplicate, "%s is also the listener of %s", addr, prev)
		}
		listeners[addr] = string(xp)
	}
	if o.MetricReportingPeriod < 0 {
		v.vs.add(p.field("metric_reporting_period"), KindInvalid, "%d: want a period in seconds, 0 or more", o.MetricReportingPeriod)
	}
	lp := p.field("layers")
	v.otelLayer(lp.field("global"), o.Layers.Global)
	v.otelLayer(lp.field("proxy"), o.Layers.Proxy)
	v.otelLayer(lp.field("backend").field("traces"), o.Layers.Backend)
}

func (v *validator) otelLayer(p path, l *OTelLayer) {
	if l == nil {
		return
	}
	attr, mp, mattr := "traces_static_attributes", p, "metrics_static_attributes"
	if strings.HasSuffix(string(p), "traces") {
		attr = "static_attributes"
		mp, mattr = path(strings.TrimSuffix(string(p), "traces")+"metrics"), "static_attributes"
	}
	v.attributes(p.field(attr), l.Attributes)
	if l.Metrics != nil {
		v.attributes(mp.field(mattr), l.Metrics.Attributes)
	} else {
		v.attributes(mp.field(mattr), l.MetricsAttributes)
	}
}

// attributes checks static attributes: keys required and unique.
func (v *validator) attributes(p path, attrs []KeyValue) {
	seen := make(map[string]bool, len(attrs))
	for i, kv := range attrs {
		ap := p.index(i)
		switch {
		case kv.Key == "":
			v.vs.add(ap.field("key"), KindRequired, "a static attribute needs a key")
		case seen[kv.Key]:
			v.vs.add(ap.field("key"), KindDuplicate, "attribute %q is set twice", kv.Key)
		}
		seen[kv.Key] = true
	}
}

// compileOTel compiles the service-level namespace with krakend-otel's
// defaults: service_name falls back to the service's name, then "KrakenD";
// the sample rate to 1; skip_paths to DefaultOTelSkipPaths.
func compileOTel(s *Service, o *OpenTelemetry, features map[string]bool) *gatewayv1.OpenTelemetry {
	features[feature.TelemetryOpenTelemetry] = true
	out := &gatewayv1.OpenTelemetry{
		ServiceName:     o.ServiceName,
		ServiceVersion:  o.ServiceVersion,
		DeployEnv:       o.DeployEnv,
		TraceSampleRate: 1,
		SkipPaths:       o.SkipPaths,
	}
	if out.ServiceName == "" {
		out.ServiceName = s.Name
	}
	if out.ServiceName == "" {
		out.ServiceName = "KrakenD"
	}
	if o.TraceSampleRate != nil {
		out.TraceSampleRate = *o.TraceSampleRate
	}
	if len(out.SkipPaths) == 0 {
		out.SkipPaths = DefaultOTelSkipPaths
	}
	for _, e := range o.OTLP {
		if e.DisableTraces {
			continue
		}
		out.Otlp = append(out.Otlp, &gatewayv1.OTLPExporter{Name: e.Name, Host: e.Host, Port: uint32(e.Port), UseHttp: e.UseHTTP})
	}
	out.Global = compileTraceLayer(o.Layers.Global)
	out.Proxy = compileTraceLayer(o.Layers.Proxy)
	out.Backend = compileTraceLayer(o.Layers.Backend)
	if g := o.Layers.Global; g != nil {
		out.DisablePropagation = g.DisablePropagation
	}

	out.MetricReportingPeriodS = uint32(o.MetricReportingPeriod)
	for _, e := range o.Prometheus {
		if !e.DisableMetrics {
			out.Prometheus = append(out.Prometheus, &gatewayv1.PrometheusExporter{Name: e.Name, Host: e.Host,
				Port: uint32(prometheusPort(e)), ProcessMetrics: e.ProcessMetrics, GoMetrics: e.GoMetrics})
		}
	}
	for _, e := range o.OTLP {
		if !e.DisableMetrics {
			out.OtlpMetrics = append(out.OtlpMetrics, &gatewayv1.OTLPExporter{Name: e.Name, Host: e.Host, Port: uint32(e.Port),
				UseHttp: e.UseHTTP, CustomMetricReportingPeriodS: uint32(e.CustomMetricReportingPeriod)})
		}
	}
	if otelMetrics(o) {
		features[feature.TelemetryOpenTelemetryMetrics] = true
		out.SemanticConvention = o.SemConv
		out.GlobalMetrics = compileMetricsLayer(o.Layers.Global)
		out.ProxyMetrics = compileMetricsLayer(o.Layers.Proxy)
		out.BackendMetrics = compileBackendMetrics(o.Layers.Backend)
	}
	return out
}

// otelMetrics reports whether o exports metrics: a Prometheus exporter,
// or an OTLP one, without disable_metrics. Without one the edge records
// no instrument and the layers' metrics parts are not compiled.
func otelMetrics(o *OpenTelemetry) bool {
	for _, e := range o.Prometheus {
		if !e.DisableMetrics {
			return true
		}
	}
	for _, e := range o.OTLP {
		if !e.DisableMetrics {
			return true
		}
	}
	return false
}

// prometheusPort is krakend-otel's default port, 9090, for port 0.
func prometheusPort(e PrometheusExporter) int64 {
	if e.Port == 0 {
		return 9090
	}
	return e.Port
}

func prometheusAddr(e PrometheusExporter) string {
	return net.JoinHostPort(e.Host, strconv.FormatInt(prometheusPort(e), 10))
}

// compileMetricsLayer compiles the metrics part of the global or a proxy
// layer.
func compileMetricsLayer(l *OTelLayer) *gatewayv1.MetricsLayer {
	out := &gatewayv1.MetricsLayer{}
	if l == nil {
		return out
	}
	out.Disabled = l.DisableMetrics
	out.Attributes = compileAttributes(l.MetricsAttributes)
	return out
}

// compileBackendMetrics compiles layers.backend.metrics, krakend-otel's
// defaults (round_trip and read_payload on) when it is not given.
func compileBackendMetrics(l *OTelLayer) *gatewayv1.MetricsLayer {
	if l == nil || l.Metrics == nil {
		return &gatewayv1.MetricsLayer{RoundTrip: true, ReadPayload: true}
	}
	m := l.Metrics
	return &gatewayv1.MetricsLayer{Disabled: m.DisableStage, RoundTrip: m.RoundTrip, ReadPayload: m.ReadPayload,
		Attributes: compileAttributes(m.Attributes)}
}

// compileAttributes drops attributes with an empty value, as krakend-otel
// does.
func compileAttributes(kvs []KeyValue) []*gatewayv1.KeyValue {
	var out []*gatewayv1.KeyValue
	for _, kv := range kvs {
		if kv.Value != "" {
			out = append(out, &gatewayv1.KeyValue{Key: kv.Key, Value: kv.Value})
		}
	}
	return out
}

func compileTraceLayer(l *OTelLayer) *gatewayv1.TraceLayer {
	out := &gatewayv1.TraceLayer{}
	if l == nil {
		return out
	}
	out.Disabled = l.DisableTraces
	out.ReportHeaders = l.ReportHeaders
	out.SkipHeaders = canonicalHeaders(l.SkipHeaders)
	out.Attributes = compileAttributes(l.Attributes)
	return out
}

// override returns an endpoint's or a backend's own layer when it has one,
// else the service's, as krakend-otel resolves them (no merge).
func override(service, own *OTelLayer) *OTelLayer {
	if own != nil {
		return own
	}
	return service
}

// orphanOTel warns about endpoint and backend telemetry/opentelemetry
// overrides in a config whose service has none: krakend-otel registers
// nothing then, so they have no effect.
func (d *decoder) orphanOTel(s *Service) {
	if s == nil || s.ExtraConfig.OpenTelemetry != nil {
		return
	}
	const why = "the service has no telemetry/opentelemetry, so nothing is traced"
	ns := func(p path) path { return p.field("extra_config").key("telemetry/opentelemetry") }
	for i, e := range s.Endpoints {
		if e == nil {
			continue
		}
		ep := path("endpoints").index(i)
		if e.ExtraConfig.Trace != nil {
			d.ws.add(ns(ep), KindNoEffect, "accepted but has no effect: %s", why)
		}
		for j, b := range e.Backend {
			if b != nil && b.ExtraConfig.Trace != nil {
				d.ws.add(ns(ep.field("backend").index(j)), KindNoEffect, "accepted but has no effect: %s", why)
			}
		}
	}
}

// otelOverride validates an endpoint's or a backend's layer.
func (v *validator) otelOverride(p path, l *OTelLayer, layer string) {
	if l == nil {
		return
	}
	if layer == "backend" {
		v.otelLayer(p.field("backend").field("traces"), l)
		return
	}
	v.otelLayer(p.field(layer), l)
}
