// Package lease is the edge's registry for state that must survive a plan
// swap (upstream client pools today): values keyed by a comparable identity
// derived from the compiled settings they were built from, shared by every
// plan that asks for the same identity, and closed a grace period after the
// last plan let them go (requests of a released plan may still use them).
//
// The key is a comparable Go value, not a hand-listed hash of some fields:
// a key type that embeds the settings struct makes every setting, including
// one added later, part of the identity, so a new setting can never
// silently reuse state built without it (a non-comparable field added to
// the settings fails to compile where the key is derived).
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

// Registry holds values by key. It is safe for concurrent use; the zero
// value is not usable (use New). Close is idempotent.
type Registry[K comparable, V any] struct {
	grace   time.Duration
	closeFn func(V)

	mu      sync.Mutex // guards the fields below
	entries map[K]*entry[V]
	closed  bool
}

type entry[V any] struct {
	v     V
	refs  int         // leases held
	timer *time.Timer // pending close while refs == 0
}

// New returns an empty registry whose unused values are closed with
// closeFn grace after their last lease ends.
func New[K comparable, V any](grace time.Duration, closeFn func(V)) *Registry[K, V] {
	return &Registry[K, V]{grace: grace, closeFn: closeFn, entries: map[K]*entry[V]{}}
}

// Acquire takes a lease on the value for key, reusing the one held (also
// one in its grace period) or creating it with create; created reports the
// latter. Every successful Acquire is ended by one Release of key.
func (r *Registry[K, V]) Acquire(key K, create func() (V, error)) (v V, created bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return v, false, ErrClosed
	}
	if e, ok := r.entries[key]; ok {
		if e.timer != nil {
			e.timer.Stop() // expire re-checks refs, so a timer already firing is harmless
			e.timer = nil
		}
		e.refs++
		return e.v, false, nil
	}
	v, err = create()
	if err != nil {
		return v, false, err
	}
	r.entries[key] = &entry[V]{v: v, refs: 1}
	return v, true, nil
}

// Release ends one lease per key. Values left unused close after the grace
// period, except those whose key is in closeNow (created by a build that
// failed: nothing ever used them), which close at once.
func (r *Registry[K, V]) Release(keys []K, closeNow map[K]bool) {
	var now []V
	r.mu.Lock()
	for _, key := range keys {
		e, ok := r.entries[key]
		if !ok || e.refs == 0 {
			continue
		}
		e.refs--
		switch {
		case e.refs > 0 || r.closed:
		case closeNow[key]:
			delete(r.entries, key)
			now = append(now, e.v)
		default:
			e.timer = time.AfterFunc(r.grace, func() { r.expire(key, e) })
		}
	}
	r.mu.Unlock()
	for _, v := range now {
		r.closeFn(v)
	}
}

// expire closes e if no lease took it back meanwhile.
func (r *Registry[K, V]) expire(key K, e *entry[V]) {
	r.mu.Lock()
	if r.entries[key] != e || e.refs > 0 {
		r.mu.Unlock()
		return
	}
	delete(r.entries, key)
	r.mu.Unlock()
	r.closeFn(e.v)
}

// Len returns the number of values held (leased or in their grace period).
func (r *Registry[K, V]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// Close closes every value now, leased or not. It is idempotent.
func (r *Registry[K, V]) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	vs := make([]V, 0, len(r.entries))
	for key, e := range r.entries {
		if e.timer != nil {
			e.timer.Stop()
		}
		vs = append(vs, e.v)
		delete(r.entries, key)
	}
	r.mu.Unlock()
	for _, v := range vs {
		r.closeFn(v)
	}
}
