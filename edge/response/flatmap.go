package response

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/valyala/fastjson"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// This file ports krakend/flatmap's tree (tree/tree.go, tree/node.go) onto
// fastjson values. The tree is built lazily: a node keeps its original value
// until an operation needs to look inside it ("explode"), and expanding an
// untouched subtree returns the original value without copying. Nodes and
// edges live in index-addressed slabs inside the Scratch, so a warm
// workspace does not allocate.
//
// Semantics kept from krakend/flatmap (they are observable):
//   - Paths split on "."; "*" matches every key or index; numeric segments
//     match array indexes. An array keeps its original indexes as labels
//     while operations run: after "del a.0", "a.1" still names the second
//     original element.
//   - move: if src and dst have the same length, the matched edge is only
//     relabelled with dst's last segment (dst's other segments are ignored);
//     a longer src promotes (dst walked from the root, "*" in dst takes the
//     label the src wildcard matched, walking stops at the first missing
//     step); a shorter src embeds (dst[len(src)-1:] is created under src's
//     parent). Only the first edge matching the last src segment of each
//     candidate moves, and that last segment is literal ("*" only matches a
//     key named "*").
//   - del: "*" as last segment empties the node; emptied objects and arrays
//     that had content render as null, as in KrakenD.
//   - append src dst: both must resolve to arrays (a wildcard in src gathers
//     one element per match); dst becomes dst+src and src is deleted.
//   - An object whose every key was removed renders as null (lura's nil
//     map); a null result at the root means "no data".
//
// Deliberate differences: when a relabel or promotion creates two keys with
// the same name, the moved value wins (KrakenD depends on map iteration
// order); append relabels dst's elements 0..n-1 (KrakenD re-flattens over
// possibly non-contiguous labels and can interleave elements).

type opKind uint8

const (
	opMove opKind = iota
	opDel
	opAppend
)

// fseg is one compiled path segment.
type fseg struct {
	s    string
	num  int32 // >= 0 when s is a canonical array index
	wild bool
}

type fpath []fseg

type flatOp struct {
	kind opKind
	args []fpath
}

func compilePath(p string) fpath {
	parts := strings.Split(p, ".")
	out := make(fpath, len(parts))
	for i, s := range parts {
		out[i] = fseg{s: s, num: -1, wild: s == "*"}
		if n, err := strconv.ParseInt(s, 10, 32); err == nil && n >= 0 && strconv.FormatInt(n, 10) == s {
			out[i].num = int32(n)
		}
	}
	return out
}

func newFlatmap(ops []*gatewayv1.FlatmapOp) (*Flatmap, error) {
	fm := &Flatmap{}
	for i, op := range ops {
		var k opKind
		switch op.GetType() {
		case "":
			continue // KrakenD skips ops without a type
		case "move":
			k = opMove
		case "del":
			k = opDel
		case "append":
			k = opAppend
		default:
			return nil, fmt.Errorf("flatmap op %d: type %q: unsupported (move, del, append)", i, op.GetType())
		}
		args := op.GetArgs()
		switch {
		case k == opDel && len(args) == 0:
			return nil, fmt.Errorf("flatmap op %d: del needs at least 1 arg", i)
		case k != opDel && len(args) != 2:
			return nil, fmt.Errorf("flatmap op %d: %s needs 2 args, got %d", i, op.GetType(), len(args))
		}
		c := flatOp{kind: k, args: make([]fpath, len(args))}
		for j, a := range args {
			c.args[j] = compilePath(a)
		}
		fm.ops = append(fm.ops, c)
	}
	if len(fm.ops) == 0 {
		return nil, nil
	}
	return fm, nil
}

// label is an edge name: an object key, or an original array index.
type label struct {
	s   string
	num int32 // >= 0: array index label (s unused)
}

func (l label) is(sg fseg) bool {
	if l.num >= 0 {
		return sg.num == l.num
	}
	return l.s == sg.s
}

func segLabel(sg fseg) label { return label{s: sg.s, num: -1} }

type fnode struct {
	val         *fastjson.Value // unexploded: the value; exploded leaf: its value (nil: none)
	orig        *fastjson.Value // value the node started from (nil for created nodes)
	first, last int32           // edge list, -1 when empty
	exploded    bool
	coll        bool // renders as an array
	dirty       bool // edge list changed since explode
}

