// Package tracing is the edge's OpenTelemetry tracing: a Tracer built from
// a snapshot's `telemetry/opentelemetry` (OTLP exporters over gRPC or HTTP,
// the sample rate, the layers' switches and static attributes) and the
// per-request state that starts the spans of one request: the server span,
// the stage spans (JWT, rate limit, the proxy pipe that fans out and
// merges) and one client span per backend call, with the stable HTTP
// semantic-convention attribute names.
//
// Trace context is read from the client and written to every backend
// call: W3C traceparent (and baggage) by default, B3 when OTEL_PROPAGATORS
// names b3 or b3multi, as krakend-otel's autoprop does.
//
// The hot path stays cheap when a request is not traced: with no Tracer
// nothing happens at all, and an unsampled request (the default
// propagators) costs a header parse and a 55-byte traceparent written to
// each backend call, with no allocation. Only sampled requests create SDK
// spans.
//
// tracing imports no other edge package.
package tracing

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Options are the edge-local settings of a Tracer. The zero value is
// usable.
type Options struct {
	Logger zerolog.Logger
	// Propagators is an OTEL_PROPAGATORS value: a comma-separated list of
	// tracecontext, baggage, b3 (single header), b3multi and none. Empty
	// means "tracecontext,baggage".
	Propagators string
	// Exporter, when set, receives the spans instead of the snapshot's
	// OTLP exporters (tests and benchmarks).
	Exporter sdktrace.SpanExporter
	// Version is the service.version when the snapshot sets none.
	Version string
	// MetricReader, when set, also reads the instruments (tests and
	// benchmarks); it enables metrics without a metrics exporter.
	MetricReader sdkmetric.Reader
}

// Tracer traces requests for the plans built from one
// telemetry/opentelemetry setting. It is safe for concurrent use; a nil
// *Tracer traces nothing.
type Tracer struct {
	cfg      *gatewayv1.OpenTelemetry
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator // nil: disable_propagation
	fast     bool                          // prop is tracecontext (+ baggage) only
	baggage  bool
	// threshold: a root trace is sampled when a random uint64 is below it.
	threshold uint64
	always    bool
	skip      map[string]struct{}
	global    *Layer
	m         *meters // nil: no OpenTelemetry metrics
	ocp       *ocProm // nil: no telemetry/opencensus Prometheus views
	// oc shapes spans as krakend-opencensus does (telemetry/opencensus);
	// noServer is its enabled_layers.router false.
	oc, noServer bool
	// noB3 is what the B3 propagator extracts from a request without B3
	// headers (a context marked deferred), shared by all such requests.
	noB3 context.Context
}

