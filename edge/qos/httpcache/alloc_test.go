//go:build !race

package httpcache

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func TestGetAllocs(t *testing.T) {
	c, _ := newCache(t, Config{})
	var rh fasthttp.RequestHeader
	rh.Set("Accept-Encoding", "gzip")
	url := []byte("http://10.0.0.1:8080/users/1")
	if !c.Put([]byte("GET"), url, &rh, Response{Status: 200, Header: hdr("Cache-Control: max-age=60", "Vary: Accept-Encoding"), Body: []byte("{}")}) {
		t.Fatal("not stored")
	}
	get := []byte("GET")
	if n := testing.AllocsPerRun(1000, func() {
		if e, _ := c.Get(get, url, &rh); e == nil {
			t.Fatal("miss")
		}
	}); n != 0 {
		t.Errorf("Get hit: %v allocs per run, want 0", n)
	}
}
