package stats

import (
	"strconv"
	"sync/atomic"
	"time"
)

// Layer is the series of one name in krakend-metrics' proxy layer ("pipe",
// an endpoint's proxy; "backend", a backend's url_pattern):
// krakend.proxy.requests.layer.<layer>.name.<name>.complete.<c>.error.<e>
// (a counter) and krakend.proxy.latency... (a histogram, in nanoseconds),
// all four combinations registered up front as KrakenD does.
type Layer struct {
	requests [2][2]*Counter // [complete][error]
	latency  [2][2]*Histogram
}

// Layer returns the series of name in layer, registering them; nil on a
// nil Stats.
func (s *Stats) Layer(layer, name string) *Layer {
	if s == nil {
		return nil
	}
	l := &Layer{}
	base := "layer." + layer + ".name." + name
	for c, complete := range []string{"false", "true"} {
		for e, errored := range []string{"false", "true"} {
			labels := base + ".complete." + complete + ".error." + errored
			l.requests[c][e] = s.Counter("krakend.proxy.requests." + labels)
			l.latency[c][e] = s.Histogram("krakend.proxy.latency." + labels)
		}
	}
	return l
}

// Observe records one pass through the layer that started at start. A
// nil Layer records nothing.
func (l *Layer) Observe(start time.Time, complete, failed bool) {
	if l == nil {
		return
	}
	c, e := b2i(complete), b2i(failed)
	l.requests[c][e].Inc(1)
	l.latency[c][e].Update(int64(time.Since(start)))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Route is the router layer's series of one endpoint:
// krakend.router.response.<endpoint>.status (registered, never moved, as
// in KrakenD), .status.<code>.count, .size (bytes, -1 for no body) and
// .time (nanoseconds).
type Route struct {
	s      *Stats
	prefix string
	size   *Histogram
	time   *Histogram
	codes  [600]atomic.Pointer[Counter]
}

// Route returns the router series of endpoint; nil on a nil Stats.
func (s *Stats) Route(endpoint string) *Route {
	if s == nil {
		return nil
	}
	p := "krakend.router.response." + endpoint
	s.Counter(p + ".status")
	return &Route{s: s, prefix: p, size: s.Histogram(p + ".size"), time: s.Histogram(p + ".time")}
}

// Observe records an answered request: its status, body size and the
// time since start. A nil Route records nothing.
func (r *Route) Observe(status, size int, start time.Time) {
	if r == nil {
		return
	}
	r.code(status).Inc(1)
	if size == 0 {
		size = -1 // gin's Size() of a response with no body written
	}
	r.size.Update(int64(size))
	r.time.Update(int64(time.Since(start)))
}

func (r *Route) code(status int) *Counter {
	if status < 0 || status >= len(r.codes) {
		return r.s.Counter(r.prefix + ".status." + strconv.Itoa(status) + ".count")
	}
	if c := r.codes[status].Load(); c != nil {
		return c
	}
	c := r.s.Counter(r.prefix + ".status." + strconv.Itoa(status) + ".count")
	r.codes[status].Store(c)
	return c
}
