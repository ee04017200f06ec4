package stats

import (
	"container/heap"
	"crypto/tls"
	"maps"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Timer is go-metrics' StandardTimer, as krakend-metrics registers two
// (krakend.service.runtime.ReadMemStats, krakend.service.debug.ReadGCStats:
// how long each capture's read took, in ns): the durations in an
// exponentially decaying sample (1028 values, alpha 0.015, rescaled every
// hour) and their rate in a meter (one-, five- and fifteen-minute moving
// averages ticked every 5 s, and the mean rate since the timer was made).
// Timers are not part of the Snapshot (krakend-metrics' has none).
type Timer struct {
	mu     sync.Mutex
	count  int64
	sample expDecay
	meter  meter
}

func newTimer(now time.Time) *Timer {
	t := &Timer{}
	t.sample.t0, t.sample.t1 = now, now.Add(time.Hour)
	t.meter.start = now
	return t
}

// UpdateSince records the time elapsed since start.
func (t *Timer) UpdateSince(start time.Time) {
	now := time.Now()
	t.mu.Lock()
	t.count++
	t.sample.update(now, int64(now.Sub(start)))
	t.meter.uncounted++
	t.mu.Unlock()
}

// tick advances the moving averages by one 5-second interval.
func (t *Timer) tick() {
	t.mu.Lock()
	t.meter.tick()
	t.mu.Unlock()
}

func (t *Timer) entries(name string, add func(string, string)) {
	t.mu.Lock()
	count := t.count
	vs := t.sample.values()
	m := t.meter
	t.mu.Unlock()
	lo, hi, mean, std, ps := summarize(vs)
	add(name+".count", strconv.FormatInt(count, 10))
	add(name+".min", strconv.FormatInt(lo, 10))
	add(name+".max", strconv.FormatInt(hi, 10))
	add(name+".mean", formatFloat(mean))
	add(name+".std-dev", formatFloat(std))
	for i, suffix := range []string{".50-percentile", ".75-percentile", ".95-percentile", ".99-percentile", ".999-percentile"} {
		add(name+suffix, formatFloat(ps[i]))
	}
	var meanRate float64
	if count > 0 {
		meanRate = float64(count) / time.Since(m.start).Seconds()
	}
	add(name+".one-minute", formatFloat(m.rates[0].rate))
	add(name+".five-minute", formatFloat(m.rates[1].rate))
	add(name+".fifteen-minute", formatFloat(m.rates[2].rate))
	add(name+".mean-rate", formatFloat(meanRate))
}

// meterTick is go-metrics' meter arbiter period.
const meterTick = 5 * time.Second

// meter holds go-metrics' EWMAs of a timer's rate, per second.
type meter struct {
	start     time.Time
	uncounted int64
	rates     [3]ewma
}

type ewma struct {
	rate float64
	init bool
}

// The EWMAs' alphas: 1 - e^(-5s/N min) for N = 1, 5, 15.
var ewmaAlphas = [3]float64{
	1 - math.Exp(-5.0/60.0/1), 1 - math.Exp(-5.0/60.0/5), 1 - math.Exp(-5.0/60.0/15),
}

func (m *meter) tick() {
	instant := float64(m.uncounted) / meterTick.Seconds()
	m.uncounted = 0
	for i := range m.rates {
		e := &m.rates[i]
		if e.init {
			e.rate += ewmaAlphas[i] * (instant - e.rate)
		} else {
			e.rate, e.init = instant, true
		}
	}
}

// expDecay is go-metrics' ExpDecaySample: each value kept with priority
// e^(alpha*age)/u (u uniform in [0,1)), the lowest priority dropped once
// the reservoir is full, priorities rescaled past t1.
type expDecay struct {
	t0, t1 time.Time
	h      decayHeap
}

const (
	decayReservoir = 1028
	decayAlpha     = 0.015
)

func (s *expDecay) update(t time.Time, v int64) {
	if len(s.h) == decayReservoir {
		heap.Pop(&s.h)
	}
	heap.Push(&s.h, decayed{k: math.Exp(t.Sub(s.t0).Seconds()*decayAlpha) / rand.Float64(), v: v})
	if t.After(s.t1) {
		old := s.t0
		s.t0, s.t1 = t, t.Add(time.Hour)
		f := math.Exp(-decayAlpha * s.t0.Sub(old).Seconds())
		for i := range s.h {
			s.h[i].k *= f
		}
		heap.Init(&s.h)
	}
}

func (s *expDecay) values() []int64 {
	out := make([]int64, len(s.h))
	for i, d := range s.h {
		out[i] = d.v
	}
	return out
}

type decayed struct {
	k float64
	v int64
}

// decayHeap is a min-heap by priority.
type decayHeap []decayed

func (h decayHeap) Len() int           { return len(h) }
func (h decayHeap) Less(i, j int) bool { return h[i].k < h[j].k }
func (h decayHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *decayHeap) Push(x any)        { *h = append(*h, x.(decayed)) }
func (h *decayHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// tlsCounters are krakend-metrics' per-request TLS counters,
// krakend.router.tls_version.<version>.count and
// krakend.router.tls_cipher.<suite>.count, registered on first use as
// KrakenD's are (an unnamed version or suite counts under "").
type tlsCounters struct {
	versions, ciphers counterSet
}

func (c *tlsCounters) count(s *Stats, version, cipherSuite uint16) {
	c.versions.get(s, version, "krakend.router.tls_version.", tlsVersionName).Inc(1)
	c.ciphers.get(s, cipherSuite, "krakend.router.tls_cipher.", tlsCipherName).Inc(1)
}

// counterSet maps a TLS version or suite to its counter: a copy-on-write
// map read without a lock or an allocation (a sync.Map would box every
// uint16 above 255 into an interface on each lookup). Its zero value is
// ready to use.
type counterSet struct {
	mu sync.Mutex // serializes writers
	m  atomic.Pointer[map[uint16]*Counter]
}

func (cs *counterSet) get(s *Stats, id uint16, prefix string, name func(uint16) string) *Counter {
	if m := cs.m.Load(); m != nil {
		if c, ok := (*m)[id]; ok {
			return c
		}
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	old := cs.m.Load()
	if old != nil {
		if c, ok := (*old)[id]; ok {
			return c
		}
	}
	m := make(map[uint16]*Counter, 1)
	if old != nil {
		maps.Copy(m, *old)
	}
	c := s.Counter(prefix + name(id) + ".count")
	m[id] = c
	cs.m.Store(&m)
	return c
}

// tlsVersionName is krakend-metrics' name of a TLS version.
func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "VersionTLS10"
	case tls.VersionTLS11:
		return "VersionTLS11"
	case tls.VersionTLS12:
		return "VersionTLS12"
	case tls.VersionTLS13:
		return "VersionTLS13"
	case tls.VersionSSL30: //lint:ignore SA1019 krakend-metrics names it
		return "VersionSSL30"
	}
	return ""
}

// tlsCipherName is krakend-metrics' name of a cipher suite: the Go
// constant's name for the suites its table lists, "" for others.
func tlsCipherName(id uint16) string {
	switch {
	case !krakendCiphers[id]:
		return ""
	case id == tls.TLS_FALLBACK_SCSV:
		return "TLS_FALLBACK_SCSV"
	}
	return tls.CipherSuiteName(id)
}

// krakendCiphers are the suites krakend-metrics' table names.
var krakendCiphers = map[uint16]bool{
	tls.TLS_RSA_WITH_RC4_128_SHA: true, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA: true, tls.TLS_RSA_WITH_AES_128_CBC_SHA: true,
	tls.TLS_RSA_WITH_AES_256_CBC_SHA: true, tls.TLS_RSA_WITH_AES_128_CBC_SHA256: true, tls.TLS_RSA_WITH_AES_128_GCM_SHA256: true,
	tls.TLS_RSA_WITH_AES_256_GCM_SHA384: true, tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA: true,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: true, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: true,
	tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA: true, tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA: true,
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: true, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: true,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: true, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: true,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: true, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: true,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: true, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: true,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: true, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: true,
	tls.TLS_AES_128_GCM_SHA256: true, tls.TLS_AES_256_GCM_SHA384: true, tls.TLS_CHACHA20_POLY1305_SHA256: true,
	tls.TLS_FALLBACK_SCSV: true,
}
