package response

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// The reference below is a deliberately plain model of the backend
// manipulations (lura's order: target, allow else deny, mapping, group)
// over encoding/json maps. FuzzManipulation compares Formatter.Apply with
// it on generated bodies and settings.

var manipKeys = []string{"a", "b", "c", "d"}

var manipPaths = []string{"a", "b", "c", "d", "a.b", "b.c", "a.b.c", "c.a", "a.a", "d.d.d", "x"}

// manipGen turns fuzz bytes into values; it stops at the bytes' end.
type manipGen struct{ data []byte }

func (g *manipGen) next() int {
	if len(g.data) == 0 {
		return 0
	}
	b := int(g.data[0])
	g.data = g.data[1:]
	return b
}

func (g *manipGen) object(depth int) map[string]any {
	m := map[string]any{}
	for n := g.next() % 5; n > 0; n-- {
		m[manipKeys[g.next()%len(manipKeys)]] = g.value(depth + 1)
	}
	return m
}

func (g *manipGen) value(depth int) any {
	b := g.next()
	if depth >= 4 {
		b %= 3
	}
	switch b % 7 {
	case 0:
		return json.Number(strings.Repeat("1", 1+b%3))
	case 1:
		return manipKeys[b%len(manipKeys)] + "\u00e9\"<"
	case 2:
		return []any{nil, true, false}[b%3]
	case 3, 4, 5:
		return g.object(depth)
	default:
		return []any{g.value(depth + 1), g.value(depth + 1)}
	}
}

func (g *manipGen) paths() []string {
	var out []string
	for n := g.next()%3 + 1; n > 0; n-- {
		out = append(out, manipPaths[g.next()%len(manipPaths)])
	}
	return out
}

// refAllow builds lura's allow tree: a later path turns a leaf into a
// level, and a path ending on a level turns it into a leaf.
func refAllow(paths []string) map[string]any {
	root := map[string]any{}
	for _, p := range paths {
		fields := strings.Split(p, ".")
		n := root
		for _, f := range fields[:len(fields)-1] {
			sub, ok := n[f].(map[string]any)
			if !ok {
				sub = map[string]any{}
				n[f] = sub
			}
			n = sub
		}
		n[fields[len(fields)-1]] = true
	}
	return root
}

func refPrune(tree, obj map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range obj {
		switch c := tree[k].(type) {
		case bool:
			out[k] = v
		case map[string]any:
			o, ok := v.(map[string]any)
			if !ok {
				continue
			}
			if p := refPrune(c, o); p != nil {
				out[k] = p
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func refDelete(obj map[string]any, fields []string) {
	for _, f := range fields[:len(fields)-1] {
		next, ok := obj[f].(map[string]any)
		if !ok {
			return
		}
		obj = next
	}
	delete(obj, fields[len(fields)-1])
}

func refApply(be *gatewayv1.Backend, v map[string]any) map[string]any {
	if t := be.GetTarget(); t != "" {
		var cur any = v
		for _, f := range strings.Split(t, ".") {
			o, ok := cur.(map[string]any)
			if !ok {
				cur = nil
				break
			}
			cur = o[f]
		}
		o, ok := cur.(map[string]any)
		if !ok {
			o = map[string]any{}
		}
		v = o
	}
	switch {
	case len(be.GetAllow()) > 0:
		if len(v) > 0 {
			if v = refPrune(refAllow(be.GetAllow()), v); v == nil {
				v = map[string]any{}
			}
		}
	case len(be.GetDeny()) > 0:
		for _, p := range be.GetDeny() {
			refDelete(v, strings.Split(p, "."))
		}
	}
	from := make([]string, 0, len(be.GetMapping()))
	for f := range be.GetMapping() {
		from = append(from, f)
	}
	sort.Strings(from)
	for _, f := range from {
		to, _, _ := strings.Cut(be.GetMapping()[f], ".")
		if x, ok := v[f]; ok {
			v[to] = x
			delete(v, f)
		}
	}
	if g := be.GetGroup(); g != "" {
		v = map[string]any{g: v}
	}
	return v
}

func decodeNumbers(t *testing.T, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return m
}

// FuzzManipulation compares target/allow/deny/mapping/group on JSON
// objects (no duplicate keys) with the reference model.
func FuzzManipulation(f *testing.F) {
	f.Add([]byte{0x02, 3, 3, 0, 3, 1, 3, 2, 1}, []byte{4, 0, 1})
	f.Add([]byte{0x04, 2, 4, 5, 6, 0, 3, 3, 2}, []byte{3, 1, 2, 7, 0, 1, 3, 2})
	f.Add([]byte{0x19, 1, 2, 2, 3, 3, 4, 1, 0, 0}, []byte{4, 3, 3, 1, 3, 0, 2, 3, 3, 1, 1})
	f.Add([]byte{0x0a, 2, 3, 0, 7, 2, 1, 2, 3, 9}, []byte{3, 0, 3, 2, 3, 1, 3, 3, 0})
	f.Fuzz(func(t *testing.T, settings, body []byte) {
		g := &manipGen{data: settings}
		flags := g.next()
		be := &gatewayv1.Backend{}
		if flags&1 != 0 {
			be.Target = manipPaths[g.next()%len(manipPaths)]
		}
		switch {
		case flags&2 != 0:
			be.Allow = g.paths()
		case flags&4 != 0:
			be.Deny = g.paths()
		}
		if flags&8 != 0 {
			be.Mapping = map[string]string{}
			for _, p := range g.paths() {
				be.Mapping[strings.Split(p, ".")[0]] = manipPaths[g.next()%len(manipPaths)]
			}
		}
		if flags&16 != 0 {
			be.Group = manipKeys[g.next()%len(manipKeys)]
		}
		in, err := json.Marshal((&manipGen{data: body}).object(0))
		if err != nil {
			t.Fatal(err)
		}

		fr, err := NewFormatter(be)
		if err != nil {
			t.Fatal(err)
		}
		s := AcquireScratch(1)
		defer ReleaseScratch(s)
		v, err := fr.Decode(s, 0, in)
		if err != nil {
			t.Fatalf("decode %s: %v", in, err)
		}
		out, _ := Render(nil, OutputJSON, fr.Apply(s, 0, v), nil)
		got := decodeNumbers(t, out)
		want := refApply(be, decodeNumbers(t, in))
		if !reflect.DeepEqual(got, want) {
			wb, _ := json.Marshal(want)
			t.Fatalf("backend %v\nbody %s\ngot  %s\nwant %s", be, in, out, wb)
		}
	})
}
