// Package stats is KrakenD's `telemetry/metrics` (krakend-metrics v2) on
// the edge: the counters and histograms of the router, proxy ("pipe") and
// backend layers under krakend-metrics' names, the Go runtime statistics
// it captures every collection_time, and the /__stats handler that prints
// them as KrakenD does (an expvar JSON object: "cmdline", "memstats" and
// one key per value, sorted).
//
// One Stats lives for the whole process, as KrakenD's registry does:
// series keep counting across snapshots. Histograms hold a uniform sample
// of 1028 values and are cleared every collection_time, as KrakenD clears
// them when it takes its snapshot. Recording does not allocate once a
// series exists.
//
// stats imports no other edge package.
package stats

import (
	"expvar"
	"math"
	"math/rand/v2"
	"net/http"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCollectionTime is krakend-metrics' collection_time default.
const DefaultCollectionTime = time.Minute

// Stats is the process-wide registry. Safe for concurrent use.
type Stats struct {
	mu     sync.Mutex // guards byName and the collection loop fields
	byName map[string]metric

	interval time.Duration
	reset    chan time.Duration
	stop     chan struct{}
	done     chan struct{}

	connected, disconnected           *Counter
	connectedTotal, disconnectedTotal *Counter
	connectedGauge, disconnectedGauge *Gauge

	runtime runtimeStats
	tls     tlsCounters
	latest  atomic.Pointer[Snapshot] // the last collection's; nil before the first
}

type metric interface {
	// entries adds the metric's keys and rendered values.
	entries(name string, add func(key, value string))
}

// New returns an empty registry with krakend-metrics' always-present
// series (router connections, Go runtime) registered. Start its
// collection loop with Run.
func New() *Stats {
	s := &Stats{byName: make(map[string]metric), interval: DefaultCollectionTime}
	s.connected = s.Counter("krakend.router.connected")
	s.disconnected = s.Counter("krakend.router.disconnected")
	s.connectedTotal = s.Counter("krakend.router.connected-total")
	s.disconnectedTotal = s.Counter("krakend.router.disconnected-total")
	s.connectedGauge = s.Gauge("krakend.router.connected-gauge")
	s.disconnectedGauge = s.Gauge("krakend.router.disconnected-gauge")
	s.runtime.register(s)
	return s
}

// Counter returns the counter called name, registering it.
func (s *Stats) Counter(name string) *Counter {
	return getOrRegister(s, name, func() *Counter { return new(Counter) })
}

// Gauge returns the gauge called name, registering it.
func (s *Stats) Gauge(name string) *Gauge {
	return getOrRegister(s, name, func() *Gauge { return new(Gauge) })
}

// Timer returns the timer called name, registering it.
func (s *Stats) Timer(name string) *Timer {
	return getOrRegister(s, name, func() *Timer { return newTimer(time.Now()) })
}

// Histogram returns the histogram called name, registering it.
func (s *Stats) Histogram(name string) *Histogram {
	return getOrRegister(s, name, func() *Histogram { return new(Histogram) })
}

func getOrRegister[M metric](s *Stats, name string, mk func() M) M {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.byName[name].(M); ok {
		return m
	}
	m := mk()
	s.byName[name] = m
	return m
}

// Run captures the runtime statistics, rolls the connection counters and
// clears the histograms every collection_time until Close.
func (s *Stats) Run() {
	s.mu.Lock()
	if s.stop != nil {
		s.mu.Unlock()
		return
	}
	stop, done, reset := make(chan struct{}), make(chan struct{}), make(chan time.Duration, 1)
	s.stop, s.done, s.reset = stop, done, reset
	interval := s.interval
	s.mu.Unlock()
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		meters := time.NewTicker(meterTick)
		defer meters.Stop()
		for {
			select {
			case <-t.C:
				s.Collect()
			case <-meters.C:
				s.tickTimers()
			case d := <-reset:
				t.Reset(d)
			case <-stop:
				return
			}
		}
	}()
}