type fedge struct {
	l    label
	node int32
	next int32
}

type fcand struct {
	node           int32
	pathOff, pathN int32 // labels (flatWork.path) and nodes (flatWork.pathNodes) from the root
}

type fmoved struct {
	edge int32
	cand fcand
}

// flatWork is the reusable workspace of one Flatmap.apply.
type flatWork struct {
	nodes []fnode
	edges []fedge
	cands []fcand
	next  []fcand
	moved []fmoved
	path  []label
	// pathNodes[i] is the node reached by path[i]: promotion walks the
	// candidate's own branch without searching for it again.
	pathNodes []int32
	stack     []*fastjson.Value
	keys      []byte
}

// reset empties the workspace when its Scratch is released.
func (w *flatWork) reset() {
	w.begin()
	w.keys = w.keys[:0]
}

// begin prepares for one apply. keys survive: object keys formatted from
// array indexes are referenced by the values earlier applies returned.
func (w *flatWork) begin() {
	clear(w.nodes)
	w.nodes = w.nodes[:0]
	w.edges = w.edges[:0]
	w.cands = w.cands[:0]
	w.next = w.next[:0]
	w.moved = w.moved[:0]
	w.path = w.path[:0]
	w.pathNodes = w.pathNodes[:0]
	clear(w.stack)
	w.stack = w.stack[:0]
}

func (w *flatWork) newNode(v *fastjson.Value) int32 {
	w.nodes = append(w.nodes, fnode{val: v, orig: v, first: -1, last: -1})
	return int32(len(w.nodes) - 1)
}

// link appends edge e (already filled) at the end of node n's list.
func (w *flatWork) link(n, e int32) {
	w.edges[e].next = -1
	nd := &w.nodes[n]
	if nd.last < 0 {
		nd.first = e
	} else {
		w.edges[nd.last].next = e
	}
	nd.last = e
	nd.dirty = true
}

func (w *flatWork) addEdge(n int32, l label, child int32) {
	w.edges = append(w.edges, fedge{l: l, node: child, next: -1})
	e := int32(len(w.edges) - 1)
	nd := &w.nodes[n]
	if nd.last < 0 {
		nd.first = e
	} else {
		w.edges[nd.last].next = e
	}
	nd.last = e
}

// unlink removes edge e, whose predecessor is prev (-1 if first), from n.
func (w *flatWork) unlink(n, prev, e int32) {
	nd := &w.nodes[n]
	nx := w.edges[e].next
	if prev < 0 {
		nd.first = nx
	} else {
		w.edges[prev].next = nx
	}
	if nd.last == e {
		nd.last = prev
	}
	w.edges[e].next = -1
	nd.dirty = true
}

// explode turns an unexploded node into edges, like flatmap's flatten.
func (w *flatWork) explode(n int32) {
	if w.nodes[n].exploded {
		return
	}
	w.nodes[n].exploded = true
	v := w.nodes[n].val
	if v == nil {
		return
	}
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		if o.Len() == 0 {
			return // an empty map stays a leaf holding {}
		}
		w.nodes[n].val = nil
		o.Visit(func(k []byte, c *fastjson.Value) {
			w.addEdge(n, label{s: b2s(k), num: -1}, w.newNode(c))
		})
	case fastjson.TypeArray:
		w.nodes[n].coll = true
		a, _ := v.Array()
		if len(a) == 0 {
			return
		}
		w.nodes[n].val = nil
		for i, c := range a {
			w.addEdge(n, label{num: int32(i)}, w.newNode(c))
		}
	}
}

func (w *flatWork) key(l label) string {
	if l.num < 0 {
		return l.s
	}
	start := len(w.keys)
	w.keys = strconv.AppendInt(w.keys, int64(l.num), 10)
	return b2s(w.keys[start:])
}

