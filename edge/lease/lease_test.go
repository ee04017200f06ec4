package lease

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type res struct {
	id     int
	mu     sync.Mutex
	closed bool
}

func (r *res) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
}

func (r *res) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

type key struct {
	name string
	n    int
}

// fakeClock is a settable monotonic clock for WithClock.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) nanotime() int64         { return c.ns.Load() }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestAcquireReleaseGrace(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{}
	r := New[key](time.Minute, (*res).close, WithClock(clk.nanotime))
	made := 0
	create := func() (*res, error) { made++; return &res{id: made}, nil }
	k := key{"a", 1}
	v1, created, err := r.Acquire(k, create)
	if err != nil || !created {
		t.Fatalf("first acquire: created %v, %v", created, err)
	}
	v2, created, _ := r.Acquire(k, create)
	if created || v2 != v1 {
		t.Fatal("second acquire of the same key did not share the value")
	}
	if v3, created, _ := r.Acquire(key{"a", 2}, create); !created || v3 == v1 {
		t.Fatal("a different key shared the value")
	}
	r.Release([]key{k}, nil)
	clk.advance(time.Hour)
	if n := r.Sweep(); n != 0 || v1.isClosed() {
		t.Fatal("closed while still leased")
	}
	r.Release([]key{k}, nil)
	clk.advance(59 * time.Second)
	if n := r.Sweep(); n != 0 {
		t.Fatalf("Sweep within the grace period closed %d", n)
	}
	// Taken back within the grace period: kept.
	if v, created, _ := r.Acquire(k, create); created || v != v1 {
		t.Fatal("not reused within the grace period")
	}
	clk.advance(time.Hour)
	if n := r.Sweep(); n != 0 {
		t.Fatalf("Sweep closed %d values taken back within the grace period", n)
	}
	r.Release([]key{k}, nil)
	clk.advance(time.Minute)
	if n := r.Sweep(); n != 1 || !v1.isClosed() {
		t.Fatalf("Sweep after the grace period closed %d, want 1", n)
	}
	if r.Len() != 1 {
		t.Errorf("Len = %d, want 1 (key a/2 still leased)", r.Len())
	}
	r.Close()
	r.Close()
	if _, _, err := r.Acquire(k, create); !errors.Is(err, ErrClosed) {
		t.Errorf("acquire after Close: %v", err)
	}
}

// TestSweeperClosesAfterGrace: with the system clock the sweeper goroutine
// closes an unused value by itself (bounded wait on the observable close).
func TestSweeperClosesAfterGrace(t *testing.T) {
	t.Parallel()
	r := New[string](time.Millisecond, (*res).close)
	defer r.Close()
	v, _, _ := r.Acquire("x", func() (*res, error) { return &res{}, nil })
	r.Release([]string{"x"}, nil)
	deadline := time.Now().Add(10 * time.Second)
	for !v.isClosed() {
		if time.Now().After(deadline) {
			t.Fatal("not closed by the sweeper")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLeaseHoldsASetOfKeys: a Lease takes each key once however often it
// asks, and one Release ends them all; another lease keeps its keys alive.
func TestLeaseHoldsASetOfKeys(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{}
	r := New[string](time.Second, (*res).close, WithClock(clk.nanotime))
	defer r.Close()
	mk := func() (*res, error) { return &res{}, nil }
	l1, l2 := r.NewLease(), r.NewLease()
	a, _ := l1.Acquire("a", mk)
	if again, _ := l1.Acquire("a", mk); again != a {
		t.Fatal("same lease, same key: not the same value")
	}
	b, _ := l1.Acquire("b", mk)
	if shared, _ := l2.Acquire("a", mk); shared != a {
		t.Fatal("second lease did not share a")
	}
	l1.Release()
	l1.Release() // idempotent
	clk.advance(time.Second)
	if n := r.Sweep(); n != 1 || !b.isClosed() || a.isClosed() {
		t.Fatalf("after l1.Release: swept %d (b closed %v, a closed %v), want only b", n, b.isClosed(), a.isClosed())
	}
	if _, err := l1.Acquire("c", mk); !errors.Is(err, ErrReleased) {
		t.Errorf("acquire on a released lease: %v", err)
	}
	l2.Release()
	clk.advance(time.Second)
	if n := r.Sweep(); n != 1 || !a.isClosed() || r.Len() != 0 {
		t.Fatalf("after l2.Release: swept %d, Len %d", n, r.Len())
	}
}

// TestGraceZeroClosesAtOnce: with no grace period the last release closes
// the value before it returns, and no sweeper runs.
func TestGraceZeroClosesAtOnce(t *testing.T) {
	t.Parallel()
	r := New[string](0, (*res).close)
	defer r.Close()
	mk := func() (*res, error) { return &res{}, nil }
	v, _, _ := r.Acquire("x", mk)
	r.Acquire("x", mk)
	r.Release([]string{"x"}, nil)
	if v.isClosed() {
		t.Fatal("closed while leased")
	}
	r.Release([]string{"x"}, nil)
	if !v.isClosed() || r.Len() != 0 {
		t.Fatal("grace 0: not closed at the last release")
	}
	l := r.NewLease()
	w, _ := l.Acquire("y", mk)
	l.Release()
	if !w.isClosed() {
		t.Fatal("grace 0: Lease.Release did not close")
	}
}

func TestCloseNowAndCreateError(t *testing.T) {
	t.Parallel()
	r := New[string](time.Hour, (*res).close)
	defer r.Close()
	v, _, _ := r.Acquire("x", func() (*res, error) { return &res{}, nil })
	r.Release([]string{"x"}, map[string]bool{"x": true})
	if !v.isClosed() || r.Len() != 0 {
		t.Error("closeNow did not close at once")
	}
	boom := errors.New("boom")
	if _, _, err := r.Acquire("y", func() (*res, error) { return nil, boom }); !errors.Is(err, boom) || r.Len() != 0 {
		t.Errorf("create error: %v, Len %d", err, r.Len())
	}
}