// SetCollectionTime changes the collection period (a snapshot's
// collection_time); d <= 0 means the default.
func (s *Stats) SetCollectionTime(d time.Duration) {
	if d <= 0 {
		d = DefaultCollectionTime
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d == s.interval {
		return
	}
	s.interval = d
	if s.reset != nil {
		select {
		case <-s.reset:
		default:
		}
		s.reset <- d
	}
}

// Close stops the collection loop.
func (s *Stats) Close() {
	s.mu.Lock()
	stop, done := s.stop, s.done
	s.stop = nil
	s.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

// Collect is one collection: runtime statistics captured, the connection
// counters rolled into their gauges and totals, a Snapshot taken, the
// histograms cleared.
func (s *Stats) Collect() {
	s.runtime.capture()
	c := s.connected.Count()
	s.connectedGauge.Update(c)
	s.connectedTotal.Inc(c)
	s.connected.Clear()
	d := s.disconnected.Count()
	s.disconnectedGauge.Update(d)
	s.disconnectedTotal.Inc(d)
	s.disconnected.Clear()
	s.latest.Store(s.takeSnapshot(time.Now()))
	s.mu.Lock()
	hs := make([]*Histogram, 0, len(s.byName))
	for _, m := range s.byName {
		if h, ok := m.(*Histogram); ok {
			hs = append(hs, h)
		}
	}
	s.mu.Unlock()
	for _, h := range hs {
		h.Clear()
	}
}

// tickTimers advances every timer's moving averages by one interval.
func (s *Stats) tickTimers() {
	s.mu.Lock()
	var ts []*Timer
	for _, m := range s.byName {
		if t, ok := m.(*Timer); ok {
			ts = append(ts, t)
		}
	}
	s.mu.Unlock()
	for _, t := range ts {
		t.tick()
	}
}

// Connection and Disconnection count a request entering and leaving an
// endpoint's handler (krakend.router.connected, .disconnected).
// ConnectionTLS is Connection for a request over TLS: it also counts the
// connection's version and cipher suite. None allocates once the
// version's and suite's counters exist.
func (s *Stats) Connection() { s.connected.Inc(1) }

// ConnectionTLS: see Connection.
func (s *Stats) ConnectionTLS(version, cipherSuite uint16) {
	s.connected.Inc(1)
	s.tls.count(s, version, cipherSuite)
}
func (s *Stats) Disconnection() { s.disconnected.Inc(1) }

// ServeHTTP answers GET /__stats with the expvar JSON KrakenD prints.
func (s *Stats) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(s.AppendJSON(nil))
}

// AppendJSON appends the /__stats document: the expvar variables
// (cmdline, memstats) and every series, keys sorted, one per line.
func (s *Stats) AppendJSON(dst []byte) []byte {
	type kv struct{ k, v string }
	var all []kv
	add := func(k, v string) { all = append(all, kv{k, v}) }
	expvar.Do(func(e expvar.KeyValue) { add(e.Key, e.Value.String()) })
	s.mu.Lock()
	for name, m := range s.byName {
		m.entries(name, add)
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b kv) int {
		switch {
		case a.k < b.k:
			return -1
		case a.k > b.k:
			return 1
		}
		return 0
	})
	dst = append(dst, "{\n"...)
	for i, e := range all {
		if i > 0 {
			dst = append(dst, ",\n"...)
		}
		dst = strconv.AppendQuote(dst, e.k)
		dst = append(dst, ": "...)
		dst = append(dst, e.v...)
	}
	return append(dst, "\n}\n"...)
}

// Counter is a monotonic count (krakend-metrics' Counter, cleared only by
// the connection roll-up).
type Counter struct{ n atomic.Int64 }

func (c *Counter) Inc(n int64)  { c.n.Add(n) }
func (c *Counter) Count() int64 { return c.n.Load() }
func (c *Counter) Clear()       { c.n.Store(0) }

func (c *Counter) entries(name string, add func(string, string)) {
	add(name, strconv.FormatInt(c.Count(), 10))
}

// Gauge is the last value set.
type Gauge struct{ v atomic.Int64 }

func (g *Gauge) Update(v int64) { g.v.Store(v) }
func (g *Gauge) Value() int64   { return g.v.Load() }

func (g *Gauge) entries(name string, add func(string, string)) {
	add(name, strconv.FormatInt(g.Value(), 10))
}

// GaugeFloat64 is the last float value set.
type GaugeFloat64 struct{ v atomic.Uint64 }

