package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"
)

func openTest(t *testing.T, path string, opts ...Option) *Bolt {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "store.db")
	}
	s, err := OpenBolt(path, opts...)
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func rev(content string) *Revision {
	sum := sha256.Sum256([]byte(content))
	return &Revision{
		SHA256:     hex.EncodeToString(sum[:]),
		Payload:    []byte(content),
		Source:     []byte("src:" + content),
		SourceName: "gw.yaml",
		Author:     "alice",
		Endpoints:  3,
		RenderedFrom: []SourceFile{
			{Name: "krakend.tmpl", SHA256: "ab12"},
			{Name: "settings/service.json", SHA256: "cd34"},
		},
		Warnings: []Warning{{Path: "endpoints[0].backend[0].timeout", Kind: "overridden", Detail: "KrakenD uses the endpoint's"}},
	}
}

func fixedClock() func() time.Time {
	return func() time.Time { return time.UnixMilli(1_700_000_000_000) }
}

func TestCommitCompareAndSwap(t *testing.T) { forEachStore(t, testCommitCompareAndSwap) }

func testCommitCompareAndSwap(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.openTest(t, "", fixedClock())

	if _, err := s.Latest(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Latest on empty store: got %v, want ErrNotFound", err)
	}

	tests := []struct {
		name    string
		prev    uint64
		content string
		want    uint64 // 0: expect ErrStale
	}{
		{name: "first commit on empty store", prev: 0, content: "a", want: 1},
		{name: "stale: empty-store base after a commit", prev: 0, content: "b", want: 0},
		{name: "second commit", prev: 1, content: "b", want: 2},
		{name: "stale: old base", prev: 1, content: "c", want: 0},
		{name: "stale: future base", prev: 7, content: "c", want: 0},
		{name: "third commit", prev: 2, content: "c", want: 3},
	}
	for _, tc := range tests {
		// Sequential on purpose: each case depends on the previous ones.
		got, err := s.Commit(ctx, tc.prev, rev(tc.content))
		if tc.want == 0 {
			if !errors.Is(err, ErrStale) {
				t.Fatalf("%s: Commit err = %v, want ErrStale", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: Commit: %v", tc.name, err)
		}
		want := rev(tc.content)
		want.Version = tc.want
		want.CreatedUnixMs = 1_700_000_000_000
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%s: Commit result (-want +got):\n%s", tc.name, diff)
		}
		stored, err := s.Get(ctx, tc.want)
		if err != nil {
			t.Fatalf("%s: Get: %v", tc.name, err)
		}
		if diff := cmp.Diff(want, stored); diff != "" {
			t.Fatalf("%s: Get (-want +got):\n%s", tc.name, diff)
		}
	}

	latest, err := s.Latest(ctx)
	if err != nil {
		t.Fatalf("Latest: %v", err)
	}
	if latest.Version != 3 || string(latest.Payload) != "c" {
		t.Fatalf("Latest = v%d %q, want v3 \"c\"", latest.Version, latest.Payload)
	}
	if _, err := s.Get(ctx, 4); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(4): got %v, want ErrNotFound", err)
	}
}

func TestCommitRejectsBadInput(t *testing.T) { forEachStore(t, testCommitRejectsBadInput) }

func testCommitRejectsBadInput(t *testing.T, b backend) {
	s := b.openTest(t, "", nil)
	bad := rev("a")
	bad.SHA256 = "00"
	if _, err := s.Commit(context.Background(), 0, bad); err == nil {
		t.Fatal("Commit with a wrong sha256 succeeded")
	}
	if _, err := s.Commit(context.Background(), 0, nil); err == nil {
		t.Fatal("Commit(nil) succeeded")
	}
	if _, err := s.Latest(context.Background()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("store not empty after rejected commits: %v", err)
	}
}

func TestCommitKeepsCreatedTime(t *testing.T) { forEachStore(t, testCommitKeepsCreatedTime) }

func testCommitKeepsCreatedTime(t *testing.T, b backend) {
	s := b.openTest(t, "", fixedClock())
	r := rev("a")
	r.CreatedUnixMs = 42
	got, err := s.Commit(context.Background(), 0, r)
	if err != nil {
		t.Fatal(err)
	}
	if got.CreatedUnixMs != 42 {
		t.Fatalf("CreatedUnixMs = %d, want 42 (given by the caller)", got.CreatedUnixMs)
	}
}

