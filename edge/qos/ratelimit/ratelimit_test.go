package ratelimit

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/apigw/gateway/edge/qos/clock"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/test/leak"
)

func TestMain(m *testing.M) { leak.VerifyTestMain(m) }

func newFake() *clock.Fake { return clock.NewFake(time.Unix(1_700_000_000, 0)) }

func TestNewRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		maxRate  float64
		every    time.Duration
		capacity uint64
		want     Rate
	}{
		{"per second", 10, time.Second, 0, Rate{Interval: 100 * time.Millisecond, Burst: 10}},
		{"every zero is one second", 4, 0, 0, Rate{Interval: 250 * time.Millisecond, Burst: 4}},
		{"explicit capacity", 10, time.Second, 3, Rate{Interval: 100 * time.Millisecond, Burst: 3}},
		{"fractional rate capacity min 1", 0.5, time.Second, 0, Rate{Interval: 2 * time.Second, Burst: 1}},
		{"fractional rate floors capacity", 2.5, time.Second, 0, Rate{Interval: 400 * time.Millisecond, Burst: 2}},
		{"per minute", 60, time.Minute, 0, Rate{Interval: time.Second, Burst: 60}},
		{"sub-second every not clamped here", 10, 100 * time.Millisecond, 0, Rate{Interval: 10 * time.Millisecond, Burst: 10}},
		{"huge rate min 1ns", 1e12, time.Second, 5, Rate{Interval: 1, Burst: 5}},
		{"zero rate disabled", 0, time.Second, 5, Rate{}},
		{"negative rate disabled", -1, time.Second, 5, Rate{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, NewRate(tc.maxRate, tc.every, tc.capacity)); diff != "" {
				t.Errorf("NewRate(%v, %v, %d) (-want +got):\n%s", tc.maxRate, tc.every, tc.capacity, diff)
			}
		})
	}
}