func (g *GaugeFloat64) Update(v float64) { g.v.Store(math.Float64bits(v)) }
func (g *GaugeFloat64) Value() float64   { return math.Float64frombits(g.v.Load()) }

func (g *GaugeFloat64) entries(name string, add func(string, string)) {
	add(name, formatFloat(g.Value()))
}

// sampleSize is krakend-metrics' uniform sample size.
const sampleSize = 1028

// Histogram keeps a uniform sample (reservoir) of the values recorded
// since it was last cleared, and their count.
type Histogram struct {
	mu     sync.Mutex // guards below
	count  int64
	values []int64
}

// Update records v.
func (h *Histogram) Update(v int64) {
	h.mu.Lock()
	h.count++
	switch {
	case len(h.values) < sampleSize:
		if h.values == nil {
			h.values = make([]int64, 0, 64)
		}
		h.values = append(h.values, v)
	default:
		if r := rand.Int64N(h.count); r < sampleSize {
			h.values[r] = v
		}
	}
	h.mu.Unlock()
}

// Clear forgets the sample.
func (h *Histogram) Clear() {
	h.mu.Lock()
	h.count = 0
	h.values = h.values[:0]
	h.mu.Unlock()
}

// Count is the number of values recorded since the last Clear.
func (h *Histogram) Count() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

var expPercentiles = []float64{0.5, 0.75, 0.95, 0.99, 0.999}

func (h *Histogram) entries(name string, add func(string, string)) {
	h.mu.Lock()
	count := h.count
	vs := slices.Clone(h.values)
	h.mu.Unlock()
	lo, hi, mean, std, ps := summarize(vs)
	add(name+".count", strconv.FormatInt(count, 10))
	add(name+".min", formatFloat(float64(lo)))
	add(name+".max", formatFloat(float64(hi)))
	add(name+".mean", formatFloat(mean))
	add(name+".std-dev", formatFloat(std))
	for i, suffix := range []string{".50-percentile", ".75-percentile", ".95-percentile", ".99-percentile", ".999-percentile"} {
		add(name+suffix, formatFloat(ps[i]))
	}
}

// summarize is what go-metrics reports of a sample: its minimum, maximum,
// mean, population standard deviation and expPercentiles. It sorts vs.
func summarize(vs []int64) (lo, hi int64, mean, std float64, ps []float64) {
	if len(vs) > 0 {
		lo, hi = slices.Min(vs), slices.Max(vs)
		var sum float64
		for _, v := range vs {
			sum += float64(v)
		}
		mean = sum / float64(len(vs))
		var sq float64
		for _, v := range vs {
			d := float64(v) - mean
			sq += d * d
		}
		std = math.Sqrt(sq / float64(len(vs)))
	}
	slices.Sort(vs)
	return lo, hi, mean, std, percentiles(vs, expPercentiles)
}

// percentiles interpolates as go-metrics does: position p*(n+1) in the
// sorted values, clamped to the ends.
func percentiles(sorted []int64, ps []float64) []float64 {
	out := make([]float64, len(ps))
	n := float64(len(sorted))
	if n == 0 {
		return out
	}
	for i, p := range ps {
		pos := p * (n + 1)
		switch {
		case pos < 1:
			out[i] = float64(sorted[0])
		case pos >= n:
			out[i] = float64(sorted[len(sorted)-1])
		default:
			lower := float64(sorted[int(pos)-1])
			upper := float64(sorted[int(pos)])
			out[i] = lower + (pos-math.Floor(pos))*(upper-lower)
		}
	}
	return out
}

// formatFloat is expvar.Float's rendering.
func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// runtimeStats are krakend-metrics' krakend.service.* series: go-metrics'
// runtime and GC statistics, captured every collection.
type runtimeStats struct {
	mem        map[string]*Gauge
	cpuFrac    *GaugeFloat64
	pauseNs    *Histogram
	numCgo     *Gauge
	goroutines *Gauge
	threads    *Gauge
	numGC      uint32 // last MemStats.NumGC seen

	gcLast, gcNum, gcPauseTotal *Gauge
	gcPause                     *Histogram
	gcSeen                      int64

	// How long each capture's ReadMemStats and ReadGCStats took.
	readMem, readGC *Timer
}

