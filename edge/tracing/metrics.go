package tracing

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// The instruments are krakend-otel v0.13's: the same names, units,
// histogram buckets and attributes, per layer.
//
//   - global: http.server.duration and http.server.response.size
//     (semantic_convention "1.27": http.server.request.duration and
//     http.server.response.body.size), by http.request.method,
//     url.scheme, http.route and http.response.status_code;
//   - proxy: krakend.proxy.duration, by http.request.method, http.route,
//     error, canceled and complete;
//   - backend: krakend.backend.duration (the stage), and with round_trip
//     the HTTP client's http.client.request.started.count, .failed.count,
//     .canceled.count, .timedout.count, http.client.request.size,
//     http.client.duration, http.client.response.size and
//     http.client.response.no-content-length (semantic_convention "1.27":
//     http.client.request.body.size, http.client.request.duration and
//     http.client.response.body.size only), by http.request.method,
//     server.address, server.port, http.response.status_code and
//     clientname; with read_payload http.client.response.read.size,
//     .size-hist and .errors.
//
// Every instrument also carries the layer's static attributes.

var (
	timeBuckets = metric.WithExplicitBucketBoundaries(
		0.010, 0.020, 0.050, 0.075, 0.100, 0.125, 0.150, 0.175, 0.200, 0.250,
		0.300, 0.350, 0.500, 0.750, 1.000, 1.500, 2.000, 3.500, 5.000, 10.000)
	sizeBuckets = metric.WithExplicitBucketBoundaries(
		128, 256, 512, 1024, 4*1024, 8*1024, 16*1024, 32*1024,
		64*1024, 4*64*1024, 8*64*1024, 16*64*1024, 4*1024*1024, 16*1024*1024, 64*1024*1024)
)

// meters is the metrics side of a Tracer: the MeterProvider with its
// readers (Prometheus listeners, OTLP pushes) and the instruments. A nil
// *meters records nothing.
type meters struct {
	provider  *sdkmetric.MeterProvider
	listeners []*promListener // held; given back at shutdown
	semconv   bool            // semantic_convention "1.27"

	serverDur  metric.Float64Histogram
	serverSize metric.Int64Histogram
	serverOpts optCache[serverKey]
	global     []attribute.KeyValue // the global layer's static attributes; nil slice when disabled
	globalOn   bool

	proxyDur   metric.Float64Histogram
	backendDur metric.Float64Histogram

	started, failed, canceled, timedOut metric.Int64Counter // nil with semantic_convention 1.27
	reqSize, noContentLength            metric.Int64Counter // nil with semantic_convention 1.27
	reqSizeHist                         metric.Int64Histogram
	clientDur                           metric.Float64Histogram
	respSize                            metric.Int64Histogram

	readSize     metric.Int64Counter
	readSizeHist metric.Int64Histogram
	readErrors   metric.Int64Counter
}

type serverKey struct {
	route, method, scheme string
	status                int
}

// newMeters builds the metrics side of cfg; nil when cfg exports no
// metrics. The Prometheus listeners are bound here, so a busy port fails
// the snapshot with its address.
func newMeters(cfg *gatewayv1.OpenTelemetry, res *resource.Resource, opts Options) (_ *meters, err error) {
	if len(cfg.GetPrometheus()) == 0 && len(cfg.GetOtlpMetrics()) == 0 && opts.MetricReader == nil {
		return nil, nil
	}
	m := &meters{semconv: cfg.GetSemanticConvention() == "1.27"}
	defer func() {
		if err != nil {
			m.releaseListeners()
		}
	}()
	popts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	if opts.MetricReader != nil {
		popts = append(popts, sdkmetric.WithReader(opts.MetricReader))
	}
	for _, e := range cfg.GetPrometheus() {
		reader, err := m.prometheus(e)
		if err != nil {
			return nil, err
		}
		popts = append(popts, sdkmetric.WithReader(reader))
	}
	period := time.Duration(cfg.GetMetricReportingPeriodS()) * time.Second
	for _, e := range cfg.GetOtlpMetrics() {
		exp, err := otlpMetricExporter(e)
		if err != nil {
			return nil, err
		}
		interval := period
		if c := e.GetCustomMetricReportingPeriodS(); c >= 1 {
			interval = time.Duration(c) * time.Second
		}
		// An interval of 0 keeps the SDK's default (60s), as krakend-otel.
		popts = append(popts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(interval))))
	}
	m.provider = sdkmetric.NewMeterProvider(popts...)
	m.instruments(m.provider.Meter("github.com/apigw/gateway/edge"))
	if g := cfg.GetGlobalMetrics(); g != nil && !g.GetDisabled() {
		m.globalOn = true
		m.global = attributes(g.GetAttributes())
	}
	return m, nil
}

