package store

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

func scanAll(t *testing.T, s *Bolt, before uint64) []string {
	t.Helper()
	var got []string
	if err := s.ScanAudit(context.Background(), before, func(seq uint64, data []byte) bool {
		got = append(got, fmt.Sprintf("%d=%s", seq, data))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestAuditAppendScanRetainReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := OpenBolt(path, WithAuditRetain(3))
	if err != nil {
		t.Fatal(err)
	}
	if got := scanAll(t, s, 0); len(got) != 0 {
		t.Fatalf("empty log scanned %v", got)
	}
	for i := 1; i <= 5; i++ {
		seq, err := s.AppendAudit(ctx, fmt.Appendf(nil, "r%d", i))
		if err != nil || seq != uint64(i) {
			t.Fatalf("append %d: seq %d, %v", i, seq, err)
		}
	}
	// Retention 3: records 1 and 2 are gone; newest first.
	if got, want := scanAll(t, s, 0), []string{"5=r5", "4=r4", "3=r3"}; !slices.Equal(got, want) {
		t.Fatalf("scan = %v, want %v", got, want)
	}
	if got, want := scanAll(t, s, 5), []string{"4=r4", "3=r3"}; !slices.Equal(got, want) {
		t.Fatalf("scan before 5 = %v, want %v", got, want)
	}
	if got, want := scanAll(t, s, 99), []string{"5=r5", "4=r4", "3=r3"}; !slices.Equal(got, want) {
		t.Fatalf("scan before 99 = %v, want %v", got, want)
	}
	if _, err := s.AppendAudit(ctx, nil); err == nil {
		t.Fatal("an empty record was accepted")
	}
	// Stop early.
	n := 0
	_ = s.ScanAudit(ctx, 0, func(uint64, []byte) bool { n++; return false })
	if n != 1 {
		t.Fatalf("fn returning false saw %d records", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Durable across a reopen; seqs continue, never reused.
	s, err = OpenBolt(path, WithAuditRetain(3))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if seq, err := s.AppendAudit(ctx, []byte("r6")); err != nil || seq != 6 {
		t.Fatalf("append after reopen: seq %d, %v", seq, err)
	}
	if got, want := scanAll(t, s, 0), []string{"6=r6", "5=r5", "4=r4"}; !slices.Equal(got, want) {
		t.Fatalf("scan after reopen = %v, want %v", got, want)
	}
	if _, err := OpenBolt(filepath.Join(t.TempDir(), "x.db"), WithAuditRetain(0)); err == nil {
		t.Fatal("retention 0 accepted")
	}
}

func TestAuditConcurrentAppendsGetDistinctSeqs(t *testing.T) {
	s, err := OpenBolt(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	seqs := make([]uint64, 20)
	for i := range seqs {
		wg.Go(func() {
			seq, err := s.AppendAudit(context.Background(), []byte("x"))
			if err != nil {
				t.Error(err)
			}
			seqs[i] = seq
		})
	}
	wg.Wait()
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("seqs = %v", seqs)
		}
	}
}
