// Package breaker implements KrakenD's `qos/circuit-breaker` (sony/gobreaker
// semantics) for one backend: closed → open after more than MaxErrors
// consecutive failures, open for Timeout, then half-open with exactly one
// probe whose outcome closes or re-opens the circuit.
//
// The API is shaped for the hot path: Allow returns a Ticket (a generation
// number, no closure) and the caller ends the call with Done or Release.
// In the closed state Allow is one atomic load, Done one CAS at
// most; nothing allocates (TestAllowDoneAllocs).
//
// What counts as a failure is the caller's decision, with two rules that fix
// KrakenD quirks: a request rejected by a rate limiter never reached the
// backend and must not be reported as a failure (call Release), and
// context.Canceled (the client went away) is not a failure either (Release
// too).
//
// This package must not import edge/proxy, edge/aggregate, edge/server,
// edge/watch, edge/plan, controlplane, or fasthttp.
package breaker

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apigw/gateway/edge/qos/clock"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// ErrOpen is the error of a call the breaker refused (open, or half-open
// with the probe already in flight). Callers answer 503 with Retry-After.
var ErrOpen = errors.New("circuit breaker: open")

// Defaults of Config.
const (
	// DefaultTimeout is the open duration when Config.Timeout is 0 (gobreaker).
	DefaultTimeout = 60 * time.Second
	// DefaultProbeTimeout is how long a half-open probe may stay unanswered
	// before another caller may probe (a lost ticket must not wedge the
	// breaker half-open).
	DefaultProbeTimeout = 30 * time.Second
)

// State is a breaker state.
type State uint8

const (
	// Closed admits every call and counts consecutive failures.
	Closed State = iota
	// HalfOpen admits exactly one probe; its outcome closes or re-opens.
	HalfOpen
	// Open refuses every call until Timeout has passed.
	Open
)

// String returns "closed", "half-open" or "open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	default:
		return fmt.Sprintf("state(%d)", uint8(s))
	}
}

// Config configures a Breaker. The zero value is valid: trip on the first
// failure, stay open DefaultTimeout, never reset the closed-state count.
type Config struct {
	// Name is used in state-change callbacks (`name`, else the backend name).
	Name string
	// MaxErrors: the circuit opens when consecutive failures exceed it.
	MaxErrors uint32
	// Interval is the closed-state window after which the failure count
	// resets; 0 never resets it (only a success does).
	Interval time.Duration
	// Timeout is the open duration before the half-open probe; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// ProbeTimeout bounds a half-open probe that never reports back; set it
	// to the backend call timeout. 0 means DefaultProbeTimeout.
	ProbeTimeout time.Duration
	// OnStateChange, when set, is called after each transition, outside the
	// breaker's lock, from the goroutine that caused it. It must not block.
	OnStateChange func(name string, from, to State)
	// Clock defaults to clock.System().
	Clock clock.Clock
}

// Validate reports negative durations.
func (c Config) Validate() error {
	if c.Interval < 0 || c.Timeout < 0 || c.ProbeTimeout < 0 {
		return fmt.Errorf("breaker config %q: interval %v, timeout %v, probe_timeout %v: must not be negative", c.Name, c.Interval, c.Timeout, c.ProbeTimeout)
	}
	return nil
}

// ConfigFromProto converts `qos/circuit-breaker` settings of the backend
// named name. ok is false when pb is nil or interval, timeout and max_errors
// are all zero: KrakenD treats that as disabled (keep a nil *Breaker). The
// caller adds OnStateChange (log when pb.LogStatusChange) and ProbeTimeout.
func ConfigFromProto(name string, pb *gatewayv1.CircuitBreaker) (cfg Config, ok bool) {
	if pb == nil || (pb.GetIntervalMs() == 0 && pb.GetTimeoutMs() == 0 && pb.GetMaxErrors() == 0) {
		return Config{}, false
	}
	if pb.GetName() != "" {
		name = pb.GetName()
	}
	return Config{
		Name:      name,
		MaxErrors: pb.GetMaxErrors(),
		Interval:  time.Duration(pb.GetIntervalMs()) * time.Millisecond,
		Timeout:   time.Duration(pb.GetTimeoutMs()) * time.Millisecond,
	}, true
}