// expand rebuilds the value of node n (flatmap's node.expand). Untouched
// subtrees come back as their original value.
func (w *flatWork) expand(a *fastjson.Arena, n int32) *fastjson.Value {
	nd := w.nodes[n]
	if !nd.exploded || nd.first < 0 {
		return nd.val
	}
	base := len(w.stack)
	same := !nd.dirty && nd.orig != nil
	for e := nd.first; e >= 0; e = w.edges[e].next {
		c := w.edges[e].node
		v := w.expand(a, c)
		if v != w.nodes[c].orig {
			same = false
		}
		w.stack = append(w.stack, v)
	}
	children := w.stack[base:]
	var out *fastjson.Value
	switch {
	case same:
		out = nd.orig
	case nd.coll:
		out = a.NewArray()
		for i, v := range children {
			out.SetArrayItem(i, v)
		}
	default:
		out = a.NewObject()
		o, _ := out.Object()
		i := 0
		for e := nd.first; e >= 0; e = w.edges[e].next {
			o.Set(w.key(w.edges[e].l), children[i])
			i++
		}
	}
	clear(children)
	w.stack = w.stack[:base]
	return out
}

// get is flatmap's node.Get; nil means "no value" (Go nil).
func (w *flatWork) get(a *fastjson.Arena, n int32, ks fpath) *fastjson.Value {
	if len(ks) == 0 {
		return w.expand(a, n)
	}
	w.explode(n)
	if w.nodes[n].first < 0 {
		return nil
	}
	if ks[0].wild {
		arr := a.NewArray()
		i := 0
		for e := w.nodes[n].first; e >= 0; e = w.edges[e].next {
			arr.SetArrayItem(i, w.get(a, w.edges[e].node, ks[1:]))
			i++
		}
		return arr
	}
	for e := w.nodes[n].first; e >= 0; e = w.edges[e].next {
		if w.edges[e].l.is(ks[0]) {
			return w.get(a, w.edges[e].node, ks[1:])
		}
	}
	return nil
}

// del is flatmap's node.Del.
func (w *flatWork) del(n int32, ks fpath) {
	if len(ks) == 0 {
		return
	}
	w.explode(n)
	if w.nodes[n].first < 0 {
		return
	}
	if ks[0].wild {
		if len(ks) > 1 {
			for e := w.nodes[n].first; e >= 0; e = w.edges[e].next {
				w.del(w.edges[e].node, ks[1:])
			}
			return
		}
		nd := &w.nodes[n]
		nd.first, nd.last, nd.dirty = -1, -1, true
		return
	}
	prev := int32(-1)
	for e := w.nodes[n].first; e >= 0; prev, e = e, w.edges[e].next {
		if !w.edges[e].l.is(ks[0]) {
			continue
		}
		if len(ks) == 1 {
			w.unlink(n, prev, e)
			return
		}
		w.del(w.edges[e].node, ks[1:])
		return
	}
}

// child returns the first child of n labelled like sg, or -1.
func (w *flatWork) child(n int32, sg fseg) int32 {
	w.explode(n)
	for e := w.nodes[n].first; e >= 0; e = w.edges[e].next {
		if w.edges[e].l.is(sg) {
			return w.edges[e].node
		}
	}
	return -1
}

