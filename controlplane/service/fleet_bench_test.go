package service

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkFleetCollect is the fleet board publisher's walk over the
// registry, which holds the fleet lock and runs every publish interval (1 s)
// on a shared store (collect looks at changed nodes only, but for a whole
// walk every tenth of the refresh, here never): 10,000 connected edges, every entry already published,
// so nothing is written (an idle fleet) or, in "changed=100", a hundred
// ACKs since the last walk (a push converging). One op is one walk; it is
// the time every Sync stream's ACK and keepalive may wait for the lock once
// a second.
func BenchmarkFleetCollect(b *testing.B) {
	for _, changed := range []int{0, 100} {
		b.Run(fmt.Sprint("edges=10000/changed=", changed), func(b *testing.B) {
			m := newMetrics(newEdgesCollector(func() map[regionState]int { return nil }))
			f := newFleet(10_000, time.Hour, m)
			f.trackChanges()
			now := time.Now()
			ids := make([]uint64, 10_000)
			for i := range ids {
				id, err := f.connect(hello(fmt.Sprintf("edge-%05d", i), "eu"), nil, "", func(error) {}, now)
				if err != nil {
					b.Fatal(err)
				}
				ids[i] = id
			}
			f.published(f.collect(now, "r1", nil, time.Hour, len(ids)), now)
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				for i := range changed {
					f.touchEntry(fmt.Sprintf("edge-%05d", i), ids[i])
				}
				b.StartTimer()
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
