package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/apigw/gateway/test/etcdtest"
)

func openEtcdTest(t *testing.T, endpoints []string, prefix string, tweak func(*EtcdConfig)) *Etcd {
	t.Helper()
	cfg := EtcdConfig{Endpoints: endpoints, Prefix: prefix, OpTimeout: 20 * time.Second}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := OpenEtcd(context.Background(), cfg)
	if err != nil {
		t.Fatalf("OpenEtcd: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func rawClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// bigRev is a revision with a random (incompressible) payload of size
// bytes, so it is stored in chunks when larger than one.
func bigRev(size int) *Revision {
	payload := make([]byte, size)
	_, _ = rand.Read(payload)
	return revWithPayload(payload)
}

func revWithPayload(payload []byte) *Revision {
	size := len(payload)
	sum := sha256.Sum256(payload)
	return &Revision{SHA256: hex.EncodeToString(sum[:]), Payload: payload, Source: append([]byte("src:"), payload[:size/3]...), SourceName: "big.json", Author: "alice"}
}

// recv waits (bounded) for the next value of a watch channel.
func recv(t *testing.T, ch <-chan uint64, what string) uint64 {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatalf("%s: watch closed", what)
		}
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no watch value within 20s", what)
	}
	return 0
}

// waitFor reads ch until it announces at least want.
func waitFor(t *testing.T, ch <-chan uint64, want uint64, what string) {
	t.Helper()
	for v := uint64(0); v < want; {
		v = recv(t, ch, what)
	}
}

// TestEtcdChunkedContent stores contents larger than one request, both with
// a small chunk size and above etcd's default 1.5 MiB request limit, and
// reads them back whole; a damaged chunk is an error, never a snapshot.
func TestEtcdChunkedContent(t *testing.T) {
	t.Parallel()
	c := sharedEtcd(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		chunk int
		size  int
	}{
		{name: "small chunks", chunk: 1000, size: 10_500},
		{name: "over the request limit", chunk: 0, size: 3 << 20},
		{name: "inline", chunk: 0, size: 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := etcdBackend(t).place(t)
			s := openEtcdTest(t, c.Endpoints(), prefix, func(cfg *EtcdConfig) { cfg.ChunkBytes = tc.chunk })
			want := bigRev(tc.size)
			got, err := s.Commit(ctx, 0, want)
			if err != nil {
				t.Fatal(err)
			}
			chunk := tc.chunk
			if chunk == 0 {
				chunk = DefaultEtcdChunkBytes
			}
			blobs, err := rawClient(t, c.Endpoints()).Get(ctx, prefix+"blob/", clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err != nil {
				t.Fatal(err)
			}
			if chunked := blobs.Count > 1; chunked != (tc.size > chunk) {
				t.Fatalf("%d chunks stored for %d random bytes with %d-byte chunks", blobs.Count, tc.size, chunk)
			}
			// Another replica reads it.
			other := openEtcdTest(t, c.Endpoints(), prefix, nil)
			for _, read := range []func() (*Revision, error){
				func() (*Revision, error) { return other.Get(ctx, 1) },
				func() (*Revision, error) { return other.Latest(ctx) },
			} {
				r, err := read()
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(got, r); diff != "" {
					t.Fatalf("read back (-want +got):\n%s", diff)
				}
			}
			list, err := other.List(ctx, 0)
			if err != nil || len(list) != 1 || list[0].Payload != nil || list[0].SHA256 != want.SHA256 {
				t.Fatalf("List = %v, %v; want one entry without content", list, err)
			}
		})
	}

	t.Run("compressible content is stored compressed", func(t *testing.T) {
		prefix := etcdBackend(t).place(t)
		s := openEtcdTest(t, c.Endpoints(), prefix, nil)
		want := revWithPayload(bytes.Repeat([]byte(`{"endpoint":"/v1/users/{id}","backend":[{"host":["http://users:8080"]}]},`), 50_000)) // 3.6 MB
		got, err := s.Commit(ctx, 0, want)
		if err != nil {
			t.Fatal(err)
		}
		cli := rawClient(t, c.Endpoints())
		resp, err := cli.Get(ctx, prefix+"config/content/", clientv3.WithPrefix())
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("content keys: %v, %v", resp, err)
		}
		if v := resp.Kvs[0].Value; v[0] != contentInlineZstd || len(v) > len(want.Payload)/10 {
			t.Fatalf("content record kind %d, %d bytes for a %d-byte payload; want compressed inline", v[0], len(v), len(want.Payload))
		}
		r, err := openEtcdTest(t, c.Endpoints(), prefix, nil).Get(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got, r); diff != "" {
			t.Fatalf("read back (-want +got):\n%s", diff)
		}
	})

	t.Run("damaged chunk", func(t *testing.T) {
		prefix := etcdBackend(t).place(t)
		s := openEtcdTest(t, c.Endpoints(), prefix, func(cfg *EtcdConfig) { cfg.ChunkBytes = 1000 })
		if _, err := s.Commit(ctx, 0, bigRev(5000)); err != nil {
			t.Fatal(err)
		}
		cli := rawClient(t, c.Endpoints())
		resp, err := cli.Get(ctx, prefix+"blob/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil || len(resp.Kvs) < 2 {
			t.Fatalf("chunks: %v, %v", resp, err)
		}
		if _, err := cli.Put(ctx, string(resp.Kvs[1].Key), strings.Repeat("z", 1000)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, 1); err == nil || !strings.Contains(err.Error(), "corrupt") {
			t.Fatalf("Get of a damaged revision: %v, want a corruption error", err)
		}
		if _, err := cli.Delete(ctx, string(resp.Kvs[1].Key)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, 1); err == nil || !strings.Contains(err.Error(), "chunks") {
			t.Fatalf("Get with a missing chunk: %v, want an error naming the chunks", err)
		}
	})
}

