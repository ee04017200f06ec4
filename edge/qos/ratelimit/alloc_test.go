//go:build !race

package ratelimit

import (
	"bytes"
	"context"
	"testing"
	"time"
)

func TestAllowAllocs(t *testing.T) {
	clk := newFake()
	b, err := NewBucket(BucketConfig{MaxRate: 1e9, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	r := newRouter(t, RouterConfig{MaxRate: 1e6, ClientMaxRate: 1e6, Clock: clk})
	c := newClientsT(t, ClientConfig{MaxRate: 1e6, Clock: clk})
	key := []byte("203.0.113.7")
	long := bytes.Repeat([]byte("x"), 200)
	ctx := context.Background()
	r.Allow(ctx, key)
	r.Allow(ctx, long)
	c.Allow(key)
	tests := []struct {
		name string
		fn   func()
	}{
		{"Bucket.Allow", func() { b.Allow() }},
		{"Clients.Allow existing key", func() { c.Allow(key) }},
		{"Router.Allow existing key", func() { r.Allow(ctx, key) }},
		{"Router.Allow existing long key", func() { r.Allow(ctx, long) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(1000, func() { tc.fn(); clk.Advance(time.Microsecond) }); n != 0 {
				t.Errorf("%s: %v allocs per run, want 0", tc.name, n)
			}
		})
	}
}
