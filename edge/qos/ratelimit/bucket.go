package ratelimit

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/apigw/gateway/edge/qos/clock"
)

// maxTolerance bounds capacity×interval so that TAT arithmetic never
// overflows int64 (2^62 ns is ~146 years: effectively unlimited).
const (
	maxTolerance = int64(1) << 62
	maxInterval  = int64(1) << 60
)

// Rate is a normalised token bucket: one token every Interval, at most Burst
// tokens. The zero Rate means "no limit".
type Rate struct {
	Interval time.Duration
	Burst    uint64
}

// Enabled reports whether r limits anything.
func (r Rate) Enabled() bool { return r.Interval > 0 && r.Burst > 0 }

// NewRate turns KrakenD's (max_rate per every, capacity) into a Rate:
// Interval = every/maxRate (at least 1 ns), Burst = capacity or, when 0,
// floor(maxRate) with a minimum of 1. every <= 0 means one second. It
// returns the zero Rate when maxRate is not a positive finite number.
func NewRate(maxRate float64, every time.Duration, capacity uint64) Rate {
	if !(maxRate > 0) || math.IsInf(maxRate, 1) {
		return Rate{}
	}
	if every <= 0 {
		every = time.Second
	}
	iv := math.Round(float64(every) / maxRate)
	switch {
	case iv < 1:
		iv = 1
	case iv > float64(maxInterval):
		iv = float64(maxInterval)
	}
	if capacity == 0 {
		capacity = 1
		if maxRate >= 1 {
			capacity = uint64(min(maxRate, float64(math.MaxUint32)))
		}
	}
	return Rate{Interval: time.Duration(iv), Burst: capacity}
}

// gcra holds the precomputed parameters of one bucket.
type gcra struct {
	interval  int64 // ns per token
	tolerance int64 // burst × interval: how far TAT may run ahead of now
	burst     uint64
}

func newGCRA(r Rate) gcra {
	iv := int64(r.Interval)
	tol := maxTolerance
	if r.Burst <= uint64(maxTolerance/iv) {
		tol = int64(r.Burst) * iv
	}
	return gcra{interval: iv, tolerance: tol, burst: r.Burst}
}

// take evaluates one request at now against a bucket whose theoretical
// arrival time is tat. When allowed, the caller stores next as the new TAT.
func (g gcra) take(tat, now int64) (next int64, d Decision) {
	tat = max(tat, now)
	next = tat + g.interval
	d.Limit = g.burst
	ahead := next - now
	if ahead > g.tolerance {
		d.RetryAfter = time.Duration(ahead - g.tolerance)
		d.Reset = time.Duration(tat - now)
		return 0, d
	}
	d.Allowed = true
	d.Remaining = uint64((g.tolerance - ahead) / g.interval)
	d.Reset = time.Duration(ahead)
	return next, d
}

// BucketConfig configures a single shared token bucket: the global part of
// a router limit or a backend limit (`qos/ratelimit/proxy`). The zero value is
// not valid: MaxRate must be > 0.
type BucketConfig struct {
	// MaxRate tokens are added per Every.
	MaxRate float64
	// Every is the rate period; 0 means one second. Not clamped: the router
	// limiter clamps its own periods before building buckets.
	Every time.Duration
	// Capacity is the burst; 0 means MaxRate (min 1). The bucket starts full.
	Capacity uint64
	// Clock defaults to clock.System().
	Clock clock.Clock
}

// Validate reports a configuration that cannot build a bucket.
func (c BucketConfig) Validate() error {
	if !(c.MaxRate > 0) || math.IsInf(c.MaxRate, 1) {
		return fmt.Errorf("ratelimit config: max_rate %v: must be a positive finite number", c.MaxRate)
	}
	if c.Every < 0 {
		return fmt.Errorf("ratelimit config: every %v: must not be negative", c.Every)
	}
	return nil
}

// Bucket is one token bucket shared by all callers (lock-free: a CAS on the
// TAT). Safe for concurrent use. A nil *Bucket allows everything, so callers
// can hold "no limit" as nil.
type Bucket struct {
	g     gcra
	clock clock.Clock
	tat   atomic.Int64
}

// NewBucket returns a full bucket.
func NewBucket(cfg BucketConfig) (*Bucket, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newBucket(NewRate(cfg.MaxRate, cfg.Every, cfg.Capacity), cfg.Clock), nil
}

func newBucket(r Rate, c clock.Clock) *Bucket {
	if c == nil {
		c = clock.System()
	}
	return &Bucket{g: newGCRA(r), clock: c}
}

// Allow takes one token if there is one. It never blocks and does not
// allocate. RejectedBy is ScopeGlobal on a rejection.
func (b *Bucket) Allow() Decision {
	if b == nil {
		return Decision{Allowed: true}
	}
	return b.allowAt(b.clock.Nanotime())
}

func (b *Bucket) allowAt(now int64) Decision {
	for {
		old := b.tat.Load()
		next, d := b.g.take(old, now)
		if !d.Allowed {
			d.RejectedBy = ScopeGlobal
			return d
		}
		if b.tat.CompareAndSwap(old, next) {
			return d
		}
	}
}

// Rate returns the bucket's normalised rate. A nil Bucket has the zero Rate.
func (b *Bucket) Rate() Rate {
	if b == nil {
		return Rate{}
	}
	return Rate{Interval: time.Duration(b.g.interval), Burst: b.g.burst}
}
