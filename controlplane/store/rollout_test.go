package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestRolloutRecord: the record starts absent, is replaced only from the
// generation it was read at, survives a restart (or is what a second
// replica reads), is written atomically with a commit that carries one, and
// every change reaches WatchRollout.
func TestRolloutRecord(t *testing.T) {
	forEachStore(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		place := b.place(t)
		s := b.openTest(t, place, nil)
		data, gen, err := s.Rollout(ctx)
		if err != nil || data != nil || gen != 0 {
			t.Fatalf("Rollout on a new store = %q, %d, %v; want nil, 0, nil", data, gen, err)
		}
		w, err := s.WatchRollout(ctx)
		if err != nil {
			t.Fatal(err)
		}
		g1, err := s.PutRollout(ctx, 0, []byte("one"))
		if err != nil || g1 == 0 {
			t.Fatalf("PutRollout(0) = %d, %v", g1, err)
		}
		if got := waitGen(t, w); got != g1 {
			t.Fatalf("watch saw %d, want %d", got, g1)
		}
		if _, err := s.PutRollout(ctx, 0, []byte("lost")); !errors.Is(err, ErrStale) {
			t.Fatalf("PutRollout on an old generation: %v, want ErrStale", err)
		}
		// A commit carrying a record replaces it in the same transaction.
		r := rev("a")
		r.Rollout = []byte("two")
		got, err := s.Commit(ctx, 0, r)
		if err != nil {
			t.Fatal(err)
		}
		if got.Rollout != nil {
			t.Errorf("Commit returned Rollout %q; it is not part of the revision", got.Rollout)
		}
		g2 := waitGen(t, w)
		if g2 <= g1 {
			t.Fatalf("watch after the commit saw %d, want > %d", g2, g1)
		}
		if _, err := s.PutRollout(ctx, g1, []byte("lost")); !errors.Is(err, ErrStale) {
			t.Fatalf("PutRollout on the generation before the commit: %v, want ErrStale", err)
		}
		// A commit without one leaves it alone.
		if _, err := s.Commit(ctx, 1, rev("b")); err != nil {
			t.Fatal(err)
		}
		if data, gen, err := s.Rollout(ctx); err != nil || string(data) != "two" || gen != g2 {
			t.Fatalf("Rollout = %q, %d, %v; want two, %d", data, gen, err, g2)
		}
		// Another process on the same place (a restart, or a replica).
		if b.name == "bolt" {
			_ = s.Close() // one process at a time holds a bbolt file
		}
		s2 := b.openTest(t, place, nil)
		if data, gen, err := s2.Rollout(ctx); err != nil || string(data) != "two" || gen != g2 {
			t.Fatalf("reopened Rollout = %q, %d, %v; want two, %d", data, gen, err, g2)
		}
		w2, err := s2.WatchRollout(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := waitGen(t, w2); got != g2 {
			t.Fatalf("reopened watch starts at %d, want %d", got, g2)
		}
		g3, err := s2.PutRollout(ctx, g2, []byte("three"))
		if err != nil {
			t.Fatal(err)
		}
		if b.name == "etcd" { // bbolt files are not shared between processes
			if got := waitGen(t, w); got != g3 {
				t.Fatalf("the first store's watch saw %d, want %d (written by the other)", got, g3)
			}
		}
	})
}

func waitGen(t *testing.T, w <-chan uint64) uint64 {
	t.Helper()
	select {
	case g := <-w:
		return g
	case <-time.After(10 * time.Second):
		t.Fatal("no rollout generation within 10s")
		return 0
	}
}