// New builds the Tracer of cfg. Its exporters connect lazily: an
// unreachable collector loses spans (reported through the logger) but
// never fails or slows a request.
func New(cfg *gatewayv1.OpenTelemetry, opts Options) (*Tracer, error) {
	t := &Tracer{cfg: cfg, skip: make(map[string]struct{}, len(cfg.GetSkipPaths()))}
	for _, p := range cfg.GetSkipPaths() {
		t.skip[p] = struct{}{}
	}
	switch r := cfg.GetTraceSampleRate(); {
	case r >= 1:
		t.always = true
	case r <= 0:
		t.threshold = 0
	default:
		t.threshold = uint64(r * math.MaxUint64)
	}
	switch {
	case cfg.GetOpencensus():
		// krakend-opencensus reads and writes B3, in its multi-header form.
		t.oc, t.noServer = true, cfg.GetNoServerSpan()
		t.prop = b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader))
		t.noB3 = t.prop.Extract(context.Background(), propagation.MapCarrier{})
	case !cfg.GetDisablePropagation():
		var err error
		if t.prop, t.fast, t.baggage, err = propagators(opts.Propagators); err != nil {
			return nil, err
		}
	}
	version := cfg.GetServiceVersion()
	if version == "" {
		version = opts.Version
	}
	attrs := []attribute.KeyValue{semconv.ServiceName(cfg.GetServiceName())}
	if version != "" {
		attrs = append(attrs, semconv.ServiceVersion(version))
	}
	if env := cfg.GetDeployEnv(); env != "" {
		attrs = append(attrs, semconv.DeploymentEnvironmentName(env))
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, attrs...)
	var err error
	if t.m, err = newMeters(cfg, res, opts); err != nil {
		return nil, err
	}
	if t.ocp, err = newOCProm(cfg.GetOcPrometheus()); err != nil {
		_ = t.m.shutdown(context.Background())
		return nil, fmt.Errorf("opencensus prometheus exporter: %w", err)
	}
	popts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		// The edge decides sampling itself (Start); every span it creates
		// is recorded.
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
	}
	if opts.Exporter != nil {
		popts = append(popts, sdktrace.WithBatcher(opts.Exporter, sdktrace.WithBatchTimeout(200*time.Millisecond)))
	}
	for _, e := range cfg.GetOtlp() {
		exp, err := otlpExporter(e)
		if err != nil {
			_ = t.m.shutdown(context.Background())
			t.ocp.shutdown()
			return nil, err
		}
		popts = append(popts, sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)))
	}
	for _, e := range cfg.GetJaeger() {
		exp, err := jaegerExporter(e)
		if err != nil {
			_ = t.m.shutdown(context.Background())
			t.ocp.shutdown()
			return nil, err
		}
		bopts := []sdktrace.BatchSpanProcessorOption{sdktrace.WithBatchTimeout(time.Second)}
		if n := int(e.GetBufferMaxCount()); n > 0 {
			bopts = append(bopts, sdktrace.WithMaxQueueSize(n), sdktrace.WithMaxExportBatchSize(min(n, sdktrace.DefaultMaxExportBatchSize)))
		}
		popts = append(popts, sdktrace.WithBatcher(exp, bopts...))
	}
	for _, e := range cfg.GetZipkin() {
		exp, err := zipkinExporter(e)
		if err != nil {
			_ = t.m.shutdown(context.Background())
			t.ocp.shutdown()
			return nil, err
		}
		popts = append(popts, sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)))
	}
	t.provider = sdktrace.NewTracerProvider(popts...)
	t.tracer = t.provider.Tracer("github.com/apigw/gateway/edge")
	t.global = NewLayer(cfg.GetGlobal(), "global")
	return t, nil
}

// otlpExporter creates one OTLP trace exporter; it does not connect yet.
func otlpExporter(e *gatewayv1.OTLPExporter) (sdktrace.SpanExporter, error) {
	endpoint, secure := otlpEndpoint(e)
	ctx := context.Background()
	if e.GetUseHttp() {
		o := []otlptracehttp.Option{otlptracehttp.WithEndpoint(endpoint)}
		if !secure {
			o = append(o, otlptracehttp.WithInsecure())
		}
		exp, err := otlptracehttp.New(ctx, o...)
		if err != nil {
			return nil, fmt.Errorf("otlp exporter %q: %w", e.GetName(), err)
		}
		return exp, nil
	}
	o := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(endpoint)}
	if !secure {
		o = append(o, otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(ctx, o...)
	if err != nil {
		return nil, fmt.Errorf("otlp exporter %q: %w", e.GetName(), err)
	}
	return exp, nil
}

// otlpEndpoint is the host:port of an OTLP exporter, and whether its host
// asks for TLS (an https:// prefix).
func otlpEndpoint(e *gatewayv1.OTLPExporter) (string, bool) {
	endpoint := net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(e.GetHost(), "http://"), "https://"), "/"),
		strconv.Itoa(int(e.GetPort())))
	return endpoint, strings.HasPrefix(e.GetHost(), "https://")
}

