package config

import (
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/apigw/gateway/proto/feature"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// OpenCensus is the service-level `telemetry/opencensus` namespace
// (krakend-opencensus v2, KrakenD's legacy telemetry). It is compiled onto
// the edge's OpenTelemetry tracer: the spans krakend-opencensus records
// (server, pipe, backend and HTTP client, with its names and ochttp
// attributes, B3 propagation) go to its Jaeger and Zipkin exporters, and
// its Prometheus exporter serves the ochttp views. Its other exporters are
// accepted with a warning that names them.
type OpenCensus struct {
	SampleRate int64
	// Layers is enabled_layers; nil means every layer, as in
	// krakend-opencensus (a given object leaves the layers it omits off).
	Layers     *OpenCensusLayers
	Jaeger     *OpenCensusJaeger
	Zipkin     *OpenCensusZipkin
	Prometheus *OpenCensusPrometheus
}

// OpenCensusPrometheus is exporters.prometheus.
type OpenCensusPrometheus struct {
	Namespace                                  string
	Port                                       int64
	TagHost, TagPath, TagMethod, TagStatusCode bool
}

// OpenCensusLayers is enabled_layers.
type OpenCensusLayers struct{ Router, Pipe, Backend bool }

// OpenCensusJaeger is exporters.jaeger.
type OpenCensusJaeger struct {
	Endpoint       string // the collector's URL (http://jaeger:14268/api/traces)
	AgentEndpoint  string // the agent's host:port (UDP)
	ServiceName    string
	BufferMaxCount int64
}

// OpenCensusZipkin is exporters.zipkin.
type OpenCensusZipkin struct {
	CollectorURL string
	ServiceName  string
}

// Why the keys of telemetry/opencensus this gateway does not apply have no
// effect.
const (
	whyOCReportingPeriod = "it is how often OpenCensus pushes its metric views to the push exporters " +
		"(influxdb, datadog, stackdriver, ocagent), none of which this gateway runs"
	whyOCInflux = "OpenCensus views are not pushed to InfluxDB; telemetry/influx pushes the telemetry/metrics snapshot"
	whyOCLogger = "KrakenD CE registers no OpenCensus logger exporter either, so it logs nothing there"
	whyOCXray   = "AWS X-Ray's API is not spoken by this gateway's exporters (OTLP, Jaeger, Zipkin); " +
		"send OTLP to an OpenTelemetry collector with the awsxray exporter"
	whyOCStackdriver = "Google Cloud Trace/Monitoring's API is not spoken by this gateway's exporters (OTLP, Jaeger, Zipkin); " +
		"send OTLP to an OpenTelemetry collector with the googlecloud exporter"
	whyOCAgent = "the OpenCensus agent protocol is not spoken by this gateway's exporters (OTLP, Jaeger, Zipkin); " +
		"point telemetry/opentelemetry exporters.otlp at an OpenTelemetry collector instead"
	whyOCDatadog = "Datadog's agent API is not spoken by this gateway's exporters (OTLP, Jaeger, Zipkin); " +
		"the Datadog agent accepts OTLP from telemetry/opentelemetry exporters.otlp"
	whyOCExporterExtra  = "no exporter KrakenD CE registers reads exporters.extra_config"
	whyOCZipkinEndpoint = "OpenTelemetry's Zipkin exporter sends no local endpoint address: " +
		"spans carry the service name only"
)

func (d *decoder) openCensus(n *node, p path) *OpenCensus {
	oc := &OpenCensus{}
	var period int64
	var discard []byte
	d.object(n, p, objectSpec{fields: map[string]handler{
		"sample_rate":      d.integer(&oc.SampleRate),
		"reporting_period": d.noEffect(d.integer(&period), whyOCReportingPeriod),
		"enabled_layers": func(n *node, p path) {
			l := &OpenCensusLayers{}
			d.object(n, p, objectSpec{fields: map[string]handler{
				"router":  d.boolean(&l.Router),
				"pipe":    d.boolean(&l.Pipe),
				"backend": d.boolean(&l.Backend),
			}})
			oc.Layers = l
		},
		"exporters": func(n *node, p path) {
			d.object(n, p, objectSpec{fields: map[string]handler{
				"jaeger": func(n *node, p path) {
					j := &OpenCensusJaeger{}
					d.object(n, p, objectSpec{fields: map[string]handler{
						"endpoint":         d.str(&j.Endpoint),
						"agent_endpoint":   d.str(&j.AgentEndpoint),
						"service_name":     d.str(&j.ServiceName),
						"buffer_max_count": d.integer(&j.BufferMaxCount),
					}})
					oc.Jaeger = j
				},
				"zipkin": func(n *node, p path) {
					z := &OpenCensusZipkin{}
					var ip string
					var port int64
					d.object(n, p, objectSpec{fields: map[string]handler{
						"collector_url": d.str(&z.CollectorURL),
						"service_name":  d.str(&z.ServiceName),
						"ip":            d.noEffect(d.str(&ip), whyOCZipkinEndpoint),
						"port":          d.noEffect(d.integer(&port), whyOCZipkinEndpoint),
					}})
					oc.Zipkin = z
				},
				"prometheus": func(n *node, p path) {
					pr := &OpenCensusPrometheus{}
					d.object(n, p, objectSpec{fields: map[string]handler{
						"namespace":      d.str(&pr.Namespace),
						"port":           d.integer(&pr.Port),
						"tag_host":       d.boolean(&pr.TagHost),
						"tag_path":       d.boolean(&pr.TagPath),
						"tag_method":     d.boolean(&pr.TagMethod),
						"tag_statuscode": d.boolean(&pr.TagStatusCode),
					}})
					oc.Prometheus = pr
				},
				"influxdb":     d.noEffect(d.rawObject(&discard), whyOCInflux),
				"logger":       d.noEffect(d.rawObject(&discard), whyOCLogger),
				"xray":         d.noEffect(d.rawObject(&discard), whyOCXray),
				"stackdriver":  d.noEffect(d.rawObject(&discard), whyOCStackdriver),
				"ocagent":      d.noEffect(d.rawObject(&discard), whyOCAgent),
				"datadog":      d.noEffect(d.rawObject(&discard), whyOCDatadog),
				"extra_config": d.noEffect(d.rawObject(&discard), whyOCExporterExtra),
			}})
		},
	}})
	return oc
}

// openCensusWarnings warns about a telemetry/opencensus block that exports
// nothing here: one next to telemetry/opentelemetry, or one without a
// Jaeger or Zipkin exporter that can send.
func (d *decoder) openCensusWarnings(s *Service) {
	if s == nil || s.ExtraConfig.OpenCensus == nil {
		return
	}
	p := path("extra_config").key("telemetry/opencensus")
	oc := s.ExtraConfig.OpenCensus
	switch {
	case s.ExtraConfig.OpenTelemetry != nil:
		d.ws.add(p, KindNoEffect, "accepted but has no effect: the edge runs one tracing pipeline, "+
			"and telemetry/opentelemetry is configured too (KrakenD would run both)")
		return
	case oc.Jaeger != nil && oc.Jaeger.Endpoint == "" && oc.Jaeger.AgentEndpoint == "":
		d.ws.add(p.field("exporters").field("jaeger"), KindNoEffect,
			"accepted but has no effect: it has neither endpoint nor agent_endpoint (KrakenD drops such an exporter)")
	case oc.Jaeger != nil && oc.Jaeger.Endpoint != "" && oc.Jaeger.AgentEndpoint != "":
		d.ws.add(p.field("exporters").field("jaeger").field("agent_endpoint"), KindNoEffect,
			"accepted but has no effect: spans go to the collector at endpoint; the agent is used only without one")
	}
	if oc.Zipkin != nil && oc.Zipkin.CollectorURL == "" {
		d.ws.add(p.field("exporters").field("zipkin"), KindNoEffect,
			"accepted but has no effect: it has no collector_url (KrakenD's uploads to an empty URL all fail)")
	}
	if !openCensusExports(oc) {
		d.ws.add(p, KindNoEffect, "accepted but has no effect: no exporter this gateway runs is configured "+
			"(exporters.jaeger with endpoint or agent_endpoint, exporters.zipkin with collector_url, exporters.prometheus)")
	}
}

// openCensusExports reports whether oc has an exporter the edge runs.
func openCensusExports(oc *OpenCensus) bool {
	return oc.Jaeger != nil && (oc.Jaeger.Endpoint != "" || oc.Jaeger.AgentEndpoint != "") ||
		oc.Zipkin != nil && oc.Zipkin.CollectorURL != "" || oc.Prometheus != nil
}

// openCensusPath decodes an endpoint's or a backend's
// telemetry/opencensus: its path_aggregation ("" when unset).
func (d *decoder) openCensusPath(n *node, p path) string {
	var mode string
	d.object(n, p, objectSpec{fields: map[string]handler{
		"path_aggregation": d.str(&mode),
	}})
	return mode
}

// openCensusPathWarnings warns about path_aggregation values that act
// otherwise than they say: without exporters.prometheus (only its views
// read them), a value krakend-opencensus does not know (it aggregates by
// pattern then), and lastparam on a pattern whose last segment is no
// parameter (pattern again).
func (d *decoder) openCensusPathWarnings(s *Service) {
	if s == nil {
		return
	}
	prom := s.ExtraConfig.OpenCensus != nil && s.ExtraConfig.OpenCensus.Prometheus != nil && s.ExtraConfig.OpenTelemetry == nil
	check := func(p path, mode, pattern string) {
		if mode == "" {
			return
		}
		p = p.field("extra_config").key("telemetry/opencensus").field("path_aggregation")
		switch {
		case !prom:
			d.ws.add(p, KindNoEffect, "accepted but has no effect: only the telemetry/opencensus exporters.prometheus views "+
				"read it, and the service has none (or has telemetry/opentelemetry, which wins)")
		case mode != ocPathPattern && mode != ocPathLastParam && mode != ocPathOff:
			d.ws.add(p, KindNoEffect, "%q is not pattern, lastparam or off: krakend-opencensus aggregates by pattern then", mode)
		case mode == ocPathLastParam && !lastSegmentParam(pattern):
			d.ws.add(p, KindNoEffect, "lastparam: the last segment of %q is no parameter, so the path is aggregated by pattern (as krakend-opencensus does)", pattern)
		}
	}
	for i, e := range s.Endpoints {
		if e == nil {
			continue
		}
		ep := path("endpoints").index(i)
		check(ep, e.ExtraConfig.OpenCensusPath, e.Endpoint)
		for j, b := range e.Backend {
			if b != nil {
				check(ep.field("backend").index(j), b.ExtraConfig.OpenCensusPath, b.URLPattern)
			}
		}
	}
}

// path_aggregation modes (krakend-opencensus).
const (
	ocPathPattern   = "pattern"
	ocPathLastParam = "lastparam"
	ocPathOff       = "off"
)

// lastSegmentParam reports whether pattern's last segment is a {param}
// (krakend-opencensus checks lura's :param or {{.Param}} form).
func lastSegmentParam(pattern string) bool {
	last := pattern[strings.LastIndexByte(pattern, '/')+1:]
	return strings.HasPrefix(last, "{")
}

// compileOCPath compiles a path_aggregation onto a layer: "off", or
// "lastparam" (when the pattern's last segment is a parameter) or
// "pattern" (also for any other value, and for lastparam without a last
// parameter) with the pattern, which the edge turns into
// krakend-opencensus' label.
func compileOCPath(l *gatewayv1.TraceLayer, mode, pattern string) {
	switch {
	case mode == ocPathOff:
		l.OcPathMode = ocPathOff
	case mode == ocPathLastParam && lastSegmentParam(pattern):
		l.OcPathMode, l.OcPath = ocPathLastParam, pattern
	default:
		l.OcPathMode, l.OcPath = ocPathPattern, pattern
	}
}

func (v *validator) openCensus(p path, oc *OpenCensus) {
	ep := p.field("exporters")
	if j := oc.Jaeger; j != nil {
		jp := ep.field("jaeger")
		if j.Endpoint != "" && !httpURL(j.Endpoint) {
			v.vs.add(jp.field("endpoint"), KindInvalid, "%q: want the collector's http or https URL, such as http://jaeger:14268/api/traces", redactURL(j.Endpoint))
		}
		if j.AgentEndpoint != "" {
			_, port, err := net.SplitHostPort(j.AgentEndpoint)
			if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
				v.vs.add(jp.field("agent_endpoint"), KindInvalid, "%q: want the agent's host:port, such as jaeger:6831", j.AgentEndpoint)
			}
		}
		if j.BufferMaxCount < 0 {
			v.vs.add(jp.field("buffer_max_count"), KindInvalid, "%d: want a count of spans, 0 or more", j.BufferMaxCount)
		}
	}
	if pr := oc.Prometheus; pr != nil && (pr.Port < 0 || pr.Port > 65535) {
		v.vs.add(ep.field("prometheus").field("port"), KindInvalid, "%d: want a TCP port, 0 to 65535", pr.Port)
	}
	if z := oc.Zipkin; z != nil && z.CollectorURL != "" && !httpURL(z.CollectorURL) {
		v.vs.add(ep.field("zipkin").field("collector_url"), KindInvalid,
			"%q: want the collector's http or https URL, such as http://zipkin:9411/api/v2/spans", redactURL(z.CollectorURL))
	}
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// openCensusActive reports whether the service's telemetry/opencensus is
// compiled: set, alone (telemetry/opentelemetry wins), with an exporter.
func openCensusActive(s *Service) *OpenCensus {
	oc := s.ExtraConfig.OpenCensus
	if oc == nil || s.ExtraConfig.OpenTelemetry != nil || !openCensusExports(oc) {
		return nil
	}
	return oc
}

// layers is enabled_layers with krakend-opencensus' default (all on).
func (oc *OpenCensus) layers() OpenCensusLayers {
	if oc.Layers == nil {
		return OpenCensusLayers{Router: true, Pipe: true, Backend: true}
	}
	return *oc.Layers
}

// compileOpenCensus compiles telemetry/opencensus onto the edge's tracer:
// sample_rate is a percentage (0 or less: never, 100 or more: always);
// nothing is skipped (krakend-opencensus traces every path); the service
// name of the resource is the service's (each exporter names its own).
func compileOpenCensus(s *Service, oc *OpenCensus, features map[string]bool) *gatewayv1.OpenTelemetry {
	features[feature.TelemetryOpenTelemetry] = true
	features[feature.TelemetryOpenCensus] = true
	l := oc.layers()
	out := &gatewayv1.OpenTelemetry{
		ServiceName:     s.Name,
		TraceSampleRate: min(max(float64(oc.SampleRate), 0), 100) / 100,
		Global:          &gatewayv1.TraceLayer{},
		Proxy:           &gatewayv1.TraceLayer{Disabled: !l.Pipe},
		Backend:         &gatewayv1.TraceLayer{Disabled: !l.Backend},
		Opencensus:      true,
		NoServerSpan:    !l.Router,
	}
	if out.ServiceName == "" {
		out.ServiceName = "KrakenD"
	}
	if j := oc.Jaeger; j != nil && (j.Endpoint != "" || j.AgentEndpoint != "") {
		e := &gatewayv1.JaegerExporter{ServiceName: j.ServiceName, BufferMaxCount: uint32(j.BufferMaxCount)}
		// krakend-opencensus gives endpoint to the collector and uses the
		// agent only without one.
		if j.Endpoint != "" {
			e.CollectorEndpoint = j.Endpoint
		} else {
			e.AgentEndpoint = j.AgentEndpoint
		}
		if e.ServiceName == "" {
			e.ServiceName = "OpenCensus" // the OpenCensus Jaeger exporter's default
		}
		out.Jaeger = append(out.Jaeger, e)
	}
	if z := oc.Zipkin; z != nil && z.CollectorURL != "" {
		out.Zipkin = append(out.Zipkin, &gatewayv1.ZipkinExporter{CollectorUrl: z.CollectorURL, ServiceName: z.ServiceName})
	}
	if pr := oc.Prometheus; pr != nil {
		features[feature.TelemetryOpenCensusPrometheus] = true
		out.OcPrometheus = &gatewayv1.OpenCensusPrometheus{
			Namespace: pr.Namespace, Port: uint32(pr.Port),
			TagHost: pr.TagHost, TagPath: pr.TagPath, TagMethod: pr.TagMethod, TagStatuscode: pr.TagStatusCode,
			Router: l.Router, Backend: l.Backend,
		}
	}
	return out
}
