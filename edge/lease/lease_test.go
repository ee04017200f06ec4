package lease

import (
	"errors"
	"sync"
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

func TestAcquireReleaseGrace(t *testing.T) {
	t.Parallel()
	r := New[key](20*time.Millisecond, (*res).close)
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
	if v1.isClosed() {
		t.Fatal("closed while still leased")
	}
	r.Release([]key{k}, nil)
	// Taken back within the grace period: kept.
	if v, created, _ := r.Acquire(k, create); created || v != v1 {
		t.Fatal("not reused within the grace period")
	}
	r.Release([]key{k}, nil)
	deadline := time.Now().Add(5 * time.Second)
	for !v1.isClosed() {
		if time.Now().After(deadline) {
			t.Fatal("not closed after the grace period")
		}
		time.Sleep(5 * time.Millisecond)
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