// The state word packs everything Allow and Done need into one atomic:
//
//	bits 0-1   State
//	bits 2-33  count: consecutive failures (closed), probe taken (half-open)
//	bits 34-63 generation, bumped on every transition and window reset
const (
	stateMask = 3
	cntShift  = 2
	cntMask   = uint64(1<<32-1) << cntShift
	genShift  = 34
	genOne    = uint64(1) << genShift
)

func wordState(w uint64) State  { return State(w & stateMask) }
func wordCount(w uint64) uint32 { return uint32((w & cntMask) >> cntShift) }

// Ticket identifies one admitted call: the breaker generation (and state) it
// was admitted in. Outcomes reported with a ticket from an older generation
// are ignored, as in gobreaker.
type Ticket uint64

// Breaker is a circuit breaker. Safe for concurrent use. A nil *Breaker
// admits everything and ignores outcomes, so callers can hold "disabled" as
// nil. It has no goroutine and nothing to close.
type Breaker struct {
	word       atomic.Uint64
	expiry     atomic.Int64 // closed: window end (0 = none); open: when to half-open
	probeStart atomic.Int64 // half-open: when the current probe was granted

	name         string
	maxErrors    uint32
	interval     int64
	timeout      int64
	probeTimeout int64
	onChange     func(name string, from, to State)
	clock        clock.Clock

	mu sync.Mutex // serialises transitions; the fast paths never take it
}

// New returns a closed breaker.
func New(cfg Config) (*Breaker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Breaker{
		name:         cfg.Name,
		maxErrors:    cfg.MaxErrors,
		interval:     int64(cfg.Interval),
		timeout:      int64(cfg.Timeout),
		probeTimeout: int64(cfg.ProbeTimeout),
		onChange:     cfg.OnStateChange,
		clock:        cfg.Clock,
	}
	if b.timeout == 0 {
		b.timeout = int64(DefaultTimeout)
	}
	if b.probeTimeout == 0 {
		b.probeTimeout = int64(DefaultProbeTimeout)
	}
	if b.clock == nil {
		b.clock = clock.System()
	}
	if b.interval > 0 {
		b.expiry.Store(b.clock.Nanotime() + b.interval)
	}
	b.word.Store(uint64(Closed))
	return b, nil
}

// Name returns the configured name.
func (b *Breaker) Name() string {
	if b == nil {
		return ""
	}
	return b.name
}

// Allow asks to make one call. ok false means the circuit is open (or
// half-open with its one probe in flight): do not call the backend, answer
// with ErrOpen (503, Retry-After from RetryAfter). When ok, the caller must
// end the call with exactly one of Done or Release on the ticket.
func (b *Breaker) Allow() (t Ticket, ok bool) {
	if b == nil {
		return 0, true
	}
	for {
		w := b.word.Load()
		switch wordState(w) {
		case Closed:
			if b.interval > 0 {
				if now := b.clock.Nanotime(); now >= b.expiry.Load() {
					b.newWindow(w, now)
					continue
				}
			}
			return Ticket(w &^ cntMask), true
		case Open:
			now := b.clock.Nanotime()
			if now < b.expiry.Load() {
				return 0, false
			}
			if t, ok := b.probe(w, now); ok {
				return t, true
			}
		case HalfOpen:
			now := b.clock.Nanotime()
			if wordCount(w) != 0 && now-b.probeStart.Load() < b.probeTimeout {
				return 0, false
			}
			if t, ok := b.probe(w, now); ok {
				return t, true
			}
		}
		// Lost a race with a transition or another prober: look again.
		if w == b.word.Load() {
			return 0, false
		}
	}
}

// newWindow starts a new closed-state generation (failure count reset) once
// Interval has elapsed.
func (b *Breaker) newWindow(w uint64, now int64) {
	b.mu.Lock()
	if cur := b.word.Load(); wordState(cur) == Closed && cur&^cntMask == w&^cntMask && now >= b.expiry.Load() {
		b.expiry.Store(now + b.interval)
		b.word.Store(w&^cntMask + genOne)
	}
	b.mu.Unlock()
}