func TestListNewestFirstWithoutContent(t *testing.T) {
	forEachStore(t, testListNewestFirstWithoutContent)
}

func testListNewestFirstWithoutContent(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.openTest(t, "", fixedClock())
	for i := range 5 {
		r := rev(fmt.Sprint("content-", i))
		r.RollbackOf = uint64(i)
		if _, err := s.Commit(ctx, uint64(i), r); err != nil {
			t.Fatal(err)
		}
	}
	meta := func(v uint64) *Revision {
		r := rev(fmt.Sprint("content-", v-1))
		r.Version = v
		r.RollbackOf = v - 1
		r.CreatedUnixMs = 1_700_000_000_000
		r.Payload, r.Source = nil, nil
		return r
	}
	tests := []struct {
		name  string
		limit int
		want  []*Revision
	}{
		{name: "all", limit: 0, want: []*Revision{meta(5), meta(4), meta(3), meta(2), meta(1)}},
		{name: "limit 2", limit: 2, want: []*Revision{meta(5), meta(4)}},
		{name: "limit above count", limit: 50, want: []*Revision{meta(5), meta(4), meta(3), meta(2), meta(1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.List(ctx, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("List (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPersistsAcrossRestart(t *testing.T) { forEachStore(t, testPersistsAcrossRestart) }

func testPersistsAcrossRestart(t *testing.T, b backend) {
	ctx := context.Background()
	path := b.place(t)

	s, err := b.open(t, path, fixedClock())
	if err != nil {
		t.Fatal(err)
	}
	var want []*Revision
	for i := range 3 {
		got, err := s.Commit(ctx, uint64(i), rev(fmt.Sprint("v", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = b.openTest(t, path, nil)
	for _, w := range want {
		got, err := s.Get(ctx, w.Version)
		if err != nil {
			t.Fatalf("Get(%d) after restart: %v", w.Version, err)
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Fatalf("Get(%d) after restart (-want +got):\n%s", w.Version, diff)
		}
	}
	// Versions continue where they stopped; the CAS base is the reopened latest.
	if _, err := s.Commit(ctx, 2, rev("x")); !errors.Is(err, ErrStale) {
		t.Fatalf("Commit on stale base after restart: %v, want ErrStale", err)
	}
	got, err := s.Commit(ctx, 3, rev("v4"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 4 {
		t.Fatalf("version after restart = %d, want 4", got.Version)
	}
	// The watch of a reopened store starts at the persisted latest version.
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v := <-ch; v != 4 {
		t.Fatalf("first watch value after restart = %d, want 4", v)
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store.db")
	openTest(t, path)
	start := time.Now()
	s2, err := OpenBolt(path, WithLockTimeout(100*time.Millisecond))
	if err == nil {
		s2.Close()
		t.Fatal("second OpenBolt of a locked file succeeded")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("second OpenBolt took %s; it must give up after the lock timeout", time.Since(start))
	}
}

func TestWatchCoalescesToNewest(t *testing.T) { forEachStore(t, testWatchCoalescesToNewest) }

func testWatchCoalescesToNewest(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.openTest(t, "", nil)

	wctx, cancel := context.WithCancel(ctx)
	ch, err := s.Watch(wctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-ch:
		t.Fatalf("empty store announced version %d", v)
	default:
	}

	// Five commits while nobody reads: only the newest is waiting.
	for i := range 5 {
		if _, err := s.Commit(ctx, uint64(i), rev(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if v := <-ch; v != 5 {
		t.Fatalf("watch value = %d, want 5 (newest wins)", v)
	}
	select {
	case v := <-ch:
		t.Fatalf("unexpected second value %d", v)
	default:
	}

	// A late watcher starts with the current latest version.
	ch2, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v := <-ch2; v != 5 {
		t.Fatalf("late watcher first value = %d, want 5", v)
	}

	if _, err := s.Commit(ctx, 5, rev("6")); err != nil {
		t.Fatal(err)
	}
	if v := <-ch; v != 6 {
		t.Fatalf("watch value = %d, want 6", v)
	}

	cancel()
	if _, ok := <-ch; ok {
		t.Fatal("watch channel still open after its ctx was cancelled")
	}
	// The other watcher is unaffected until the store closes.
	if v := <-ch2; v != 6 {
		t.Fatalf("second watcher value = %d, want 6", v)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch2; ok {
		t.Fatal("watch channel still open after Close")
	}
}

func TestConcurrentCommitsExactlyOneWins(t *testing.T) {
	forEachStore(t, testConcurrentCommitsExactlyOneWins)
}

func testConcurrentCommitsExactlyOneWins(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.openTest(t, "", nil)
	if _, err := s.Commit(ctx, 0, rev("base")); err != nil {
		t.Fatal(err)
	}
	const writers = 16
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, writers)
	)
	for i := range writers {
		wg.Go(func() {
			<-start
			_, errs[i] = s.Commit(ctx, 1, rev(fmt.Sprint("w", i)))
		})
	}
	close(start)
	wg.Wait()
	var won, stale int
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, ErrStale):
			stale++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if won != 1 || stale != writers-1 {
		t.Fatalf("won=%d stale=%d, want 1 and %d", won, stale, writers-1)
	}
	list, err := s.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Version != 2 {
		t.Fatalf("history after the race: %d revisions, newest v%d; want 2, v2", len(list), list[0].Version)
	}
}

func TestMonotonicUnderContention(t *testing.T) { forEachStore(t, testMonotonicUnderContention) }

func testMonotonicUnderContention(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.openTest(t, "", nil)
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Writers retry on ErrStale until each has committed once, as the admin
	// service does; every version must be used exactly once.
	const writers = 8
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			for {
				latest, err := s.Latest(ctx)
				var prev uint64
				if err == nil {
					prev = latest.Version
				} else if !errors.Is(err, ErrNotFound) {
					t.Error(err)
					return
				}
				_, err = s.Commit(ctx, prev, rev(fmt.Sprint("w", i)))
				if errors.Is(err, ErrStale) {
					continue
				}
				if err != nil {
					t.Error(err)
				}
				return
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
	list, err := s.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, r := range list {
		got = append(got, r.Version)
	}
	want := []uint64{8, 7, 6, 5, 4, 3, 2, 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("versions (-want +got):\n%s", diff)
	}
}

func TestClose(t *testing.T) { forEachStore(t, testClose) }

func testClose(t *testing.T, b backend) {
	ctx := context.Background()
	s, err := b.open(t, b.place(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Latest", func() error { _, err := s.Latest(ctx); return err }},
		{"Get", func() error { _, err := s.Get(ctx, 1); return err }},
		{"List", func() error { _, err := s.List(ctx, 0); return err }},
		{"Commit", func() error { _, err := s.Commit(ctx, 0, rev("a")); return err }},
		{"Watch", func() error { _, err := s.Watch(ctx); return err }},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", c.name, err)
		}
	}
}

func TestCorruptPayloadDetected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, 0, rev("payload")); err != nil {
		t.Fatal(err)
	}
	// Flip the payload behind the store's back, as a bad disk would.
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := revisions(tx)
		r := rev("payloaX")
		r.SHA256 = rev("payload").SHA256
		return b.Put(versionKey(1), encodeRecord(r))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Get(ctx, 1); err == nil {
		t.Fatal("Get returned a revision whose payload does not match its sha256")
	}
	if _, err := s.Latest(ctx); err == nil {
		t.Fatal("Latest returned a revision whose payload does not match its sha256")
	}
}

func TestRecordSkipsUnknownFields(t *testing.T) {
	t.Parallel()
	r := rev("content")
	r.Version = 9
	r.CreatedUnixMs = 1234
	r.RollbackOf = 2
	b := encodeRecord(r)
	// Fields a newer build might add: a string, a varint and a fixed64.
	b = protowire.AppendTag(b, 40, protowire.BytesType)
	b = protowire.AppendString(b, "future")
	b = protowire.AppendTag(b, 41, protowire.VarintType)
	b = protowire.AppendVarint(b, 7)
	b = protowire.AppendTag(b, 42, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, 7)
	got, err := decodeFull(versionKey(9), b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("decode (-want +got):\n%s", diff)
	}
	if _, err := decodeFull(versionKey(9), b[:len(b)-3]); err == nil {
		t.Fatal("truncated record decoded without error")
	}
}
