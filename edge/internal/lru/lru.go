// Package lru is a fixed-capacity least-recently-used table keyed by
// string. Its entries live in one slice linked by index, so a hit
// allocates nothing and, once the table is full, a miss allocates only the
// key (the evicted entry's slot is reused). It is not safe for concurrent
// use: each user guards its tables with its own lock (the rate limiter
// shards them, the bot detector has one).
package lru

// Table holds at most its limit of values of type V. The zero Table is
// not usable; make one with New (a Table value may be copied until first
// used, so it can sit inside its owner's struct).
type Table[V any] struct {
	limit      int
	idx        map[string]int32 // key -> position in slots; nil while empty
	slots      []slot[V]
	head, tail int32 // most and least recently used; -1 when empty
}

type slot[V any] struct {
	key        string
	val        V
	prev, next int32 // -1: none
}

// New returns an empty table of at most limit entries (at least one).
func New[V any](limit int) Table[V] {
	return Table[V]{limit: max(limit, 1), head: -1, tail: -1}
}

// Get returns key's value and marks it the most recently used.
func (t *Table[V]) Get(key []byte) (*V, bool) {
	i, ok := t.idx[string(key)]
	if !ok {
		return nil, false
	}
	t.moveToFront(i)
	return &t.slots[i].val, true
}

// Peek returns key's value without changing its place.
func (t *Table[V]) Peek(key []byte) (*V, bool) {
	i, ok := t.idx[string(key)]
	if !ok {
		return nil, false
	}
	return &t.slots[i].val, true
}

// Put returns key's value as the most recently used, adding key (copied)
// with the zero value when absent (added is then true); a full table
// evicts its least recently used entry first. The pointer is valid until
// the next Put or RemoveIf.
func (t *Table[V]) Put(key []byte) (v *V, added bool) {
	if i, ok := t.idx[string(key)]; ok {
		t.moveToFront(i)
		return &t.slots[i].val, false
	}
	if t.idx == nil {
		t.idx = make(map[string]int32, min(t.limit, 8))
	}
	var i int32
	if len(t.slots) >= t.limit {
		i = t.tail
		t.unlink(i)
		delete(t.idx, t.slots[i].key)
	} else {
		t.slots = append(t.slots, slot[V]{})
		i = int32(len(t.slots) - 1)
	}
	k := string(key)
	t.slots[i] = slot[V]{key: k, prev: -1, next: -1}
	t.idx[k] = i
	t.pushFront(i)
	return &t.slots[i].val, true
}

// Len returns the number of entries.
func (t *Table[V]) Len() int { return len(t.slots) }

// RemoveIf deletes every entry whose value drop reports true and returns
// how many it deleted. An emptied table gives its memory back (a past key
// flood does not stay resident).
func (t *Table[V]) RemoveIf(drop func(*V) bool) int {
	n := 0
	// Backwards, because remove moves the last slot into the hole.
	for j := len(t.slots) - 1; j >= 0; j-- {
		if drop(&t.slots[j].val) {
			t.remove(int32(j))
			n++
		}
	}
	if len(t.slots) == 0 && t.idx != nil {
		t.idx, t.slots = nil, nil
	}
	return n
}

func (t *Table[V]) moveToFront(i int32) {
	if t.head == i {
		return
	}
	t.unlink(i)
	t.pushFront(i)
}

func (t *Table[V]) pushFront(i int32) {
	e := &t.slots[i]
	e.prev, e.next = -1, t.head
	if t.head >= 0 {
		t.slots[t.head].prev = i
	}
	t.head = i
	if t.tail < 0 {
		t.tail = i
	}
}

func (t *Table[V]) unlink(i int32) {
	e := &t.slots[i]
	if e.prev >= 0 {
		t.slots[e.prev].next = e.next
	} else {
		t.head = e.next
	}
	if e.next >= 0 {
		t.slots[e.next].prev = e.prev
	} else {
		t.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

// remove deletes slot i, moving the last slot into its place.
func (t *Table[V]) remove(i int32) {
	t.unlink(i)
	delete(t.idx, t.slots[i].key)
	last := int32(len(t.slots) - 1)
	if i != last {
		t.slots[i] = t.slots[last]
		m := &t.slots[i]
		t.idx[m.key] = i
		if m.prev >= 0 {
			t.slots[m.prev].next = i
		} else {
			t.head = i
		}
		if m.next >= 0 {
			t.slots[m.next].prev = i
		} else {
			t.tail = i
		}
	}
	t.slots[last] = slot[V]{}
	t.slots = t.slots[:last]
}