// propagators builds the propagator of an OTEL_PROPAGATORS value. fast
// says that it is W3C only (the no-allocation path applies).
func propagators(list string) (p propagation.TextMapPropagator, fast, bag bool, err error) {
	if strings.TrimSpace(list) == "" {
		list = "tracecontext,baggage"
	}
	var ps []propagation.TextMapPropagator
	fast = true
	for _, name := range strings.Split(list, ",") {
		switch name = strings.TrimSpace(name); name {
		case "tracecontext":
			ps = append(ps, propagation.TraceContext{})
		case "baggage":
			ps = append(ps, propagation.Baggage{})
			bag = true
		case "b3":
			ps = append(ps, b3.New(b3.WithInjectEncoding(b3.B3SingleHeader)))
			fast = false
		case "b3multi":
			ps = append(ps, b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader)))
			fast = false
		case "none", "":
		default:
			return nil, false, false, fmt.Errorf("OTEL_PROPAGATORS: unsupported propagator %q (supported: tracecontext, baggage, b3, b3multi, none)", name)
		}
	}
	if len(ps) == 0 {
		return nil, false, false, nil
	}
	return propagation.NewCompositeTextMapPropagator(ps...), fast, bag, nil
}

// CheckPropagators reports whether an OTEL_PROPAGATORS value is one New
// accepts, so that a bad value stops the edge at start rather than
// failing every snapshot that enables tracing.
func CheckPropagators(list string) error {
	_, _, _, err := propagators(list)
	return err
}

// Config returns the settings t was built from.
func (t *Tracer) Config() *gatewayv1.OpenTelemetry { return t.cfg }

// Same reports whether t was built from settings equal to cfg.
func (t *Tracer) Same(cfg *gatewayv1.OpenTelemetry) bool { return proto.Equal(t.cfg, cfg) }

// Shutdown flushes the spans and the metrics still buffered, stops the
// exporters and gives the Prometheus listeners back.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	t.ocp.shutdown()
	return errors.Join(t.provider.Shutdown(ctx), t.m.shutdown(ctx))
}

// ForceFlush exports the spans and metrics buffered so far (tests).
func (t *Tracer) ForceFlush(ctx context.Context) error {
	err := t.provider.ForceFlush(ctx)
	if t.m != nil {
		err = errors.Join(err, t.m.provider.ForceFlush(ctx))
	}
	return err
}

// Metrics reports whether t records OpenTelemetry metrics.
func (t *Tracer) Metrics() bool { return t != nil && t.m != nil }

// Skipped reports whether requests to path get no trace (skip_paths).
func (t *Tracer) Skipped(path string) bool {
	_, ok := t.skip[path]
	return ok
}

// Layer is one layer's tracing and metrics settings, prepared at plan
// build time. A nil *Layer means the layer is disabled.
type Layer struct {
	spans         bool // the layer records spans
	attrs         []attribute.KeyValue
	reportHeaders bool
	skipHeaders   map[string]bool
	m             *layerMetrics // nil: no metrics for the layer
	oc            *ocPath       // nil: no telemetry/opencensus Prometheus views for the layer
	ocName        string        // telemetry/opencensus: the backend span's name
}

// traced reports whether l records spans.
func (l *Layer) traced() bool { return l != nil && l.spans }

// Layer prepares a proxy or a backend layer with its metrics part ml
// (nil: no metrics); nil when both parts are disabled. base attributes
// come first in the spans, mbase in the instruments; clientName is a
// backend's url_pattern (its round-trip instruments' clientname).
func (t *Tracer) Layer(tl *gatewayv1.TraceLayer, ml *gatewayv1.MetricsLayer, stage, clientName string,
	mbase []attribute.KeyValue, base ...attribute.KeyValue) *Layer {
	out := NewLayer(tl, stage, base...)
	if t.oc && out != nil {
		// krakend-opencensus' stage spans carry no static attributes; a
		// backend's is named after its url_pattern in lura's form.
		out.attrs = nil
		if stage == "backend" {
			out.ocName = "backend-" + luraURLPattern(clientName)
		}
	}
	var lm *layerMetrics
	if t.m != nil {
		lm = newLayerMetrics(t.m, ml, mbase, clientName)
	}
	var oc *ocPath
	if p := t.ocp; p != nil && (stage == "proxy" && p.router || stage == "backend" && p.backend) {
		oc = newOCPath(tl, stage == "proxy")
	}
	if lm == nil && oc == nil {
		return out
	}
	if out == nil {
		out = &Layer{}
	}
	out.m, out.oc = lm, oc
	return out
}

