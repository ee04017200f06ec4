//go:build !race

package response

import (
	"testing"

	"github.com/valyala/fastjson"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func assertZeroAllocs(t *testing.T, name string, f func()) {
	t.Helper()
	f() // warm the pools and buffers
	if n := testing.AllocsPerRun(200, f); n != 0 {
		t.Errorf("%s: %v allocs/op, want 0", name, n)
	}
}

func TestDecodeApplyRenderAllocs(t *testing.T) {
	body := []byte(smallBody)
	tests := []struct {
		name string
		b    *gatewayv1.Backend
		out  Output
	}{
		{"allow", &gatewayv1.Backend{Allow: []string{"id", "name", "address.city", "address.geo.lat"}}, OutputJSON},
		{"deny+mapping+group", &gatewayv1.Backend{Deny: []string{"secret", "address.zip"}, Mapping: map[string]string{"id": "ID"}, Group: "user"}, OutputJSON},
		{"target", &gatewayv1.Backend{Target: "address"}, OutputJSON},
		{"flatmap", &gatewayv1.Backend{Flatmap: []*gatewayv1.FlatmapOp{
			{Type: "move", Args: []string{"address.city", "city"}},
			{Type: "del", Args: []string{"secret", "tags.*"}},
			{Type: "move", Args: []string{"tags.0", "firstTag"}},
		}}, OutputJSON},
		{"safejson yaml", &gatewayv1.Backend{Encoding: "safejson"}, OutputYAML},
		{"string", &gatewayv1.Backend{Encoding: "string"}, OutputString},
		{"xml render", &gatewayv1.Backend{}, OutputXML},
	}
	for _, tc := range tests {
		f, err := NewFormatter(tc.b)
		if err != nil {
			t.Fatal(err)
		}
		assertZeroAllocs(t, tc.name, func() {
			s := AcquireScratch(1)
			v, err := f.Decode(s, 0, body)
			if err != nil {
				t.Fatal(err)
			}
			v = f.Apply(s, 0, v)
			s.Render(tc.out, v, nil)
			ReleaseScratch(s)
		})
	}
}

func TestMergeAllocs(t *testing.T) {
	g := []*Formatter{}
	for _, grp := range []string{"", "b", ""} {
		x, _ := NewFormatter(&gatewayv1.Backend{Group: grp})
		g = append(g, x)
	}
	bodies := [][]byte{[]byte(`{"a":1,"b":{"x":[1,2]},"c":"z"}`), []byte(smallBody), []byte(`{"c":"override","d":null}`)}
	fm, _ := NewFlatmap([]*gatewayv1.FlatmapOp{{Type: "del", Args: []string{"d"}}})
	st, _ := NewStatic(&gatewayv1.Static{Data: []byte(`{"static":true}`)})
	parts := make([]*fastjson.Value, 3)
	assertZeroAllocs(t, "merge of 3 + flatmap + static + render", func() {
		s := AcquireScratch(3)
		for i, b := range bodies {
			v, err := g[i].Decode(s, i, b)
			if err != nil {
				t.Fatal(err)
			}
			parts[i] = g[i].Apply(s, i, v)
		}
		v := Merge(s, parts)
		v = fm.Apply(s, v)
		v = st.Apply(s, v)
		s.Render(OutputNegotiate, v, []byte("application/json"))
		ReleaseScratch(s)
	})
}

func TestLookupAllocs(t *testing.T) {
	f, _ := NewFormatter(&gatewayv1.Backend{})
	s := AcquireScratch(1)
	defer ReleaseScratch(s)
	v, _ := f.Decode(s, 0, []byte(smallBody))
	path := SplitPath("address.geo.lat")
	tags := SplitPath("tags")
	dst := make([]byte, 0, 64)
	assertZeroAllocs(t, "lookup", func() {
		dst, _ = Lookup(dst[:0], v, path)
		dst, _ = Lookup(dst[:0], v, tags)
	})
}

func TestValidObjectAllocs(t *testing.T) {
	body := []byte(smallBody)
	assertZeroAllocs(t, "ValidObject", func() { ValidObject(body) })
}
