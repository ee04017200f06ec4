package security

import "testing"

// TestVerdictCacheEvictsLeastRecentlyUsed: a full cache drops the entry
// used longest ago, and a hit makes an entry the most recent.
func TestVerdictCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := newVerdictCache(2)
	c.add([]byte("a"), true)
	c.add([]byte("b"), false)
	if bot, ok := c.get([]byte("a")); !ok || !bot { // a is now the most recent
		t.Fatalf("get(a) = %v, %v; want true, true", bot, ok)
	}
	c.add([]byte("c"), true) // evicts b
	if _, ok := c.get([]byte("b")); ok {
		t.Error("b was not evicted")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := c.get([]byte(k)); !ok {
			t.Errorf("%s was evicted", k)
		}
	}
	if n := c.len(); n != 2 {
		t.Errorf("len = %d, want 2", n)
	}
	c.add([]byte("c"), false) // re-adding updates in place
	if bot, _ := c.get([]byte("c")); bot {
		t.Error("re-added verdict not updated")
	}
	if n := c.len(); n != 2 {
		t.Errorf("len after re-add = %d, want 2", n)
	}
}

// TestVerdictCacheSizeOne keeps exactly the last key.
func TestVerdictCacheSizeOne(t *testing.T) {
	c := newVerdictCache(1)
	for _, k := range []string{"x", "y", "z"} {
		c.add([]byte(k), true)
		if _, ok := c.get([]byte(k)); !ok {
			t.Fatalf("%s missing right after add", k)
		}
	}
	if _, ok := c.get([]byte("y")); ok || c.len() != 1 {
		t.Errorf("size-1 cache holds %d entries (y present: %v)", c.len(), ok)
	}
}