// NewLayer prepares a layer's tracing part; nil when it is disabled. base
// attributes come first, then krakend.stage, then the layer's static
// attributes.
func NewLayer(l *gatewayv1.TraceLayer, stage string, base ...attribute.KeyValue) *Layer {
	if l.GetDisabled() {
		return nil
	}
	out := &Layer{spans: true, reportHeaders: l.GetReportHeaders()}
	out.attrs = append(out.attrs, base...)
	out.attrs = append(out.attrs, attribute.String("krakend.stage", stage))
	for _, kv := range l.GetAttributes() {
		out.attrs = append(out.attrs, attribute.String(kv.GetKey(), kv.GetValue()))
	}
	if len(l.GetSkipHeaders()) > 0 {
		out.skipHeaders = make(map[string]bool, len(l.GetSkipHeaders()))
		for _, h := range l.GetSkipHeaders() {
			out.skipHeaders[h] = true
		}
	}
	return out
}

// headers adds the request headers as http.request.header.<name>.
func (l *Layer) headers(span trace.Span, h *fasthttp.RequestHeader) {
	if !l.reportHeaders {
		return
	}
	for k, v := range h.All() {
		name := string(k)
		if l.skipHeaders[name] {
			continue
		}
		span.SetAttributes(attribute.StringSlice("http.request.header."+strings.ToLower(name), []string{string(v)}))
	}
}

// Request is the tracing state of one request. The zero value traces
// nothing; it is meant to live in pooled per-request scratch and must be
// Reset before reuse.
type Request struct {
	t       *Tracer
	sampled bool
	ctx     context.Context // the server span's context (sampled)
	server  trace.Span
	stage   context.Context // the proxy span's context, parent of backend calls
	proxy   trace.Span
	remote  trace.SpanContext // unsampled: what backends inherit
	tp      [55]byte          // unsampled: traceparent sent to backends
	hasTP   bool
	b3span  [16]byte // unsampled, telemetry/opencensus: the X-B3-SpanId sent to backends (hex)
	hasB3   bool
	bag     []byte // unsampled: the client's baggage, forwarded
	traceID [32]byte
	hasID   bool

	// metrics (Tracer.m non-nil)
	start      time.Time
	route      string
	measured   *Layer // the proxy layer being measured
	proxyStart time.Time
	ocPath     *ocPath // telemetry/opencensus Prometheus: the route's path label; nil: not counted
}

// hasB3 reports whether h carries a header the B3 propagator reads.
func hasB3(h *fasthttp.RequestHeader) bool {
	for _, k := range b3Headers {
		if len(h.PeekBytes(k)) > 0 {
			return true
		}
	}
	return false
}

var b3Headers = [][]byte{[]byte("B3"), []byte("X-B3-TraceId"), []byte("X-B3-SpanId"), []byte("X-B3-Sampled"),
	[]byte("X-B3-Flags"), []byte("X-B3-ParentSpanId")}

var (
	// The B3 headers as fasthttp normalizes the propagator's names.
	hdrB3TraceID = []byte("X-B3-Traceid")
	hdrB3SpanID  = []byte("X-B3-Spanid")
	hdrB3Sampled = []byte("X-B3-Sampled")
	b3NotSampled = []byte("0")

	hdrTraceparent = []byte("Traceparent")
	hdrBaggage     = []byte("Baggage")
)

