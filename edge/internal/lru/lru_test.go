package lru

import (
	"fmt"
	"testing"
)

// check verifies the links: head to tail visits every slot once, the
// back links mirror it, and the index points at the right slots.
func check[V any](t *testing.T, tb *Table[V]) []string {
	t.Helper()
	var order []string
	prev := int32(-1)
	for i := tb.head; i >= 0; i = tb.slots[i].next {
		if tb.slots[i].prev != prev {
			t.Fatalf("slot %d: prev %d, want %d", i, tb.slots[i].prev, prev)
		}
		if j := tb.idx[tb.slots[i].key]; j != i {
			t.Fatalf("index of %q is %d, want %d", tb.slots[i].key, j, i)
		}
		order = append(order, tb.slots[i].key)
		prev = i
		if len(order) > len(tb.slots) {
			t.Fatal("the list has a cycle")
		}
	}
	if tb.tail != prev || len(order) != len(tb.slots) || len(tb.idx) != len(tb.slots) {
		t.Fatalf("tail %d (want %d), %d listed, %d slots, %d indexed", tb.tail, prev, len(order), len(tb.slots), len(tb.idx))
	}
	return order
}

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	tb := New[int](2)
	*must(tb.Put([]byte("a"))) = 1
	*must(tb.Put([]byte("b"))) = 2
	if v, ok := tb.Get([]byte("a")); !ok || *v != 1 { // a is now the most recent
		t.Fatalf("Get(a) = %v, %v", v, ok)
	}
	if _, added := tb.Put([]byte("c")); !added { // evicts b
		t.Fatal("c not added")
	}
	if _, ok := tb.Get([]byte("b")); ok {
		t.Error("b was not evicted")
	}
	if got := fmt.Sprint(check(t, &tb)); got != "[c a]" {
		t.Errorf("order %s, want [c a]", got)
	}
	v, added := tb.Put([]byte("a"))
	if added || *v != 1 {
		t.Errorf("Put of a present key: %d, added %v; want its value, not added", *v, added)
	}
	if p, _ := tb.Peek([]byte("c")); p == nil || fmt.Sprint(check(t, &tb)) != "[a c]" {
		t.Errorf("Peek moved c or missed it: %v", check(t, &tb))
	}
}

func TestZeroOrNegativeLimitKeepsOne(t *testing.T) {
	tb := New[bool](0)
	for _, k := range []string{"x", "y", "z"} {
		tb.Put([]byte(k))
	}
	if tb.Len() != 1 {
		t.Fatalf("Len %d, want 1", tb.Len())
	}
	if _, ok := tb.Get([]byte("z")); !ok {
		t.Error("the last key is gone")
	}
}

// TestRemoveIfKeepsLinks removes from the middle, both ends and all, and
// checks the list and index after each (remove moves the last slot into
// the hole, so links to it must follow).
func TestRemoveIfKeepsLinks(t *testing.T) {
	tb := New[int](8)
	for i := range 8 {
		*must(tb.Put(fmt.Appendf(nil, "k%d", i))) = i
	}
	tb.Get([]byte("k0")) // k0 most recent, k1 least
	if n := tb.RemoveIf(func(v *int) bool { return *v%3 == 1 }); n != 3 {
		t.Fatalf("removed %d, want 3 (k1 k4 k7)", n)
	}
	if got := fmt.Sprint(check(t, &tb)); got != "[k0 k6 k5 k3 k2]" {
		t.Fatalf("order %s", got)
	}
	*must(tb.Put([]byte("n"))) = 100
	if got := fmt.Sprint(check(t, &tb)); got != "[n k0 k6 k5 k3 k2]" {
		t.Fatalf("order after Put %s", got)
	}
	if n := tb.RemoveIf(func(*int) bool { return true }); n != 6 || tb.Len() != 0 || tb.idx != nil || tb.slots != nil {
		t.Fatalf("removed %d, Len %d; an emptied table must give its memory back", n, tb.Len())
	}
	if _, added := tb.Put([]byte("again")); !added || fmt.Sprint(check(t, &tb)) != "[again]" {
		t.Fatal("an emptied table is not usable")
	}
}

func must[V any](v *V, _ bool) *V { return v }
