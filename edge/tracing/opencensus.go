package tracing

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	//lint:ignore SA1019 telemetry/opencensus speaks Jaeger's thrift protocol (collector and agent), which only this exporter does
	"go.opentelemetry.io/otel/exporters/jaeger"
	//lint:ignore SA1019 telemetry/opencensus' Zipkin exporter; OpenTelemetry deprecates it for 2027, its v2 JSON is what Zipkin reads
	"go.opentelemetry.io/otel/exporters/zipkin"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// telemetry/opencensus: krakend-opencensus v2 records, for each request,
//
//   - a server span named after the endpoint in lura's form (/users/:id),
//     with ochttp's request attributes (http.host, http.method, http.path,
//     http.url, http.user_agent), "NoRoute" when nothing matched;
//   - "pipe-<endpoint>" around the proxy pipe, with complete;
//   - "backend-<url_pattern>" around each backend (lura's {{.Param}} form),
//     with complete and, on failure, error;
//   - under it a client span named after the backend URL's path, with the
//     request attributes, http.status_code and the status mapped from it.
//
// Trace context is B3 (multi-header) both ways. Its Jaeger exporter names
// server spans "Recv.<name>" and client spans "Sent.<name>"; each exporter
// has its own service name. The Tracer keeps its OpenTelemetry SDK: only
// names, attributes and exporters change.

// OpenCensus reports whether t shapes spans as krakend-opencensus does.
func (t *Tracer) OpenCensus() bool { return t != nil && t.oc }

// ServerSpanName is the server span's name for an endpoint: name, or with
// telemetry/opencensus the endpoint's path in lura's form.
func (t *Tracer) ServerSpanName(name, path string) string {
	if t.OpenCensus() {
		return luraEndpoint(path)
	}
	return name
}

// ProxySpanName is the name of an endpoint's proxy stage span.
func (t *Tracer) ProxySpanName(path string) string {
	if t.OpenCensus() {
		return "pipe-" + luraEndpoint(path)
	}
	return "proxy " + path
}

// luraEndpoint writes an endpoint path's {param} segments as lura's router
// does (:param).
func luraEndpoint(path string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(path, '{')
		j := strings.IndexByte(path[i+1:], '}')
		if i < 0 || j < 0 {
			b.WriteString(path)
			return b.String()
		}
		b.WriteString(path[:i])
		b.WriteByte(':')
		b.WriteString(path[i+1 : i+1+j])
		path = path[i+j+2:]
	}
}

// luraURLPattern writes a url_pattern's {param} placeholders as lura's
// config does ({{.Param}}, the first letter upper case).
func luraURLPattern(pattern string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(pattern, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(pattern[i+1:], '}')
		if j <= 0 {
			break
		}
		key := pattern[i+1 : i+1+j]
		b.WriteString(pattern[:i])
		b.WriteString("{{.")
		b.WriteString(strings.ToUpper(key[:1]))
		b.WriteString(key[1:])
		b.WriteString("}}")
		pattern = pattern[i+j+2:]
	}
	b.WriteString(pattern)
	return b.String()
}

// startOpenCensus starts the server span as krakend-opencensus' router does.
func (r *Request) startOpenCensus(pctx context.Context, ctx *fasthttp.RequestCtx) {
	r.ctx, r.server = r.t.tracer.Start(pctx, "NoRoute", trace.WithSpanKind(trace.SpanKindServer))
	r.server.SetAttributes(
		attribute.String("http.path", string(ctx.Path())),
		attribute.String("http.url", string(ctx.RequestURI())),
		attribute.String("http.host", string(ctx.Host())),
		attribute.String("http.method", string(ctx.Method())),
	)
	if ua := ctx.UserAgent(); len(ua) > 0 {
		r.server.SetAttributes(attribute.String("http.user_agent", string(ua)))
	}
	tid := r.server.SpanContext().TraceID()
	hex.Encode(r.traceID[:], tid[:])
	r.hasID = true
}