// Start begins tracing the request of ctx: it reads the client's trace
// context, decides sampling (a client's sampled flag is followed; a root
// trace is sampled at trace_sample_rate) and, when sampled, starts the
// server span. A skipped path (skip_paths) is not traced.
func (t *Tracer) Start(r *Request, ctx *fasthttp.RequestCtx) {
	if t == nil {
		return
	}
	path := ctx.Path()
	if len(t.skip) > 0 {
		if _, skip := t.skip[string(path)]; skip {
			return
		}
	}
	r.t = t
	if t.m != nil || t.ocp != nil {
		r.start = time.Now()
	}
	var parent trace.SpanContext
	var pctx context.Context
	switch {
	case t.prop == nil || t.noServer:
	case t.fast:
		parent = parseTraceparent(ctx.Request.Header.PeekBytes(hdrTraceparent))
	case t.oc && !hasB3(&ctx.Request.Header):
		pctx = t.noB3
	default:
		pctx = t.prop.Extract(context.Background(), headerCarrier{&ctx.Request.Header})
		parent = trace.SpanContextFromContext(pctx)
	}
	if parent.IsValid() {
		r.sampled = parent.IsSampled()
	} else {
		r.sampled = t.always || rand.Uint64() < t.threshold
	}
	if !r.sampled {
		r.unsampled(parent, ctx)
		return
	}
	if pctx == nil {
		pctx = context.Background()
		if parent.IsValid() {
			pctx = trace.ContextWithRemoteSpanContext(pctx, parent)
		}
		if t.baggage && t.prop != nil {
			if b := ctx.Request.Header.PeekBytes(hdrBaggage); len(b) > 0 {
				pctx = propagation.Baggage{}.Extract(pctx, headerCarrier{&ctx.Request.Header})
			}
		}
	}
	if t.noServer {
		// enabled_layers.router false: the pipe span is the trace's root.
		r.ctx, r.server = pctx, trace.SpanFromContext(pctx)
		return
	}
	method := string(ctx.Method())
	if t.oc {
		r.startOpenCensus(pctx, ctx)
		return
	}
	r.ctx, r.server = t.tracer.Start(pctx, method, trace.WithSpanKind(trace.SpanKindServer))
	if g := t.global; g != nil {
		r.server.SetAttributes(g.attrs...)
		g.headers(r.server, &ctx.Request.Header)
	}
	r.server.SetAttributes(
		semconv.HTTPRequestMethodKey.String(method),
		semconv.URLPath(string(path)),
		semconv.URLScheme(scheme(ctx)),
		semconv.ServerAddress(string(ctx.Host())),
		semconv.UserAgentOriginal(string(ctx.UserAgent())),
	)
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		r.server.SetAttributes(semconv.ClientAddress(a.IP.String()))
	}
	sc := r.server.SpanContext()
	tid := sc.TraceID()
	hex.Encode(r.traceID[:], tid[:])
	r.hasID = true
}

// unsampled prepares what backends inherit from an unsampled request: the
// client's context (or a new trace id) with the sampled flag off, as the
// SDK's non-recording span propagates it.
func (r *Request) unsampled(parent trace.SpanContext, ctx *fasthttp.RequestCtx) {
	if !parent.IsValid() {
		var tid trace.TraceID
		var sid trace.SpanID
		putUint64(tid[:8], rand.Uint64())
		putUint64(tid[8:], rand.Uint64()|1)
		putUint64(sid[:], rand.Uint64()|1)
		parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid})
	}
	r.remote = parent
	tid := parent.TraceID()
	hex.Encode(r.traceID[:], tid[:])
	r.hasID = true
	if r.t.prop == nil {
		return
	}
	if r.t.oc {
		// krakend-opencensus' B3 multi headers, written without the
		// propagator (which formats them through a context and strings).
		sid := parent.SpanID()
		hex.Encode(r.b3span[:], sid[:])
		r.hasB3 = true
		return
	}
	if r.t.fast {
		sid := parent.SpanID()
		writeTraceparent(&r.tp, tid, sid, false)
		r.hasTP = true
		if r.t.baggage {
			r.bag = append(r.bag[:0], ctx.Request.Header.PeekBytes(hdrBaggage)...)
		}
	}
}

// Traced reports whether the request is traced at all (not skipped, a
// Tracer configured).
func (r *Request) Traced() bool { return r.t != nil }

// Sampled reports whether the request records spans.
func (r *Request) Sampled() bool { return r.sampled }