func (m *meters) instruments(meter metric.Meter) {
	// The SDK returns a usable instrument with every error it reports
	// (only a bad name does), so the errors are not checked.
	if m.semconv {
		m.serverDur, _ = meter.Float64Histogram("http.server.request.duration", metric.WithUnit("s"),
			metric.WithDescription("Duration of HTTP server requests."), timeBuckets)
		m.serverSize, _ = meter.Int64Histogram("http.server.response.body.size", metric.WithUnit("By"),
			metric.WithDescription("Size of HTTP server response bodies."), sizeBuckets)
		m.reqSizeHist, _ = meter.Int64Histogram("http.client.request.body.size", metric.WithUnit("By"),
			metric.WithDescription("Size of HTTP client request bodies."), sizeBuckets)
		m.clientDur, _ = meter.Float64Histogram("http.client.request.duration", metric.WithUnit("s"),
			metric.WithDescription("Duration of HTTP client requests."), timeBuckets)
		m.respSize, _ = meter.Int64Histogram("http.client.response.body.size", metric.WithUnit("By"),
			metric.WithDescription("Size of HTTP client response bodies."), sizeBuckets)
	} else {
		m.serverDur, _ = meter.Float64Histogram("http.server.duration", timeBuckets)
		m.serverSize, _ = meter.Int64Histogram("http.server.response.size", sizeBuckets)
		m.started, _ = meter.Int64Counter("http.client.request.started.count")
		m.failed, _ = meter.Int64Counter("http.client.request.failed.count")
		m.canceled, _ = meter.Int64Counter("http.client.request.canceled.count")
		m.timedOut, _ = meter.Int64Counter("http.client.request.timedout.count")
		m.reqSize, _ = meter.Int64Counter("http.client.request.size")
		m.clientDur, _ = meter.Float64Histogram("http.client.duration", timeBuckets)
		m.respSize, _ = meter.Int64Histogram("http.client.response.size", sizeBuckets)
		m.noContentLength, _ = meter.Int64Counter("http.client.response.no-content-length")
	}
	m.proxyDur, _ = meter.Float64Histogram("krakend.proxy.duration", timeBuckets)
	m.backendDur, _ = meter.Float64Histogram("krakend.backend.duration", timeBuckets)
	m.readSize, _ = meter.Int64Counter("http.client.response.read.size", metric.WithUnit("b"))
	m.readSizeHist, _ = meter.Int64Histogram("http.client.response.read.size-hist", metric.WithUnit("b"), sizeBuckets)
	m.readErrors, _ = meter.Int64Counter("http.client.response.read.errors")
}

// prometheus registers one exporters.prometheus[] entry: a registry of
// its own served on host:port/metrics, with the process and Go collectors
// when asked.
func (m *meters) prometheus(e *gatewayv1.PrometheusExporter) (sdkmetric.Reader, error) {
	reg := prometheus.NewRegistry()
	if e.GetProcessMetrics() {
		reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if e.GetGoMetrics() {
		reg.MustRegister(collectors.NewGoCollector())
	}
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter %q: %w", e.GetName(), err)
	}
	addr := net.JoinHostPort(e.GetHost(), strconv.Itoa(int(e.GetPort())))
	l, err := listeners.acquire(addr, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter %q: %w", e.GetName(), err)
	}
	m.listeners = append(m.listeners, l)
	return exp, nil
}

