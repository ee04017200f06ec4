package httpcache

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
)

func BenchmarkGetHit(b *testing.B) {
	for _, n := range []int{1, 1000, 100_000} {
		b.Run(fmt.Sprint("entries=", n), func(b *testing.B) {
			c, _ := New(Config{MaxBytes: 1 << 30})
			var rh fasthttp.RequestHeader
			rh.Set("Accept-Encoding", "gzip")
			urls := make([][]byte, n)
			body := make([]byte, 512)
			for i := range urls {
				urls[i] = fmt.Appendf(nil, "http://10.0.0.1:8080/items/%d", i)
				c.Put([]byte("GET"), urls[i], &rh, Response{Status: 200, Header: hdr("Cache-Control: max-age=3600", "Vary: Accept-Encoding", "Content-Type: application/json"), Body: body})
			}
			var seq atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var rh fasthttp.RequestHeader
				rh.Set("Accept-Encoding", "gzip")
				get := []byte("GET")
				i := int(seq.Add(1) * 7919)
				for pb.Next() {
					i++
					if e, _ := c.Get(get, urls[i%n], &rh); e == nil {
						b.Fatal("miss")
					}
				}
			})
		})
	}
}
