package qos

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/apigw/gateway/edge/qos/breaker"
	"github.com/apigw/gateway/edge/qos/clock"
	"github.com/apigw/gateway/edge/qos/httpcache"
	"github.com/apigw/gateway/edge/qos/ratelimit"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/test/leak"
)

func TestMain(m *testing.M) { leak.VerifyTestMain(m) }

func newRegistry(t *testing.T, cfg Config) (*Registry, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	cfg.Clock = clk
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, clk
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// TestSwapKeepsUnchangedState walks two config pushes: unchanged endpoints
// keep their counters, changed ones start fresh, removed ones close after
// the grace period.
func TestSwapKeepsUnchangedState(t *testing.T) {
	t.Parallel()
	r, clk := newRegistry(t, Config{Grace: 10 * time.Second})
	ctx := context.Background()
	rlA := &gatewayv1.RouterRateLimit{ClientMaxRate: 1, EveryMs: 3_600_000}
	rlB := &gatewayv1.RouterRateLimit{MaxRate: 1, EveryMs: 3_600_000}
	cb := &gatewayv1.CircuitBreaker{MaxErrors: 0, TimeoutMs: 60_000}

	// Plan 1.
	l1 := r.NewLease()
	a1 := must[*ratelimit.Router](t)(l1.RouterLimiter("GET /a", rlA, nil))
	b1 := must[*ratelimit.Router](t)(l1.RouterLimiter("GET /b", rlB, nil))
	br1 := must[*breaker.Breaker](t)(l1.Breaker("GET /a backend[0]", cb, 0))
	a1.Allow(ctx, []byte("c1"))
	b1.Allow(ctx, nil)
	tk, _ := br1.Allow()
	br1.Done(tk, false) // opens

	// Plan 2: /a unchanged, /b's rate changed, breaker unchanged.
	l2 := r.NewLease()
	rlB2 := &gatewayv1.RouterRateLimit{MaxRate: 2, EveryMs: 3_600_000}
	a2 := must[*ratelimit.Router](t)(l2.RouterLimiter("GET /a", rlA, nil))
	b2 := must[*ratelimit.Router](t)(l2.RouterLimiter("GET /b", rlB2, nil))
	br2 := must[*breaker.Breaker](t)(l2.Breaker("GET /a backend[0]", cb, 0))
	if a2 != a1 || br2 != br1 {
		t.Fatal("unchanged settings: want the same instances")
	}
	if b2 == b1 {
		t.Fatal("changed settings: want a new instance")
	}
	if d := a2.Allow(ctx, []byte("c1")); d.Allowed {
		t.Error("unchanged limiter lost its counters across the swap")
	}
	if !b2.Allow(ctx, nil).Allowed {
		t.Error("changed limiter did not start full")
	}
	if br2.State() != breaker.Open {
		t.Error("unchanged breaker lost its state across the swap")
	}
	if got := r.Len(); got != 4 {
		t.Fatalf("Len = %d, want 4 (a, b, b', breaker)", got)
	}

	// Plan 1 retired: only old /b is unheld; it survives the grace period.
	l1.Release()
	l1.Release() // idempotent
	clk.Advance(9 * time.Second)
	if n := r.Sweep(); n != 0 {
		t.Fatalf("Sweep inside grace closed %d", n)
	}
	clk.Advance(time.Second)
	if n := r.Sweep(); n != 1 || r.Len() != 3 {
		t.Fatalf("Sweep after grace closed %d (Len %d), want 1 (Len 3)", n, r.Len())
	}

	// Plan 3 fails to build after taking /a; plan 2 stays live: /a is kept.
	l3 := r.NewLease()
	must[*ratelimit.Router](t)(l3.RouterLimiter("GET /a", rlA, nil))
	l3.Release()
	clk.Advance(time.Hour)
	r.Sweep()
	if got := r.Len(); got != 3 {
		t.Fatalf("failed build released components plan 2 holds: Len = %d, want 3", got)
	}

	// Plan 2 retired, nothing replaces it yet; a push within grace revives it.
	l2.Release()
	clk.Advance(5 * time.Second)
	l4 := r.NewLease()
	if a4 := must[*ratelimit.Router](t)(l4.RouterLimiter("GET /a", rlA, nil)); a4 != a1 {
		t.Error("component revived within grace: want the same instance")
	}
	clk.Advance(time.Hour)
	if n := r.Sweep(); n != 2 {
		t.Errorf("Sweep closed %d, want 2 (b', breaker)", n)
	}
	if _, err := l4.RouterLimiter("GET /z", rlA, nil); err != nil {
		t.Fatal(err)
	}
	l4.Release()
	if _, err := l4.RouterLimiter("GET /y", rlA, nil); err == nil {
		t.Error("get on a released lease: want error")
	}
}

func TestDisabledComponentsAreNil(t *testing.T) {
	t.Parallel()
	r, _ := newRegistry(t, Config{})
	l := r.NewLease()
	defer l.Release()
	rl, err1 := l.RouterLimiter("e", nil, nil)
	rl2, err2 := l.RouterLimiter("e", &gatewayv1.RouterRateLimit{Strategy: "ip"}, nil)
	bl, err3 := l.BackendLimiter("b", &gatewayv1.BackendRateLimit{})
	br, err4 := l.Breaker("b", &gatewayv1.CircuitBreaker{Name: "x", LogStatusChange: true}, 0)
	c, err5 := l.Cache("b", nil)
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		t.Fatal(err)
	}
	if rl != nil || rl2 != nil || bl != nil || br != nil || c != nil || r.Len() != 0 {
		t.Errorf("disabled settings must give nil components and hold nothing (Len %d)", r.Len())
	}
}