// probe grants the single half-open probe: from Open once the timeout has
// passed, from HalfOpen when the probe is free or its holder is overdue (a
// new generation then makes the overdue ticket stale).
func (b *Breaker) probe(w uint64, now int64) (Ticket, bool) {
	b.mu.Lock()
	cur := b.word.Load()
	if cur != w {
		b.mu.Unlock()
		return 0, false
	}
	from := wordState(cur)
	next := cur
	switch {
	case from == Open && now >= b.expiry.Load():
		next = (cur&^cntMask&^stateMask + genOne) | uint64(HalfOpen)
	case from == HalfOpen && wordCount(cur) == 0:
		// Probe released (Release): same generation, take it.
	case from == HalfOpen && now-b.probeStart.Load() >= b.probeTimeout:
		next = cur&^cntMask + genOne
	default:
		b.mu.Unlock()
		return 0, false
	}
	b.probeStart.Store(now)
	b.word.Store(next | 1<<cntShift)
	b.mu.Unlock()
	if from != HalfOpen {
		b.notify(from, HalfOpen)
	}
	return Ticket(next), true
}

// Done reports the outcome of the call admitted with t: success closes a
// half-open circuit and resets the closed-state failure count; a failure
// counts towards MaxErrors (closed) or re-opens the circuit (half-open).
// Outcomes from an older generation are ignored.
func (b *Breaker) Done(t Ticket, success bool) {
	if b == nil {
		return
	}
	for {
		w := b.word.Load()
		if Ticket(w&^cntMask) != t {
			return
		}
		switch wordState(w) {
		case Closed:
			c := wordCount(w)
			if success {
				if c == 0 || b.word.CompareAndSwap(w, w&^cntMask) {
					return
				}
				continue
			}
			if c < 1<<32-1 {
				c++
			}
			if c > b.maxErrors {
				b.settle(t, Open)
				return
			}
			if b.word.CompareAndSwap(w, w&^cntMask|uint64(c)<<cntShift) {
				return
			}
		case HalfOpen:
			if success {
				b.settle(t, Closed)
			} else {
				b.settle(t, Open)
			}
			return
		default:
			return
		}
	}
}

// settle moves the generation of t to state to, if t is still current.
func (b *Breaker) settle(t Ticket, to State) {
	b.mu.Lock()
	cur := b.word.Load()
	if Ticket(cur&^cntMask) != t {
		b.mu.Unlock()
		return
	}
	from := wordState(cur)
	now := b.clock.Nanotime()
	switch {
	case to == Open:
		b.expiry.Store(now + b.timeout)
	case b.interval > 0:
		b.expiry.Store(now + b.interval)
	default:
		b.expiry.Store(0)
	}
	b.word.Store((cur&^cntMask&^stateMask + genOne) | uint64(to))
	b.mu.Unlock()
	b.notify(from, to)
}

// Release ends the call admitted with t without an outcome: neither success
// nor failure. Use it when the backend was not really tried (a rate limiter
// rejected the request after Allow) or the client cancelled. A released
// half-open probe lets the next caller probe.
func (b *Breaker) Release(t Ticket) {
	if b == nil || wordState(uint64(t)) != HalfOpen {
		return
	}
	b.mu.Lock()
	if cur := b.word.Load(); Ticket(cur&^cntMask) == t {
		b.word.Store(cur &^ cntMask)
	}
	b.mu.Unlock()
}

// State returns the current state. An open circuit whose timeout has passed
// reports HalfOpen: the next Allow probes.
func (b *Breaker) State() State {
	if b == nil {
		return Closed
	}
	w := b.word.Load()
	st := wordState(w)
	if st == Open && b.clock.Nanotime() >= b.expiry.Load() {
		return HalfOpen
	}
	return st
}

// ConsecutiveFailures returns the closed-state failure count.
func (b *Breaker) ConsecutiveFailures() uint32 {
	if b == nil {
		return 0
	}
	w := b.word.Load()
	if wordState(w) != Closed {
		return 0
	}
	return wordCount(w)
}

// RetryAfter returns how long an open circuit stays open (0 otherwise): the
// Retry-After of a breaker 503.
func (b *Breaker) RetryAfter() time.Duration {
	if b == nil || wordState(b.word.Load()) != Open {
		return 0
	}
	return time.Duration(max(b.expiry.Load()-b.clock.Nanotime(), 0))
}

func (b *Breaker) notify(from, to State) {
	if b.onChange != nil && from != to {
		b.onChange(b.name, from, to)
	}
}
