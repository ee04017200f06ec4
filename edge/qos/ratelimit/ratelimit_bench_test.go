package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apigw/gateway/edge/qos/clock"
)

func benchKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte("198.51." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256))
	}
	return keys
}

// BenchmarkAllow: known clients (the steady state), sized by how many
// distinct clients are active.
func BenchmarkAllow(b *testing.B) {
	b.Run("bucket", func(b *testing.B) {
		bk, _ := NewBucket(BucketConfig{MaxRate: 1e9})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				bk.Allow()
			}
		})
	})
	for _, n := range []int{1, 1000, 100_000} {
		b.Run(fmt.Sprint("router/existing-keys=", n), func(b *testing.B) {
			r, _ := NewRouter(RouterConfig{MaxRate: 1e9, ClientMaxRate: 1e9, MaxClients: 1 << 20, Clock: clock.System()})
			defer r.Close()
			keys := benchKeys(n)
			for _, k := range keys {
				r.Allow(context.Background(), k)
			}
			var seq atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seq.Add(1) * 7919)
				ctx := context.Background()
				for pb.Next() {
					i++
					r.Allow(ctx, keys[i%n])
				}
			})
		})
	}
}

// BenchmarkAllowChurn: every request is a new client (an attacker rotating
// keys): insert plus LRU eviction at the cap.
func BenchmarkAllowChurn(b *testing.B) {
	c, _ := NewClients(ClientConfig{MaxRate: 10, Every: time.Second, MaxClients: 1 << 14})
	defer c.Close()
	var seq atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key := make([]byte, 0, 32)
		base := seq.Add(1) << 40
		for i := uint64(0); pb.Next(); i++ {
			key = strconv.AppendUint(append(key[:0], "k-"...), base+i, 16)
			c.Allow(key)
		}
	})
}
