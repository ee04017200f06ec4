package service

import (
	"fmt"
	"testing"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// BenchmarkFleetCollect is the fleet board publisher's walk over the
// registry, which holds the fleet lock and runs every publish interval (1 s)
// on a shared store (collect looks at changed nodes only, but for a whole
// walk every tenth of the refresh, here never): 10,000 connected edges, every entry already published,
// so nothing is written (an idle fleet) or, in "changed=100", a hundred
// ACKs since the last walk (a push converging). One op is the ACKs' touches and one walk; it is
// the time every Sync stream's ACK and keepalive may wait for the lock once
// a second.
func BenchmarkFleetCollect(b *testing.B) {
	for _, changed := range []int{0, 100} {
		b.Run(fmt.Sprint("edges=10000/changed=", changed), func(b *testing.B) {
			m := newMetrics(newEdgesCollector(func() map[regionState]int { return nil }))
			f := newFleet(10_000, time.Hour, m)
			f.trackChanges()
			now := time.Now()
			ids, names := make([]uint64, 10_000), make([]string, 10_000)
			for i := range ids {
				names[i] = fmt.Sprintf("edge-%05d", i)
				id, err := f.connect(hello(names[i], "eu"), nil, "", func(error) {}, now)
				if err != nil {
					b.Fatal(err)
				}
				ids[i] = id
			}
			f.published(f.collect(now, "r1", nil, time.Hour, len(ids)), now)
			b.ReportAllocs()
			// The ACKs' touches are timed with the walk: StopTimer per
			// op reads the memory stats (a stop of the world) and made a
			// sub-microsecond op run for many minutes under b.Loop.
			for b.Loop() {
				for i := range changed {
					f.touchEntry(names[i], ids[i])
				}
				w := f.collect(now, "r1", nil, time.Hour, maxFleetWritesPerPublish)
				if len(w) != changed {
					b.Fatalf("collected %d entries, want %d", len(w), changed)
				}
				f.published(w, now)
			}
		})
	}
}

// touchEntry marks node's entry changed, as an ACK does.
func (f *fleet) touchEntry(node string, connID uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.owned(node, connID); e != nil {
		f.touchLocked(e)
	}
}

// TestFleetCollectIncremental: with change tracking (a shared store),
// collect returns the entries changed since their last publish, the
// deletion of an evicted one, and every entry older than the refresh once a
// tenth of the refresh has passed since the last whole walk; a failed
// publish (published not called) is collected again.
func TestFleetCollectIncremental(t *testing.T) {
	m := newMetrics(newEdgesCollector(func() map[regionState]int { return nil }))
	f := newFleet(10, time.Hour, m)
	f.trackChanges()
	now := time.Now()
	const refresh = 10 * time.Minute
	ids := map[string]uint64{}
	for _, n := range []string{"a", "b", "c"} {
		id, err := f.connect(hello(n, "eu"), nil, "", func(error) {}, now)
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = id
	}
	nodes := func(ws []pubWrite) map[string]bool {
		out := map[string]bool{}
		for _, w := range ws {
			out[w.node] = w.value != nil
		}
		return out
	}
	if got := nodes(f.collect(now, "r1", nil, refresh, 100)); len(got) != 3 {
		t.Fatalf("first collect: %v, want a, b, c", got)
	}
	// Not published (the write failed): the same entries again.
	w := f.collect(now, "r1", nil, refresh, 100)
	if len(w) != 3 {
		t.Fatalf("collect after a failed publish: %v, want a, b, c", nodes(w))
	}
	f.published(w, now)

	now = now.Add(time.Second)
	if got := f.collect(now, "r1", nil, refresh, 100); len(got) != 0 {
		t.Fatalf("collect with nothing changed: %v", nodes(got))
	}
	f.ack("b", ids["b"], &gatewayv1.Ack{Version: 7, Sha256: "x"}, now)
	f.disconnect("c", ids["c"], "", now)
	f.mu.Lock()
	f.evictLocked("a")
	f.mu.Unlock()
	w = f.collect(now, "r1", nil, refresh, 100)
	if got := nodes(w); len(got) != 3 || !got["b"] || !got["c"] || got["a"] {
		t.Fatalf("collect after an ACK, a disconnect and an eviction: %v, want b and c written, a deleted", got)
	}
	f.published(w, now)
	if got := f.collect(now, "r1", nil, refresh, 100); len(got) != 0 {
		t.Fatalf("collect after publishing the changes: %v", nodes(got))
	}

	// Past the refresh: the whole walk (due a tenth of the refresh after
	// the last) rewrites both entries.
	now = now.Add(refresh + time.Second)
	if got := nodes(f.collect(now, "r1", nil, refresh, 100)); len(got) != 2 || !got["b"] || !got["c"] {
		t.Fatalf("collect past the refresh: %v, want b and c", got)
	}
}
