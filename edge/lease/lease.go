// Package lease is the edge's one registry for state that must survive a
// plan swap (upstream client pools, QoS components, JWT key sources and
// compiled validators): values keyed by a comparable identity derived from
// the settings they were built from, shared by every plan that asks for the
// same identity, and closed a grace period after the last plan let them go
// (requests of a released plan may still use them), or at once with a grace
// of 0.
//
// The key is a comparable Go value, not a hand-listed hash of some fields:
// a key type that embeds the settings (a struct of every setting, or the
// deterministic encoding of the whole settings message) makes every
// setting, including one added later, part of the identity, so a new
// setting can never silently reuse state built without it.
//
// A plan takes its values either one by one (Registry.Acquire, one
// Registry.Release per Acquire) or through a Lease: the set of keys one plan
// holds, released together by one Lease.Release.
//
// lease imports nothing from the project.
package lease

import (
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned by Acquire once the registry is closed.
var ErrClosed = errors.New("lease: registry closed")

// ErrReleased is returned by Lease.Acquire after Lease.Release.
var ErrReleased = errors.New("lease: lease released")

// Option configures a Registry.
type Option func(*options)

type options struct {
	nanotime func() int64
}

// WithClock makes the registry read time (for the grace period) from
// nanotime, monotonic nanoseconds; the default is the system clock. Tests
// pass a fake clock and call Sweep.
func WithClock(nanotime func() int64) Option { return func(o *options) { o.nanotime = nanotime } }

// Registry holds values by key. It is safe for concurrent use; the zero
// value is not usable (use New). With a grace period above 0 it runs one
// goroutine, the sweeper, stopped by Close; Close is idempotent.
type Registry[K comparable, V any] struct {
	grace    int64
	closeFn  func(V)
	nanotime func() int64

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	mu      sync.Mutex // guards the fields below and those of every Lease
	entries map[K]*entry[V]
	closed  bool
}

type entry[V any] struct {
	v         V
	refs      int   // leases held
	idleSince int64 // nanotime when refs dropped to 0
}

var epoch = time.Now()

func systemNanotime() int64 { return int64(time.Since(epoch)) }

// New returns an empty registry whose unused values are closed with
// closeFn grace after their last lease ends (at once when grace is 0).
func New[K comparable, V any](grace time.Duration, closeFn func(V), opts ...Option) *Registry[K, V] {
	o := options{nanotime: systemNanotime}
	for _, opt := range opts {
		opt(&o)
	}
	r := &Registry[K, V]{
		grace:    int64(max(grace, 0)),
		closeFn:  closeFn,
		nanotime: o.nanotime,
		stop:     make(chan struct{}),
		entries:  map[K]*entry[V]{},
	}
	if grace > 0 {
		r.wg.Add(1)
		go r.sweepLoop(max(grace/4, 100*time.Millisecond))
	}
	return r
}

func (r *Registry[K, V]) sweepLoop(period time.Duration) {
	defer r.wg.Done()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.Sweep()
		}
	}
}

// Acquire takes a lease on the value for key, reusing the one held (also
// one in its grace period) or creating it with create (under the registry's
// lock); created reports the latter. Every successful Acquire is ended by
// one Release of key.
func (r *Registry[K, V]) Acquire(key K, create func() (V, error)) (v V, created bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, created, err := r.acquireLocked(key, create)
	if err != nil {
		return v, false, err
	}
	return e.v, created, nil
}

func (r *Registry[K, V]) acquireLocked(key K, create func() (V, error)) (*entry[V], bool, error) {
	if r.closed {
		return nil, false, ErrClosed
	}
	if e, ok := r.entries[key]; ok {
		e.refs++
		return e, false, nil
	}
	v, err := create()
	if err != nil {
		return nil, false, err
	}
	e := &entry[V]{v: v, refs: 1}
	r.entries[key] = e
	return e, true, nil
}

