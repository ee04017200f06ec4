package response

import (
	"fmt"
	"sort"
	"strings"

	"github.com/valyala/fastjson"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

type backendEncoding uint8

const (
	encJSON backendEncoding = iota
	encNoOp
	encSafeJSON
	encString
	encXML
	encRSS
)

func parseEncoding(name string) (backendEncoding, error) {
	switch name {
	case "", "json":
		return encJSON, nil
	case "no-op":
		return encNoOp, nil
	case "safejson":
		return encSafeJSON, nil
	case "string":
		return encString, nil
	case "xml":
		return encXML, nil
	case "rss":
		return encRSS, nil
	}
	return 0, fmt.Errorf("encoding %q: unsupported (json, safejson, string, no-op, xml, rss)", name)
}

func (e backendEncoding) String() string {
	switch e {
	case encNoOp:
		return "no-op"
	case encSafeJSON:
		return "safejson"
	case encString:
		return "string"
	case encXML:
		return "xml"
	case encRSS:
		return "rss"
	}
	return "json"
}

// allowNode is one level of the compiled allow list: lura's wlDict. A child
// with sub == nil is an allowed leaf (the whole value is kept).
type allowNode struct {
	children []allowChild
	index    map[string]int // only for wide levels
}

type allowChild struct {
	key string
	sub *allowNode
}

// denyNode is lura's deny tree: a child with sub == nil is deleted.
type denyNode struct {
	children []denyChild
}

type denyChild struct {
	key string
	sub *denyNode
}

type rename struct{ from, to string }

// wideLevel is the child count from which a level gets a map index.
const wideLevel = 8

func (n *allowNode) find(key string) *allowChild {
	if n.index != nil {
		if i, ok := n.index[key]; ok {
			return &n.children[i]
		}
		return nil
	}
	for i := range n.children {
		if n.children[i].key == key {
			return &n.children[i]
		}
	}
	return nil
}

// buildAllow mirrors lura's newAllowlistingFilter + buildDictPath, including
// its order dependence: ["a", "a.b"] keeps only a.b (the later path turns
// the leaf into a level), while ["a.b", "a"] keeps all of a.
func buildAllow(list []string) *allowNode {
	root := &allowNode{}
	for _, p := range list {
		fields := strings.Split(p, ".")
		n := root
		i := 0
		for ; i < len(fields)-1; i++ {
			c := n.find(fields[i])
			if c == nil || c.sub == nil {
				break
			}
			n = c.sub
		}
		for ; i < len(fields)-1; i++ {
			sub := &allowNode{}
			n.set(fields[i], sub)
			n = sub
		}
		n.set(fields[len(fields)-1], nil)
	}
	root.index2()
	return root
}

func (n *allowNode) set(key string, sub *allowNode) {
	for i := range n.children {
		if n.children[i].key == key {
			n.children[i].sub = sub
			return
		}
	}
	n.children = append(n.children, allowChild{key: key, sub: sub})
}

func (n *allowNode) index2() {
	if len(n.children) >= wideLevel {
		n.index = make(map[string]int, len(n.children))
		for i, c := range n.children {
			n.index[c.key] = i
		}
	}
	for _, c := range n.children {
		if c.sub != nil {
			c.sub.index2()
		}
	}
}

// buildDeny mirrors lura's buildDenyTree: deleting a node wins over deleting
// any of its descendants, whatever the order.
func buildDeny(list []string) *denyNode {
	root := &denyNode{}
	for _, p := range list {
		n := root
		fields := strings.Split(p, ".")
		for i, f := range fields {
			j := -1
			for k := range n.children {
				if n.children[k].key == f {
					j = k
					break
				}
			}
			if i == len(fields)-1 {
				if j < 0 {
					n.children = append(n.children, denyChild{key: f})
				} else {
					n.children[j].sub = nil
				}
				break
			}
			if j >= 0 {
				if n.children[j].sub == nil {
					break // the whole node is already deleted
				}
				n = n.children[j].sub
				continue
			}
			sub := &denyNode{}
			n.children = append(n.children, denyChild{key: f, sub: sub})
			n = sub
		}
	}
	return root
}

func newFormatter(b *gatewayv1.Backend) (*Formatter, error) {
	enc, err := parseEncoding(b.GetEncoding())
	if err != nil {
		return nil, fmt.Errorf("backend %q: %w", b.GetName(), err)
	}
	f := &Formatter{enc: enc, isCollection: b.GetIsCollection(), group: b.GetGroup()}
	if t := b.GetTarget(); t != "" {
		f.target = strings.Split(t, ".")
	}
	f.flatmap, err = newFlatmap(b.GetFlatmap())
	if err != nil {
		return nil, fmt.Errorf("backend %q: %w", b.GetName(), err)
	}
	if f.flatmap == nil {
		switch {
		case len(b.GetAllow()) > 0:
			f.allow = buildAllow(b.GetAllow())
		case len(b.GetDeny()) > 0:
			f.deny = buildDeny(b.GetDeny())
		}
		for from, to := range b.GetMapping() {
			to, _, _ = strings.Cut(to, ".")
			f.mapping = append(f.mapping, rename{from: from, to: to})
		}
		// KrakenD ranges over a Go map: chained or colliding renames come
		// out in random order. Sorting by source key picks one of KrakenD's
		// possible outcomes, always the same one.
		sort.Slice(f.mapping, func(i, j int) bool { return f.mapping[i].from < f.mapping[j].from })
	}
	f.allowScan = enc == encJSON && !f.isCollection && f.target == nil && f.flatmap == nil && f.allow != nil
	f.identity = enc == encJSON && !f.isCollection && f.target == nil && f.allow == nil &&
		f.deny == nil && len(f.mapping) == 0 && f.group == "" && f.flatmap == nil
	return f, nil
}

func (f *Formatter) decode(s *Scratch, slotIdx int, body []byte) (*fastjson.Value, error) {
	sl := s.slot(slotIdx)
	if len(body) > maxPooledBody {
		sl.big = true
	}
	switch f.enc {
	case encNoOp:
		return nil, ErrNoOp
	case encString:
		// Built as JSON text and parsed, so that the string value is a real
		// fastjson string (Arena.NewString escapes with strconv.Quote rules,
		// which are not JSON for control characters).
		sl.buf = append(sl.buf[:0], `{"content":`...)
		sl.buf = appendMinimalJSONString(sl.buf, body)
		sl.buf = append(sl.buf, '}')
		v, err := sl.p.ParseBytes(sl.buf)
		if err != nil {
			return nil, fmt.Errorf("decode string: %w: %v", ErrSyntax, err)
		}
		return v, nil
	case encXML:
		return f.decodeXML(sl, body)
	case encRSS:
		return f.decodeRSS(sl, body)
	}
	if f.allowScan {
		v, ok, valid, at, err := f.decodeAllowed(sl, body)
		if !valid {
			return nil, fmt.Errorf("decode %s: %w at offset %d", f.enc, ErrSyntax, at)
		}
		if ok {
			if err != nil {
				return nil, fmt.Errorf("decode %s: %w: %v", f.enc, ErrSyntax, err)
			}
			return v, nil
		}
	}
	if ok, at := validJSON(body); !ok {
		return nil, fmt.Errorf("decode %s: %w at offset %d", f.enc, ErrSyntax, at)
	}
	v, err := sl.p.ParseBytes(body)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w: %v", f.enc, ErrSyntax, err)
	}
	t := v.Type()
	if f.enc == encSafeJSON {
		switch t {
		case fastjson.TypeObject:
			return v, nil
		case fastjson.TypeArray:
			return wrap(&sl.a, "collection", v), nil
		default:
			return wrap(&sl.a, "content", v), nil
		}
	}
	if f.isCollection {
		// lura's JSONCollectionDecoder: a []interface{} target, so null
		// decodes to a nil slice and anything but an array fails.
		if t != fastjson.TypeArray && t != fastjson.TypeNull {
			return nil, fmt.Errorf("decode json collection: %w", ErrNotArray)
		}
		return wrap(&sl.a, "collection", v), nil
	}
	switch t {
	case fastjson.TypeObject, fastjson.TypeNull:
		// null decodes into a nil map in KrakenD: no error, no data.
		return v, nil
	}
	return nil, fmt.Errorf("decode json: %w", ErrNotObject)
}