func (w *flatWork) move(src, dst fpath) {
	w.cands = append(w.cands[:0], fcand{node: 0})
	w.path = w.path[:0]
	w.pathNodes = w.pathNodes[:0]
	for _, step := range src[:len(src)-1] {
		w.next = w.next[:0]
		for _, c := range w.cands {
			w.explode(c.node)
			for e := w.nodes[c.node].first; e >= 0; e = w.edges[e].next {
				if !step.wild && !w.edges[e].l.is(step) {
					continue
				}
				off := int32(len(w.path))
				w.path = append(w.path, w.path[c.pathOff:c.pathOff+c.pathN]...)
				w.path = append(w.path, w.edges[e].l)
				w.pathNodes = append(w.pathNodes, w.pathNodes[c.pathOff:c.pathOff+c.pathN]...)
				w.pathNodes = append(w.pathNodes, w.edges[e].node)
				w.next = append(w.next, fcand{node: w.edges[e].node, pathOff: off, pathN: c.pathN + 1})
				if !step.wild {
					break
				}
			}
		}
		w.cands, w.next = w.next, w.cands
	}
	last := src[len(src)-1]
	relabel := len(src) == len(dst)
	w.moved = w.moved[:0]
	for _, c := range w.cands {
		w.explode(c.node)
		prev := int32(-1)
		for e := w.nodes[c.node].first; e >= 0; prev, e = e, w.edges[e].next {
			if !w.edges[e].l.is(last) { // literal: "*" only matches a key named "*"
				continue
			}
			if relabel {
				w.edges[e].l = segLabel(dst[len(dst)-1])
				w.nodes[c.node].dirty = true
				break
			}
			w.unlink(c.node, prev, e)
			w.moved = append(w.moved, fmoved{edge: e, cand: c})
			break
		}
	}
	if relabel {
		return
	}
	if len(src) > len(dst) { // promotion
		for _, m := range w.moved {
			parent := int32(0)
			onPath := true
			for i, sg := range dst[:len(dst)-1] {
				l := w.path[m.cand.pathOff+int32(i)]
				if onPath && (sg.wild || l.is(sg)) {
					// Same step as the candidate's own: its ancestor is the
					// first edge with that label (labels are unique unless
					// an earlier move duplicated one).
					parent = w.pathNodes[m.cand.pathOff+int32(i)]
					continue
				}
				onPath = false
				if sg.wild {
					sg = fseg{s: l.s, num: l.num}
				}
				c := w.child(parent, sg)
				if c < 0 {
					break
				}
				parent = c
			}
			w.explode(parent)
			w.edges[m.edge].l = segLabel(dst[len(dst)-1])
			w.link(parent, m.edge)
		}
		return
	}
	rel := dst[len(src)-1:] // embedding, relative to src's parent
	for _, m := range w.moved {
		r := m.cand.node
		for _, sg := range rel[:len(rel)-1] {
			c := w.child(r, sg)
			if c < 0 {
				c = int32(len(w.nodes))
				w.nodes = append(w.nodes, fnode{first: -1, last: -1, exploded: true, dirty: true})
				w.edges = append(w.edges, fedge{l: segLabel(sg), node: c, next: -1})
				w.link(r, int32(len(w.edges)-1))
			}
			r = c
		}
		w.explode(r)
		w.edges[m.edge].l = segLabel(rel[len(rel)-1])
		w.link(r, m.edge)
	}
}

func (w *flatWork) appendOp(a *fastjson.Arena, src, dst fpath) {
	sv := w.get(a, 0, src)
	if sv == nil || sv.Type() != fastjson.TypeArray {
		return
	}
	dv := w.get(a, 0, dst)
	if dv == nil || dv.Type() != fastjson.TypeArray {
		return
	}
	sa, _ := sv.Array()
	da, _ := dv.Array()
	combined := a.NewArray()
	i := 0
	for _, v := range da {
		combined.SetArrayItem(i, v)
		i++
	}
	for _, v := range sa {
		combined.SetArrayItem(i, v)
		i++
	}
	// tree.Add(dst, combined): walk dst literally, creating missing steps.
	n := int32(0)
	for _, sg := range dst {
		c := w.child(n, fseg{s: sg.s, num: sg.num})
		if c < 0 {
			c = w.newNode(nil)
			w.nodes[c].exploded = true
			w.edges = append(w.edges, fedge{l: segLabel(sg), node: c, next: -1})
			w.link(n, int32(len(w.edges)-1))
		}
		n = c
	}
	nd := &w.nodes[n]
	nd.val, nd.orig, nd.exploded, nd.first, nd.last, nd.coll = combined, nil, false, -1, -1, false
	w.del(0, src)
}

func (fm *Flatmap) apply(a *fastjson.Arena, w *flatWork, v *fastjson.Value) *fastjson.Value {
	if v == nil || v.Type() == fastjson.TypeNull {
		return v // tree.New(nil) fails in KrakenD: data left as is
	}
	w.begin()
	w.newNode(v)
	for _, op := range fm.ops {
		switch op.kind {
		case opMove:
			w.move(op.args[0], op.args[1])
		case opDel:
			for _, p := range op.args {
				w.del(0, p)
			}
		case opAppend:
			w.appendOp(a, op.args[0], op.args[1])
		}
	}
	out := w.expand(a, 0)
	if out == nil || out.Type() != fastjson.TypeObject {
		return a.NewNull()
	}
	return out
}
