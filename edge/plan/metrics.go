package plan

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/apigw/gateway/edge/aggregate"
	"github.com/apigw/gateway/edge/auth"
	"github.com/apigw/gateway/edge/proxy"
	"github.com/apigw/gateway/edge/qos/breaker"
	"github.com/apigw/gateway/edge/qos/ratelimit"
)

// Metrics holds the edge data-plane collectors. Create it once per process
// with NewMetrics and pass it to every Build through Deps; plans precreate
// their label children at build time, so the request path only does atomic
// adds. A nil *Metrics disables metrics.
type Metrics struct {
	// The per-endpoint and per-backend families (requests, incomplete,
	// duration, backend errors and durations) are one collector over
	// plain atomics (series.go): a prometheus child per label set costs
	// about 0.5-1 KB, and an edge with 10,000 endpoints holds 16 counters
	// and 2 histograms for each.
	series       *seriesCollector
	authRejected *prometheus.CounterVec
	botRejected  prometheus.Counter
	celRejected  prometheus.Counter
	rateLimited  *prometheus.CounterVec
	panics       *prometheus.CounterVec
	breakerState *prometheus.GaugeVec
	breakerMoves *prometheus.CounterVec
	unmatched    endpointMetrics
	rejections   rejectionMetrics

	// live counts, per endpoint and backend label value, the built plans
	// that use it; the series of a value no live plan uses are deleted, so
	// an endpoint removed by a push leaves no stale series behind.
	mu   sync.Mutex
	live map[labelUse]int
}

// labelUse is one endpoint or backend label value a plan's children use.
type labelUse struct {
	backend bool
	name    string
}

// Values of gw_edge_panics_total{where}.
const (
	panicRequest     = "request"
	panicBackendCall = "backend_call"
)

// panicCounter is the counter of panics recovered at where; nil when m is.
func (m *Metrics) panicCounter(where string) prometheus.Counter {
	if m == nil {
		return nil
	}
	return m.panics.WithLabelValues(where)
}

// unmatchedEndpoint labels requests no endpoint answered (404, 405,
// redirects, automatic OPTIONS).
const unmatchedEndpoint = "_unmatched"

// codeClasses are the code_class label values, indexed by status/100
// (index 0 collects anything outside 1xx-5xx).
var codeClasses = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

// NewMetrics creates the collectors and registers them on reg:
// gw_edge_requests_total{endpoint,code_class},
// gw_edge_incomplete_responses_total{endpoint},
// gw_edge_backend_errors_total{backend,reason},
// gw_edge_backend_duration_seconds{backend},
// gw_edge_request_duration_seconds{endpoint},
// gw_edge_auth_rejections_total{reason},
// gw_edge_rate_limited_total{scope}, gw_edge_bot_rejections_total, gw_edge_cel_rejections_total and
// gw_edge_panics_total{where}.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		series: newSeriesCollector(),
		authRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gw_edge_auth_rejections_total",
			Help: "Requests refused by JWT validation (401/403), by reason.",
		}, []string{"reason"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gw_edge_rate_limited_total",
			Help: "Requests refused by an endpoint rate limit, by scope (client: 429, global: 503).",
		}, []string{"scope"}),
		celRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gw_edge_cel_rejections_total",
			Help: "Requests refused (500) by an endpoint's validation/cel request or response expression (JWT ones count in gw_edge_auth_rejections_total{reason=\"cel_rejected\"}, backend ones in gw_edge_backend_errors_total{reason=\"cel_rejected\"}).",
		}),
		botRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gw_edge_bot_rejections_total",
			Help: "Requests refused (403) by security/bot-detector, service or endpoint level.",
		}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gw_edge_panics_total",
			Help: "Panics recovered on the request path (a bug), by where: request (answered 500), backend_call (the call failed).",
		}, []string{"where"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gw_edge_breaker_state",
			Help: "Circuit breaker state of a backend after its last transition: 0 closed, 1 half-open, 2 open (no series: closed since the edge started).",
		}, []string{"backend"}),
		breakerMoves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gw_edge_breaker_transitions_total",
			Help: "Circuit breaker transitions of a backend, by the state entered.",
		}, []string{"backend", "to"}),
		live: map[labelUse]int{},
	}
	for _, w := range []string{panicRequest, panicBackendCall} {
		m.panics.WithLabelValues(w)
	}
	for _, c := range []prometheus.Collector{m.series, m.authRejected, m.rateLimited, m.botRejected, m.celRejected, m.panics, m.breakerState, m.breakerMoves} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.unmatched = m.endpoint(unmatchedEndpoint)
	for _, r := range auth.Reasons() {
		if r != auth.ReasonOK {
			m.rejections.byReason[r] = m.authRejected.WithLabelValues(r.String())
		}
	}
	for _, sc := range []ratelimit.Scope{ratelimit.ScopeClient, ratelimit.ScopeGlobal} {
		m.rejections.byScope[sc] = m.rateLimited.WithLabelValues(sc.String())
	}
	m.rejections.bots = m.botRejected
	m.rejections.cels = m.celRejected
	return m, nil
}

// maxReasons bounds the auth.Reason values counted (auth has fewer).
const maxReasons = 32

// rejectionMetrics are the precreated children of the rejection counters;
// the zero value counts nothing.
type rejectionMetrics struct {
	byReason [maxReasons]prometheus.Counter
	byScope  [3]prometheus.Counter // by ratelimit.Scope
	bots     prometheus.Counter    // nil without metrics
	cels     prometheus.Counter    // nil without metrics
}

func (rm *rejectionMetrics) cel() {
	if rm.cels != nil {
		rm.cels.Inc()
	}
}

