package tracing

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/internal/zerocopy"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// telemetry/opencensus exporters.prometheus: the ochttp views
// krakend-opencensus v2 registers (go.opencensus.io v0.24's
// plugin/ochttp), under the names the OpenCensus Prometheus exporter gives
// them ("<namespace>_opencensus_io_http_server_latency", ...), with its
// buckets (latency in ms, sizes in bytes) and labels: each view's own tag
// keys plus the ones tag_host, tag_path, tag_method and tag_statuscode
// append (http_host, http_path, http_method, http_status on the server
// views; http_client_host, http_client_path on the client views, which
// always carry http_client_method and http_client_status). The registry
// also holds the process and Go collectors, as KrakenD's.

// ochttp's DefaultLatencyDistribution (ms) and DefaultSizeDistribution
// (bytes).
var (
	ocLatencyBuckets = []float64{1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 30, 40, 50, 65, 80, 100, 130, 160,
		200, 250, 300, 400, 500, 650, 800, 1000, 2000, 5000, 10000, 20000, 50000, 100000}
	ocSizeBuckets = []float64{1024, 2048, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
		268435456, 1073741824, 4294967296}
)

// Label dimensions of a series key.
const (
	dimHost = iota
	dimPath
	dimMethod
	dimStatus
	dimStatusEmpty // the status label of the views recorded at the request's start: ""
)

// ocView is one view: its collector and, per label, the key dimension
// that gives its value.
type ocView struct {
	dims    []int
	counter *prometheus.CounterVec
	hist    *prometheus.HistogramVec
}

func (v *ocView) values(k ocKey) []string {
	out := make([]string, len(v.dims))
	for i, d := range v.dims {
		switch d {
		case dimHost:
			out[i] = k.host
		case dimPath:
			out[i] = k.path
		case dimMethod:
			out[i] = k.method
		case dimStatus:
			out[i] = strconv.Itoa(k.status)
		}
	}
	return out
}

// ocKey names the series one measurement goes to. A label a view does
// not have is left empty, which keeps the series cache small.
type ocKey struct {
	host, path, method string
	status             int
}

// ocSeries are a key's children of the views of one side (server:
// request_count, request_count_by_method, request_bytes, response_bytes,
// latency, response_count_by_status_code; client: sent_bytes,
// received_bytes, roundtrip_latency, completed_count), resolved once.
type ocSeries struct {
	counters []prometheus.Counter
	hists    []prometheus.Observer
}

// ocSide is the views of the server or the client side and the cache of
// their series, read without a lock or an allocation (a map that is
// replaced, never changed). Past maxOCSeries keys, series are resolved
// per measurement rather than cached.
type ocSide struct {
	counters []*ocView
	hists    []*ocView
	cache    atomic.Pointer[map[ocKey]*ocSeries]
	mu       sync.Mutex
}

const maxOCSeries = 4096