var memGauges = []string{
	"Alloc", "BuckHashSys", "DebugGC", "EnableGC", "Frees", "HeapAlloc", "HeapIdle", "HeapInuse", "HeapObjects",
	"HeapReleased", "HeapSys", "LastGC", "Lookups", "MCacheInuse", "MCacheSys", "MSpanInuse", "MSpanSys", "Mallocs",
	"NextGC", "NumGC", "PauseTotalNs", "StackInuse", "StackSys", "Sys", "TotalAlloc",
}

func (r *runtimeStats) register(s *Stats) {
	const p = "krakend.service.runtime."
	r.mem = make(map[string]*Gauge, len(memGauges))
	for _, n := range memGauges {
		r.mem[n] = s.Gauge(p + "MemStats." + n)
	}
	r.cpuFrac = getOrRegister(s, p+"MemStats.GCCPUFraction", func() *GaugeFloat64 { return new(GaugeFloat64) })
	r.pauseNs = s.Histogram(p + "MemStats.PauseNs")
	r.numCgo = s.Gauge(p + "NumCgoCall")
	r.goroutines = s.Gauge(p + "NumGoroutine")
	r.threads = s.Gauge(p + "NumThread")
	const d = "krakend.service.debug.GCStats."
	r.gcLast, r.gcNum, r.gcPauseTotal = s.Gauge(d+"LastGC"), s.Gauge(d+"NumGC"), s.Gauge(d+"PauseTotal")
	r.gcPause = s.Histogram(d + "Pause")
	r.readMem = s.Timer(p + "ReadMemStats")
	r.readGC = s.Timer("krakend.service.debug.ReadGCStats")
}

var threadProfile = pprof.Lookup("threadcreate")

func (r *runtimeStats) capture() {
	var m runtime.MemStats
	start := time.Now()
	runtime.ReadMemStats(&m)
	r.readMem.UpdateSince(start)
	b2i := func(b bool) uint64 {
		if b {
			return 1
		}
		return 0
	}
	for n, v := range map[string]uint64{
		"Alloc": m.Alloc, "BuckHashSys": m.BuckHashSys, "DebugGC": b2i(m.DebugGC), "EnableGC": b2i(m.EnableGC),
		"Frees": m.Frees, "HeapAlloc": m.HeapAlloc, "HeapIdle": m.HeapIdle, "HeapInuse": m.HeapInuse,
		"HeapObjects": m.HeapObjects, "HeapReleased": m.HeapReleased, "HeapSys": m.HeapSys, "LastGC": m.LastGC,
		"Lookups": m.Lookups, "MCacheInuse": m.MCacheInuse, "MCacheSys": m.MCacheSys, "MSpanInuse": m.MSpanInuse,
		"MSpanSys": m.MSpanSys, "Mallocs": m.Mallocs, "NextGC": m.NextGC, "NumGC": uint64(m.NumGC),
		"PauseTotalNs": m.PauseTotalNs, "StackInuse": m.StackInuse, "StackSys": m.StackSys, "Sys": m.Sys,
		"TotalAlloc": m.TotalAlloc,
	} {
		r.mem[n].Update(int64(v))
	}
	r.cpuFrac.Update(m.GCCPUFraction)
	// The pauses of the collections since the last capture (the runtime
	// keeps the last 256).
	for i := r.numGC; i < m.NumGC && m.NumGC-i <= 256; i++ {
		r.pauseNs.Update(int64(m.PauseNs[i%256]))
	}
	r.numGC = m.NumGC
	r.numCgo.Update(runtime.NumCgoCall())
	r.goroutines.Update(int64(runtime.NumGoroutine()))
	r.threads.Update(int64(threadProfile.Count()))

	var gc debug.GCStats
	start = time.Now()
	debug.ReadGCStats(&gc)
	r.readGC.UpdateSince(start)
	r.gcLast.Update(gc.LastGC.UnixNano())
	r.gcNum.Update(gc.NumGC)
	r.gcPauseTotal.Update(int64(gc.PauseTotal))
	// Pause is most recent first.
	for i := int(min(gc.NumGC-r.gcSeen, int64(len(gc.Pause)))) - 1; i >= 0; i-- {
		r.gcPause.Update(int64(gc.Pause[i]))
	}
	r.gcSeen = gc.NumGC
}
