package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func scanAudit(t *testing.T, s AuditLog, before uint64) []string {
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

// TestEtcdAuditAppendScanRetain: the etcd audit log numbers records 1, 2,
// 3..., scans newest first from beforeSeq, keeps only the retention, and a
// second replica on the same prefix continues the same log.
func TestEtcdAuditAppendScanRetain(t *testing.T) {
	c := sharedEtcd(t)
	prefix := etcdBackend(t).place(t)
	open := func() *Etcd {
		s, err := OpenEtcd(context.Background(), EtcdConfig{Endpoints: c.Endpoints(), Prefix: prefix, AuditRetain: 3, OpTimeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	ctx := context.Background()
	a := open()
	if got := scanAudit(t, a, 0); len(got) != 0 {
		t.Fatalf("empty log scanned %v", got)
	}
	for i := 1; i <= 5; i++ {
		seq, err := a.AppendAudit(ctx, fmt.Appendf(nil, "r%d", i))
		if err != nil || seq != uint64(i) {
			t.Fatalf("append %d: seq %d, %v", i, seq, err)
		}
	}
	if got, want := scanAudit(t, a, 0), []string{"5=r5", "4=r4", "3=r3"}; !slices.Equal(got, want) {
		t.Fatalf("scan = %v, want %v", got, want)
	}
	if got, want := scanAudit(t, a, 5), []string{"4=r4", "3=r3"}; !slices.Equal(got, want) {
		t.Fatalf("scan before 5 = %v, want %v", got, want)
	}
	if _, err := a.AppendAudit(ctx, nil); err == nil {
		t.Fatal("an empty record was accepted")
	}
	n := 0
	_ = a.ScanAudit(ctx, 0, func(uint64, []byte) bool { n++; return false })
	if n != 1 {
		t.Fatalf("fn returning false saw %d records", n)
	}
	b := open() // another replica
	if seq, err := b.AppendAudit(ctx, []byte("r6")); err != nil || seq != 6 {
		t.Fatalf("append on the second replica: seq %d, %v", seq, err)
	}
	if got, want := scanAudit(t, a, 0), []string{"6=r6", "5=r5", "4=r4"}; !slices.Equal(got, want) {
		t.Fatalf("first replica scans %v, want %v", got, want)
	}
}

// TestEtcdAuditScanPages: a scan longer than one etcd page sees every
// record once, in order.
func TestEtcdAuditScanPages(t *testing.T) {
	c := sharedEtcd(t)
	s, err := OpenEtcd(context.Background(), EtcdConfig{Endpoints: c.Endpoints(), Prefix: etcdBackend(t).place(t), OpTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	total := auditPage + 10
	for i := 1; i <= total; i++ {
		if _, err := s.AppendAudit(context.Background(), fmt.Appendf(nil, "r%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	got := scanAudit(t, s, 0)
	if len(got) != total || got[0] != fmt.Sprintf("%d=r%d", total, total) || got[total-1] != "1=r1" {
		t.Fatalf("scan saw %d records (first %q, last %q), want %d", len(got), got[0], got[len(got)-1], total)
	}
}

// TestEtcdAuditReplicasGetDistinctSeqs: two replicas appending at once
// never assign the same seq, and none is lost.
func TestEtcdAuditReplicasGetDistinctSeqs(t *testing.T) {
	c := sharedEtcd(t)
	prefix := etcdBackend(t).place(t)
	var replicas [2]*Etcd
	for i := range replicas {
		s, err := OpenEtcd(context.Background(), EtcdConfig{Endpoints: c.Endpoints(), Prefix: prefix, OpTimeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		replicas[i] = s
	}
	const each = 15
	var wg sync.WaitGroup
	var mu sync.Mutex
	var seqs []uint64
	for i := range 2 * each {
		wg.Go(func() {
			seq, err := replicas[i%2].AppendAudit(context.Background(), []byte("x"))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			seqs = append(seqs, seq)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("seqs = %v, want 1..%d", seqs, 2*each)
		}
	}
	if got := scanAudit(t, replicas[0], 0); len(got) != 2*each {
		t.Fatalf("scan saw %d records, want %d", len(got), 2*each)
	}
}
