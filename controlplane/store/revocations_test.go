package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"
)

// Times used by the revocation tests, relative to fixedClock.
const (
	nowMs    = 1_700_000_000_000
	hourMs   = 3_600_000
	inAnHour = nowMs + hourMs
)

func revocation(value string, expiresUnixMs int64) *Revocation {
	return &Revocation{Claim: "jti", Value: value, ExpiresUnixMs: expiresUnixMs, Author: "alice"}
}

// appendAll appends entries in order and returns what the store returned.
func appendAll(t *testing.T, s Store, entries ...*Revocation) []*Revocation {
	t.Helper()
	var out []*Revocation
	for _, r := range entries {
		got, err := s.AppendRevocation(context.Background(), r)
		if err != nil {
			t.Fatalf("AppendRevocation(%q): %v", r.Value, err)
		}
		out = append(out, got)
	}
	return out
}

func TestRevocationAppendAndSince(t *testing.T) { forEachStore(t, testRevocationAppendAndSince) }

func testRevocationAppendAndSince(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.openTest(t, "", fixedClock())

	if seq, err := s.RevocationSeq(ctx); err != nil || seq != 0 {
		t.Fatalf("RevocationSeq of an empty log = %d, %v; want 0", seq, err)
	}
	withTime := revocation("c", inAnHour)
	withTime.CreatedUnixMs = 42
	got := appendAll(t, s, revocation("a", inAnHour), &Revocation{Claim: "sub", Value: "bob", ExpiresUnixMs: inAnHour + 1}, withTime)
	want := []*Revocation{
		{Seq: 1, Claim: "jti", Value: "a", ExpiresUnixMs: inAnHour, CreatedUnixMs: nowMs, Author: "alice"},
		{Seq: 2, Claim: "sub", Value: "bob", ExpiresUnixMs: inAnHour + 1, CreatedUnixMs: nowMs},
		{Seq: 3, Claim: "jti", Value: "c", ExpiresUnixMs: inAnHour, CreatedUnixMs: 42, Author: "alice"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("appended (-want +got):\n%s", diff)
	}

	tests := []struct {
		name  string
		since uint64
		want  []*Revocation
	}{
		{name: "from the start", since: 0, want: want},
		{name: "from the middle", since: 2, want: want[2:]},
		{name: "at the head", since: 3, want: nil},
		{name: "ahead of the head", since: 99, want: nil},
		{name: "max seq", since: ^uint64(0), want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.RevocationsSince(ctx, tc.since)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("RevocationsSince(%d) (-want +got):\n%s", tc.since, diff)
			}
		})
	}
	if seq, err := s.RevocationSeq(ctx); err != nil || seq != 3 {
		t.Fatalf("RevocationSeq = %d, %v; want 3", seq, err)
	}
}

func TestRevocationAppendRejectsBadInput(t *testing.T) {
	forEachStore(t, testRevocationAppendRejectsBadInput)
}

func testRevocationAppendRejectsBadInput(t *testing.T, b backend) {
	s := b.openTest(t, "", nil)
	tests := []struct {
		name string
		r    *Revocation
	}{
		{name: "nil", r: nil},
		{name: "no claim", r: &Revocation{Value: "a", ExpiresUnixMs: inAnHour}},
		{name: "no value", r: &Revocation{Claim: "jti", ExpiresUnixMs: inAnHour}},
		{name: "no expiry", r: &Revocation{Claim: "jti", Value: "a"}},
		{name: "negative expiry", r: &Revocation{Claim: "jti", Value: "a", ExpiresUnixMs: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.AppendRevocation(context.Background(), tc.r); err == nil {
				t.Fatal("AppendRevocation accepted it")
			}
		})
	}
	if seq, _ := s.RevocationSeq(context.Background()); seq != 0 {
		t.Fatalf("seq = %d after rejected appends, want 0", seq)
	}
}

func TestLiveRevocations(t *testing.T) { forEachStore(t, testLiveRevocations) }

