package clusterlimit

import (
	"context"
	"testing"

	"github.com/apigw/gateway/edge/qos/clock"
	"github.com/apigw/gateway/edge/qos/ratelimit"
)

// BenchmarkClusterAllow measures one Redis round trip per check (real
// redis-server on loopback) and the degraded path (no I/O).
func BenchmarkClusterAllow(b *testing.B) {
	rs := startRedis(b).addr()
	for _, tc := range []struct {
		name string
		addr string
	}{{"redis", rs}, {"degraded", "127.0.0.1:1"}} {
		b.Run(tc.name, func(b *testing.B) {
			s, _ := New(Config{Addr: tc.addr, KeyPrefix: "bench:"})
			defer s.Close()
			rc := ratelimit.RouterConfig{MaxRate: 1e9, ClientMaxRate: 1e9, Clock: clock.System()}
			g, c := rc.Rates()
			rc.Remote = s.Limiter("GET /bench", g, c)
			r, _ := ratelimit.NewRouter(rc)
			defer r.Close()
			ctx := context.Background()
			for range 3 {
				r.Allow(ctx, []byte("client"))
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				key := []byte("client")
				for pb.Next() {
					r.Allow(ctx, key)
				}
			})
		})
	}
}
