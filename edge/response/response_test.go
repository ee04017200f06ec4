package response

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/valyala/fastjson"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// smallBody is a typical small backend object (HTML characters included, so
// rendering takes the escaping path).
const smallBody = `{"id":42,"name":"Ann <a&b>","email":"a@b.c","address":{"city":"X","zip":"123","geo":{"lat":1.5,"lng":-2}},"tags":["a","b"],"secret":"s"}`

// semantic decodes JSON text for comparisons where key order does not matter.
func semantic(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("invalid JSON %q: %v", s, err)
	}
	return v
}

func jsonEqual(t *testing.T, want, got string) {
	t.Helper()
	if diff := cmp.Diff(semantic(t, want), semantic(t, got)); diff != "" {
		t.Errorf("JSON mismatch (-want +got):\n%s\ngot: %s", diff, got)
	}
}

// pipeline runs Decode + Apply + Render(json) for one backend.
func pipeline(t *testing.T, b *gatewayv1.Backend, body string) (string, error) {
	t.Helper()
	f, err := NewFormatter(b)
	if err != nil {
		t.Fatalf("NewFormatter: %v", err)
	}
	s := AcquireScratch(1)
	defer ReleaseScratch(s)
	v, err := f.Decode(s, 0, []byte(body))
	if err != nil {
		return "", err
	}
	v = f.Apply(s, 0, v)
	out, ct := s.Render(OutputJSON, v, nil)
	if ct != ContentTypeJSON {
		t.Errorf("content type %q", ct)
	}
	return string(out), nil
}

func TestDecodeEncodings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		backend *gatewayv1.Backend
		body    string
		want    string // rendered JSON (semantic)
		wantErr error
	}{
		{name: "json object", backend: &gatewayv1.Backend{}, body: `{"a":1,"b":[1,2]}`, want: `{"a":1,"b":[1,2]}`},
		{name: "json keeps number text", backend: &gatewayv1.Backend{Encoding: "json"}, body: `{"big":12345678901234567890123,"f":1.50e+3}`, want: `{"big":12345678901234567890123,"f":1.50e+3}`},
		{name: "json null is no data", backend: &gatewayv1.Backend{Encoding: "json"}, body: `null`, want: `{}`},
		{name: "json array rejected", backend: &gatewayv1.Backend{Encoding: "json"}, body: `[1,2]`, wantErr: ErrNotObject},
		{name: "json scalar rejected", backend: &gatewayv1.Backend{Encoding: "json"}, body: `"x"`, wantErr: ErrNotObject},
		{name: "json syntax", backend: &gatewayv1.Backend{Encoding: "json"}, body: `{"a":}`, wantErr: ErrSyntax},
		{name: "json NaN rejected", backend: &gatewayv1.Backend{Encoding: "json"}, body: `{"a":NaN}`, wantErr: ErrSyntax},
		{name: "json leading zero rejected", backend: &gatewayv1.Backend{Encoding: "json"}, body: `{"a":01}`, wantErr: ErrSyntax},
		{name: "json raw control char rejected", backend: &gatewayv1.Backend{Encoding: "json"}, body: "{\"a\":\"x\x01\"}", wantErr: ErrSyntax},
		{name: "json empty body", backend: &gatewayv1.Backend{Encoding: "json"}, body: ``, wantErr: ErrSyntax},
		{name: "is_collection", backend: &gatewayv1.Backend{IsCollection: true}, body: `[{"id":1},{"id":2}]`, want: `{"collection":[{"id":1},{"id":2}]}`},
		{name: "is_collection null", backend: &gatewayv1.Backend{IsCollection: true}, body: `null`, want: `{"collection":null}`},
		{name: "is_collection object rejected", backend: &gatewayv1.Backend{IsCollection: true}, body: `{"a":1}`, wantErr: ErrNotArray},
		{name: "is_collection with mapping", backend: &gatewayv1.Backend{IsCollection: true, Mapping: map[string]string{"collection": "items"}}, body: `[1]`, want: `{"items":[1]}`},
		{name: "safejson object", backend: &gatewayv1.Backend{Encoding: "safejson"}, body: `{"a":1}`, want: `{"a":1}`},
		{name: "safejson array", backend: &gatewayv1.Backend{Encoding: "safejson"}, body: `[1,"x"]`, want: `{"collection":[1,"x"]}`},
		{name: "safejson string", backend: &gatewayv1.Backend{Encoding: "safejson"}, body: `"hi"`, want: `{"content":"hi"}`},
		{name: "safejson number", backend: &gatewayv1.Backend{Encoding: "safejson"}, body: `42`, want: `{"content":42}`},
		{name: "safejson null", backend: &gatewayv1.Backend{Encoding: "safejson"}, body: `null`, want: `{"content":null}`},
		{name: "safejson ignores is_collection", backend: &gatewayv1.Backend{Encoding: "safejson", IsCollection: true}, body: `{"a":1}`, want: `{"a":1}`},
		{name: "safejson syntax", backend: &gatewayv1.Backend{Encoding: "safejson"}, body: `[1,`, wantErr: ErrSyntax},
		{name: "string", backend: &gatewayv1.Backend{Encoding: "string"}, body: "line1\n\"quoted\" \\ \x01 é", want: `{"content":"line1\n\"quoted\" \\ \u0001 é"}`},
		{name: "string empty", backend: &gatewayv1.Backend{Encoding: "string"}, body: "", want: `{"content":""}`},
		{name: "string not json", backend: &gatewayv1.Backend{Encoding: "string"}, body: `{"a":1}`, want: `{"content":"{\"a\":1}"}`},
		{name: "no-op never decoded", backend: &gatewayv1.Backend{Encoding: "no-op"}, body: `{}`, wantErr: ErrNoOp},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := pipeline(t, tc.backend, tc.body)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			jsonEqual(t, tc.want, got)
		})
	}
}