func testLiveRevocations(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.openTest(t, "", fixedClock())
	got := appendAll(t, s,
		revocation("expired", nowMs-1),
		revocation("live", inAnHour),
		revocation("expires-now", nowMs),
		revocation("later", inAnHour+hourMs),
	)
	live, seq, err := s.LiveRevocations(ctx, time.UnixMilli(nowMs))
	if err != nil {
		t.Fatal(err)
	}
	if seq != 4 {
		t.Fatalf("seq = %d, want 4", seq)
	}
	if diff := cmp.Diff([]*Revocation{got[1], got[3]}, live); diff != "" {
		t.Fatalf("live entries (-want +got):\n%s", diff)
	}
	live, _, err = s.LiveRevocations(ctx, time.UnixMilli(inAnHour))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]*Revocation{got[3]}, live); diff != "" {
		t.Fatalf("live an hour later (-want +got):\n%s", diff)
	}
}

func TestCompactRevocations(t *testing.T) { forEachStore(t, testCompactRevocations) }

func testCompactRevocations(t *testing.T, b backend) {
	ctx := context.Background()
	path := b.place(t)
	s, err := b.open(t, path, fixedClock())
	if err != nil {
		t.Fatal(err)
	}
	// Expiries out of seq order: compaction deletes by expiry, anywhere.
	got := appendAll(t, s,
		revocation("long", inAnHour+hourMs), // 1
		revocation("old", nowMs-2*hourMs),   // 2
		revocation("older", nowMs-3*hourMs), // 3
		revocation("recent", nowMs-1),       // 4: expired, but within the grace
		revocation("live", inAnHour),        // 5
	)

	res, err := s.CompactRevocations(ctx, time.UnixMilli(nowMs-hourMs))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(RevocationCompaction{Removed: 2, CompactedSeq: 3}, res); diff != "" {
		t.Fatalf("compaction (-want +got):\n%s", diff)
	}
	// Nothing more to do: the point stays.
	res, err = s.CompactRevocations(ctx, time.UnixMilli(nowMs-hourMs))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(RevocationCompaction{Removed: 0, CompactedSeq: 3}, res); diff != "" {
		t.Fatalf("second compaction (-want +got):\n%s", diff)
	}

	tests := []struct {
		name      string
		since     uint64
		want      []*Revocation
		compacted bool
	}{
		{name: "below the point", since: 0, compacted: true},
		{name: "just below the point", since: 2, compacted: true},
		{name: "at the point", since: 3, want: got[3:]},
		{name: "above the point", since: 4, want: got[4:]},
	}
	check := func(s Store) {
		t.Helper()
		for _, tc := range tests {
			entries, err := s.RevocationsSince(ctx, tc.since)
			if tc.compacted {
				if !errors.Is(err, ErrCompacted) {
					t.Fatalf("%s: RevocationsSince(%d) = %v, %v; want ErrCompacted", tc.name, tc.since, entries, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if diff := cmp.Diff(tc.want, entries); diff != "" {
				t.Fatalf("%s: RevocationsSince(%d) (-want +got):\n%s", tc.name, tc.since, diff)
			}
		}
	}
	check(s)

	// The point and the log survive a restart.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = b.openTest(t, path, fixedClock())
	check(s)

	// Compacting everything keeps the seq: it is never reused.
	res, err = s.CompactRevocations(ctx, time.UnixMilli(inAnHour+2*hourMs))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(RevocationCompaction{Removed: 3, CompactedSeq: 5}, res); diff != "" {
		t.Fatalf("full compaction (-want +got):\n%s", diff)
	}
	if seq, err := s.RevocationSeq(ctx); err != nil || seq != 5 {
		t.Fatalf("RevocationSeq after full compaction = %d, %v; want 5", seq, err)
	}
	if next := appendAll(t, s, revocation("next", inAnHour))[0]; next.Seq != 6 {
		t.Fatalf("seq after full compaction = %d, want 6", next.Seq)
	}
	if bs, ok := s.(*Bolt); ok {
		checkRevocationLog(t, bs)
	}
}

func TestCompactRevocationsInBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t, "", WithClock(fixedClock()))
	const n = 2*compactBatch + 17
	err := s.db.Update(func(tx *bolt.Tx) error {
		// Bulk-load in one transaction (one fsync instead of n), with the
		// same writes AppendRevocation makes.
		rb := tx.Bucket(bucketRevocations)
		for seq := uint64(1); seq <= n; seq++ {
			r := revocation(strconv.FormatUint(seq, 10), nowMs-int64(seq))
			if err := rb.Bucket(bucketRevLog).Put(versionKey(seq), encodeRevocation(r)); err != nil {
				return err
			}
			if err := rb.Bucket(bucketRevExpiry).Put(expiryKey(r.ExpiresUnixMs, seq), []byte{}); err != nil {
				return err
			}
		}
		return rb.Put(keyRevSeq, versionKey(n))
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.CompactRevocations(ctx, time.UnixMilli(nowMs))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(RevocationCompaction{Removed: n, CompactedSeq: n}, res); diff != "" {
		t.Fatalf("compaction (-want +got):\n%s", diff)
	}
	live, seq, err := s.LiveRevocations(ctx, time.UnixMilli(0))
	if err != nil || len(live) != 0 || seq != n {
		t.Fatalf("after compaction: %d entries, seq %d, %v; want 0 entries, seq %d", len(live), seq, err, n)
	}
	checkRevocationLog(t, s)
}

func TestWatchRevocations(t *testing.T) { forEachStore(t, testWatchRevocations) }

func testWatchRevocations(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.openTest(t, "", nil)

	wctx, cancel := context.WithCancel(ctx)
	ch, err := s.WatchRevocations(wctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-ch:
		t.Fatalf("empty log announced seq %d", v)
	default:
	}
	// A config commit does not wake revocation watchers.
	if _, err := s.Commit(ctx, 0, rev("a")); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		appendAll(t, s, revocation(fmt.Sprint(i), inAnHour))
	}
	if v := <-ch; v != 5 {
		t.Fatalf("watch value = %d, want 5 (newest wins)", v)
	}
	select {
	case v := <-ch:
		t.Fatalf("unexpected second value %d", v)
	default:
	}
	late, err := s.WatchRevocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v := <-late; v != 5 {
		t.Fatalf("late watcher first value = %d, want 5", v)
	}
	cancel()
	if _, ok := <-ch; ok {
		t.Fatal("watch channel still open after its ctx was cancelled")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-late; ok {
		t.Fatal("watch channel still open after Close")
	}
}

func TestConcurrentAppendsGetDistinctSeqs(t *testing.T) {
	forEachStore(t, testConcurrentAppendsGetDistinctSeqs)
}

func testConcurrentAppendsGetDistinctSeqs(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.openTest(t, "", nil)
	ch, err := s.WatchRevocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 10
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			for j := range each {
				if _, err := s.AppendRevocation(ctx, revocation(fmt.Sprint(i, "-", j), inAnHour)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	var seen []uint64
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for waiting := true; waiting; {
		select {
		case v := <-ch:
			seen = append(seen, v)
		case <-done:
			waiting = false
		}
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] <= seen[i-1] {
			t.Fatalf("watch values not strictly increasing: %v", seen)
		}
	}
	entries, err := s.RevocationsSince(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != writers*each {
		t.Fatalf("%d entries, want %d", len(entries), writers*each)
	}
	for i, e := range entries {
		if e.Seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d: seqs must be 1..n without gaps", i, e.Seq)
		}
	}
}

func TestRevocationMethodsAfterClose(t *testing.T) { forEachStore(t, testRevocationMethodsAfterClose) }

func testRevocationMethodsAfterClose(t *testing.T, b backend) {
	ctx := context.Background()
	s, err := b.open(t, b.place(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"AppendRevocation", func() error { _, err := s.AppendRevocation(ctx, revocation("a", inAnHour)); return err }},
		{"RevocationsSince", func() error { _, err := s.RevocationsSince(ctx, 0); return err }},
		{"LiveRevocations", func() error { _, _, err := s.LiveRevocations(ctx, time.Now()); return err }},
		{"RevocationSeq", func() error { _, err := s.RevocationSeq(ctx); return err }},
		{"WatchRevocations", func() error { _, err := s.WatchRevocations(ctx); return err }},
		{"CompactRevocations", func() error { _, err := s.CompactRevocations(ctx, time.Now()); return err }},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", c.name, err)
		}
	}
}

func TestRevocationRecordSkipsUnknownFields(t *testing.T) {
	t.Parallel()
	want := &Revocation{Seq: 7, Claim: "sub", Value: "bob", ExpiresUnixMs: inAnHour, CreatedUnixMs: nowMs, Author: "alice"}
	b := encodeRevocation(want)
	b = protowire.AppendTag(b, 40, protowire.BytesType)
	b = protowire.AppendString(b, "future")
	b = protowire.AppendTag(b, 41, protowire.VarintType)
	b = protowire.AppendVarint(b, 7)
	got, err := decodeRevocation(versionKey(7), b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("decode (-want +got):\n%s", diff)
	}
	if _, err := decodeRevocation(versionKey(7), b[:len(b)-1]); err == nil {
		t.Fatal("truncated entry decoded without error")
	}
}

// Environment of the helper process of TestRevocationLogSurvivesKill.
const helperDBEnv = "STORE_TEST_APPEND_FOREVER_DB"

// TestRevocationLogSurvivesKill kills a process that appends and compacts
// as fast as it can, then checks that the log it left is consistent: the
// seq counter covers every entry, the expiry index matches the log, and
// every entry above the compaction point is present.
func TestRevocationLogSurvivesKill(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAppendForever$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperDBEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var last uint64
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(30 * time.Second)
	for last < 200 && sc.Scan() {
		if n, err := strconv.ParseUint(sc.Text(), 10, 64); err == nil {
			last = n
		}
		if time.Now().After(deadline) {
			break
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if last < 200 {
		t.Fatalf("the helper appended only %d entries", last)
	}

	s := openTest(t, path)
	seq, err := s.RevocationSeq(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if seq < last {
		t.Fatalf("seq after the kill = %d, but the helper had appended %d", seq, last)
	}
	checkRevocationLog(t, s)
	// The log goes on.
	if next := appendAll(t, s, revocation("after", inAnHour))[0]; next.Seq != seq+1 {
		t.Fatalf("seq after restart = %d, want %d", next.Seq, seq+1)
	}
}

// TestHelperAppendForever is the process TestRevocationLogSurvivesKill kills.
func TestHelperAppendForever(t *testing.T) {
	path := os.Getenv(helperDBEnv)
	if path == "" {
		t.Skip("helper process of TestRevocationLogSurvivesKill")
	}
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	go func() {
		// Compaction transactions interleave with the appends.
		for {
			if _, err := s.CompactRevocations(ctx, time.Now()); err != nil {
				return
			}
		}
	}()
	for i := 0; ; i++ {
		exp := time.Now().Add(time.Hour).UnixMilli()
		if i%2 == 0 {
			exp = 1 // already expired: compacted soon
		}
		r, err := s.AppendRevocation(ctx, revocation(strconv.Itoa(i), exp))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println(r.Seq)
	}
}

// checkRevocationLog checks the invariants of the revocation buckets.
func checkRevocationLog(t *testing.T, s *Bolt) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketRevocations)
		head, compacted := getUint64(rb, keyRevSeq), getUint64(rb, keyRevCompacted)
		if compacted > head {
			return fmt.Errorf("compaction point %d above the head %d", compacted, head)
		}
		inLog := make(map[uint64]int64)
		err := rb.Bucket(bucketRevLog).ForEach(func(k, v []byte) error {
			r, err := decodeRevocation(k, v)
			if err != nil {
				return err
			}
			if r.Seq > head {
				return fmt.Errorf("entry %d above the head %d", r.Seq, head)
			}
			inLog[r.Seq] = r.ExpiresUnixMs
			return nil
		})
		if err != nil {
			return err
		}
		indexed := 0
		err = rb.Bucket(bucketRevExpiry).ForEach(func(k, _ []byte) error {
			exp, seq := int64(binary.BigEndian.Uint64(k[:8])), binary.BigEndian.Uint64(k[8:])
			if got, ok := inLog[seq]; !ok || got != exp {
				return fmt.Errorf("index entry (%d, %d) does not match the log", exp, seq)
			}
			indexed++
			return nil
		})
		if err != nil {
			return err
		}
		if indexed != len(inLog) {
			return fmt.Errorf("%d index entries for %d log entries", indexed, len(inLog))
		}
		for seq := compacted + 1; seq <= head; seq++ {
			if _, ok := inLog[seq]; !ok {
				return fmt.Errorf("entry %d is missing above the compaction point %d", seq, compacted)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
