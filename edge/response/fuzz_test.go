package response

import (
	"encoding/json"
	"testing"

	"github.com/valyala/fastjson"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// FuzzPipeline feeds random bodies through Decode + Apply + Merge + Flatmap
// + Static + Render for every backend encoding and output. It must never
// panic, and whatever renders as JSON must be valid JSON.
func FuzzPipeline(f *testing.F) {
	for _, seed := range []string{
		smallBody, `{}`, `[]`, `null`, `"x"`, `{"a":[{"b":{"c":[1,2,{"d":null}]}}]}`,
		`{"collection":[1,2],"content":"t"}`, `<a x="1"><b>2</b><b>3</b>t</a>`, "{\"\\u0000\\\"<\":\"\\ud800\"}",
		`{"a":{"a":{"a":{}}},"*":[[]]}`, `{"1":1,"0":[0]}`,
	} {
		f.Add([]byte(seed), uint8(0))
	}
	backends := []*gatewayv1.Backend{
		{},
		{Encoding: "safejson", Allow: []string{"a.a", "collection", "x"}},
		{Encoding: "string"},
		{Encoding: "xml", Deny: []string{"a.b", "x"}},
		{IsCollection: true, Mapping: map[string]string{"collection": "c"}, Group: "g"},
		{Target: "a", Mapping: map[string]string{"a": "b", "b": "c"}},
		{Flatmap: []*gatewayv1.FlatmapOp{
			{Type: "move", Args: []string{"a.*.b", "a.*.c.d"}},
			{Type: "del", Args: []string{"a.0", "*.*.x"}},
			{Type: "append", Args: []string{"a.*.c", "z"}},
			{Type: "move", Args: []string{"1.*.x", "y"}},
		}},
	}
	formatters := make([]*Formatter, len(backends))
	for i, b := range backends {
		var err error
		if formatters[i], err = NewFormatter(b); err != nil {
			f.Fatal(err)
		}
	}
	fm, err := NewFlatmap([]*gatewayv1.FlatmapOp{
		{Type: "append", Args: []string{"*", "collection"}},
		{Type: "move", Args: []string{"a", "x.y"}},
		{Type: "del", Args: []string{"*.*.*"}},
	})
	if err != nil {
		f.Fatal(err)
	}
	st, err := NewStatic(&gatewayv1.Static{Data: []byte(`{"static":{"k":[1]}}`)})
	if err != nil {
		f.Fatal(err)
	}
	outputs := []Output{OutputJSON, OutputJSONCollection, OutputString, OutputXML, OutputYAML, OutputNegotiate}
	f.Fuzz(func(t *testing.T, body []byte, sel uint8) {
		s := AcquireScratch(len(formatters))
		defer ReleaseScratch(s)
		parts := make([]*fastjson.Value, 0, len(formatters))
		for i, fr := range formatters {
			v, err := fr.Decode(s, i, body)
			if err != nil {
				continue
			}
			v = fr.Apply(s, i, v)
			for _, o := range outputs {
				out, ct := Render(nil, o, v, []byte("application/xml"))
				if ct == ContentTypeJSON && !json.Valid(out) {
					t.Fatalf("backend %d output %d: invalid JSON %q", i, o, out)
				}
			}
			if sel&1 == 0 {
				Lookup(nil, v, []string{"a", "0"})
			}
			parts = append(parts, v)
		}
		v := Merge(s, parts)
		if sel&2 == 0 {
			v = fm.Apply(s, v)
		}
		v = st.Apply(s, v)
		out, _ := s.Render(OutputJSON, v, nil)
		if !json.Valid(out) {
			t.Fatalf("merged: invalid JSON %q", out)
		}
	})
}