func (m *meters) releaseListeners() {
	for _, l := range m.listeners {
		listeners.release(l)
	}
	m.listeners = nil
}

func (m *meters) shutdown(ctx context.Context) error {
	if m == nil {
		return nil
	}
	m.releaseListeners()
	return m.provider.Shutdown(ctx)
}

// otlpMetricExporter creates one OTLP metrics exporter; it does not
// connect yet.
func otlpMetricExporter(e *gatewayv1.OTLPExporter) (sdkmetric.Exporter, error) {
	endpoint, secure := otlpEndpoint(e)
	ctx := context.Background()
	if e.GetUseHttp() {
		o := []otlpmetrichttp.Option{otlpmetrichttp.WithEndpoint(endpoint)}
		if !secure {
			o = append(o, otlpmetrichttp.WithInsecure())
		}
		exp, err := otlpmetrichttp.New(ctx, o...)
		if err != nil {
			return nil, fmt.Errorf("otlp exporter %q: %w", e.GetName(), err)
		}
		return exp, nil
	}
	o := []otlpmetricgrpc.Option{otlpmetricgrpc.WithEndpoint(endpoint)}
	if !secure {
		o = append(o, otlpmetricgrpc.WithInsecure())
	}
	exp, err := otlpmetricgrpc.New(ctx, o...)
	if err != nil {
		return nil, fmt.Errorf("otlp exporter %q: %w", e.GetName(), err)
	}
	return exp, nil
}

func attributes(kvs []*gatewayv1.KeyValue) []attribute.KeyValue {
	out := make([]attribute.KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, attribute.String(kv.GetKey(), kv.GetValue()))
	}
	return out
}

// recordServer records the server instruments of a finished request.
func (m *meters) recordServer(r *Request, ctx *fasthttp.RequestCtx) {
	if !m.globalOn {
		return
	}
	k := serverKey{route: r.route, method: methodName(ctx.Method()), scheme: scheme(ctx), status: ctx.Response.StatusCode()}
	o := m.serverOpts.get(k, func() attribute.Set {
		kv := append(append([]attribute.KeyValue(nil), m.global...),
			attribute.String("http.request.method", k.method),
			attribute.String("url.scheme", k.scheme),
			attribute.String("http.route", k.route),
			attribute.Int("http.response.status_code", k.status))
		return attribute.NewSet(kv...)
	})
	m.serverDur.Record(context.Background(), time.Since(r.start).Seconds(), o.rec...)
	m.serverSize.Record(context.Background(), int64(len(ctx.Response.Body())), o.rec...)
}

// layerMetrics is the metrics part of a proxy or a backend Layer: its
// stage instrument's attribute sets, prepared at build time.
type layerMetrics struct {
	m     *meters
	stage bool          // the stage duration is recorded
	opts  [2][2]measure // [error][complete]
	// backend only
	roundTrip, readPayload bool
	base                   []attribute.KeyValue // static + method + route attributes
	clientName             string
	hosts                  hostCache
}

func newLayerMetrics(m *meters, l *gatewayv1.MetricsLayer, base []attribute.KeyValue, clientName string) *layerMetrics {
	if m == nil || l == nil {
		return nil
	}
	out := &layerMetrics{m: m, stage: !l.GetDisabled(), roundTrip: l.GetRoundTrip(), readPayload: l.GetReadPayload(), clientName: clientName}
	out.base = append(append(out.base, base...), attributes(l.GetAttributes())...)
	if !out.stage && !out.roundTrip && !out.readPayload {
		return nil
	}
	for e := range 2 {
		for c := range 2 {
			kv := append(append([]attribute.KeyValue(nil), out.base...),
				attribute.Bool("error", e == 1), attribute.Bool("canceled", false), attribute.Bool("complete", c == 1))
			out.opts[e][c] = newMeasure(attribute.NewSet(kv...))
		}
	}
	return out
}