// TraceID returns the request's trace id in hex, nil when untraced. It is
// valid until Reset.
func (r *Request) TraceID() []byte {
	if !r.hasID {
		return nil
	}
	return r.traceID[:]
}

// SetRoute names the server span after the matched endpoint (name is
// "GET /users/{id}") and records http.route.
func (r *Request) SetRoute(name, route string) {
	r.route = route
	if !r.sampled {
		return
	}
	r.server.SetName(name)
	if !r.t.oc {
		r.server.SetAttributes(semconv.HTTPRoute(route))
	}
}

// SetOpenCensusRoute counts the request in telemetry/opencensus'
// Prometheus server views under the endpoint layer l's path label (the
// router layer on); a nil l counts nothing.
func (r *Request) SetOpenCensusRoute(l *Layer) {
	if l != nil {
		r.ocPath = l.oc
	}
}

// Unrouted counts a request answered by the 404 or (methodNotAllowed)
// 405 handler in telemetry/opencensus' Prometheus server views, as
// KrakenD's NoRoute and NoMethod handlers are.
func (r *Request) Unrouted(methodNotAllowed bool) {
	if r.t == nil || r.t.ocp == nil || !r.t.ocp.router {
		return
	}
	r.ocPath = ocNoRoute
	if methodNotAllowed {
		r.ocPath = ocNoMethod
	}
}

// End finishes the server span with the response status.
func (r *Request) End(ctx *fasthttp.RequestCtx) {
	if r.t != nil && r.t.m != nil {
		r.t.m.recordServer(r, ctx)
	}
	if r.ocPath != nil {
		r.t.ocp.recordServer(r, ctx)
	}
	if !r.sampled {
		return
	}
	if r.t.oc {
		// krakend-opencensus' server span carries the request only.
		r.server.End()
		return
	}
	status := ctx.Response.StatusCode()
	r.server.SetAttributes(semconv.HTTPResponseStatusCode(status), semconv.HTTPResponseBodySize(len(ctx.Response.Body())))
	if status >= 500 {
		r.server.SetStatus(codes.Error, "")
	}
	r.server.End()
}

// Reset clears r for reuse.
func (r *Request) Reset() {
	bag := r.bag[:0]
	*r = Request{bag: bag}
}

// Stage is a running stage span (JWT, rate limit); the zero value is a
// stage that is not traced.
type Stage struct{ span trace.Span }

// StartStage starts a stage span under the server span, nil layer or an
// unsampled request giving the zero Stage.
func (r *Request) StartStage(l *Layer, name string) Stage {
	if !r.sampled || !l.traced() {
		return Stage{}
	}
	_, span := r.t.tracer.Start(r.ctx, name)
	span.SetAttributes(l.attrs...)
	return Stage{span: span}
}

// End finishes the stage; failed marks it as an error with the outcome.
func (s Stage) End(failed bool, outcome string) {
	if s.span == nil {
		return
	}
	if outcome != "" {
		s.span.SetAttributes(attribute.String("krakend.outcome", outcome))
	}
	if failed {
		s.span.SetStatus(codes.Error, outcome)
	}
	s.span.End()
}

// StartProxy starts the proxy stage span of the endpoint (the pipe that
// calls the backends and merges them), parent of the backend spans.
func (r *Request) StartProxy(l *Layer, name string, h *fasthttp.RequestHeader) {
	if l != nil && l.m != nil {
		r.measured, r.proxyStart = l, time.Now()
	}
	if !r.sampled {
		return
	}
	r.stage = r.ctx
	if !l.traced() {
		return
	}
	r.stage, r.proxy = r.t.tracer.Start(r.ctx, name)
	r.proxy.SetAttributes(l.attrs...)
	l.headers(r.proxy, h)
}