func TestCacheIdentity(t *testing.T) {
	t.Parallel()
	r, _ := newRegistry(t, Config{})
	l := r.NewLease()
	defer l.Release()
	shared := &gatewayv1.HTTPCache{Shared: true, MaxSize: 1 << 20, MaxItems: 10}
	own := &gatewayv1.HTTPCache{}
	s1 := must[*httpcache.Cache](t)(l.Cache("GET /a backend[0]", shared))
	s2 := must[*httpcache.Cache](t)(l.Cache("GET /b backend[0]", shared))
	o1 := must[*httpcache.Cache](t)(l.Cache("GET /a backend[0]", own))
	o2 := must[*httpcache.Cache](t)(l.Cache("GET /b backend[0]", own))
	if s1 != s2 {
		t.Error("shared caches with equal settings: want one instance")
	}
	if o1 == o2 || o1 == s1 {
		t.Error("per-backend caches: want one instance per backend")
	}
}

func TestInvalidAndClusterSettings(t *testing.T) {
	t.Parallel()
	r, _ := newRegistry(t, Config{})
	l := r.NewLease()
	defer l.Release()
	if _, err := l.RouterLimiter("e", &gatewayv1.RouterRateLimit{ClientMaxRate: 1, Strategy: "cookie"}, nil); err == nil {
		t.Error("unknown strategy: want error")
	}
	if _, err := l.RouterLimiter("e", &gatewayv1.RouterRateLimit{MaxRate: 1, Cluster: true}, nil); err == nil ||
		!strings.Contains(err.Error(), `qos router limiter "e": cluster:`) {
		t.Errorf("cluster without redis: %v, want a cluster error", err)
	}
	// A cluster limiter against a closed port degrades to the local bucket.
	cl := &gatewayv1.ClusterRateLimit{RedisAddress: "127.0.0.1:1"}
	rl := must[*ratelimit.Router](t)(l.RouterLimiter("e", &gatewayv1.RouterRateLimit{MaxRate: 1, EveryMs: 3_600_000, Cluster: true}, cl))
	if !rl.Allow(context.Background(), nil).Allowed || rl.Allow(context.Background(), nil).Allowed {
		t.Error("unreachable redis: want the local bucket (1 allowed, then rejected)")
	}
	if got := r.Len(); got != 2 {
		t.Errorf("Len = %d, want 2 (store, limiter)", got)
	}
}

func TestBreakerLogging(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var seen []string
	r, _ := newRegistry(t, Config{
		Logger:               zerolog.New(&buf),
		OnBreakerStateChange: func(name string, from, to breaker.State) { seen = append(seen, name+" "+to.String()) },
	})
	l := r.NewLease()
	defer l.Release()
	loud := must[*breaker.Breaker](t)(l.Breaker("GET /a backend[0]", &gatewayv1.CircuitBreaker{Name: "cb-a", LogStatusChange: true, TimeoutMs: 1000}, time.Second))
	quiet := must[*breaker.Breaker](t)(l.Breaker("GET /b backend[0]", &gatewayv1.CircuitBreaker{TimeoutMs: 1000}, time.Second))
	for _, b := range []*breaker.Breaker{loud, quiet} {
		tk, _ := b.Allow()
		b.Done(tk, false)
	}
	if diff := cmp.Diff([]string{"cb-a open", "GET /b backend[0] open"}, seen); diff != "" {
		t.Errorf("OnBreakerStateChange (-want +got):\n%s", diff)
	}
	want := `{"level":"warn","breaker":"cb-a","from":"closed","to":"open","message":"circuit breaker state change"}` + "\n"
	if got := buf.String(); got != want {
		t.Errorf("log = %q, want %q (only log_status_change breakers log)", got, want)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	r, _ := newRegistry(t, Config{})
	l := r.NewLease()
	must[*ratelimit.Router](t)(l.RouterLimiter("e", &gatewayv1.RouterRateLimit{ClientMaxRate: 1}, nil))
	if err := errors.Join(r.Close(), r.Close()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.RouterLimiter("f", &gatewayv1.RouterRateLimit{ClientMaxRate: 1}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
	l.Release()
	if _, err := New(Config{Grace: -1}); err == nil {
		t.Error("negative grace: want error")
	}
}