// recordStage records a stage's duration.
func (l *layerMetrics) recordStage(h metric.Float64Histogram, start time.Time, failed, complete bool) {
	if l == nil || !l.stage {
		return
	}
	h.Record(context.Background(), time.Since(start).Seconds(), l.opts[b2i(failed)][b2i(complete)].rec...)
}

// clientOpts returns the round-trip attribute set of a call to host
// answered with status (0: no answer).
func (l *layerMetrics) clientOpts(host []byte, status int) measure {
	c := l.hosts.get(host)
	return c.get(status, func() attribute.Set {
		addr, port := splitHostPort(string(host))
		kv := append(append([]attribute.KeyValue(nil), l.base...),
			attribute.String("clientname", l.clientName),
			attribute.String("server.address", addr),
			attribute.Int("server.port", port),
			attribute.Int("http.response.status_code", status))
		return attribute.NewSet(kv...)
	})
}

// recordCall records a finished backend call: the stage, and the round
// trip and payload instruments. reason is the failure reason ("" on
// success), "refused" meaning no request was sent.
func (l *layerMetrics) recordCall(c *Call, status int, reason string, resp *fasthttp.Response) {
	if l == nil {
		return
	}
	m := l.m
	l.recordStage(m.backendDur, c.start, reason != "", reason == "")
	if reason == "refused" || !l.roundTrip && !l.readPayload {
		return
	}
	// An answer came back unless the call failed in transport; the
	// status attribute is 0 without one, as krakend-otel's.
	answered := status > 0 && (reason == "" || reason == "status" || reason == "decode" || reason == "too_large")
	if !answered {
		status = 0
	}
	o := l.clientOpts(c.req.URI().Host(), status)
	ctx := context.Background()
	reqLen := int64(len(c.req.Body()))
	if l.roundTrip {
		add(m.started, 1, o)
		if m.reqSize != nil {
			m.reqSize.Add(ctx, reqLen, o.add...)
		}
		if m.reqSizeHist != nil {
			m.reqSizeHist.Record(ctx, reqLen, o.rec...)
		}
		if !answered {
			if reason == "timeout" {
				add(m.timedOut, 1, o)
			}
			add(m.failed, 1, o)
		}
		m.clientDur.Record(ctx, time.Since(c.start).Seconds(), o.rec...)
		if answered && !c.req.Header.IsHead() {
			if n := resp.Header.ContentLength(); n >= 0 {
				m.respSize.Record(ctx, int64(n), o.rec...)
			} else {
				add(m.noContentLength, 1, o)
			}
		}
	}
	if l.readPayload && answered {
		n := int64(len(resp.Body()))
		m.readSize.Add(ctx, n, o.add...)
		m.readSizeHist.Record(ctx, n, o.rec...)
		if reason == "too_large" {
			m.readErrors.Add(ctx, 1, o.add...)
		}
	}
}

func add(c metric.Int64Counter, n int64, o measure) {
	if c != nil {
		c.Add(context.Background(), n, o.add...)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// methodName is krakend-otel's bounded method attribute: the standard
// methods, else _OTHER.
func methodName(m []byte) string {
	switch string(m) {
	case "GET":
		return "GET"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "PATCH":
		return "PATCH"
	case "HEAD":
		return "HEAD"
	case "OPTIONS":
		return "OPTIONS"
	case "CONNECT":
		return "CONNECT"
	case "TRACE":
		return "TRACE"
	}
	return "_OTHER"
}

func splitHostPort(hostport string) (string, int) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport, 80
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return host, 80
	}
	return host, port
}