// TestEtcdReplicasShareOneHistory has two replicas (two stores on one
// prefix) write at the same time: every version and every seq is assigned
// exactly once, and each replica's watch announces what the other wrote.
func TestEtcdReplicasShareOneHistory(t *testing.T) {
	t.Parallel()
	c := sharedEtcd(t)
	ctx := context.Background()
	prefix := etcdBackend(t).place(t)
	replicas := []*Etcd{openEtcdTest(t, c.Endpoints(), prefix, nil), openEtcdTest(t, c.Endpoints(), prefix, nil)}
	versions, err := replicas[1].Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := replicas[0].WatchRevocations(ctx)
	if err != nil {
		t.Fatal(err)
	}

	const writers, each = 6, 5
	var wg sync.WaitGroup
	for i := range writers {
		s := replicas[i%2]
		wg.Go(func() {
			for j := range each {
				for attempt := 0; ; attempt++ {
					if attempt > 200 {
						t.Error("commit never won a race")
						return
					}
					var prev uint64
					if l, err := s.List(ctx, 1); err != nil {
						t.Error(err)
						return
					} else if len(l) == 1 {
						prev = l[0].Version
					}
					_, err := s.Commit(ctx, prev, rev(fmt.Sprint("w", i, "-", j)))
					if errors.Is(err, ErrStale) {
						continue
					}
					if err != nil {
						t.Error(err)
					}
					break
				}
				if _, err := s.AppendRevocation(ctx, revocation(fmt.Sprint(i, "-", j), inAnHour)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	const n = writers * each
	waitFor(t, versions, n, "replica 1's config watch")
	waitFor(t, seqs, n, "replica 0's revocation watch")

	list, err := replicas[0].List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, r := range list {
		if r.Version != uint64(n-i) {
			t.Fatalf("history position %d holds v%d, want v%d: versions must be 1..%d once each", i, r.Version, n-i, n)
		}
		seen[r.SHA256] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct contents in %d versions; a commit was lost or duplicated", len(seen), n)
	}
	entries, err := replicas[1].RevocationsSince(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]bool{}
	for i, e := range entries {
		if e.Seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d: seqs must be 1..n without gaps", i, e.Seq)
		}
		values[e.Value] = true
	}
	if len(entries) != n || len(values) != n {
		t.Fatalf("%d entries, %d distinct; want %d", len(entries), len(values), n)
	}
}

// TestEtcdWatchResyncsAfterCompaction makes a watch start below etcd's
// compaction point: it is counted, resynced, and the store keeps following.
func TestEtcdWatchResyncsAfterCompaction(t *testing.T) {
	t.Parallel()
	c := sharedEtcd(t)
	ctx := context.Background()
	prefix := etcdBackend(t).place(t)
	s := openEtcdTest(t, c.Endpoints(), prefix, nil)
	w := openEtcdTest(t, c.Endpoints(), prefix, nil)
	for i := range 3 {
		if _, err := w.Commit(ctx, uint64(i), rev(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	cli := rawClient(t, c.Endpoints())
	resp, err := cli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	s.watchFrom(wctx, 1) // a watch from before the compaction point
	if got, _ := s.WatchResyncs(); got != 1 {
		t.Fatalf("compaction resyncs = %d, want 1", got)
	}
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, 3, "watch after the compaction")
	if _, err := w.Commit(ctx, 3, rev("after")); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, ch, "commit after the compaction"); v != 4 {
		t.Fatalf("watch value %d, want 4", v)
	}
}

// TestEtcdRestart restarts a single-member etcd under two replicas: the
// watches come back by themselves and a commit made afterwards reaches the
// other replica.
func TestEtcdRestart(t *testing.T) {
	t.Parallel()
	c, err := etcdtest.Start(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	a := openEtcdTest(t, c.Endpoints(), "/r/", nil)
	b := openEtcdTest(t, c.Endpoints(), "/r/", nil)
	if _, err := a.Commit(ctx, 0, rev("before")); err != nil {
		t.Fatal(err)
	}
	ch, err := b.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, 1, "before the restart")

	c.Members[0].Stop()
	if err := c.Members[0].Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.Members[0].WaitHealthy(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Commit(ctx, 1, rev("after")); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, ch, "after the restart"); v != 2 {
		t.Fatalf("watch value %d, want 2", v)
	}
	got, err := b.Get(ctx, 2)
	if err != nil || string(got.Payload) != "after" {
		t.Fatalf("Get(2) = %v, %v", got, err)
	}
}

// TestEtcdOneMemberDown opens the store while one member of three is down:
// it starts and works; the member coming back changes nothing.
func TestEtcdOneMemberDown(t *testing.T) {
	t.Parallel()
	c, err := etcdtest.Start(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	c.Members[0].Kill()
	s := openEtcdTest(t, c.Endpoints(), "/down/", nil)
	if _, err := s.Commit(ctx, 0, rev("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendRevocation(ctx, revocation("x", inAnHour)); err != nil {
		t.Fatal(err)
	}
	if err := c.Members[0].Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.Members[0].WaitHealthy(); err != nil {
		t.Fatal(err)
	}
	// Now a different member goes: the store goes on.
	c.Members[1].Kill()
	if _, err := s.Commit(ctx, 1, rev("b")); err != nil {
		t.Fatal(err)
	}
	l, err := s.Latest(ctx)
	if err != nil || l.Version != 2 {
		t.Fatalf("Latest = %v, %v; want v2", l, err)
	}
}

func TestParseEtcdURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in        string
		endpoints []string
		prefix    string
		tls       bool
		wantErr   string
	}{
		{in: "etcd://127.0.0.1:2379", endpoints: []string{"127.0.0.1:2379"}, prefix: "/apigw/"},
		{in: "etcd://a:1,b:2, c:3/gw/prod", endpoints: []string{"a:1", "b:2", "c:3"}, prefix: "/gw/prod/"},
		{in: "etcds://a:1/", endpoints: []string{"a:1"}, prefix: "/apigw/", tls: true},
		{in: "etcd://", wantErr: "no etcd endpoint"},
		{in: "etcd://a", wantErr: "host:port"},
		{in: "http://a:1", wantErr: "want etcd://"},
		{in: "a:1", wantErr: "want etcd://"},
	}
	for _, tc := range tests {
		eps, prefix, useTLS, err := ParseEtcdURL(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseEtcdURL(%q) err = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !cmp.Equal(eps, tc.endpoints) || prefix != tc.prefix || useTLS != tc.tls {
			t.Errorf("ParseEtcdURL(%q) = %v %q %v %v; want %v %q %v", tc.in, eps, prefix, useTLS, err, tc.endpoints, tc.prefix, tc.tls)
		}
	}
}