func (s *ocSide) series(k ocKey) *ocSeries {
	if m := s.cache.Load(); m != nil {
		if o, ok := (*m)[k]; ok {
			return o
		}
	}
	// The key's strings may point into the request: the cached copy owns
	// its own.
	k = ocKey{host: string([]byte(k.host)), path: string([]byte(k.path)), method: string([]byte(k.method)), status: k.status}
	o := &ocSeries{}
	for _, v := range s.counters {
		o.counters = append(o.counters, v.counter.WithLabelValues(v.values(k)...))
	}
	for _, v := range s.hists {
		o.hists = append(o.hists, v.hist.WithLabelValues(v.values(k)...))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cache.Load()
	if old != nil && len(*old) >= maxOCSeries {
		return o
	}
	next := make(map[ocKey]*ocSeries, 1+lenOfSeries(old))
	if old != nil {
		for kk, vv := range *old {
			next[kk] = vv
		}
	}
	next[k] = o
	s.cache.Store(&next)
	return o
}

func lenOfSeries(m *map[ocKey]*ocSeries) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// ocProm is the exporter of one Tracer.
type ocProm struct {
	listener        *promListener
	tagHost, tagPat bool
	router, backend bool
	server, client  ocSide
	bufs            sync.Pool // *[]byte: lastparam labels
}

// newOCProm registers the views of cfg and serves them on :port/metrics
// (every interface, as KrakenD); nil without cfg.
func newOCProm(cfg *gatewayv1.OpenCensusPrometheus) (*ocProm, error) {
	if cfg == nil {
		return nil, nil
	}
	o := &ocProm{tagHost: cfg.GetTagHost(), tagPat: cfg.GetTagPath(), router: cfg.GetRouter(), backend: cfg.GetBackend()}
	o.bufs.New = func() any { b := make([]byte, 0, 128); return &b }
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	ns := cfg.GetNamespace()
	// The tag_* switches append to every view of a side, after its own
	// tag keys, skipping those it has (ochttp's appendIfMissing).
	extra := func(dims []int, host, path, method, status int) []int {
		add := func(d int) {
			for _, x := range dims {
				if x == d || x == dimStatusEmpty && d == dimStatus || x == dimStatus && d == dimStatusEmpty {
					return
				}
			}
			dims = append(dims, d)
		}
		if cfg.GetTagHost() {
			add(host)
		}
		if cfg.GetTagPath() {
			add(path)
		}
		if cfg.GetTagMethod() {
			add(method)
		}
		if cfg.GetTagStatuscode() {
			add(status)
		}
		return dims
	}
	names := map[int]string{}
	view := func(side *ocSide, name, help string, hist []float64, dims []int) {
		labels := make([]string, len(dims))
		for i, d := range dims {
			labels[i] = names[d]
		}
		v := &ocView{dims: dims}
		full := ocMetricName(ns, name)
		if hist != nil {
			v.hist = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: full, Help: help, Buckets: hist}, labels)
			reg.MustRegister(v.hist)
			side.hists = append(side.hists, v)
			return
		}
		v.counter = prometheus.NewCounterVec(prometheus.CounterOpts{Name: full, Help: help}, labels)
		reg.MustRegister(v.counter)
		side.counters = append(side.counters, v)
	}
	names[dimHost], names[dimPath], names[dimMethod], names[dimStatus], names[dimStatusEmpty] = "http_host", "http_path", "http_method", "http_status", "http_status"
	// Measured when the request starts: no status yet.
	start := func(own ...int) []int { return extra(own, dimHost, dimPath, dimMethod, dimStatusEmpty) }
	end := func(own ...int) []int { return extra(own, dimHost, dimPath, dimMethod, dimStatus) }
	s := &o.server
	view(s, "opencensus.io/http/server/request_count", "Count of HTTP requests started", nil, start())
	view(s, "opencensus.io/http/server/request_count_by_method", "Server request count by HTTP method", nil, start(dimMethod))
	view(s, "opencensus.io/http/server/response_count_by_status_code", "Server response count by status code", nil, end(dimStatus))
	view(s, "opencensus.io/http/server/request_bytes", "Size distribution of HTTP request body", ocSizeBuckets, end())
	view(s, "opencensus.io/http/server/response_bytes", "Size distribution of HTTP response body", ocSizeBuckets, end())
	view(s, "opencensus.io/http/server/latency", "Latency distribution of HTTP requests", ocLatencyBuckets, end())
	names[dimHost], names[dimPath], names[dimMethod], names[dimStatus] = "http_client_host", "http_client_path", "http_client_method", "http_client_status"
	client := func() []int {
		return extra([]int{dimMethod, dimStatus}, dimHost, dimPath, dimMethod, dimStatus)
	}
	c := &o.client
	view(c, "opencensus.io/http/client/completed_count", "Count of completed requests, by HTTP method and response status", nil, client())
	view(c, "opencensus.io/http/client/sent_bytes", "Total bytes sent in request body (not including headers), by HTTP method and response status", ocSizeBuckets, client())
	view(c, "opencensus.io/http/client/received_bytes", "Total bytes received in response bodies (not including headers but including error responses with bodies), by HTTP method and response status", ocSizeBuckets, client())
	view(c, "opencensus.io/http/client/roundtrip_latency", "End-to-end latency, by HTTP method and response status", ocLatencyBuckets, client())
	l, err := listeners.acquire(net.JoinHostPort("", strconv.Itoa(int(cfg.GetPort()))), promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if err != nil {
		return nil, err
	}
	o.listener = l
	return o, nil
}

func (o *ocProm) shutdown() {
	if o != nil && o.listener != nil {
		listeners.release(o.listener)
		o.listener = nil
	}
}

// ocMetricName is the OpenCensus Prometheus exporter's name of a view:
// namespace_name with every character but letters, digits and _ made _.
func ocMetricName(ns, name string) string {
	if ns != "" {
		name = ns + "_" + name
	}
	b := []byte(name)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) > 0 && '0' <= b[0] && b[0] <= '9' {
		return "key_" + string(b)
	}
	return string(b)
}

// ocPath is a layer's path label (path_aggregation).
type ocPath struct {
	mode uint8 // ocPattern, ocLastParam, ocOff
	path string
}

const (
	ocPattern uint8 = iota
	ocLastParam
	ocOff
)

var (
	ocNoRoute  = &ocPath{path: "noroute"}
	ocNoMethod = &ocPath{path: "nomethod"}
)

// newOCPath prepares a layer's path label: krakend-opencensus takes the
// endpoint (server) or url_pattern in lura's form (/a/:id, /a/{{.Id}}),
// turns its parameters back into {id} with a regexp and lowercases it;
// lastparam keeps the last segment, which must be a parameter (the
// compiler sends pattern otherwise).
func newOCPath(l *gatewayv1.TraceLayer, server bool) *ocPath {
	label := func(p string) string {
		if server {
			return strings.ToLower(ocServerParam.ReplaceAllString(luraEndpoint(p), `{$1}`))
		}
		return strings.ToLower(ocClientParam.ReplaceAllString(luraURLPattern(p), `{$1}`))
	}
	switch l.GetOcPathMode() {
	case "off":
		return &ocPath{mode: ocOff}
	case "lastparam":
		p := l.GetOcPath()
		return &ocPath{mode: ocLastParam, path: label(p[strings.LastIndexByte(p, '/')+1:])}
	}
	return &ocPath{path: label(l.GetOcPath())}
}