// wrap returns {key: v} built in a.
func wrap(a *fastjson.Arena, key string, v *fastjson.Value) *fastjson.Value {
	o := a.NewObject()
	o.Set(key, v)
	return o
}

func (f *Formatter) apply(s *Scratch, slotIdx int, v *fastjson.Value) *fastjson.Value {
	if v == nil || f.identity {
		return v
	}
	sl := s.slot(slotIdx)
	a := &sl.a
	if f.target != nil {
		v = extractTarget(a, v, f.target)
	}
	if f.flatmap != nil {
		v = f.flatmap.apply(a, &sl.fw, v)
	} else if v.Type() == fastjson.TypeObject {
		o, _ := v.Object()
		if f.allow != nil {
			if o.Len() > 0 {
				if pruned := allowPrune(a, f.allow, v); pruned != nil {
					v = pruned
				} else {
					v = a.NewObject()
				}
			}
		} else if f.deny != nil {
			denyDelete(f.deny, v)
		}
		if len(f.mapping) > 0 {
			o, _ = v.Object()
			for _, m := range f.mapping {
				if c := o.Get(m.from); c != nil {
					o.Set(m.to, c)
					// Same order as lura: set then delete, so a rename to
					// itself ("a": "a.x") deletes the key.
					o.Del(m.from)
				}
			}
		}
	}
	if f.group != "" {
		v = wrap(a, f.group, v)
	}
	return v
}