// Release ends one lease per key. Values left unused close after the grace
// period, except those whose key is in closeNow (created by a build that
// failed: nothing ever used them), which close at once.
func (r *Registry[K, V]) Release(keys []K, closeNow map[K]bool) {
	var now []V
	r.mu.Lock()
	t := r.nanotime()
	for _, key := range keys {
		if v, ok := r.releaseLocked(key, closeNow[key], t); ok {
			now = append(now, v)
		}
	}
	r.mu.Unlock()
	for _, v := range now {
		r.closeFn(v)
	}
}

// releaseLocked ends one lease on key and returns the value when it must
// be closed now (by the caller, outside the lock).
func (r *Registry[K, V]) releaseLocked(key K, closeNow bool, now int64) (v V, closeIt bool) {
	e, ok := r.entries[key]
	if !ok || e.refs == 0 {
		return v, false
	}
	e.refs--
	switch {
	case e.refs > 0 || r.closed:
		return v, false
	case closeNow || r.grace == 0:
		delete(r.entries, key)
		return e.v, true
	default:
		e.idleSince = now
		return v, false
	}
}

// Sweep closes every value no lease has held for the grace period and
// returns how many it closed. The sweeper calls it periodically.
func (r *Registry[K, V]) Sweep() int {
	var doomed []V
	r.mu.Lock()
	now := r.nanotime()
	for k, e := range r.entries {
		if e.refs == 0 && now-e.idleSince >= r.grace {
			delete(r.entries, k)
			doomed = append(doomed, e.v)
		}
	}
	r.mu.Unlock()
	for _, v := range doomed {
		r.closeFn(v)
	}
	return len(doomed)
}

// Len returns the number of values held (leased or in their grace period).
func (r *Registry[K, V]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// Close stops the sweeper and closes every value now, leased or not.
// Acquire fails with ErrClosed afterwards. It is idempotent.
func (r *Registry[K, V]) Close() {
	r.closeOnce.Do(func() {
		close(r.stop)
		r.wg.Wait()
		r.mu.Lock()
		r.closed = true
		vs := make([]V, 0, len(r.entries))
		for key, e := range r.entries {
			vs = append(vs, e.v)
			delete(r.entries, key)
		}
		r.mu.Unlock()
		for _, v := range vs {
			r.closeFn(v)
		}
	})
}

// Lease is the set of keys one plan holds: each key is leased once however
// often the plan asks for it, and one Release ends them all. Safe for
// concurrent use.
type Lease[K comparable, V any] struct {
	r *Registry[K, V]
	// r.mu guards the fields below.
	held     map[K]struct{}
	released bool
}

// NewLease starts an empty lease, for one plan build.
func (r *Registry[K, V]) NewLease() *Lease[K, V] {
	return &Lease[K, V]{r: r, held: map[K]struct{}{}}
}

// Acquire returns the value for key, creating it with create when the
// registry holds none, and adds key to the lease.
func (l *Lease[K, V]) Acquire(key K, create func() (V, error)) (v V, err error) {
	r := l.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if l.released {
		return v, ErrReleased
	}
	if _, ok := l.held[key]; ok {
		if e, ok := r.entries[key]; ok {
			return e.v, nil
		}
		if r.closed {
			return v, ErrClosed
		}
	}
	e, _, err := r.acquireLocked(key, create)
	if err != nil {
		return v, err
	}
	l.held[key] = struct{}{}
	return e.v, nil
}

// Release ends the lease on every key it holds: values no other lease
// holds close after the grace period. It is idempotent.
func (l *Lease[K, V]) Release() {
	r := l.r
	var now []V
	r.mu.Lock()
	if !l.released {
		l.released = true
		t := r.nanotime()
		for key := range l.held {
			if v, ok := r.releaseLocked(key, false, t); ok {
				now = append(now, v)
			}
		}
		l.held = nil
	}
	r.mu.Unlock()
	for _, v := range now {
		r.closeFn(v)
	}
}
