package breaker

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/apigw/gateway/edge/qos/clock"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/test/leak"
)

func TestMain(m *testing.M) { leak.VerifyTestMain(m) }

type transition struct {
	Name     string
	From, To State
}

// recorder collects state changes (the callback runs on the caller's goroutine).
type recorder struct {
	mu sync.Mutex
	ts []transition
}

func (r *recorder) record(name string, from, to State) {
	r.mu.Lock()
	r.ts = append(r.ts, transition{name, from, to})
	r.mu.Unlock()
}

func (r *recorder) get() []transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]transition(nil), r.ts...)
}

func newBreaker(t *testing.T, cfg Config) (*Breaker, *clock.Fake, *recorder) {
	t.Helper()
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	rec := &recorder{}
	cfg.Clock, cfg.OnStateChange = clk, rec.record
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b, clk, rec
}

// call runs one admitted call with the given outcome; it reports whether
// the breaker admitted it.
func call(b *Breaker, success bool) bool {
	tk, ok := b.Allow()
	if ok {
		b.Done(tk, success)
	}
	return ok
}

func TestFullCycle(t *testing.T) {
	t.Parallel()
	b, clk, rec := newBreaker(t, Config{Name: "users", MaxErrors: 2, Timeout: 10 * time.Second})
	// Two consecutive failures do not trip (2 is not > 2); the third does.
	for i := range 2 {
		if !call(b, false) {
			t.Fatalf("failure %d: rejected while closed", i)
		}
	}
	if got := b.State(); got != Closed {
		t.Fatalf("after 2 failures: %v, want closed", got)
	}
	call(b, false)
	if got := b.State(); got != Open {
		t.Fatalf("after 3 failures: %v, want open", got)
	}
	if _, ok := b.Allow(); ok {
		t.Fatal("open breaker admitted a call")
	}
	if got := b.RetryAfter(); got != 10*time.Second {
		t.Errorf("RetryAfter = %v, want 10s", got)
	}
	clk.Advance(10 * time.Second)
	if got := b.State(); got != HalfOpen {
		t.Errorf("after timeout: %v, want half-open", got)
	}
	// Probe fails: open again for a full timeout.
	if !call(b, false) {
		t.Fatal("half-open breaker refused the probe")
	}
	if got := b.State(); got != Open {
		t.Fatalf("after failed probe: %v, want open", got)
	}
	clk.Advance(9 * time.Second)
	if _, ok := b.Allow(); ok {
		t.Fatal("re-opened breaker admitted a call before its timeout")
	}
	clk.Advance(time.Second)
	// Probe succeeds: closed with a clean count.
	if !call(b, true) {
		t.Fatal("half-open breaker refused the probe")
	}
	if got, n := b.State(), b.ConsecutiveFailures(); got != Closed || n != 0 {
		t.Fatalf("after good probe: %v with %d failures, want closed with 0", got, n)
	}
	want := []transition{
		{"users", Closed, Open},
		{"users", Open, HalfOpen},
		{"users", HalfOpen, Open},
		{"users", Open, HalfOpen},
		{"users", HalfOpen, Closed},
	}
	if diff := cmp.Diff(want, rec.get()); diff != "" {
		t.Errorf("transitions (-want +got):\n%s", diff)
	}
}

func TestTripThreshold(t *testing.T) {
	t.Parallel()
	tests := []struct {
		maxErrors uint32
		tripsAt   int // failures needed: max_errors + 1 (gobreaker ConsecutiveFailures > max)
	}{{0, 1}, {1, 2}, {5, 6}}
	for _, tc := range tests {
		t.Run(fmt.Sprint("max_errors=", tc.maxErrors), func(t *testing.T) {
			t.Parallel()
			b, _, _ := newBreaker(t, Config{MaxErrors: tc.maxErrors})
			for i := 1; i <= tc.tripsAt; i++ {
				call(b, false)
				if open := b.State() == Open; open != (i == tc.tripsAt) {
					t.Fatalf("after %d failures: %v", i, b.State())
				}
			}
		})
	}
}

func TestSuccessResetsConsecutiveCount(t *testing.T) {
	t.Parallel()
	b, _, _ := newBreaker(t, Config{MaxErrors: 2})
	for range 10 {
		call(b, false)
		call(b, false)
		call(b, true)
	}
	if got := b.State(); got != Closed {
		t.Errorf("alternating failures: %v, want closed", got)
	}
}

func TestIntervalResetsCount(t *testing.T) {
	t.Parallel()
	b, clk, _ := newBreaker(t, Config{MaxErrors: 2, Interval: time.Minute})
	call(b, false)
	call(b, false)
	stale, _ := b.Allow() // admitted in the old window
	clk.Advance(time.Minute)
	if got := b.ConsecutiveFailures(); got != 2 {
		t.Fatalf("failures before the next Allow = %d, want 2", got)
	}
	call(b, false) // the window rolls on this Allow: count restarts at 1
	b.Done(stale, false)
	if got, n := b.State(), b.ConsecutiveFailures(); got != Closed || n != 1 {
		t.Errorf("after window reset: %v with %d failures, want closed with 1 (stale outcome ignored)", got, n)
	}
}

