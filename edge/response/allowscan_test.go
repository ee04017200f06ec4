package response

import (
	"strings"
	"testing"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// allowScanBodies are valid JSON texts that stress the top-level scan:
// escapes in keys and strings, duplicates, nesting, whitespace, other top
// levels.
var allowScanBodies = []string{
	smallBody,
	`{}`,
	` { } `,
	`null`,
	`[1,{"id":2}]`,
	`"id"`,
	`12`,
	`{"id":1,"id":2,"name":"a","id":{"x":1}}`,
	"\t{ \"id\" :\n 1 ,\r\n \"name\" : [ 1 , { \"id\" : \"}\" } ] , \"x\" : \"\\\"\" }\n",
	`{"\u0069d":1,"na\"me":2,"n\\":3,"name":"\\","a":{"b":"\\\"}"},"a":{"b":1,"c":[{"b":2}]}}`,
	`{"skip":{"a":[[[{"b":"]]}}"}]]],"c":"\\\\"},"id":-1.5e+10,"name":true,"address":false,"tags":null}`,
	`{"address":"not an object","name":{"first":"A"},"address":{"city":"C","geo":{"lat":1,"lng":2}}}`,
	`{"x":"` + strings.Repeat(`ab\"c\\`, 50) + `","id":[` + strings.Repeat(`{"id":1},`, 30) + `{}]}`,
}

var allowScanLists = [][]string{
	{"id"},
	{"id", "name"},
	{"name", "address.city", "address.geo.lat"},
	{"a.b", "id"},
	{"a", "a.b"},
	{"na\"me", "n\\"},
	{"nothing"},
	{"id", "name", "email", "address", "tags", "secret", "x", "skip", "a", "n", "na", "b", "c", "d"}, // wide: map index
}

// TestAllowScanMatchesFullDecode checks that the allow-list scan renders
// the same bytes as decoding the whole body, for every output, group and
// mapping on top.
func TestAllowScanMatchesFullDecode(t *testing.T) {
	for _, list := range allowScanLists {
		for _, extra := range []func(*gatewayv1.Backend){
			func(*gatewayv1.Backend) {},
			func(b *gatewayv1.Backend) { b.Group = "g" },
			func(b *gatewayv1.Backend) { b.Mapping = map[string]string{"id": "ID", "name": "id"} },
		} {
			b := &gatewayv1.Backend{Allow: list}
			extra(b)
			for _, body := range allowScanBodies {
				compareAllowScan(t, b, []byte(body))
			}
		}
	}
}

func compareAllowScan(t *testing.T, b *gatewayv1.Backend, body []byte) {
	t.Helper()
	fast, err := NewFormatter(b)
	if err != nil {
		t.Fatal(err)
	}
	if !fast.allowScan {
		t.Fatalf("allow %v: allowScan not set", b.Allow)
	}
	full := *fast
	full.allowScan = false
	for _, o := range []Output{OutputJSON, OutputXML, OutputYAML} {
		got, gerr := decodeRender(fast, body, o)
		want, werr := decodeRender(&full, body, o)
		if (gerr != nil) != (werr != nil) || got != want {
			t.Errorf("allow %v group %q mapping %v, body %s, output %v:\n scan %q (%v)\n full %q (%v)",
				b.Allow, b.Group, b.Mapping, body, o, got, gerr, want, werr)
		}
	}
}

func decodeRender(f *Formatter, body []byte, o Output) (string, error) {
	s := AcquireScratch(1)
	defer ReleaseScratch(s)
	v, err := f.Decode(s, 0, body)
	if err != nil {
		return "", err
	}
	out, _ := s.Render(o, f.Apply(s, 0, v), nil)
	return string(out), nil
}

// FuzzAllowScan compares the scan with the full decode on arbitrary valid
// JSON bodies (invalid ones fail validation before either runs).
func FuzzAllowScan(f *testing.F) {
	for _, b := range allowScanBodies {
		f.Add([]byte(b), uint8(0))
	}
	f.Fuzz(func(t *testing.T, body []byte, pick uint8) {
		if ok, _ := validJSON(body); !ok {
			return
		}
		compareAllowScan(t, &gatewayv1.Backend{Allow: allowScanLists[int(pick)%len(allowScanLists)]}, body)
	})
}