// startOpenCensusCall starts the "backend-" span and the client span of a
// sampled backend call and writes the B3 headers. A call to /healthz or
// /_ah/health gets no client span and no headers, as ochttp skips them.
func (r *Request) startOpenCensusCall(ctx context.Context, l *Layer, req *fasthttp.Request, c Call) Call {
	if !l.traced() {
		r.t.prop.Inject(ctx, headerCarrier{&req.Header})
		return c
	}
	ctx, c.outer = r.t.tracer.Start(ctx, l.ocName)
	path := string(req.URI().Path())
	if path == "/healthz" || path == "/_ah/health" {
		return c
	}
	ctx, c.span = r.t.tracer.Start(ctx, path, trace.WithSpanKind(trace.SpanKindClient))
	c.span.SetAttributes(
		attribute.String("http.path", path),
		attribute.String("http.url", string(req.URI().FullURI())),
		attribute.String("http.host", string(req.URI().Host())),
		attribute.String("http.method", string(req.Header.Method())),
	)
	if ua := req.Header.UserAgent(); len(ua) > 0 {
		c.span.SetAttributes(attribute.String("http.user_agent", string(ua)))
	}
	r.t.prop.Inject(ctx, headerCarrier{&req.Header})
	return c
}

// endOpenCensus ends the client span with the backend's status and the
// backend span with the call's outcome.
func (c Call) endOpenCensus(status int, reason string) {
	if c.span != nil {
		switch {
		case status > 0:
			c.span.SetAttributes(attribute.Int64("http.status_code", int64(status)))
			if status < 200 || status >= 400 {
				c.span.SetStatus(codes.Error, ocStatusName(status))
			} else {
				c.span.SetStatus(codes.Ok, "")
			}
		case reason != "":
			c.span.SetStatus(codes.Error, reason)
		}
		c.span.End()
	}
	if reason != "" {
		c.outer.SetAttributes(attribute.String("error", reason))
	}
	c.outer.SetAttributes(attribute.Bool("complete", reason == ""))
	c.outer.End()
}

// ocStatusName is the canonical status krakend-opencensus maps an HTTP
// error status to.
func ocStatusName(status int) string {
	switch status {
	case 499:
		return "CANCELLED"
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return "INVALID_ARGUMENT"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusNotImplemented:
		return "UNIMPLEMENTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	}
	return "UNKNOWN"
}

// jaegerExporter creates a Jaeger thrift exporter: to the collector's URL
// over HTTP, or to an agent over UDP.
func jaegerExporter(e *gatewayv1.JaegerExporter) (sdktrace.SpanExporter, error) {
	var ep jaeger.EndpointOption
	if u := e.GetCollectorEndpoint(); u != "" {
		ep = jaeger.WithCollectorEndpoint(jaeger.WithEndpoint(u))
	} else {
		host, port, err := net.SplitHostPort(e.GetAgentEndpoint())
		if err != nil {
			return nil, fmt.Errorf("jaeger exporter: agent_endpoint %q: %w", e.GetAgentEndpoint(), err)
		}
		ep = jaeger.WithAgentEndpoint(jaeger.WithAgentHost(host), jaeger.WithAgentPort(port))
	}
	exp, err := jaeger.New(ep)
	if err != nil {
		return nil, fmt.Errorf("jaeger exporter: %w", err)
	}
	return &namedExporter{SpanExporter: exp, res: serviceResource(e.GetServiceName()), kindPrefix: true}, nil
}

// zipkinExporter creates a Zipkin v2 JSON exporter posting to the
// collector's URL.
func zipkinExporter(e *gatewayv1.ZipkinExporter) (sdktrace.SpanExporter, error) {
	exp, err := zipkin.New(e.GetCollectorUrl())
	if err != nil {
		return nil, fmt.Errorf("zipkin exporter: %w", err)
	}
	out := &namedExporter{SpanExporter: exp}
	if n := e.GetServiceName(); n != "" {
		out.res = serviceResource(n)
	}
	return out, nil
}

func serviceResource(name string) *resource.Resource {
	return resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(name))
}

// namedExporter gives the spans one exporter sends its own service name
// (res, nil: the Tracer's) and, for Jaeger, the OpenCensus Jaeger
// exporter's "Recv."/"Sent." prefixes on server and client spans.
type namedExporter struct {
	sdktrace.SpanExporter
	res        *resource.Resource
	kindPrefix bool
}

func (e *namedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, s := range spans {
		n := namedSpan{ReadOnlySpan: s, name: s.Name(), res: e.res}
		if e.kindPrefix {
			switch s.SpanKind() {
			case trace.SpanKindServer:
				n.name = "Recv." + n.name
			case trace.SpanKindClient:
				n.name = "Sent." + n.name
			}
		}
		if n.res == nil {
			n.res = s.Resource()
		}
		out[i] = n
	}
	return e.SpanExporter.ExportSpans(ctx, out)
}

// namedSpan is a span as one exporter sees it.
type namedSpan struct {
	sdktrace.ReadOnlySpan
	name string
	res  *resource.Resource
}

func (s namedSpan) Name() string                 { return s.name }
func (s namedSpan) Resource() *resource.Resource { return s.res }
