package plan

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/apigw/gateway/edge/proxy"
)

// durationBuckets are the upper bounds of the request and backend
// duration histograms, in seconds.
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// histogram is a fixed-bucket histogram over atomics: counts[i] counts the
// observations in bucket i alone (the last one is +Inf); Write makes them
// cumulative. It satisfies aggregate.Observer.
type histogram struct {
	counts  [15]atomic.Uint64 // len(durationBuckets)+1
	sumBits atomic.Uint64     // math.Float64bits of the sum
}

// Observe adds one observation of v seconds.
func (h *histogram) Observe(v float64) { h.observe(v) }

func (h *histogram) observe(v float64) {
	// The first bound >= v: Prometheus buckets are inclusive upper bounds.
	h.counts[sort.SearchFloat64s(durationBuckets, v)].Add(1)
	for {
		old := h.sumBits.Load()
		if h.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// endpointSeries are the series of one endpoint label value:
// gw_edge_requests_total by code class (indexed as codeClasses),
// gw_edge_incomplete_responses_total and gw_edge_request_duration_seconds.
type endpointSeries struct {
	codes         [len(codeClasses)]atomic.Uint64
	incomplete    atomic.Uint64
	hasIncomplete bool // the unmatched requests have no incomplete series
	duration      histogram
}

// backendSeries are the series of one backend label value:
// gw_edge_backend_errors_total by reason (indexed by proxy.Reason;
// ReasonNone unused) and gw_edge_backend_duration_seconds.
type backendSeries struct {
	errors   [proxy.NumReasons]atomic.Uint64
	duration histogram
}

// seriesCollector is the prometheus.Collector of the endpoint and backend
// families: about 200 bytes per endpoint and per backend, where a
// CounterVec/HistogramVec child per label set costs several KB in all.
// Values are read at scrape time; the request path only adds atomically.
type seriesCollector struct {
	requests, incomplete, duration *prometheus.Desc
	backendErrors, backendTime     *prometheus.Desc

	mu        sync.RWMutex
	endpoints map[string]*endpointSeries
	backends  map[string]*backendSeries
}

func newSeriesCollector() *seriesCollector {
	return &seriesCollector{
		requests: prometheus.NewDesc("gw_edge_requests_total",
			"Requests answered by the edge, by endpoint name and status class.",
			[]string{"endpoint", "code_class"}, nil),
		incomplete: prometheus.NewDesc("gw_edge_incomplete_responses_total",
			"Answers of non-no-op endpoints that were not complete (X-KrakenD-Completed: false: a backend failed, timed out or was not run), by endpoint name; over gw_edge_requests_total it is the aggregation completeness.",
			[]string{"endpoint"}, nil),
		duration: prometheus.NewDesc("gw_edge_request_duration_seconds",
			"Time from routing to the response being ready, by endpoint name.",
			[]string{"endpoint"}, nil),
		backendErrors: prometheus.NewDesc("gw_edge_backend_errors_total",
			"Backends that failed a request, by reason (refused, connect, timeout, status, too_large, decode, internal).",
			[]string{"backend", "reason"}, nil),
		backendTime: prometheus.NewDesc("gw_edge_backend_duration_seconds",
			"Round trip of each backend call (request sent to answer read, or to the transport's failure; calls the breaker or a backend rate limit refused are not sent and not observed), by backend.",
			[]string{"backend"}, nil),
		endpoints: map[string]*endpointSeries{},
		backends:  map[string]*backendSeries{},
	}
}

// endpoint returns the series of endpoint name, creating them.
func (c *seriesCollector) endpoint(name string, incomplete bool) *endpointSeries {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.endpoints[name]
	if s == nil {
		s = &endpointSeries{hasIncomplete: incomplete}
		c.endpoints[name] = s
	}
	return s
}

// backend returns the series of backend name, creating them.
func (c *seriesCollector) backend(name string) *backendSeries {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.backends[name]
	if s == nil {
		s = &backendSeries{}
		c.backends[name] = s
	}
	return s
}

// delete drops the series of one label value; a later endpoint or backend
// call starts them again from zero.
func (c *seriesCollector) delete(u labelUse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u.backend {
		delete(c.backends, u.name)
	} else {
		delete(c.endpoints, u.name)
	}
}

// Describe implements prometheus.Collector.
func (c *seriesCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.incomplete, c.duration, c.backendErrors, c.backendTime} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. The maps are copied under the
// lock and read without it, so a scrape never holds up a build.
func (c *seriesCollector) Collect(ch chan<- prometheus.Metric) {
	type named[S any] struct {
		name string
		s    *S
	}
	c.mu.RLock()
	eps := make([]named[endpointSeries], 0, len(c.endpoints))
	for n, s := range c.endpoints {
		eps = append(eps, named[endpointSeries]{n, s})
	}
	bes := make([]named[backendSeries], 0, len(c.backends))
	for n, s := range c.backends {
		bes = append(bes, named[backendSeries]{n, s})
	}
	c.mu.RUnlock()
	for _, e := range eps {
		for i, class := range codeClasses {
			ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(e.s.codes[i].Load()), e.name, class)
		}
		if e.s.hasIncomplete {
			ch <- prometheus.MustNewConstMetric(c.incomplete, prometheus.CounterValue, float64(e.s.incomplete.Load()), e.name)
		}
		ch <- histogramMetric{desc: c.duration, h: &e.s.duration, label: e.name}
	}
	for _, b := range bes {
		for _, r := range proxy.Reasons() {
			ch <- prometheus.MustNewConstMetric(c.backendErrors, prometheus.CounterValue, float64(b.s.errors[r].Load()), b.name, r.String())
		}
		ch <- histogramMetric{desc: c.backendTime, h: &b.s.duration, label: b.name}
	}
}

// histogramMetric is one histogram series at scrape time.
type histogramMetric struct {
	desc  *prometheus.Desc
	h     *histogram
	label string
}

func (m histogramMetric) Desc() *prometheus.Desc { return m.desc }

// Write fills out with cumulative buckets; the count is the +Inf bucket,
// so the exposition is consistent even while observations land.
func (m histogramMetric) Write(out *dto.Metric) error {
	out.Label = prometheus.MakeLabelPairs(m.desc, []string{m.label})
	buckets := make([]*dto.Bucket, len(durationBuckets))
	flat := make([]dto.Bucket, len(durationBuckets))
	var cum uint64
	for i, ub := range durationBuckets {
		cum += m.h.counts[i].Load()
		flat[i].CumulativeCount, flat[i].UpperBound = proto.Uint64(cum), proto.Float64(ub)
		buckets[i] = &flat[i]
	}
	cum += m.h.counts[len(durationBuckets)].Load()
	out.Histogram = &dto.Histogram{
		SampleCount: proto.Uint64(cum),
		SampleSum:   proto.Float64(math.Float64frombits(m.h.sumBits.Load())),
		Bucket:      buckets,
	}
	return nil
}