func (rm *rejectionMetrics) bot() {
	if rm.bots != nil {
		rm.bots.Inc()
	}
}

func (rm *rejectionMetrics) auth(r auth.Reason) {
	if int(r) < len(rm.byReason) && rm.byReason[r] != nil {
		rm.byReason[r].Inc()
	}
}

func (rm *rejectionMetrics) limited(s ratelimit.Scope) {
	if int(s) < len(rm.byScope) && rm.byScope[s] != nil {
		rm.byScope[s].Inc()
	}
}

// endpointMetrics are the series of one endpoint; the zero value counts
// nothing.
type endpointMetrics struct {
	s *endpointSeries
}

func (m *Metrics) endpoint(name string) endpointMetrics {
	if m == nil {
		return endpointMetrics{}
	}
	return endpointMetrics{s: m.series.endpoint(name, name != unmatchedEndpoint)}
}

// observeIncomplete counts an answer that was not complete.
func (em *endpointMetrics) observeIncomplete() {
	if em.s != nil {
		em.s.incomplete.Add(1)
	}
}

// backend returns the failure counters of one backend, by reason: each
// failure counts in gw_edge_backend_errors_total{backend,reason} (without
// metrics, nowhere) and is logged at warn, sampled to at most one line per
// second per backend that says how many failures it stands for.
func (m *Metrics) backend(name string, log zerolog.Logger) (out [proxy.NumReasons]aggregate.Counter) {
	fs := &backendFailures{s: failureSampler{log: log, backend: name}}
	var bs *backendSeries
	if m != nil {
		bs = m.series.backend(name)
	}
	for _, r := range proxy.Reasons() {
		f := &fs.f[r]
		f.reason, f.s = r, &fs.s
		if bs != nil {
			f.count = &bs.errors[r]
		}
		out[r] = f
	}
	return out
}

// backendFailures are the failure counters of one backend, allocated
// together.
type backendFailures struct {
	s failureSampler
	f [proxy.NumReasons]backendFailure
}

// backendFailure is one (backend, reason) failure counter.
type backendFailure struct {
	count  *atomic.Uint64 // nil without metrics
	reason proxy.Reason
	s      *failureSampler
}

func (f *backendFailure) Inc() {
	if f.count != nil {
		f.count.Add(1)
	}
	f.s.failed(f.reason)
}

// failureLogEvery is the shortest gap between two failure lines of one
// backend.
const failureLogEvery = time.Second

// failureSampler logs a backend's failures, one line per failureLogEvery
// at most; the failures in between are counted into the next line's
// "failures" field.
type failureSampler struct {
	log     zerolog.Logger
	backend string
	next    atomic.Int64 // unix nanos before which failures are only counted
	dropped atomic.Int64 // failures not logged since the last line
}

func (s *failureSampler) failed(r proxy.Reason) {
	now := time.Now().UnixNano()
	n := s.next.Load()
	if now < n || !s.next.CompareAndSwap(n, now+int64(failureLogEvery)) {
		s.dropped.Add(1)
		return
	}
	s.log.Warn().Str("backend", s.backend).Str("reason", r.String()).Int64("failures", 1+s.dropped.Swap(0)).
		Msg("backend call failed")
}

// observe counts one answered request; seconds < 0 skips the histogram.
func (em *endpointMetrics) observe(status int, seconds float64) {
	if em.s == nil {
		return
	}
	class := status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	em.s.codes[class].Add(1)
	if seconds >= 0 {
		em.s.duration.observe(seconds)
	}
}

// hold records that a built plan uses the label values in uses.
func (m *Metrics) hold(uses []labelUse) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range uses {
		m.live[u]++
	}
}

// drop undoes hold (a released plan) and deletes the series of every
// value no live plan uses any more.
func (m *Metrics) drop(uses []labelUse) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range uses {
		if m.live[u]--; m.live[u] <= 0 {
			delete(m.live, u)
			m.deleteLocked(u)
		}
	}
}

// sweep deletes the series a failed build created for values no live plan
// uses.
func (m *Metrics) sweep(uses []labelUse) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range uses {
		if m.live[u] == 0 {
			m.deleteLocked(u)
		}
	}
}

// breakerStates are the values of gw_edge_breaker_transitions_total{to}.
var breakerStates = [...]breaker.State{breaker.Closed, breaker.HalfOpen, breaker.Open}

// deleteLocked deletes the series of u (the endpoint and backend series
// from their map, the breaker ones by their full label values, one hash
// lookup each). DeletePartialMatch would scan every series of the vec
// for each value: releasing a 10,000-endpoint plan then took minutes
// (quadratic), and the apply worker held the edge's ACK meanwhile.
func (m *Metrics) deleteLocked(u labelUse) {
	m.series.delete(u)
	if u.backend {
		m.breakerState.DeleteLabelValues(u.name)
		for _, st := range breakerStates {
			m.breakerMoves.DeleteLabelValues(u.name, st.String())
		}
	}
}

// backendLatency is the round-trip histogram of backend name; nil
// without metrics.
func (m *Metrics) backendLatency(name string) aggregate.Observer {
	if m == nil {
		return nil
	}
	return &m.series.backend(name).duration
}

// BreakerChanged records a circuit breaker transition of the backend name
// (the breakers' qos.Config.OnBreakerStateChange). A nil m records nothing.
func (m *Metrics) BreakerChanged(name string, _, to breaker.State) {
	if m == nil {
		return
	}
	m.breakerState.WithLabelValues(name).Set(float64(to))
	m.breakerMoves.WithLabelValues(name, to.String()).Inc()
}
