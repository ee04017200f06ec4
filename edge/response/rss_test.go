package response

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/valyala/fastjson"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// TestRSS decodes an RSS 2.0 and an Atom feed with encoding rss and
// renders them: the bytes are KrakenD CE 2.12.1's answer for the same feed
// (testdata/*.krakend.json, recorded on loopback), gofeed's structs in
// field order inside a sorted top level.
func TestRSS(t *testing.T) {
	f, err := NewFormatter(&gatewayv1.Backend{Encoding: "rss"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"rss-feed", "atom-feed"} {
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile("testdata/" + name + ".xml")
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile("testdata/" + name + ".krakend.json")
			if err != nil {
				t.Fatal(err)
			}
			s := AcquireScratch(2)
			defer ReleaseScratch(s)
			v, err := f.Decode(s, 1, body)
			if err != nil {
				t.Fatal(err)
			}
			got, ct := s.Render(OutputJSON, f.Apply(s, 1, v), nil)
			if ct != ContentTypeJSON || !bytes.Equal(got, bytes.TrimSpace(want)) {
				t.Errorf("render (%s):\n got %s\nwant %s", ct, got, bytes.TrimSpace(want))
			}
		})
	}
}

// TestRSSOrderIsPerScratch: the stored-order marks of an rss decode do not
// outlive the Scratch, and a JSON object decoded later renders sorted.
func TestRSSOrderIsPerScratch(t *testing.T) {
	rss, _ := NewFormatter(&gatewayv1.Backend{Encoding: "rss"})
	js, _ := NewFormatter(&gatewayv1.Backend{})
	body, err := os.ReadFile("testdata/rss-feed.xml")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		s := AcquireScratch(2)
		if _, err := rss.Decode(s, 0, body); err != nil {
			t.Fatal(err)
		}
		ReleaseScratch(s)
		s = AcquireScratch(2)
		v, err := js.Decode(s, 0, []byte(`{"b":{"z":1,"a":2},"a":1}`))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Render(OutputJSON, v, nil); string(got) != `{"a":1,"b":{"a":2,"z":1}}` {
			t.Errorf("json after rss: %s", got)
		}
		ReleaseScratch(s)
	}
}

func TestRSSNotAFeed(t *testing.T) {
	f, _ := NewFormatter(&gatewayv1.Backend{Encoding: "rss"})
	s := AcquireScratch(1)
	defer ReleaseScratch(s)
	if _, err := f.Decode(s, 0, []byte("<html>no feed</html>")); !errors.Is(err, ErrSyntax) {
		t.Errorf("Decode = %v, want ErrSyntax", err)
	}
	// gofeed reads JSON Feed too, so a JSON object is a (mostly empty) feed,
	// as in KrakenD.
	v, err := f.Decode(s, 0, []byte(`{"a":1}`))
	if err != nil || v.Type() != fastjson.TypeObject {
		t.Errorf("Decode JSON = %v, %v", v, err)
	}
}