func TestStaleTicketIgnored(t *testing.T) {
	t.Parallel()
	b, clk, _ := newBreaker(t, Config{MaxErrors: 0, Timeout: time.Second})
	slow, _ := b.Allow()
	call(b, false) // trips
	clk.Advance(time.Second)
	probe, ok := b.Allow()
	if !ok {
		t.Fatal("probe refused")
	}
	b.Done(slow, true) // a success from before the trip must not close it
	if got := b.State(); got != HalfOpen {
		t.Fatalf("after stale success: %v, want half-open", got)
	}
	b.Done(probe, true)
	if got := b.State(); got != Closed {
		t.Fatalf("after probe success: %v, want closed", got)
	}
}

func TestHalfOpenSingleProbeConcurrent(t *testing.T) {
	t.Parallel()
	b, clk, _ := newBreaker(t, Config{Timeout: time.Second})
	call(b, false)
	clk.Advance(time.Second)
	const n = 64
	var (
		admitted atomic.Int32
		tickets  = make(chan Ticket, n)
		start    = make(chan struct{})
		wg       sync.WaitGroup
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range 100 {
				if tk, ok := b.Allow(); ok {
					admitted.Add(1)
					tickets <- tk
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if got := admitted.Load(); got != 1 {
		t.Fatalf("%d calls admitted in half-open, want exactly 1", got)
	}
	b.Done(<-tickets, true)
	if got := b.State(); got != Closed {
		t.Errorf("after the probe succeeded: %v, want closed", got)
	}
}

func TestDoneAndRelease(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		end  func(b *Breaker, tk Ticket)
		want State // state after the half-open probe ends
	}{
		{"success", func(b *Breaker, tk Ticket) { b.Done(tk, true) }, Closed},
		{"failure", func(b *Breaker, tk Ticket) { b.Done(tk, false) }, Open},
		{"released (cancelled, rate limited) is neither", func(b *Breaker, tk Ticket) { b.Release(tk) }, HalfOpen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, clk, _ := newBreaker(t, Config{Timeout: time.Second})
			call(b, false)
			clk.Advance(time.Second)
			tk, ok := b.Allow()
			if !ok {
				t.Fatal("probe refused")
			}
			tc.end(b, tk)
			if got := b.State(); got != tc.want {
				t.Fatalf("state = %v, want %v", got, tc.want)
			}
			if tc.want == HalfOpen {
				// The released probe is free for the next caller.
				if _, ok := b.Allow(); !ok {
					t.Error("probe slot not released")
				}
			}
		})
	}
	// In the closed state, a released call does not reset a failure streak.
	b, _, _ := newBreaker(t, Config{MaxErrors: 1})
	call(b, false)
	tk, _ := b.Allow()
	b.Release(tk)
	if got := b.ConsecutiveFailures(); got != 1 {
		t.Errorf("failures after a released call = %d, want 1", got)
	}
}

func TestOverdueProbeIsSuperseded(t *testing.T) {
	t.Parallel()
	b, clk, _ := newBreaker(t, Config{Timeout: time.Second, ProbeTimeout: 5 * time.Second})
	call(b, false)
	clk.Advance(time.Second)
	lost, ok := b.Allow() // this caller never reports back
	if !ok {
		t.Fatal("probe refused")
	}
	clk.Advance(4 * time.Second)
	if _, ok := b.Allow(); ok {
		t.Fatal("second probe admitted before ProbeTimeout")
	}
	clk.Advance(time.Second)
	probe, ok := b.Allow()
	if !ok {
		t.Fatal("overdue probe not superseded")
	}
	b.Done(lost, false) // stale now
	if got := b.State(); got != HalfOpen {
		t.Fatalf("after stale probe outcome: %v, want half-open", got)
	}
	b.Done(probe, true)
	if got := b.State(); got != Closed {
		t.Fatalf("after probe success: %v, want closed", got)
	}
}

func TestConfigFromProto(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		pb   *gatewayv1.CircuitBreaker
		want Config
		ok   bool
	}{
		{"nil", nil, Config{}, false},
		{"all zero is disabled", &gatewayv1.CircuitBreaker{Name: "x", LogStatusChange: true}, Config{}, false},
		{"backend name", &gatewayv1.CircuitBreaker{IntervalMs: 60_000, TimeoutMs: 10_000, MaxErrors: 1},
			Config{Name: "GET /a backend[0]", MaxErrors: 1, Interval: time.Minute, Timeout: 10 * time.Second}, true},
		{"own name", &gatewayv1.CircuitBreaker{Name: "cb-a", MaxErrors: 3},
			Config{Name: "cb-a", MaxErrors: 3}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := ConfigFromProto("GET /a backend[0]", tc.pb)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if diff := cmp.Diff(tc.want, got, cmp.FilterPath(func(p cmp.Path) bool {
				return p.String() == "OnStateChange" || p.String() == "Clock"
			}, cmp.Ignore())); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, err := New(Config{Timeout: -1}); err == nil {
		t.Error("New with negative timeout: want error")
	}
}

func TestNilBreaker(t *testing.T) {
	t.Parallel()
	var b *Breaker
	tk, ok := b.Allow()
	b.Done(tk, false)
	b.Release(tk)
	if !ok || b.State() != Closed || b.RetryAfter() != 0 {
		t.Error("nil breaker must admit everything and stay closed")
	}
}
