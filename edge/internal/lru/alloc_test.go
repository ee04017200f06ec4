//go:build !race

package lru

import "testing"

// TestHitAndEvictionAllocs: a hit allocates nothing; a miss on a full
// table allocates only the key's string.
func TestHitAndEvictionAllocs(t *testing.T) {
	tb := New[int](4)
	keys := [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")}
	for _, k := range keys {
		tb.Put(k)
	}
	if n := testing.AllocsPerRun(1000, func() { tb.Get(keys[2]); tb.Put(keys[1]) }); n != 0 {
		t.Errorf("hit: %v allocs, want 0", n)
	}
	// More keys than the table holds, in turn: every Put misses and evicts.
	var fresh [][]byte
	for i := range 6 {
		fresh = append(fresh, []byte("long-enough-to-need-memory-"+string(rune('0'+i))))
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() { tb.Put(fresh[i%len(fresh)]); i++ }); n != 1 {
		t.Errorf("eviction: %v allocs, want 1 (the key)", n)
	}
}
