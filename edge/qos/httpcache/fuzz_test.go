package httpcache

import (
	"strings"
	"testing"
	"time"
)

// FuzzPut feeds arbitrary Cache-Control, Expires, Date, Age and Vary values
// through Put and Get: never a panic, and whatever is stored is served
// fresh only.
func FuzzPut(f *testing.F) {
	for _, s := range []string{
		"max-age=60", `no-cache="Set-Cookie", max-age=1`, "s-maxage=99999999999999999999", `max-age="5`,
		"private, max-age=60", ",,,=,", "max-age=-1",
	} {
		f.Add(s, "Mon, 02 Jan 2006 15:04:05 GMT", "Mon, 02 Jan 2006 15:04:05 GMT", "3", "Accept, X-A")
	}
	f.Fuzz(func(t *testing.T, cc, expires, date, age, vary string) {
		c, clk := newCache(t, Config{MaxBytes: 1 << 16})
		h := []Header{
			{Key: []byte("Cache-Control"), Value: []byte(cc)},
			{Key: []byte("Expires"), Value: []byte(expires)},
			{Key: []byte("Date"), Value: []byte(date)},
			{Key: []byte("Age"), Value: []byte(age)},
			{Key: []byte("Vary"), Value: []byte(vary)},
		}
		r := req("Accept: " + strings.ReplaceAll(cc, "\n", ""))
		stored := c.Put([]byte("GET"), []byte("http://b/x"), r, Response{Status: 200, Header: h, Body: []byte("x")})
		e, a := c.Get([]byte("GET"), []byte("http://b/x"), r)
		if e != nil && !stored {
			t.Fatal("hit without a store")
		}
		if a < 0 {
			t.Fatalf("negative age %v", a)
		}
		clk.Advance(maxDeltaSeconds * time.Second * 2)
		if e, _ := c.Get([]byte("GET"), []byte("http://b/x"), r); e != nil {
			t.Fatal("served after every possible lifetime")
		}
	})
}