func TestNumbersKeptAsWritten(t *testing.T) {
	t.Parallel()
	got, err := pipeline(t, &gatewayv1.Backend{}, `{"a":1.50e+3,"b":-0.0,"c":12345678901234567890123}`)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":1.50e+3,"b":-0.0,"c":12345678901234567890123}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestDecodeXML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		backend *gatewayv1.Backend
		body    string
		want    string
		wantErr bool
	}{
		{
			name:    "nested and text",
			backend: &gatewayv1.Backend{Encoding: "xml"},
			body:    `<?xml version="1.0"?><user><id>1</id><name> Ann </name><empty/></user>`,
			want:    `{"user":{"id":"1","name":"Ann","empty":""}}`,
		},
		{
			name:    "attributes and #text",
			backend: &gatewayv1.Backend{Encoding: "xml"},
			body:    `<price currency="EUR" tax="21">10.5</price>`,
			want:    `{"price":{"-currency":"EUR","-tax":"21","#text":"10.5"}}`,
		},
		{
			name:    "repeated siblings become a list",
			backend: &gatewayv1.Backend{Encoding: "xml"},
			body:    `<list><item>a</item><other>x</other><item>b</item><item><v>c</v></item></list>`,
			want:    `{"list":{"item":["a","b",{"v":"c"}],"other":"x"}}`,
		},
		{
			name:    "attribute only element",
			backend: &gatewayv1.Backend{Encoding: "xml"},
			body:    `<a><b x="1"/></a>`,
			want:    `{"a":{"b":{"-x":"1"}}}`,
		},
		{
			name:    "namespaces dropped, comments ignored, trailing ignored",
			backend: &gatewayv1.Backend{Encoding: "xml"},
			body:    `<!-- c --><n:a xmlns:n="urn:x"><n:b>1</n:b></n:a><junk>`,
			want:    `{"a":{"-n":"urn:x","b":"1"}}`,
		},
		{
			name:    "entities and escapes",
			backend: &gatewayv1.Backend{Encoding: "xml"},
			body:    `<a>&lt;tag&gt; &amp; "q" \</a>`,
			want:    `{"a":"<tag> & \"q\" \\"}`,
		},
		{
			name:    "is_collection wraps the map",
			backend: &gatewayv1.Backend{Encoding: "xml", IsCollection: true},
			body:    `<items><i>1</i><i>2</i></items>`,
			want:    `{"collection":{"items":{"i":["1","2"]}}}`,
		},
		{
			name:    "manipulation after xml",
			backend: &gatewayv1.Backend{Encoding: "xml", Target: "user", Allow: []string{"id"}},
			body:    `<user><id>7</id><secret>s</secret></user>`,
			want:    `{"id":"7"}`,
		},
		{name: "malformed", backend: &gatewayv1.Backend{Encoding: "xml"}, body: `<a><b></a>`, wantErr: true},
		{name: "not xml", backend: &gatewayv1.Backend{Encoding: "xml"}, body: `{"a":1}`, wantErr: true},
		{name: "empty", backend: &gatewayv1.Backend{Encoding: "xml"}, body: ``, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := pipeline(t, tc.backend, tc.body)
			if tc.wantErr {
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("err = %v, want ErrSyntax", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			jsonEqual(t, tc.want, got)
		})
	}
}