// krakend-opencensus' regexps: lura's :param and {{.Param}}.
var (
	ocServerParam = regexp.MustCompile(`:([^\/]+)`)
	ocClientParam = regexp.MustCompile(`{{.(.*?)}}`)
)

// label returns the path label of a request to path; buf is scratch for
// lastparam. lastparam is krakend-opencensus': the request's path up to
// its last slash, then the pattern's last {param}, lowercased, with the
// endpoint side's :name segments of the path turned into {name} as its
// regexp does (server true).
func (p *ocPath) label(path []byte, buf *[]byte, server bool) string {
	switch p.mode {
	case ocOff:
		return zerocopy.String(path)
	case ocLastParam:
		b := (*buf)[:0]
		cut := 0
		for i := len(path) - 1; i >= 0; i-- {
			if path[i] == '/' {
				cut = i + 1
				break
			}
		}
		for i := 0; i < cut; i++ {
			c := path[i]
			if server && c == ':' && i+1 < cut && path[i+1] != '/' {
				b = append(b, '{')
				j := i + 1
				for j < cut && path[j] != '/' {
					b = append(b, lower(path[j]))
					j++
				}
				b = append(b, '}')
				i = j - 1
				continue
			}
			b = append(b, lower(c))
		}
		b = append(b, p.path...)
		*buf = b
		return zerocopy.String(b)
	}
	return p.path
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// recordServer records a finished request that reached an endpoint, or
// the 404 and 405 handlers.
func (o *ocProm) recordServer(r *Request, ctx *fasthttp.RequestCtx) {
	status := ctx.Response.StatusCode()
	if status == 0 {
		status = fasthttp.StatusOK
	}
	k := ocKey{method: zerocopy.String(ctx.Method()), status: status}
	if o.tagHost {
		k.host = zerocopy.String(ctx.Host())
	}
	var bp *[]byte
	if o.tagPat {
		if r.ocPath.mode == ocLastParam {
			bp = o.bufs.Get().(*[]byte)
		}
		k.path = r.ocPath.label(ctx.Path(), bp, true)
	}
	s := o.server.series(k)
	if bp != nil {
		o.bufs.Put(bp)
	}
	reqSize := max(ctx.Request.Header.ContentLength(), 0)
	respSize := len(ctx.Response.Body())
	if r.ocPath == ocNoRoute || r.ocPath == ocNoMethod {
		// KrakenD's 404 and 405 handlers write nothing themselves (gin
		// writes its body after them): the size measured is gin's -1.
		respSize = -1
	}
	s.counters[0].Inc() // request_count
	s.counters[1].Inc() // request_count_by_method
	s.counters[2].Inc() // response_count_by_status_code
	s.hists[0].Observe(float64(reqSize))
	s.hists[1].Observe(float64(respSize))
	s.hists[2].Observe(float64(time.Since(r.start)) / float64(time.Millisecond))
}

// recordCall records a finished backend call (ochttp's client stats): a
// call that failed in transport counts under status 500; one never sent
// (reason "refused") and the health paths ochttp skips are not counted.
func (o *ocProm) recordCall(c *Call, status int, reason string, resp *fasthttp.Response) {
	if reason == "refused" {
		return
	}
	req := c.req
	path := req.URI().Path()
	if string(path) == "/healthz" || string(path) == "/_ah/health" {
		return
	}
	answered := status > 0 && (reason == "" || reason == "status" || reason == "decode" || reason == "too_large")
	if !answered {
		status = fasthttp.StatusInternalServerError
	}
	k := ocKey{method: zerocopy.String(req.Header.Method()), status: status}
	if o.tagHost {
		k.host = zerocopy.String(req.URI().Host())
	}
	var bp *[]byte
	if o.tagPat {
		if c.oc.mode == ocLastParam {
			bp = o.bufs.Get().(*[]byte)
		}
		k.path = c.oc.label(path, bp, false)
	}
	s := o.client.series(k)
	if bp != nil {
		o.bufs.Put(bp)
	}
	received := 0
	if answered {
		received = len(resp.Body())
		if n := resp.Header.ContentLength(); received == 0 && n > 0 && !req.Header.IsHead() {
			received = n
		}
	}
	s.counters[0].Inc() // completed_count
	s.hists[0].Observe(float64(len(req.Body())))
	s.hists[1].Observe(float64(received))
	s.hists[2].Observe(float64(time.Since(c.start)) / float64(time.Millisecond))
}
