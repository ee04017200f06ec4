package response

import (
	"bytes"
	"slices"
	"sync"

	"github.com/valyala/fastjson"
)

// KrakenD decodes every backend object into a Go map, so whatever it
// renders (JSON, XML, YAML) lists object keys in sorted order, and of
// duplicate keys only the last survives. fields gives the renderers that
// view of a fastjson object without allocating: one pooled stack per
// render, each object's fields pushed on top while it is written.

type kv struct {
	k []byte
	v *fastjson.Value
}

type fields struct {
	kv []kv
	// ordered lists the objects rendered in stored key order
	// (Scratch.KeepOrder); usually empty.
	ordered    []*fastjson.Value
	orderedSet map[*fastjson.Value]struct{} // ordered as a set, when long
}

func (f *fields) keepsOrder(v *fastjson.Value) bool {
	if len(f.ordered) > smallOrdered {
		if f.orderedSet == nil {
			f.orderedSet = make(map[*fastjson.Value]struct{}, len(f.ordered))
			for _, o := range f.ordered {
				f.orderedSet[o] = struct{}{}
			}
		}
		_, ok := f.orderedSet[v]
		return ok
	}
	for _, o := range f.ordered {
		if o == v {
			return true
		}
	}
	return false
}

// smallOrdered is the longest ordered list scanned linearly; a longer one
// (an rss feed's objects) is looked up in a set.
const smallOrdered = 8

var fieldsPool = sync.Pool{New: func() any { return &fields{kv: make([]kv, 0, 64)} }}

func acquireFields() *fields { return fieldsPool.Get().(*fields) }

func releaseFields(f *fields) {
	if cap(f.kv) > 4096 {
		return // an unusual document: let the GC have it
	}
	clear(f.kv[:cap(f.kv)])
	f.kv = f.kv[:0]
	fieldsPool.Put(f)
}

// push appends o's fields in key order, the last of duplicate keys only,
// and returns their range in f.kv; with stored, in o's own order. Index
// f.kv (not a saved sub-slice) while nested objects are pushed: the stack
// may grow. pop(from) drops them.
func (f *fields) push(o *fastjson.Object, stored bool) (from, to int) {
	from = len(f.kv)
	o.Visit(func(k []byte, v *fastjson.Value) { f.kv = append(f.kv, kv{k, v}) })
	if stored {
		return from, len(f.kv)
	}
	part := f.kv[from:]
	if !slices.IsSortedFunc(part, cmpKV) {
		slices.SortStableFunc(part, cmpKV)
	}
	w := from
	for i := from; i < len(f.kv); i++ {
		if i+1 < len(f.kv) && bytes.Equal(f.kv[i].k, f.kv[i+1].k) {
			continue
		}
		f.kv[w] = f.kv[i]
		w++
	}
	f.kv = f.kv[:w]
	return from, w
}

func (f *fields) pop(from int) { f.kv = f.kv[:from] }

func cmpKV(a, b kv) int { return bytes.Compare(a.k, b.k) }