func TestApply(t *testing.T) {
	t.Parallel()
	const sample = `{"supu":42,"tupu":false,"foo":"bar","a":{"b":true,"c":42,"d":"tupu"}}`
	tests := []struct {
		name    string
		backend *gatewayv1.Backend
		body    string
		want    string
	}{
		// lura proxy/formatter_test.go
		{name: "allow", backend: &gatewayv1.Backend{Allow: []string{"supu", "a.b", "a.c", "foo.unknown"}}, body: sample,
			want: `{"supu":42,"a":{"b":true,"c":42}}`},
		{name: "allow deep", backend: &gatewayv1.Backend{Allow: []string{"tupu.muku.supu", "tupu.muku.gutu.kugu"}},
			body: `{"id":42,"tupu":{"muku":{"supu":1,"muku":2,"gutu":{"kugu":42}},"supu":{"supu":3,"muku":4}}}`,
			want: `{"tupu":{"muku":{"supu":1,"gutu":{"kugu":42}}}}`},
		{name: "deny", backend: &gatewayv1.Backend{Deny: []string{"supu", "a.b", "a.c", "foo.unknown"}}, body: sample,
			want: `{"tupu":false,"foo":"bar","a":{"d":"tupu"}}`},
		{name: "group", backend: &gatewayv1.Backend{Group: "group1"}, body: `{"supu":42,"tupu":false,"foo":"bar"}`,
			want: `{"group1":{"supu":42,"tupu":false,"foo":"bar"}}`},
		{name: "mapping top level only, dotted target truncated", backend: &gatewayv1.Backend{Mapping: map[string]string{"supu": "SUPUUUUU", "tupu": "TUPUUUUU", "a.b": "a.BOOOOO"}},
			body: sample, want: `{"SUPUUUUU":42,"TUPUUUUU":false,"foo":"bar","a":{"b":true,"c":42,"d":"tupu"}}`},
		{name: "target", backend: &gatewayv1.Backend{Target: "group1"}, body: `{"supu":42,"group1":{"b":true,"c":42}}`,
			want: `{"b":true,"c":42}`},
		{name: "target nested", backend: &gatewayv1.Backend{Target: "g.g"}, body: `{"g":{"x":1,"g":{"b":true}}}`, want: `{"b":true}`},
		{name: "target missing", backend: &gatewayv1.Backend{Target: "group1"}, body: `{"supu":42}`, want: `{}`},
		{name: "target non object", backend: &gatewayv1.Backend{Target: "group1"}, body: `{"group1":false}`, want: `{}`},
		{name: "target array", backend: &gatewayv1.Backend{Target: "group1"}, body: `{"group1":[{"a":1}]}`, want: `{}`},
		{name: "altogether", backend: &gatewayv1.Backend{Target: "a", Allow: []string{"d"}, Group: "group", Mapping: map[string]string{"d": "D"}},
			body: sample, want: `{"group":{"D":"tupu"}}`},
		// allow details
		{name: "allow through array drops it (lura never descends arrays)", backend: &gatewayv1.Backend{Allow: []string{"items.id", "n"}},
			body: `{"items":[{"id":1,"x":2}],"n":1}`, want: `{"n":1}`},
		{name: "allow leaf keeps array whole", backend: &gatewayv1.Backend{Allow: []string{"items"}},
			body: `{"items":[{"id":1,"x":2}],"n":1}`, want: `{"items":[{"id":1,"x":2}]}`},
		{name: "allow path over scalar drops it", backend: &gatewayv1.Backend{Allow: []string{"a.b"}}, body: `{"a":5}`, want: `{}`},
		{name: "allow emptied object dropped", backend: &gatewayv1.Backend{Allow: []string{"a.b", "c"}}, body: `{"a":{"x":1},"c":2}`, want: `{"c":2}`},
		{name: "allow empty object dropped", backend: &gatewayv1.Backend{Allow: []string{"a.b"}}, body: `{"a":{}}`, want: `{}`},
		{name: "allow nothing matches", backend: &gatewayv1.Backend{Allow: []string{"zzz"}}, body: sample, want: `{}`},
		{name: "allow leaf then deeper path: deeper wins", backend: &gatewayv1.Backend{Allow: []string{"a", "a.b"}}, body: sample, want: `{"a":{"b":true}}`},
		{name: "allow deeper path then leaf: leaf wins", backend: &gatewayv1.Backend{Allow: []string{"a.b", "a"}}, body: sample, want: `{"a":{"b":true,"c":42,"d":"tupu"}}`},
		{name: "allow null kept as leaf", backend: &gatewayv1.Backend{Allow: []string{"n"}}, body: `{"n":null,"m":1}`, want: `{"n":null}`},
		{name: "allow wins over deny", backend: &gatewayv1.Backend{Allow: []string{"supu"}, Deny: []string{"supu"}}, body: sample, want: `{"supu":42}`},
		{name: "allow wide level uses index", backend: &gatewayv1.Backend{Allow: []string{"k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"}},
			body: `{"k1":1,"k9":9,"x":0}`, want: `{"k1":1,"k9":9}`},
		// deny details
		{name: "deny deep", backend: &gatewayv1.Backend{Deny: []string{"a.b.c"}}, body: `{"a":{"b":{"c":1,"d":2}}}`, want: `{"a":{"b":{"d":2}}}`},
		{name: "deny parent wins over child (any order)", backend: &gatewayv1.Backend{Deny: []string{"a.b", "a"}}, body: `{"a":{"b":1},"x":1}`, want: `{"x":1}`},
		{name: "deny through array is a no-op", backend: &gatewayv1.Backend{Deny: []string{"items.secret"}}, body: `{"items":[{"secret":1}]}`, want: `{"items":[{"secret":1}]}`},
		{name: "deny missing", backend: &gatewayv1.Backend{Deny: []string{"nope", "a.nope"}}, body: `{"a":{"b":1}}`, want: `{"a":{"b":1}}`},
		{name: "deny duplicate keys all removed", backend: &gatewayv1.Backend{Deny: []string{"a"}}, body: `{"a":1,"b":2,"a":3}`, want: `{"b":2}`},
		// mapping details
		{name: "mapping collision overwrites existing key", backend: &gatewayv1.Backend{Mapping: map[string]string{"a": "b"}}, body: `{"a":1,"b":2}`, want: `{"b":1}`},
		{name: "mapping two sources to one name: last source key in order wins", backend: &gatewayv1.Backend{Mapping: map[string]string{"a": "x", "b": "x"}},
			body: `{"a":1,"b":2}`, want: `{"x":2}`},
		{name: "mapping chain applied in source key order", backend: &gatewayv1.Backend{Mapping: map[string]string{"a": "b", "b": "c"}},
			body: `{"a":1,"b":2}`, want: `{"c":1}`},
		{name: "mapping to itself deletes (lura order)", backend: &gatewayv1.Backend{Mapping: map[string]string{"a": "a.z"}}, body: `{"a":1,"b":2}`, want: `{"b":2}`},
		{name: "mapping missing source", backend: &gatewayv1.Backend{Mapping: map[string]string{"zz": "y"}}, body: `{"a":1}`, want: `{"a":1}`},
		{name: "mapping after allow", backend: &gatewayv1.Backend{Allow: []string{"a"}, Mapping: map[string]string{"a": "A"}}, body: `{"a":1,"b":2}`, want: `{"A":1}`},
		// group details
		{name: "group of null data", backend: &gatewayv1.Backend{Group: "g"}, body: `null`, want: `{"g":null}`},
		{name: "group after target missing", backend: &gatewayv1.Backend{Group: "g", Target: "x"}, body: `{"a":1}`, want: `{"g":{}}`},
		{name: "group wraps collection", backend: &gatewayv1.Backend{Group: "g", IsCollection: true}, body: `[1]`, want: `{"g":{"collection":[1]}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := pipeline(t, tc.backend, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			jsonEqual(t, tc.want, got)
		})
	}
}

func TestIdentity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		backend *gatewayv1.Backend
		want    bool
	}{
		{"plain json", &gatewayv1.Backend{Encoding: "json"}, true},
		{"default encoding", &gatewayv1.Backend{}, true},
		{"collection", &gatewayv1.Backend{IsCollection: true}, false},
		{"safejson", &gatewayv1.Backend{Encoding: "safejson"}, false},
		{"allow", &gatewayv1.Backend{Allow: []string{"a"}}, false},
		{"deny", &gatewayv1.Backend{Deny: []string{"a"}}, false},
		{"mapping", &gatewayv1.Backend{Mapping: map[string]string{"a": "b"}}, false},
		{"group", &gatewayv1.Backend{Group: "g"}, false},
		{"target", &gatewayv1.Backend{Target: "t"}, false},
		{"flatmap", &gatewayv1.Backend{Flatmap: []*gatewayv1.FlatmapOp{{Type: "del", Args: []string{"a"}}}}, false},
		{"no-op", &gatewayv1.Backend{Encoding: "no-op"}, false},
	}
	for _, tc := range tests {
		f, err := NewFormatter(tc.backend)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Identity(); got != tc.want {
			t.Errorf("%s: Identity() = %v, want %v", tc.name, got, tc.want)
		}
	}
	f, _ := NewFormatter(&gatewayv1.Backend{Encoding: "no-op"})
	if !f.NoOp() {
		t.Error("no-op backend: NoOp() = false")
	}
}

func TestNewFormatterErrors(t *testing.T) {
	t.Parallel()
	for _, b := range []*gatewayv1.Backend{
		{Name: "b", Encoding: "atom"},
		{Name: "b", Flatmap: []*gatewayv1.FlatmapOp{{Type: "move", Args: []string{"a"}}}},
		{Name: "b", Flatmap: []*gatewayv1.FlatmapOp{{Type: "explode", Args: []string{"a"}}}},
	} {
		if _, err := NewFormatter(b); err == nil {
			t.Errorf("NewFormatter(%v): want error", b)
		}
	}
}

func TestValidObject(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		`{"a":1}`: true, ` {}`: true, `[]`: false, `null`: false, `{"a":}`: false, `{"a":NaN}`: false, ``: false, `{} x`: false,
	}
	for in, want := range tests {
		if got := ValidObject([]byte(in)); got != want {
			t.Errorf("ValidObject(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestBackendError(t *testing.T) {
	t.Parallel()
	s := AcquireScratch(2)
	defer ReleaseScratch(s)
	v := BackendError(s, 1, "error_b1", 503, []byte("down \"now\""), []byte("text/plain"))
	out, _ := s.Render(OutputJSON, v, nil)
	// Without KeepOrder, sorted like any object.
	if want := `{"error_b1":{"http_body":"down \"now\"","http_body_encoding":"text/plain","http_status_code":503}}`; string(out) != want {
		t.Errorf("render = %s, want %s", out, want)
	}
	// KeepOrder: the struct order KrakenD writes; only that object.
	s.KeepOrder(v.Get("error_b1"))
	w := BackendError(s, 0, "error_b0", 500, nil, nil)
	merged := Merge(s, []*fastjson.Value{w, v})
	out, _ = s.Render(OutputJSON, merged, nil)
	if want := `{"error_b0":{"http_status_code":500},"error_b1":{"http_status_code":503,"http_body":"down \"now\"","http_body_encoding":"text/plain"}}`; string(out) != want {
		t.Errorf("render = %s, want %s", out, want)
	}
}

// parts decodes JSON texts into one scratch, one slot each.
func parts(t *testing.T, s *Scratch, texts ...string) []*fastjson.Value {
	t.Helper()
	f, err := NewFormatter(&gatewayv1.Backend{})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*fastjson.Value, len(texts))
	for i, tx := range texts {
		if tx == "" {
			continue // a failed backend
		}
		v, err := f.Decode(s, i, []byte(tx))
		if err != nil {
			t.Fatalf("decode %q: %v", tx, err)
		}
		out[i] = v
	}
	return out
}

func TestMerge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		parts []string
		want  string
	}{
		{name: "disjoint", parts: []string{`{"a":1}`, `{"b":2}`, `{"c":3}`}, want: `{"a":1,"b":2,"c":3}`},
		{name: "collision: later part wins", parts: []string{`{"a":1,"x":"first"}`, `{"x":"second"}`, `{"b":2,"x":"third"}`}, want: `{"a":1,"b":2,"x":"third"}`},
		{name: "collision keeps first position", parts: []string{`{"x":1,"y":1}`, `{"x":2}`}, want: `{"x":2,"y":1}`},
		{name: "nil part skipped", parts: []string{`{"a":1}`, ``, `{"b":2}`}, want: `{"a":1,"b":2}`},
		{name: "null data skipped", parts: []string{`null`, `{"b":2}`, `{"c":3}`}, want: `{"b":2,"c":3}`},
		{name: "single usable part", parts: []string{``, `{"b":2}`}, want: `{"b":2}`},
		{name: "nothing usable", parts: []string{``, `null`}, want: `{}`},
		{name: "nested values shallow", parts: []string{`{"a":{"x":1}}`, `{"a":{"y":2}}`}, want: `{"a":{"y":2}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := AcquireScratch(len(tc.parts))
			defer ReleaseScratch(s)
			v := Merge(s, parts(t, s, tc.parts...))
			out, _ := s.Render(OutputJSON, v, nil)
			if string(out) != tc.want { // order matters here: it is deterministic
				t.Errorf("got %s, want %s", out, tc.want)
			}
		})
	}
}