// measure is an attribute set as the options the instruments take, built
// once so that recording a measurement does not allocate.
type measure struct {
	rec []metric.RecordOption
	add []metric.AddOption
}

func newMeasure(s attribute.Set) measure {
	o := metric.WithAttributeSet(s)
	return measure{rec: []metric.RecordOption{o}, add: []metric.AddOption{o}}
}

// optCache maps a key to its measure: read without a lock (a map that is
// replaced, never changed), built once per key. Past maxCached keys a
// measure is built per call rather than cached, which bounds the memory a
// stream of distinct statuses can take.
type optCache[K comparable] struct {
	m  atomic.Pointer[map[K]measure]
	mu sync.Mutex
}

const maxCached = 256

func (c *optCache[K]) get(k K, build func() attribute.Set) measure {
	if m := c.m.Load(); m != nil {
		if o, ok := (*m)[k]; ok {
			return o
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if o, ok := (*old)[k]; ok {
			return o
		}
		if len(*old) >= maxCached {
			return newMeasure(build())
		}
	}
	next := make(map[K]measure, 1+lenOf(old))
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	o := newMeasure(build())
	next[k] = o
	c.m.Store(&next)
	return o
}

func lenOf[K comparable](m *map[K]measure) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// hostCache maps a backend host to its per-status measures, read without
// a lock and without allocating (the map is replaced, never changed).
type hostCache struct {
	m  atomic.Pointer[map[string]*optCache[int]]
	mu sync.Mutex
}

func (c *hostCache) get(host []byte) *optCache[int] {
	if m := c.m.Load(); m != nil {
		if o, ok := (*m)[string(host)]; ok {
			return o
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	next := make(map[string]*optCache[int])
	if old != nil {
		if o, ok := (*old)[string(host)]; ok {
			return o
		}
		for k, v := range *old {
			next[k] = v
		}
	}
	o := new(optCache[int])
	next[string(host)] = o
	c.m.Store(&next)
	return o
}

// promListener is one Prometheus exporter's listener. Listeners are
// process-wide, keyed by address, and shared: the Tracer of a new
// snapshot takes over the address of the one it replaces (which still
// holds it until its plan is released), and the newest holder's registry
// is the one served.
type promListener struct {
	addr    string
	srv     *http.Server
	holders []*holder // the last one is served
}

type holder struct{ h http.Handler }

type listenerPool struct {
	mu sync.Mutex
	by map[string]*promListener
}

var listeners = listenerPool{by: make(map[string]*promListener)}

// acquire serves h at addr, binding the address when no Tracer holds it.
func (p *listenerPool) acquire(addr string, h http.Handler) (*promListener, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.by[addr]
	if l == nil {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		l = &promListener{addr: addr}
		mux := http.NewServeMux()
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) { p.current(l).ServeHTTP(w, r) })
		l.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 3 * time.Second}
		// Serve returns when release shuts the server down.
		go func() { _ = l.srv.Serve(ln) }()
		p.by[addr] = l
	}
	l.holders = append(l.holders, &holder{h: h})
	return &promListener{addr: addr, srv: l.srv, holders: []*holder{l.holders[len(l.holders)-1]}}, nil
}

func (p *listenerPool) current(l *promListener) http.Handler {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(l.holders) == 0 {
		return http.NotFoundHandler()
	}
	return l.holders[len(l.holders)-1].h
}

// release drops a hold taken by acquire (the returned handle names it);
// the last one closes the listener.
func (p *listenerPool) release(handle *promListener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.by[handle.addr]
	if l == nil {
		return
	}
	for i, h := range l.holders {
		if h == handle.holders[0] {
			l.holders = append(l.holders[:i], l.holders[i+1:]...)
			break
		}
	}
	if len(l.holders) == 0 {
		delete(p.by, handle.addr)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = l.srv.Shutdown(ctx)
		cancel()
	}
}
