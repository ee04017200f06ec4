package response

import (
	"strings"
	"testing"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func op(typ string, args ...string) *gatewayv1.FlatmapOp {
	return &gatewayv1.FlatmapOp{Type: typ, Args: args}
}

// runFlatmap applies an endpoint-level Flatmap to a JSON body.
func runFlatmap(t *testing.T, ops []*gatewayv1.FlatmapOp, body string) string {
	t.Helper()
	fm, err := NewFlatmap(ops)
	if err != nil {
		t.Fatalf("NewFlatmap: %v", err)
	}
	s := AcquireScratch(1)
	defer ReleaseScratch(s)
	v := parts(t, s, body)[0]
	v = fm.Apply(s, v)
	out, _ := s.Render(OutputJSON, v, nil)
	if v != nil && v.Type().String() == "null" {
		return "null"
	}
	return string(out)
}

// Cases mirrored from krakend/flatmap tree/tree_test.go (TestTree_Del,
// TestTree_Move, TestTree_Append); the expected trees are written as JSON.
func TestFlatmapKrakendTree(t *testing.T) {
	t.Parallel()
	large := `{"a":[` + strings.Repeat(`{"a":1,"aa":1},{"a":2,"aa":1},`, 6)
	large = large[:len(large)-1] + `],"tupu":false}`
	largeWant := `{"a":[` + strings.Repeat(`{"aa":1},`, 12)
	largeWant = largeWant[:len(largeWant)-1] + `],"tupu":false}`
	collection := `{"a":[{"b":[{"c":{"a":1},"aa":1},{"c":{"a":2},"aa":1}],"aa":1},{"b":[{"c":{"a":1},"aa":1}],"aa":1}],"tupu":false}`
	tests := []struct {
		name string
		ops  []*gatewayv1.FlatmapOp
		in   string
		want string
	}{
		// TestTree_Del
		{"del unknown", []*gatewayv1.FlatmapOp{op("del", "abc")}, `{"supu":42,"tupu":false}`, `{"supu":42,"tupu":false}`},
		{"del empty slice", []*gatewayv1.FlatmapOp{op("del", "data.*.password")}, `{"data":[]}`, `{"data":[]}`},
		{"del empty map", []*gatewayv1.FlatmapOp{op("del", "data.*.password")}, `{"data":{}}`, `{"data":{}}`},
		{"del plain", []*gatewayv1.FlatmapOp{op("del", "supu")}, `{"supu":42,"tupu":false}`, `{"tupu":false}`},
		{"del element_in_struct", []*gatewayv1.FlatmapOp{op("del", "internal.supu")},
			`{"internal":{"supu":42,"tupu":false},"tupu":false}`, `{"internal":{"tupu":false},"tupu":false}`},
		{"del element_in_struct_with_wildcard", []*gatewayv1.FlatmapOp{op("del", "a.*.supu")},
			`{"a":{"first":{"supu":42,"tupu":false},"0":{"supu":42,"tupu":true},"last":{"supu":42,"tupu":false}},"tupu":false}`,
			`{"a":{"first":{"tupu":false},"0":{"tupu":true},"last":{"tupu":false}},"tupu":false}`},
		{"del struct", []*gatewayv1.FlatmapOp{op("del", "internal")}, `{"internal":{"supu":42,"tupu":false},"tupu":false}`, `{"tupu":false}`},
		{"del element_in_substruct", []*gatewayv1.FlatmapOp{op("del", "internal.internal.supu")},
			`{"internal":{"supu":42,"tupu":false,"internal":{"supu":42,"tupu":false}},"tupu":false}`,
			`{"internal":{"supu":42,"tupu":false,"internal":{"tupu":false}},"tupu":false}`},
		{"del similar_names", []*gatewayv1.FlatmapOp{op("del", "a.a.a")},
			`{"a":{"a":{"a":{"a":1},"aa":1},"aa":1},"tupu":false}`, `{"a":{"a":{"aa":1},"aa":1},"tupu":false}`},
		{"del collection_element_attributes", []*gatewayv1.FlatmapOp{op("del", "a.*.a")},
			`{"a":[{"a":{"a":{"a":1},"aa":1},"aa":1},{"a":42,"aa":1}],"tupu":false}`, `{"a":[{"aa":1},{"aa":1}],"tupu":false}`},
		{"del nested_collection_element_attributes", []*gatewayv1.FlatmapOp{op("del", "a.*.b.*.c")}, collection,
			`{"a":[{"aa":1,"b":[{"aa":1},{"aa":1}]},{"aa":1,"b":[{"aa":1}]}],"tupu":false}`},
		{"del large_collection_element_attributes", []*gatewayv1.FlatmapOp{op("del", "a.*.a")}, large, largeWant},
		// TestTree_Move
		{"move plain", []*gatewayv1.FlatmapOp{op("move", "a", "b")}, `{"a":42}`, `{"b":42}`},
		{"move in_struct", []*gatewayv1.FlatmapOp{op("move", "b.a", "b.c")}, `{"a":1,"b":{"a":42}}`, `{"a":1,"b":{"c":42}}`},
		{"move in_struct_depth", []*gatewayv1.FlatmapOp{op("move", "b.a", "b.b.a.b.a.b.c")}, `{"a":1,"b":{"a":42}}`,
			`{"a":1,"b":{"b":{"a":{"b":{"a":{"b":{"c":42}}}}}}}`},
		{"move from_struct", []*gatewayv1.FlatmapOp{op("move", "b.a", "c")}, `{"a":1,"b":{"a":42}}`, `{"a":1,"b":null,"c":42}`},
		{"move from_struct_with_wildcard", []*gatewayv1.FlatmapOp{op("move", "b.*.c", "b.*.x")},
			`{"c":42,"b":{"first":{"c":{"d":42}},"last":{"m":42,"c":{"d":42}}}}`,
			`{"c":42,"b":{"first":{"x":{"d":42}},"last":{"m":42,"x":{"d":42}}}}`},
		{"move from_struct_with_wildcard_deep", []*gatewayv1.FlatmapOp{op("move", "b.*.c", "b.*.c.b.x")},
			`{"c":42,"b":{"first":{"c":{"d":42}},"last":{"m":42,"c":{"d":42}}}}`,
			`{"c":42,"b":{"first":{"c":{"b":{"x":{"d":42}}}},"last":{"m":42,"c":{"b":{"x":{"d":42}}}}}}`},
		{"move from_collection", []*gatewayv1.FlatmapOp{op("move", "b.*.c", "b.*.x")},
			`{"a":42,"b":[{"c":42},{"c":{"d":42}}]}`, `{"a":42,"b":[{"x":42},{"x":{"d":42}}]}`},
		{"move from_struct_nested", []*gatewayv1.FlatmapOp{op("move", "b.b", "c")},
			`{"a":42,"b":{"a":42,"bb":true,"b":{"a":42}}}`, `{"a":42,"b":{"a":42,"bb":true},"c":{"a":42}}`},
		{"move collection", []*gatewayv1.FlatmapOp{op("move", "a.*.b", "a.*.c")}, collection,
			`{"a":[{"c":[{"c":{"a":1},"aa":1},{"c":{"a":2},"aa":1}],"aa":1},{"c":[{"c":{"a":1},"aa":1}],"aa":1}],"tupu":false}`},
		{"move recursive_collection", []*gatewayv1.FlatmapOp{op("move", "a.*.b.*.c", "a.*.b.*.x")}, collection,
			`{"a":[{"b":[{"x":{"a":1},"aa":1},{"x":{"a":2},"aa":1}],"aa":1},{"b":[{"x":{"a":1},"aa":1}],"aa":1}],"tupu":false}`},
		// TestTree_Append
		{"append plain", []*gatewayv1.FlatmapOp{op("append", "a", "b")}, `{"a":[42],"b":[1]}`, `{"b":[1,42]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			jsonEqual(t, tc.want, runFlatmap(t, tc.ops, tc.in))
		})
	}
}

// Cases from lura proxy/formatter_test.go (TestEntityFormatter_flatmap and
// TestNewFlatmapMiddleware) plus the edges of §1.7.
func TestFlatmapSemantics(t *testing.T) {
	t.Parallel()
	const sub = `{"b":true,"c":42,"d":"tupu","e":[1,2,3,4]}`
	const lura = `{"supu":42,"tupu":false,"foo":"bar","a":` + sub + `,"collection":[` + sub + `,` + sub + `,` + sub + `,` + sub + `],` +
		`"y":[0,1,2,3,4,5,6],"z":[10,11,12,13,14,15,16]}`
	luraOps := []*gatewayv1.FlatmapOp{
		op("del", "c"), op("append", "y", "z"), op("move", "supu", "SUPUUUUU"), op("move", "a.b", "a.BOOOOO"),
		op("del", "collection.*.b", "collection.*.d", "collection.*.e"), op("move", "collection.*.c", "collection.*.x"),
	}
	const luraWant = `{"SUPUUUUU":42,"tupu":false,"foo":"bar","a":{"BOOOOO":true,"c":42,"d":"tupu","e":[1,2,3,4]},` +
		`"collection":[{"x":42},{"x":42},{"x":42},{"x":42}],"z":[10,11,12,13,14,15,16,0,1,2,3,4,5,6]}`
	tests := []struct {
		name string
		ops  []*gatewayv1.FlatmapOp
		in   string
		want string
	}{
		{"lura middleware", luraOps, lura, luraWant},
		{"numeric segment is an array index", []*gatewayv1.FlatmapOp{op("del", "a.1")}, `{"a":[1,2,3]}`, `{"a":[1,3]}`},
		{"array labels stay original indexes", []*gatewayv1.FlatmapOp{op("del", "a.0", "a.1")}, `{"a":[1,2,3]}`, `{"a":[3]}`},
		{"move out of array element", []*gatewayv1.FlatmapOp{op("move", "a.0.id", "first")}, `{"a":[{"id":7,"x":1}]}`, `{"a":[{"x":1}],"first":7}`},
		{"del wildcard last empties to null", []*gatewayv1.FlatmapOp{op("del", "a.*")}, `{"a":{"x":1,"y":2},"b":1}`, `{"a":null,"b":1}`},
		{"del every key of nested object gives null", []*gatewayv1.FlatmapOp{op("del", "a.x")}, `{"a":{"x":1}}`, `{"a":null}`},
		{"del every root key gives no data", []*gatewayv1.FlatmapOp{op("del", "a")}, `{"a":1}`, `null`},
		{"del wildcard in arrays of arrays", []*gatewayv1.FlatmapOp{op("del", "m.*.*.p")}, `{"m":[[{"p":1,"q":2}],[{"p":3}]]}`, `{"m":[[{"q":2}],[null]]}`},
		{"relabel ignores dst prefix", []*gatewayv1.FlatmapOp{op("move", "a.b", "x.c")}, `{"a":{"b":1}}`, `{"a":{"c":1}}`},
		{"relabel onto existing key: moved value wins", []*gatewayv1.FlatmapOp{op("move", "a", "b")}, `{"b":1,"a":2}`, `{"b":2}`},
		{"promotion onto existing key: moved value wins", []*gatewayv1.FlatmapOp{op("move", "a.x", "b")}, `{"a":{"x":1,"y":0},"b":2}`, `{"a":{"y":0},"b":1}`},
		{"promotion with wildcard dst", []*gatewayv1.FlatmapOp{op("move", "a.*.in.v", "a.*.v")},
			`{"a":{"p":{"in":{"v":1}},"q":{"in":{"v":2}}}}`, `{"a":{"p":{"in":null,"v":1},"q":{"in":null,"v":2}}}`},
		{"promotion stops at first missing step", []*gatewayv1.FlatmapOp{op("move", "a.b.c", "zz.d")}, `{"a":{"b":{"c":1}}}`, `{"a":{"b":null},"d":1}`},
		{"embedding creates intermediate objects", []*gatewayv1.FlatmapOp{op("move", "a", "x.y.z")}, `{"a":1,"k":2}`, `{"k":2,"x":{"y":{"z":1}}}`},
		{"move missing source", []*gatewayv1.FlatmapOp{op("move", "nope", "x")}, `{"a":1}`, `{"a":1}`},
		{"move wildcard last segment is literal", []*gatewayv1.FlatmapOp{op("move", "a.*", "b")}, `{"a":{"x":1,"*":2}}`, `{"a":{"x":1},"b":2}`},
		{"append wildcard gather", []*gatewayv1.FlatmapOp{op("append", "users.*.id", "ids")},
			`{"users":[{"id":1,"n":"a"},{"id":2}],"ids":[0]}`, `{"users":[{"n":"a"},null],"ids":[0,1,2]}`},
		{"append needs arrays", []*gatewayv1.FlatmapOp{op("append", "a", "b")}, `{"a":1,"b":[1]}`, `{"a":1,"b":[1]}`},
		{"append missing dst", []*gatewayv1.FlatmapOp{op("append", "a", "b")}, `{"a":[1]}`, `{"a":[1]}`},
		{"append to empty array", []*gatewayv1.FlatmapOp{op("append", "a", "b")}, `{"a":[1,{"x":2}],"b":[]}`, `{"b":[1,{"x":2}]}`},
		{"append then del in result", []*gatewayv1.FlatmapOp{op("append", "a", "b"), op("del", "b.0")}, `{"a":[2],"b":[1]}`, `{"b":[2]}`},
		{"ops without type are skipped", []*gatewayv1.FlatmapOp{op("", "a"), op("del", "a")}, `{"a":1,"b":2}`, `{"b":2}`},
		{"untouched values keep number text", []*gatewayv1.FlatmapOp{op("del", "x")}, `{"x":1,"big":1.50e3,"o":{"n":10}}`, `{"big":1.50e3,"o":{"n":10}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := runFlatmap(t, tc.ops, tc.in)
			if tc.want == "null" {
				if got != "null" {
					t.Errorf("got %s, want null (no data)", got)
				}
				return
			}
			jsonEqual(t, tc.want, got)
		})
	}
}

// Backend-level flatmap replaces allow/deny/mapping; target and group still
// apply (lura TestEntityFormatter_flatmap).
func TestFormatterFlatmap(t *testing.T) {
	t.Parallel()
	const sub = `{"b":true,"c":42,"d":"tupu","e":[1,2,3,4]}`
	body := `{"content":{"supu":42,"tupu":false,"foo":"bar","a":` + sub + `,"collection":[` + sub + `,` + sub + `,` + sub + `,` + sub + `],` +
		`"y":[0,1,2,3,4,5,6],"z":[10,11,12,13,14,15,16]}}`
	b := &gatewayv1.Backend{
		Target: "content", Group: "group",
		Allow:   []string{"nothing"}, // ignored: flatmap replaces it
		Mapping: map[string]string{"foo": "FOO"},
		Flatmap: []*gatewayv1.FlatmapOp{
			op("del", "c"), op("append", "y", "z"), op("move", "supu", "SUPUUUUU"), op("move", "a.b", "a.BOOOOO"),
			op("del", "collection.*.b", "collection.*.d", "collection.*.e"), op("move", "collection.*.c", "collection.*.x"),
		},
	}
	got, err := pipeline(t, b, body)
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, `{"group":{"SUPUUUUU":42,"tupu":false,"foo":"bar","a":{"BOOOOO":true,"c":42,"d":"tupu","e":[1,2,3,4]},`+
		`"collection":[{"x":42},{"x":42},{"x":42},{"x":42}],"z":[10,11,12,13,14,15,16,0,1,2,3,4,5,6]}}`, got)
}

func TestNewFlatmapDisabled(t *testing.T) {
	t.Parallel()
	for _, ops := range [][]*gatewayv1.FlatmapOp{nil, {}, {op("", "a")}} {
		fm, err := NewFlatmap(ops)
		if err != nil || fm != nil {
			t.Errorf("NewFlatmap(%v) = %v, %v; want nil, nil", ops, fm, err)
		}
	}
	var fm *Flatmap
	s := AcquireScratch(1)
	defer ReleaseScratch(s)
	if fm.Apply(s, nil) != nil {
		t.Error("nil Flatmap must return its input")
	}
}