func TestStatic(t *testing.T) {
	t.Parallel()
	type outcome struct{ hasResponse, errored, complete bool }
	var (
		ok         = outcome{true, false, true}
		partial    = outcome{true, true, false}
		incomplete = outcome{true, false, false}
		failed     = outcome{false, true, false}
	)
	tests := []struct {
		strategy string
		matches  map[outcome]bool
	}{
		{"always", map[outcome]bool{ok: true, partial: true, incomplete: true, failed: true}},
		{"", map[outcome]bool{ok: true, partial: true, incomplete: true, failed: true}},
		{"bogus", map[outcome]bool{ok: true, partial: true, incomplete: true, failed: true}},
		{"success", map[outcome]bool{ok: true, partial: false, incomplete: true, failed: false}},
		{"complete", map[outcome]bool{ok: true, partial: false, incomplete: false, failed: false}},
		{"errored", map[outcome]bool{ok: false, partial: true, incomplete: false, failed: true}},
		{"incomplete", map[outcome]bool{ok: false, partial: true, incomplete: true, failed: true}},
	}
	for _, tc := range tests {
		st, err := NewStatic(&gatewayv1.Static{Strategy: tc.strategy, Data: []byte(`{"x":1}`)})
		if err != nil {
			t.Fatal(err)
		}
		for o, want := range tc.matches {
			if got := st.Match(o.hasResponse, o.errored, o.complete); got != want {
				t.Errorf("strategy %q outcome %+v: Match = %v, want %v", tc.strategy, o, got, want)
			}
		}
	}

	st, err := NewStatic(&gatewayv1.Static{Data: []byte(`{"s":"static","n":{"deep":"\u00e9\"x"},"a":[1]}`)})
	if err != nil {
		t.Fatal(err)
	}
	s := AcquireScratch(2)
	defer ReleaseScratch(s)
	// over a response: static keys win
	v := st.Apply(s, Merge(s, parts(t, s, `{"s":"backend","b":1}`, `{"c":2}`)))
	out, _ := s.Render(OutputJSON, v, nil)
	jsonEqual(t, `{"s":"static","b":1,"c":2,"n":{"deep":"é\"x"},"a":[1]}`, string(out))
	// no response at all
	v = st.Apply(s, nil)
	out, _ = s.Render(OutputJSON, v, nil)
	jsonEqual(t, `{"s":"static","n":{"deep":"é\"x"},"a":[1]}`, string(out))

	for _, bad := range []string{`[1]`, `{"a":`, `"x"`} {
		if _, err := NewStatic(&gatewayv1.Static{Data: []byte(bad)}); err == nil {
			t.Errorf("NewStatic(%s): want error", bad)
		}
	}
	if st, err := NewStatic(&gatewayv1.Static{}); err != nil || st.Strategy() != StrategyAlways {
		t.Errorf("empty static: %v %v", st, err)
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	s := AcquireScratch(1)
	defer ReleaseScratch(s)
	v := parts(t, s, `{"id":42,"f":1.50,"s":"a b\"c","t":true,"no":false,"n":null,
		"arr":["x",1,null,true,{"k":"v"},[1,2]],"empty":[],"o":{"deep":{"v":"\u00e9"}},"obj":{"b":1,"a":"x"}}`)[0]
	tests := []struct {
		path   string
		want   string
		wantOK bool
	}{
		{"id", "42", true},
		{"f", "1.50", true},
		{"s", `a b"c`, true},
		{"t", "true", true},
		{"no", "false", true},
		{"n", "<nil>", true},
		{"arr", `x,1,<nil>,true,{"k":"v"},[1,2]`, true},
		{"empty", "", true},
		{"o.deep.v", "é", true},
		{"obj", `{"a":"x","b":1}`, true},
		{"arr.0", "x", true},
		{"arr.4.k", "v", true},
		{"missing", "", false},
		{"o.missing", "", false},
		{"id.x", "", false},
		{"arr.9", "", false},
	}
	for _, tc := range tests {
		got, ok := Lookup([]byte("pre:"), v, SplitPath(tc.path))
		if ok != tc.wantOK {
			t.Errorf("Lookup(%s) ok = %v, want %v", tc.path, ok, tc.wantOK)
			continue
		}
		want := "pre:" + tc.want
		if string(got) != want {
			t.Errorf("Lookup(%s) = %q, want %q", tc.path, got, want)
		}
	}
}

func TestRender(t *testing.T) {
	t.Parallel()
	s := AcquireScratch(1)
	defer ReleaseScratch(s)
	f, _ := NewFormatter(&gatewayv1.Backend{})
	dec := func(body string) *fastjson.Value {
		v, err := f.Decode(s, 0, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name   string
		out    Output
		body   string // "" → nil value
		accept string
		want   string
		wantCT string
	}{
		{name: "json", out: OutputJSON, body: `{"a":[true,null,"x"],"b":1}`, want: `{"a":[true,null,"x"],"b":1}`, wantCT: ContentTypeJSON},
		{name: "json nil", out: OutputJSON, want: `{}`, wantCT: ContentTypeJSON},
		{name: "json null data", out: OutputJSON, body: `null`, want: `{}`, wantCT: ContentTypeJSON},
		{name: "json escapes like encoding/json", out: OutputJSON, body: `{"h":"<a&b>","u":"\u2028","c":"\u0001\b\f\n\r\t","e":"\u00e9\/"}`,
			want: `{"c":"\u0001\b\f\n\r\t","e":"é/","h":"\u003ca\u0026b\u003e","u":"\u2028"}`, wantCT: ContentTypeJSON},
		{name: "json escaped key", out: OutputJSON, body: `{"a\"b<":1}`, want: `{"a\"b\u003c":1}`, wantCT: ContentTypeJSON},
		{name: "no-op renders json", out: OutputNoOp, body: `{"a":1}`, want: `{"a":1}`, wantCT: ContentTypeJSON},
		{name: "collection", out: OutputJSONCollection, body: `{"collection":[{"a":1},2]}`, want: `[{"a":1},2]`, wantCT: ContentTypeJSON},
		{name: "collection missing", out: OutputJSONCollection, body: `{"x":1}`, want: `[]`, wantCT: ContentTypeJSON},
		{name: "collection nil", out: OutputJSONCollection, want: `[]`, wantCT: ContentTypeJSON},
		{name: "collection not array", out: OutputJSONCollection, body: `{"collection":{"a":1}}`, want: `{"a":1}`, wantCT: ContentTypeJSON},
		{name: "string", out: OutputString, body: `{"content":"line\n\"x\" <b>"}`, want: "line\n\"x\" <b>", wantCT: ContentTypeText},
		{name: "string not a string", out: OutputString, body: `{"content":42}`, want: ``, wantCT: ContentTypeText},
		{name: "string missing", out: OutputString, body: `{"x":"y"}`, want: ``, wantCT: ContentTypeText},
		{name: "string nil", out: OutputString, want: ``, wantCT: ContentTypeText},
		{name: "xml single root", out: OutputXML, body: `{"user":{"-id":"7","name":"A&B","tags":["x","y"],"n":null,"e":{},"z":""}}`,
			want: `<user id="7"><e/><n/><name>A&amp;B</name><tags>x</tags><tags>y</tags><z></z></user>`, wantCT: ContentTypeXML},
		{name: "xml several keys → doc", out: OutputXML, body: `{"a":1,"b":true}`, want: `<doc><a>1</a><b>true</b></doc>`, wantCT: ContentTypeXML},
		{name: "xml single array key → doc", out: OutputXML, body: `{"i":[1,2]}`, want: `<doc><i>1</i><i>2</i></doc>`, wantCT: ContentTypeXML},
		{name: "xml empty arrays self-closed", out: OutputXML, body: `{"a":1,"g":[],"h":{"e":[[],2]}}`, want: `<doc><a>1</a><g/><h><e/><e>2</e></h></doc>`, wantCT: ContentTypeXML},
		{name: "xml #text", out: OutputXML, body: `{"price":{"-cur":"EUR","#text":"10<"}}`, want: `<price cur="EUR">10&lt;</price>`, wantCT: ContentTypeXML},
		{name: "xml bad names sanitised", out: OutputXML, body: `{"1a":{"b c":"'"}}`, want: `<_1a><b_c>&apos;</b_c></_1a>`, wantCT: ContentTypeXML},
		{name: "xml nil", out: OutputXML, want: ``, wantCT: ContentTypeXML},
		{name: "yaml", out: OutputYAML, body: `{"name":"Ann","age":42,"ok":true,"n":null,"tags":["a","yes"],"o":{"k":"v: x"},"e":{},"l":[],"items":[{"id":1,"x":"y"},[1,2]]}`,
			want: "age: \"42\"\ne: {}\nitems:\n    - id: \"1\"\n      x: \"y\"\n    - - \"1\"\n      - \"2\"\nl: []\n\"n\": null\nname: Ann\no:\n    k: 'v: x'\nok: true\ntags:\n    - a\n    - \"yes\"\n", wantCT: ContentTypeYAML},
		{name: "yaml nil", out: OutputYAML, want: "{}\n", wantCT: ContentTypeYAML},
		{name: "negotiate default json", out: OutputNegotiate, body: `{"a":1}`, want: `{"a":1}`, wantCT: ContentTypeJSON},
		{name: "negotiate wildcard", out: OutputNegotiate, body: `{"a":1}`, accept: "*/*", want: `{"a":1}`, wantCT: ContentTypeJSON},
		{name: "negotiate xml", out: OutputNegotiate, body: `{"a":1}`, accept: "application/xml", want: `<a>1</a>`, wantCT: ContentTypeXML},
		{name: "negotiate text/plain is yaml", out: OutputNegotiate, body: `{"a":1}`, accept: "text/plain; q=0.9", want: "a: \"1\"\n", wantCT: ContentTypeYAML},
		{name: "yaml dash keys (mxj attributes) stay plain, dash numbers quoted", out: OutputYAML, body: `{"-type":"admin","-1":"-2","---":"- x"}`,
			want: "'---': '- x'\n\"-1\": \"-2\"\n-type: admin\n", wantCT: ContentTypeYAML},
		{name: "negotiate header order not q", out: OutputNegotiate, body: `{"a":1}`, accept: "application/xml;q=0.1, application/json", want: `<a>1</a>`, wantCT: ContentTypeXML},
		{name: "negotiate unknown then json", out: OutputNegotiate, body: `{"a":1}`, accept: "image/png, application/json", want: `{"a":1}`, wantCT: ContentTypeJSON},
		{name: "negotiate text/xml (our addition)", out: OutputNegotiate, body: `{"a":1}`, accept: "text/xml", want: `<a>1</a>`, wantCT: ContentTypeXML},
		{name: "negotiate yaml (our addition)", out: OutputNegotiate, body: `{"a":1}`, accept: "application/x-yaml", want: "a: \"1\"\n", wantCT: ContentTypeYAML},
		{name: "negotiate nothing matches", out: OutputNegotiate, body: `{"a":1}`, accept: "image/png", want: `{"a":1}`, wantCT: ContentTypeJSON},
	}
	for _, tc := range tests {
		var v *fastjson.Value
		if tc.body != "" {
			v = dec(tc.body)
		}
		got, ct := Render([]byte("pre"), tc.out, v, []byte(tc.accept))
		if string(got) != "pre"+tc.want || ct != tc.wantCT {
			t.Errorf("%s: got %q (%s), want %q (%s)", tc.name, got[3:], ct, tc.want, tc.wantCT)
		}
	}
}

func TestParseOutput(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]Output{"": OutputJSON, "json": OutputJSON, "json-collection": OutputJSONCollection,
		"string": OutputString, "no-op": OutputNoOp, "negotiate": OutputNegotiate, "xml": OutputXML, "yaml": OutputYAML} {
		got, err := ParseOutput(name)
		if err != nil || got != want {
			t.Errorf("ParseOutput(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	if _, err := ParseOutput("fast-json"); err == nil {
		t.Error("ParseOutput(fast-json): want error")
	}
}

// TestRenderMatchesEncodingJSON checks byte equality of strings with
// encoding/json (what KrakenD's gin renderer uses), for tricky inputs.
func TestRenderMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	inputs := []string{"plain", "<>&", "\u2028\u2029", "\x00\x1f\x7f", "\b\f\n\r\t", "é漢字🎉", "bad\xffutf8\xc3", "\"\\/"}
	s := AcquireScratch(1)
	defer ReleaseScratch(s)
	f, _ := NewFormatter(&gatewayv1.Backend{Encoding: "string"})
	for _, in := range inputs {
		v, err := f.Decode(s, 0, []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := Render(nil, OutputJSON, v, nil)
		want, _ := json.Marshal(map[string]string{"content": in})
		if string(got) != string(want) {
			t.Errorf("%q: got %s, want %s", in, got, want)
		}
	}
}

func TestScratchSlotsConcurrent(t *testing.T) {
	t.Parallel()
	f, _ := NewFormatter(&gatewayv1.Backend{Allow: []string{"id"}, Group: "g"})
	s := AcquireScratch(3)
	defer ReleaseScratch(s)
	res := make([]*fastjson.Value, 3)
	done := make(chan struct{})
	for i := range 3 {
		go func() {
			defer func() { done <- struct{}{} }()
			v, err := f.Decode(s, i, []byte(`{"id":`+string(rune('0'+i))+`,"x":1}`))
			if err != nil {
				t.Error(err)
				return
			}
			res[i] = f.Apply(s, i, v)
		}()
	}
	for range 3 {
		<-done
	}
	out, _ := s.Render(OutputJSON, Merge(s, res), nil)
	if string(out) != `{"g":{"id":2}}` {
		t.Errorf("got %s", out)
	}
}

// TestSharedValuesConcurrent: Formatter, Flatmap and Static values are
// shared by all requests; run under -race to prove reads never write.
func TestSharedValuesConcurrent(t *testing.T) {
	t.Parallel()
	f, _ := NewFormatter(&gatewayv1.Backend{Allow: []string{"a", "b.c"}, Mapping: map[string]string{"a": "A"}})
	fm, _ := NewFlatmap([]*gatewayv1.FlatmapOp{{Type: "move", Args: []string{"static.k", "k"}}, {Type: "del", Args: []string{"A"}}})
	st, _ := NewStatic(&gatewayv1.Static{Data: []byte(`{"static":{"k":"v\u00e9\n<x>","-attr":"1","l":["\u0041",{"z":null}]}}`)})
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 50 {
				s := AcquireScratch(1)
				v, err := f.Decode(s, 0, []byte(`{"a":1,"b":{"c":2,"d":3}}`))
				if err != nil {
					t.Error(err)
				}
				v = st.Apply(s, f.Apply(s, 0, v))
				if (g+i)%2 == 0 {
					v = fm.Apply(s, v)
				}
				for _, o := range []Output{OutputJSON, OutputXML, OutputYAML} {
					s.Render(o, v, nil)
				}
				Lookup(nil, v, []string{"static", "l"})
				ReleaseScratch(s)
			}
		}()
	}
	for range 4 {
		<-done
	}
}

func TestBigScratchNotPooled(t *testing.T) {
	t.Parallel()
	f, _ := NewFormatter(&gatewayv1.Backend{Encoding: "string"})
	s := AcquireScratch(1)
	if _, err := f.Decode(s, 0, bytes.Repeat([]byte("x"), maxPooledBody+1)); err != nil {
		t.Fatal(err)
	}
	if !s.slots[0].big {
		t.Error("big body not flagged")
	}
	ReleaseScratch(s) // dropped, not pooled: nothing observable but no panic
	ReleaseScratch(nil)
}

// TestCanonical: a body passes through untouched only when rendering it
// would give the same bytes; for every case, Canonical agrees with a
// render-and-compare.
func TestCanonical(t *testing.T) {
	for _, tc := range []struct {
		body string
		want bool
	}{
		{`{"a":1,"b":{"c":[1,{"d":2,"e":3}],"x":"y"}}`, true},
		{`{}`, true},
		{`{"b":1,"a":2}`, false},            // unsorted
		{`{"a":{"y":1,"x":2}}`, false},      // unsorted inside
		{`{"a":[{"y":1,"x":2}]}`, false},    // unsorted in an array
		{`{"a":1,"a":2}`, false},            // duplicate: the last wins
		{`{"a": 1}`, false},                 // whitespace
		{"{\"a\":1}\n", false},              // trailing newline
		{`{"a":"x\/y"}`, false},             // escape encoding/json writes otherwise
		{`{"a":"<b>"}`, false},              // HTML characters
		{`{"a":"é","b":"\u00e9"}`, false},   // escaped non-ASCII
		{`{"a":"é"}`, true},                 // raw UTF-8 stays
		{`{"a":1.50,"b":-0,"c":1e3}`, true}, // numbers as written (UseNumber)
		{`{"a":[],"b":[[]],"c":{"d":{}}}`, true},
	} {
		got := Canonical([]byte(tc.body))
		if got != tc.want {
			t.Errorf("Canonical(%s) = %v, want %v", tc.body, got, tc.want)
		}
		var p fastjson.Parser
		v, err := p.Parse(tc.body)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := Render(nil, OutputJSON, v, nil)
		if same := string(out) == tc.body; got && !same {
			t.Errorf("Canonical(%s) but it renders as %s", tc.body, out)
		}
	}
}