// extractTarget is lura's extractTarget: walk objects along path; a missing
// or non-object step yields {}.
func extractTarget(a *fastjson.Arena, v *fastjson.Value, path []string) *fastjson.Value {
	for _, p := range path {
		if v.Type() != fastjson.TypeObject {
			return a.NewObject()
		}
		o, _ := v.Object()
		v = o.Get(p)
		if v == nil {
			return a.NewObject()
		}
	}
	if v.Type() != fastjson.TypeObject {
		return a.NewObject()
	}
	return v
}

// allowPrune returns a new object holding only the allowed parts of object
// in, or nil when nothing is left. It mirrors lura's AllowlistPrune: a leaf
// keeps the whole value; a level keeps an object child only if something
// inside it survives; a level over a non-object (an array, a scalar) drops
// the value — lura's allow never descends into arrays.
func allowPrune(a *fastjson.Arena, n *allowNode, in *fastjson.Value) *fastjson.Value {
	o, _ := in.Object()
	var out *fastjson.Value
	o.Visit(func(k []byte, v *fastjson.Value) {
		c := n.find(b2s(k))
		if c == nil {
			return
		}
		if c.sub != nil {
			if v.Type() != fastjson.TypeObject {
				return
			}
			if v = allowPrune(a, c.sub, v); v == nil {
				return
			}
		}
		if out == nil {
			out = a.NewObject()
		}
		out.Set(b2s(k), v)
	})
	return out
}

// denyDelete is lura's recDelete, in place.
func denyDelete(n *denyNode, v *fastjson.Value) {
	if v.Type() != fastjson.TypeObject {
		return
	}
	o, _ := v.Object()
	for i := range n.children {
		c := &n.children[i]
		if c.sub == nil {
			// A Go map has no duplicate keys; remove every copy.
			for o.Get(c.key) != nil {
				o.Del(c.key)
			}
			continue
		}
		if sub := o.Get(c.key); sub != nil {
			denyDelete(c.sub, sub)
		}
	}
}

func backendError(s *Scratch, slotIdx int, key string, status int, body, enc []byte) *fastjson.Value {
	sl := s.slot(slotIdx)
	// lura's HTTPResponseError, a struct: its fields in this order (see
	// Scratch.KeepOrder), the body and encoding omitted when empty.
	sl.buf = append(sl.buf[:0], `{"http_status_code":`...)
	sl.buf = appendInt(sl.buf, status)
	if len(body) > 0 {
		sl.buf = append(sl.buf, `,"http_body":`...)
		sl.buf = appendMinimalJSONString(sl.buf, body)
	}
	if len(enc) > 0 {
		sl.buf = append(sl.buf, `,"http_body_encoding":`...)
		sl.buf = appendMinimalJSONString(sl.buf, enc)
	}
	sl.buf = append(sl.buf, '}')
	v, err := sl.p.ParseBytes(sl.buf)
	if err != nil { // cannot happen: the text above is valid JSON
		v = sl.a.NewObject()
	}
	return wrap(&sl.a, key, v)
}

func appendInt(dst []byte, n int) []byte {
	if n < 0 {
		dst = append(dst, '-')
		n = -n
	}
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}