func TestRouterRates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		pb           *gatewayv1.RouterRateLimit
		global, clnt Rate
	}{
		{
			name:   "every below one second clamped (KrakenD)",
			pb:     &gatewayv1.RouterRateLimit{MaxRate: 10, EveryMs: 100},
			global: Rate{Interval: 100 * time.Millisecond, Burst: 10},
		},
		{
			name:   "every one minute",
			pb:     &gatewayv1.RouterRateLimit{MaxRate: 60, ClientMaxRate: 6, EveryMs: 60_000},
			global: Rate{Interval: time.Second, Burst: 60},
			clnt:   Rate{Interval: 10 * time.Second, Burst: 6},
		},
		{
			name: "client capacity defaults to client_max_rate without max_rate (quirk fixed)",
			pb:   &gatewayv1.RouterRateLimit{ClientMaxRate: 5},
			clnt: Rate{Interval: 200 * time.Millisecond, Burst: 5},
		},
		{
			name:   "explicit capacities",
			pb:     &gatewayv1.RouterRateLimit{MaxRate: 100, Capacity: 7, ClientMaxRate: 5, ClientCapacity: 2},
			global: Rate{Interval: 10 * time.Millisecond, Burst: 7},
			clnt:   Rate{Interval: 200 * time.Millisecond, Burst: 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, ok := RouterConfigFromProto(tc.pb)
			if !ok {
				t.Fatal("RouterConfigFromProto: ok = false")
			}
			g, c := cfg.Rates()
			if diff := cmp.Diff([]Rate{tc.global, tc.clnt}, []Rate{g, c}); diff != "" {
				t.Errorf("Rates (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBackendEveryNotClamped(t *testing.T) {
	t.Parallel()
	cfg, ok := BackendConfigFromProto(&gatewayv1.BackendRateLimit{MaxRate: 10, EveryMs: 100})
	if !ok {
		t.Fatal("BackendConfigFromProto: ok = false")
	}
	b, err := NewBucket(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Rate{Interval: 10 * time.Millisecond, Burst: 10}, b.Rate()); diff != "" {
		t.Errorf("Rate (-want +got):\n%s", diff)
	}
	// A sub-millisecond every (every_ns) is exact: 10 per 500µs, not per
	// the rounded-up millisecond.
	cfg, ok = BackendConfigFromProto(&gatewayv1.BackendRateLimit{MaxRate: 10, EveryMs: 1, EveryNs: 500_000})
	if !ok {
		t.Fatal("BackendConfigFromProto: ok = false")
	}
	if b, err = NewBucket(cfg); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Rate{Interval: 50 * time.Microsecond, Burst: 10}, b.Rate()); diff != "" {
		t.Errorf("sub-ms Rate (-want +got):\n%s", diff)
	}
	for _, pb := range []*gatewayv1.BackendRateLimit{nil, {}, {MaxRate: -1}} {
		if _, ok := BackendConfigFromProto(pb); ok {
			t.Errorf("BackendConfigFromProto(%v): ok = true, want false", pb)
		}
	}
	if _, ok := RouterConfigFromProto(&gatewayv1.RouterRateLimit{Strategy: "ip"}); ok {
		t.Error("RouterConfigFromProto without rates: ok = true, want false")
	}
}

func TestBucketBurstRefill(t *testing.T) {
	t.Parallel()
	clk := newFake()
	b, err := NewBucket(BucketConfig{MaxRate: 10, Every: time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	// Starts full: a burst of capacity passes with a falling Remaining.
	for i := range 10 {
		d := b.Allow()
		want := Decision{Allowed: true, Limit: 10, Remaining: uint64(9 - i), Reset: time.Duration(i+1) * 100 * time.Millisecond}
		if diff := cmp.Diff(want, d); diff != "" {
			t.Fatalf("request %d (-want +got):\n%s", i, diff)
		}
	}
	// Above the burst: rejected, one token is 100 ms away.
	want := Decision{RejectedBy: ScopeGlobal, Limit: 10, RetryAfter: 100 * time.Millisecond, Reset: time.Second}
	if diff := cmp.Diff(want, b.Allow()); diff != "" {
		t.Fatalf("over limit (-want +got):\n%s", diff)
	}
	clk.Advance(40 * time.Millisecond)
	if d := b.Allow(); d.Allowed || d.RetryAfter != 60*time.Millisecond {
		t.Fatalf("after 40ms: %+v, want rejected with RetryAfter 60ms", d)
	}
	clk.Advance(60 * time.Millisecond)
	if d := b.Allow(); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after refill: %+v, want allowed with Remaining 0", d)
	}
	if d := b.Allow(); d.Allowed {
		t.Fatalf("second after refill of one token: %+v, want rejected", d)
	}
	// A long pause refills to capacity, never beyond.
	clk.Advance(time.Hour)
	allowed := 0
	for range 20 {
		if b.Allow().Allowed {
			allowed++
		}
	}
	if allowed != 10 {
		t.Errorf("after an hour idle: %d allowed, want 10 (capacity)", allowed)
	}
}

func TestDecisionHelpers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name               string
		d                  Decision
		status             int
		retryAfter, resetS int64
	}{
		{"allowed", Decision{Allowed: true, Reset: 1500 * time.Millisecond}, 0, 0, 2},
		{"client", Decision{RejectedBy: ScopeClient, RetryAfter: 100 * time.Millisecond}, 429, 1, 0},
		{"global", Decision{RejectedBy: ScopeGlobal, RetryAfter: 2001 * time.Millisecond, Reset: 3 * time.Second}, 503, 3, 3},
		{"empty key", Decision{RejectedBy: ScopeClient}, 429, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := []int64{int64(tc.d.Status()), tc.d.RetryAfterSeconds(), tc.d.ResetSeconds()}
			if diff := cmp.Diff([]int64{int64(tc.status), tc.retryAfter, tc.resetS}, got); diff != "" {
				t.Errorf("status, retry-after, reset (-want +got):\n%s", diff)
			}
		})
	}
}

func newRouter(t *testing.T, cfg RouterConfig) *Router {
	t.Helper()
	r, err := NewRouter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRouterClientIsolationAndOrder(t *testing.T) {
	t.Parallel()
	clk := newFake()
	r := newRouter(t, RouterConfig{MaxRate: 5, ClientMaxRate: 2, Every: time.Minute, Clock: clk})
	ctx := context.Background()
	if got := r.Strategy(); got != StrategyIP {
		t.Errorf("Strategy() = %q, want %q (empty strategy means ip)", got, StrategyIP)
	}
	a, b, c := []byte("10.0.0.1"), []byte("10.0.0.2"), []byte("10.0.0.3")
	// Client a: burst 2, then 429 with its own bucket's numbers.
	for i := range 2 {
		if d := r.Allow(ctx, a); !d.Allowed || d.Limit != 2 || d.Remaining != uint64(1-i) {
			t.Fatalf("a#%d = %+v, want allowed, Limit 2, Remaining %d", i, d, 1-i)
		}
	}
	d := r.Allow(ctx, a)
	if d.Allowed || d.Status() != 429 || d.RetryAfter != 30*time.Second {
		t.Fatalf("a#3 = %+v, want 429 with RetryAfter 30s", d)
	}
	// Client b is isolated from a.
	for i := range 2 {
		if d := r.Allow(ctx, b); !d.Allowed {
			t.Fatalf("b#%d = %+v, want allowed", i, d)
		}
	}
	// Global: 4 of 5 used; c gets the last one, then the global bucket says 503.
	if d := r.Allow(ctx, c); !d.Allowed {
		t.Fatalf("c#1 = %+v, want allowed", d)
	}
	d = r.Allow(ctx, c)
	if d.Status() != 503 || d.Limit != 5 || d.RetryAfter != 12*time.Second {
		t.Fatalf("c#2 = %+v, want 503 from the global bucket (Limit 5, RetryAfter 12s)", d)
	}
	// The 503 refunded c's client token: once the global bucket refills one
	// token, c still has one client token left.
	clk.Advance(12 * time.Second)
	if d := r.Allow(ctx, c); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("c#3 = %+v, want allowed with client Remaining 0", d)
	}
	// Empty identity: 429 without Retry-After semantics (KrakenD).
	if d := r.Allow(ctx, nil); d.Status() != 429 || d.RetryAfter != 0 || d.Limit != 0 {
		t.Fatalf("empty key = %+v, want 429 with no bucket", d)
	}
}

func TestRouterGlobalOnlyIgnoresKey(t *testing.T) {
	t.Parallel()
	r := newRouter(t, RouterConfig{MaxRate: 1, Strategy: StrategyHeader, Key: "X-Key", Clock: newFake()})
	if r.Strategy() != "" || r.Key() != "" || r.Clients() != nil {
		t.Errorf("Strategy/Key/Clients = %q/%q/%v, want empty without client limit", r.Strategy(), r.Key(), r.Clients())
	}
	if d := r.Allow(context.Background(), nil); !d.Allowed {
		t.Fatalf("first = %+v, want allowed", d)
	}
	if d := r.Allow(context.Background(), nil); d.Status() != 503 || d.RetryAfter != time.Second {
		t.Fatalf("second = %+v, want 503 RetryAfter 1s", d)
	}
}

func TestNilLimitersAllow(t *testing.T) {
	t.Parallel()
	var r *Router
	var b *Bucket
	var c *Clients
	if !r.Allow(context.Background(), nil).Allowed || !b.Allow().Allowed || !c.Allow([]byte("x")).Allowed {
		t.Error("nil limiters must allow")
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  RouterConfig
		ok   bool
	}{
		{"global only", RouterConfig{MaxRate: 1}, true},
		{"client header", RouterConfig{ClientMaxRate: 1, Strategy: StrategyHeader, Key: "X-Key"}, true},
		{"no rates", RouterConfig{}, false},
		{"header without key", RouterConfig{ClientMaxRate: 1, Strategy: StrategyHeader}, false},
		{"unknown strategy", RouterConfig{ClientMaxRate: 1, Strategy: "cookie"}, false},
		{"negative shards", RouterConfig{MaxRate: 1, NumShards: -1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if _, err := NewBucket(BucketConfig{}); err == nil {
		t.Error("NewBucket with zero MaxRate: want error")
	}
}

func newClientsT(t *testing.T, cfg ClientConfig) *Clients {
	t.Helper()
	c, err := NewClients(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestClientsSweepDropsOnlyRefilled(t *testing.T) {
	t.Parallel()
	clk := newFake()
	c := newClientsT(t, ClientConfig{MaxRate: 1, Every: time.Second, Capacity: 2, Clock: clk})
	c.Allow([]byte("once")) // 1 token used: full again after 1s
	c.Allow([]byte("twice"))
	c.Allow([]byte("twice")) // 2 used: full after 2s
	if got := c.Len(); got != 2 {
		t.Fatalf("Len = %d, want 2", got)
	}
	clk.Advance(1500 * time.Millisecond)
	if n := c.Sweep(); n != 1 || c.Len() != 1 {
		t.Fatalf("Sweep at 1.5s dropped %d (Len %d), want 1 (Len 1)", n, c.Len())
	}
	// "twice" kept its state: one token refilled, so one request passes.
	if d := c.Allow([]byte("twice")); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("twice after sweep = %+v, want allowed with Remaining 0", d)
	}
	clk.Advance(time.Hour)
	c.Sweep()
	if got := c.Len(); got != 0 {
		t.Errorf("Len after idle sweep = %d, want 0", got)
	}
}

func TestClientsLRUEviction(t *testing.T) {
	t.Parallel()
	c := newClientsT(t, ClientConfig{MaxRate: 1, Every: time.Hour, NumShards: 1, MaxClients: 3, Clock: newFake()})
	for _, k := range []string{"a", "b", "c"} {
		c.Allow([]byte(k)) // each bucket now empty (capacity 1)
	}
	c.Allow([]byte("a")) // a becomes most recent (rejected, but touched)
	c.Allow([]byte("d")) // evicts b, the least recently used
	if got := c.Len(); got != 3 {
		t.Fatalf("Len = %d, want 3", got)
	}
	if d := c.Allow([]byte("a")); d.Allowed {
		t.Error("a kept its empty bucket, want rejected")
	}
	if d := c.Allow([]byte("b")); !d.Allowed {
		t.Error("b was evicted and comes back full, want allowed")
	}
}

func TestClientsLongKeys(t *testing.T) {
	t.Parallel()
	c := newClientsT(t, ClientConfig{MaxRate: 1, Every: time.Hour, Clock: newFake()})
	prefix := bytes.Repeat([]byte("k"), 100)
	k1, k2 := append(bytes.Clone(prefix), '1'), append(bytes.Clone(prefix), '2')
	if !c.Allow(k1).Allowed || c.Allow(k1).Allowed {
		t.Fatal("k1: want one allowed then rejected")
	}
	if !c.Allow(k2).Allowed {
		t.Fatal("k2 shares a prefix with k1 but is another client: want allowed")
	}
}

// TestClientsMemoryBound inserts 1M distinct keys: the table never holds
// more than its cap and the heap stays bounded.
func TestClientsMemoryBound(t *testing.T) {
	c := newClientsT(t, ClientConfig{MaxRate: 1, Every: time.Hour, Clock: newFake()})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	key := make([]byte, 0, 32)
	for i := range 1_000_000 {
		key = strconv.AppendInt(append(key[:0], "198.51.100."...), int64(i), 10)
		c.Allow(key)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got, limit := c.Len(), c.Cap(); got > limit || limit != DefaultMaxClients {
		t.Errorf("Len = %d, Cap = %d, want Len <= Cap = %d", got, limit, DefaultMaxClients)
	}
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("1M keys: %d buckets held, heap grew %d KiB", c.Len(), grown/1024)
	if grown > 32<<20 {
		t.Errorf("heap grew %d MiB, want < 32 MiB", grown>>20)
	}
}

func TestRouterConcurrentExactBudget(t *testing.T) {
	t.Parallel()
	// The clock never moves: exactly capacity requests may pass in total,
	// and exactly client capacity per client, however they interleave.
	r := newRouter(t, RouterConfig{MaxRate: 100, ClientMaxRate: 10, Clock: newFake()})
	var allowed atomic.Int64
	perClient := make([]atomic.Int64, 20)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				id := (g*7 + i) % len(perClient)
				if r.Allow(context.Background(), []byte(fmt.Sprint("client-", id))).Allowed {
					allowed.Add(1)
					perClient[id].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got := allowed.Load(); got != 100 {
		t.Errorf("allowed %d requests, want 100 (global capacity)", got)
	}
	for id := range perClient {
		if got := perClient[id].Load(); got > 10 {
			t.Errorf("client %d: %d allowed, want <= 10", id, got)
		}
	}
}
