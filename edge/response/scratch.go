package response

import (
	"sync"

	"github.com/apigw/gateway/edge/internal/zerocopy"
)

// A Scratch that served a big request is dropped instead of pooled: its
// parsers keep a copy of each body plus one fastjson.Value (~80 bytes) per
// JSON value, which must not stay pinned by the pool.
const (
	maxPooledBytes = 4 << 20 // render and text buffers
	maxPooledBody  = 1 << 20 // decoded body size
)

var scratchPool = sync.Pool{New: func() any { return new(Scratch) }}

func acquireScratch(n int) *Scratch {
	s := scratchPool.Get().(*Scratch)
	if n < 1 {
		n = 1
	}
	if cap(s.slots) < n {
		slots := make([]slot, n)
		copy(slots, s.slots[:cap(s.slots)])
		s.slots = slots
	}
	s.slots = s.slots[:n]
	return s
}

func releaseScratch(s *Scratch) {
	if s == nil {
		return
	}
	all := s.slots[:cap(s.slots)]
	big := cap(s.out) > maxPooledBytes
	for i := range all {
		big = big || all[i].big || cap(all[i].buf) > maxPooledBytes
	}
	if big {
		// Drop the whole Scratch; the pool makes a fresh one on demand.
		return
	}
	s.arena.Reset()
	s.fw.reset()
	s.out = s.out[:0]
	clear(s.ordered)
	s.ordered = s.ordered[:0]
	for i := range all {
		sl := &all[i]
		sl.a.Reset()
		sl.fw.reset()
		sl.buf = sl.buf[:0]
		clear(sl.ordered)
		sl.ordered = sl.ordered[:0]
	}
	scratchPool.Put(s)
}

// slot returns slot i, growing the slot list if the caller asked for more
// than AcquireScratch reserved (a programming error we tolerate rather than
// panic on the request path).
func (s *Scratch) slot(i int) *slot {
	if i < 0 {
		i = 0
	}
	if i >= len(s.slots) {
		if i < cap(s.slots) {
			s.slots = s.slots[:i+1]
		} else {
			slots := make([]slot, i+1)
			copy(slots, s.slots)
			s.slots = slots
		}
	}
	return &s.slots[i]
}

// b2s converts without copying. Callers guarantee b outlives the string
// and is not modified while the string is in use (every byte slice we
// convert belongs to a Scratch and is only reset by ReleaseScratch).
func b2s(b []byte) string { return zerocopy.String(b) }

// s2b is the reverse of b2s; the result must never be written to.
func s2b(s string) []byte { return zerocopy.Bytes(s) }