// EndProxy finishes the proxy span with the pipe's outcome.
func (r *Request) EndProxy(complete bool, failed int) {
	if l := r.measured; l != nil {
		l.m.recordStage(l.m.m.proxyDur, r.proxyStart, failed > 0, complete)
	}
	if r.proxy == nil {
		return
	}
	if r.t.oc {
		r.proxy.SetAttributes(attribute.Bool("complete", complete))
		r.proxy.End()
		return
	}
	r.proxy.SetAttributes(attribute.Bool("krakend.response.complete", complete), attribute.Int("krakend.backends.failed", failed))
	if failed > 0 {
		r.proxy.SetStatus(codes.Error, "")
	}
	r.proxy.End()
}

// Call is the client span and the measurement of one backend call; the
// zero value is an untraced, unmeasured call.
type Call struct {
	span  trace.Span
	outer trace.Span // telemetry/opencensus: the "backend-" span around span
	m     *layerMetrics
	oc    *ocPath // telemetry/opencensus Prometheus client views; nil: not counted
	ocp   *ocProm
	start time.Time
	req   *fasthttp.Request // measured calls: read again by End
}

// StartCall starts the span of a backend call built in req (its method and
// URI already set) and writes the trace context into req's headers. With
// an unsampled request it only writes the inherited context. It runs on
// the handler goroutine.
func (r *Request) StartCall(l *Layer, name string, req *fasthttp.Request) Call {
	var c Call
	if l != nil && l.m != nil && r.t != nil {
		c.m, c.start, c.req = l.m, time.Now(), req
	}
	if l != nil && l.oc != nil && r.t != nil {
		c.oc, c.ocp, c.req = l.oc, r.t.ocp, req
		if c.start.IsZero() {
			c.start = time.Now()
		}
	}
	if r.t == nil || r.t.prop == nil && !r.sampled {
		return c
	}
	if !r.sampled {
		r.injectUnsampled(&req.Header)
		return c
	}
	ctx := r.stage
	if ctx == nil {
		ctx = r.ctx
	}
	if r.t.oc {
		return r.startOpenCensusCall(ctx, l, req, c)
	}
	var span trace.Span
	if l.traced() {
		ctx, span = r.t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient))
		span.SetAttributes(l.attrs...)
		span.SetAttributes(
			semconv.HTTPRequestMethodKey.String(string(req.Header.Method())),
			semconv.URLFull(string(req.URI().FullURI())),
			semconv.ServerAddress(string(req.URI().Host())),
		)
		l.headers(span, &req.Header)
	}
	if r.t.prop != nil {
		r.t.prop.Inject(ctx, headerCarrier{&req.Header})
	}
	c.span = span
	return c
}

func (r *Request) injectUnsampled(h *fasthttp.RequestHeader) {
	if r.hasB3 {
		h.SetCanonical(hdrB3TraceID, r.traceID[:])
		h.SetCanonical(hdrB3SpanID, r.b3span[:])
		h.SetCanonical(hdrB3Sampled, b3NotSampled)
		return
	}
	if r.hasTP {
		h.SetCanonical(hdrTraceparent, r.tp[:])
		if len(r.bag) > 0 {
			h.SetCanonical(hdrBaggage, r.bag)
		}
		return
	}
	// B3 configured: the propagator writes the inherited context.
	r.t.prop.Inject(trace.ContextWithRemoteSpanContext(context.Background(), r.remote), headerCarrier{h})
}

// End finishes the call span and records the call's instruments: status
// is the backend's HTTP status (0 when none came back), reason the failure
// reason ("" on success), resp the backend's response (read only when
// status is set).
func (c Call) End(status int, reason string, resp *fasthttp.Response) {
	if c.m != nil {
		c.m.recordCall(&c, status, reason, resp)
	}
	if c.oc != nil {
		c.ocp.recordCall(&c, status, reason, resp)
	}
	if c.outer != nil {
		c.endOpenCensus(status, reason)
		return
	}
	if c.span == nil {
		return
	}
	if status > 0 {
		c.span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	}
	if reason != "" {
		c.span.SetAttributes(semconv.ErrorTypeKey.String(reason))
		c.span.SetStatus(codes.Error, reason)
	}
	c.span.End()
}

