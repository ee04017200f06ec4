// Package clock is the time source of the edge/qos packages: a monotonic
// nanosecond counter for token buckets and breakers, and a wall clock for
// HTTP date arithmetic. Production code uses System; tests use Fake so that
// timing logic is exercised without sleeping.
//
// It imports only the standard library and must stay that way: every other
// qos package depends on it.
package clock

import (
	"sync/atomic"
	"time"
)

// Clock is a time source. Implementations are safe for concurrent use.
type Clock interface {
	// Nanotime returns monotonic nanoseconds since an arbitrary fixed point.
	// It never goes backwards and is always > 0.
	Nanotime() int64
	// Now returns the wall-clock time (used for HTTP Date/Expires).
	Now() time.Time
}

// System returns the process clock, backed by the runtime's monotonic clock.
func System() Clock { return system{} }

// epoch is the fixed point of System's Nanotime. Subtracting one time.Time
// from another that both carry a monotonic reading uses the monotonic clock,
// so wall-clock steps never move Nanotime.
var epoch = time.Now()

type system struct{}

// Nanotime adds one so that a zero value can mean "never" in callers.
func (system) Nanotime() int64 { return int64(time.Since(epoch)) + 1 }
func (system) Now() time.Time  { return time.Now() }

// Fake is a manually advanced Clock for tests. Its zero value is not usable;
// create one with NewFake. Safe for concurrent use.
type Fake struct {
	wall time.Time
	ns   atomic.Int64
}

// fakeStart keeps Nanotime far from zero so "0 = never" logic is exercised
// the same way as with System.
const fakeStart = int64(1) << 40

// NewFake returns a Fake whose wall clock starts at start.
func NewFake(start time.Time) *Fake {
	f := &Fake{wall: start}
	f.ns.Store(fakeStart)
	return f
}

// Nanotime implements Clock.
func (f *Fake) Nanotime() int64 { return f.ns.Load() }

// Now implements Clock: the start time plus everything Advance added.
func (f *Fake) Now() time.Time { return f.wall.Add(time.Duration(f.ns.Load() - fakeStart)) }

// Advance moves both clocks forward by d (d < 0 is ignored: monotonic time
// never goes backwards).
func (f *Fake) Advance(d time.Duration) {
	if d > 0 {
		f.ns.Add(int64(d))
	}
}