// parseTraceparent reads a W3C traceparent value without allocating; an
// invalid value gives the zero SpanContext.
func parseTraceparent(v []byte) trace.SpanContext {
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || (len(v) > 55 && v[55] != '-') {
		return trace.SpanContext{}
	}
	if v[0] == 'f' && v[1] == 'f' || !isHex(v[:2]) || v[0] == '0' && v[1] == '0' && len(v) != 55 {
		return trace.SpanContext{}
	}
	var tid trace.TraceID
	var sid trace.SpanID
	var flags [1]byte
	if !decodeHex(tid[:], v[3:35]) || !decodeHex(sid[:], v[36:52]) || !decodeHex(flags[:], v[53:55]) {
		return trace.SpanContext{}
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags[0]) & trace.FlagsSampled, Remote: true,
	})
	if !sc.IsValid() {
		return trace.SpanContext{}
	}
	return sc
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// decodeHex decodes lowercase hex (W3C forbids upper case).
func decodeHex(dst, src []byte) bool {
	if !isHex(src) {
		return false
	}
	_, err := hex.Decode(dst, src)
	return err == nil
}

func writeTraceparent(dst *[55]byte, tid trace.TraceID, sid trace.SpanID, sampled bool) {
	dst[0], dst[1], dst[2] = '0', '0', '-'
	hex.Encode(dst[3:35], tid[:])
	dst[35] = '-'
	hex.Encode(dst[36:52], sid[:])
	dst[52], dst[53], dst[54] = '-', '0', '0'
	if sampled {
		dst[54] = '1'
	}
}

func putUint64(b []byte, v uint64) {
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

func scheme(ctx *fasthttp.RequestCtx) string {
	if ctx.IsTLS() {
		return "https"
	}
	return "http"
}

// headerCarrier adapts fasthttp request headers to the propagators.
type headerCarrier struct{ h *fasthttp.RequestHeader }

func (c headerCarrier) Get(key string) string { return string(c.h.Peek(key)) }
func (c headerCarrier) Set(key, value string) { c.h.Set(key, value) }
func (c headerCarrier) Keys() []string {
	var keys []string
	for k := range c.h.All() {
		keys = append(keys, string(k))
	}
	return keys
}

// Registry hands out Tracers across plans: a push that keeps the
// telemetry/opentelemetry settings keeps the Tracer (and its exporter
// connections); a Tracer no plan holds any more is flushed and shut down.
// Safe for concurrent use; create one per edge process.
type Registry struct {
	opts Options
	mu   sync.Mutex // guards the fields below
	held map[*Tracer]int
	wg   sync.WaitGroup
}

// NewRegistry returns a Registry whose Tracers use opts.
func NewRegistry(opts Options) *Registry {
	return &Registry{opts: opts, held: make(map[*Tracer]int)}
}

// Acquire returns a Tracer for cfg, the one a live plan already holds when
// its settings are equal. Pair it with Release.
func (g *Registry) Acquire(cfg *gatewayv1.OpenTelemetry) (*Tracer, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for t := range g.held {
		if t.Same(cfg) {
			g.held[t]++
			return t, nil
		}
	}
	t, err := New(cfg, g.opts)
	if err != nil {
		return nil, err
	}
	g.held[t] = 1
	return t, nil
}

// Release drops one hold on t; the last one flushes and shuts t down in
// the background (Close waits for it).
func (g *Registry) Release(t *Tracer) {
	if t == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held[t]--; g.held[t] > 0 {
		return
	}
	delete(g.held, t)
	g.wg.Go(func() { g.shutdown(t) })
}

func (g *Registry) shutdown(t *Tracer) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		g.opts.Logger.Warn().Err(err).Msg("tracing: flushing spans at shutdown")
	}
}

// Close shuts down every Tracer still held and waits for the shutdowns.
func (g *Registry) Close() {
	g.mu.Lock()
	for t := range g.held {
		delete(g.held, t)
		g.wg.Go(func() { g.shutdown(t) })
	}
	g.mu.Unlock()
	g.wg.Wait()
}
