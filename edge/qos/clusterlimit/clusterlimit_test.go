package clusterlimit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/apigw/gateway/edge/qos/clock"
	"github.com/apigw/gateway/edge/qos/ratelimit"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/test/leak"
)

func TestMain(m *testing.M) {
	SetRedisLogger(zerolog.Nop()) // dial errors are expected here
	leak.VerifyTestMain(m)
}

// redisServer is a real redis-server on a free loopback port, without
// persistence.
type redisServer struct {
	t    testing.TB
	bin  string
	port int
	cmd  *exec.Cmd
}

func startRedis(t testing.TB) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed (Debian: apt-get install -y redis-server); skipping the cluster rate limit tests")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r := &redisServer{t: t, bin: bin, port: port}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

func (r *redisServer) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", r.addr(), 100*time.Millisecond)
		if err == nil {
			fmt.Fprint(c, "PING\r\n")
			buf := make([]byte, 7)
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if string(buf[:n]) == "+PONG\r\n" {
				return
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on %s not ready: %v", r.addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the server and waits for it; a no-op when it is not running.
func (r *redisServer) stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGCONT) // in case a test paused it
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

type edge struct {
	store  *Store
	router *ratelimit.Router
}

// newEdge builds what one gateway node has: a Store and a Router whose
// Remote is that Store's limiter for the endpoint.
func newEdge(t *testing.T, addr string, clk clock.Clock, rc ratelimit.RouterConfig, onDegraded func(string, bool)) *edge {
	t.Helper()
	s, err := New(Config{Addr: addr, KeyPrefix: "test:" + t.Name() + ":", Clock: clk, OnDegraded: onDegraded})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	rc.Clock = clk
	g, c := rc.Rates()
	rc.Remote = s.Limiter("GET /items", g, c)
	r, err := ratelimit.NewRouter(rc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &edge{store: s, router: r}
}

func newClock() *clock.Fake { return clock.NewFake(time.Unix(1_700_000_000, 0)) }

// TestSharedBudget: two edges sharing Redis allow together what one allows.
func TestSharedBudget(t *testing.T) {
	rs := startRedis(t)
	rc := ratelimit.RouterConfig{MaxRate: 8, ClientMaxRate: 5, Every: time.Hour}
	clk := newClock()
	edges := []*edge{newEdge(t, rs.addr(), clk, rc, nil), newEdge(t, rs.addr(), clk, rc, nil)}
	ctx := context.Background()
	count := map[string]int{}
	for i := range 10 {
		e := edges[i%2]
		d := e.router.Allow(ctx, []byte("client-a"))
		if d.Allowed {
			count["a allowed"]++
			if d.Limit != 5 || d.Remaining != uint64(4-i) {
				t.Errorf("a#%d = %+v, want Limit 5, Remaining %d", i, d, 4-i)
			}
		} else {
			count[fmt.Sprint("a ", d.Status())]++
			if d.RetryAfter < 11*time.Minute || d.RetryAfter > 12*time.Minute {
				t.Errorf("a#%d RetryAfter = %v, want ~12m (one client token per 12m)", i, d.RetryAfter)
			}
		}
	}
	for i := range 10 {
		d := edges[i%2].router.Allow(ctx, []byte("client-b"))
		if d.Allowed {
			count["b allowed"]++
		} else {
			count[fmt.Sprint("b ", d.Status())]++
		}
	}
	want := map[string]int{"a allowed": 5, "a 429": 5, "b allowed": 3, "b 503": 7}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("decisions = %v, want %v (client 5, global 8, across both edges)", count, want)
	}
	for _, e := range edges {
		if st := e.store.Stats(); st.Calls != 10 || st.Failures != 0 || e.store.Degraded() {
			t.Errorf("stats = %+v degraded=%v, want 10 calls, no failures", st, e.store.Degraded())
		}
	}
}

// TestSettingsChangeStartsFresh: a new rate for the same endpoint uses
// other keys, as the local registry starts fresh buckets.
func TestSettingsChangeStartsFresh(t *testing.T) {
	rs := startRedis(t)
	clk := newClock()
	old := newEdge(t, rs.addr(), clk, ratelimit.RouterConfig{ClientMaxRate: 1, Every: time.Hour}, nil)
	ctx := context.Background()
	if !old.router.Allow(ctx, []byte("c")).Allowed || old.router.Allow(ctx, []byte("c")).Allowed {
		t.Fatal("old settings: want one allowed, then rejected")
	}
	changed := newEdge(t, rs.addr(), clk, ratelimit.RouterConfig{ClientMaxRate: 2, Every: time.Hour}, nil)
	if !changed.router.Allow(ctx, []byte("c")).Allowed {
		t.Fatal("changed settings: want a fresh bucket")
	}
}

type degradations struct {
	mu sync.Mutex
	ev []bool
}

func (d *degradations) record(_ string, degraded bool) {
	d.mu.Lock()
	d.ev = append(d.ev, degraded)
	d.mu.Unlock()
}

func (d *degradations) get() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fmt.Sprint(d.ev)
}

// TestDegradeAndRecover kills Redis mid-test: checks fall back to the local
// buckets, stop touching the network once degraded, and go back to Redis
// when it returns.
func TestDegradeAndRecover(t *testing.T) {
	rs := startRedis(t)
	clk := newClock()
	var events degradations
	e := newEdge(t, rs.addr(), clk, ratelimit.RouterConfig{ClientMaxRate: 3, Every: time.Hour}, events.record)
	ctx := context.Background()
	// Redis budget for "a": 3. Spend 2 of them.
	for range 2 {
		if !e.router.Allow(ctx, []byte("a")).Allowed {
			t.Fatal("healthy: want allowed")
		}
	}
	rs.stop()

	// The first failures are answered locally (local bucket "a" is full: 3).
	for i := range DefaultFailureThreshold {
		if d := e.router.Allow(ctx, []byte("a")); !d.Allowed {
			t.Fatalf("failure %d: %+v, want the local bucket to allow", i, d)
		}
	}
	if !e.store.Degraded() {
		t.Fatalf("after %d failures: not degraded (stats %+v)", DefaultFailureThreshold, e.store.Stats())
	}
	// Degraded: no network, local limits enforced.
	calls := e.store.Stats().Calls
	startT := time.Now()
	allowed := 0
	for range 1000 {
		if e.router.Allow(ctx, []byte("a")).Allowed {
			allowed++
		}
	}
	elapsed := time.Since(startT)
	if allowed != 1 {
		t.Errorf("degraded: %d of 1000 allowed, want 1 (local burst 3, 2 used)", allowed)
	}
	if got := e.store.Stats().Calls; got != calls {
		t.Errorf("degraded: %d Redis calls made, want none", got-calls)
	}
	if elapsed > 200*time.Millisecond {
		t.Errorf("degraded: 1000 checks took %v, want no per-request cost", elapsed)
	}
	// Still down after the retry interval: one probe, fails, degraded again.
	clk.Advance(DefaultRetryInterval)
	e.router.Allow(ctx, []byte("b"))
	if !e.store.Degraded() || e.store.Stats().Calls != calls+1 {
		t.Fatalf("probe while down: degraded=%v calls=%d, want degraded after exactly one probe", e.store.Degraded(), e.store.Stats().Calls-calls)
	}

	rs.start()
	// go-redis may answer from its dial-error cache for up to a second
	// after a restart: probe until the Store recovers.
	deadline := time.Now().Add(10 * time.Second)
	for e.store.Degraded() {
		if time.Now().After(deadline) {
			t.Fatalf("not recovered 10s after Redis came back (stats %+v)", e.store.Stats())
		}
		clk.Advance(DefaultRetryInterval)
		e.router.Allow(ctx, []byte("probe"))
		time.Sleep(50 * time.Millisecond)
	}
	// Back on Redis: the restarted server has no state, so "a" has 3 again.
	for i := range 3 {
		if !e.router.Allow(ctx, []byte("a")).Allowed {
			t.Fatalf("recovered #%d: want allowed by the fresh Redis bucket", i)
		}
	}
	if e.router.Allow(ctx, []byte("a")).Allowed {
		t.Fatal("recovered: 4th request allowed, want Redis to enforce the burst")
	}
	if got := events.get(); got != "[true false]" {
		t.Errorf("OnDegraded events = %s, want [true false]", got)
	}
}

// TestSlowRedisTimesOut pauses Redis (SIGSTOP): each check costs at most
// the call timeout, then the Store degrades.
func TestSlowRedisTimesOut(t *testing.T) {
	rs := startRedis(t)
	clk := newClock()
	e := newEdge(t, rs.addr(), clk, ratelimit.RouterConfig{MaxRate: 100, Every: time.Second}, nil)
	ctx := context.Background()
	if !e.router.Allow(ctx, nil).Allowed {
		t.Fatal("healthy: want allowed")
	}
	if err := rs.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for i := range DefaultFailureThreshold {
		startT := time.Now()
		if d := e.router.Allow(ctx, nil); !d.Allowed {
			t.Fatalf("slow #%d: %+v, want local allow", i, d)
		}
		if took := time.Since(startT); took > DefaultCallTimeout+150*time.Millisecond {
			t.Errorf("slow #%d took %v, want about the %v call timeout", i, took, DefaultCallTimeout)
		}
	}
	if !e.store.Degraded() {
		t.Fatal("not degraded after timeouts")
	}
	if err := rs.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.store.Degraded() {
		if time.Now().After(deadline) {
			t.Fatalf("not recovered after SIGCONT (stats %+v)", e.store.Stats())
		}
		clk.Advance(DefaultRetryInterval)
		e.router.Allow(ctx, nil)
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCancelledCallerIsNotARedisFailure(t *testing.T) {
	rs := startRedis(t)
	e := newEdge(t, rs.addr(), newClock(), ratelimit.RouterConfig{MaxRate: 100}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	lim := e.router // Allow with a cancelled ctx falls back locally
	for range 5 {
		if !lim.Allow(ctx, nil).Allowed {
			t.Fatal("want local allow")
		}
	}
	if e.store.Degraded() || e.store.Stats().Failures != 0 {
		t.Errorf("cancelled callers degraded the store: %+v", e.store.Stats())
	}
}

func TestConfig(t *testing.T) {
	if _, ok := ConfigFromProto(nil); ok {
		t.Error("nil: ok = true")
	}
	cfg, ok := ConfigFromProto(&gatewayv1.ClusterRateLimit{RedisAddress: "127.0.0.1:6379", KeyPrefix: "p:", DialTimeoutMs: 20})
	if !ok || cfg.Addr != "127.0.0.1:6379" || cfg.KeyPrefix != "p:" || cfg.DialTimeout != 20*time.Millisecond {
		t.Errorf("ConfigFromProto = %+v, %v", cfg, ok)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without Addr: want error")
	}
	s, err := New(Config{Addr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Limiter("x", ratelimit.NewRate(1, time.Second, 0), ratelimit.Rate{}).Allow(context.Background(), nil)
	if err == nil || errors.Is(err, ErrUnavailable) {
		t.Errorf("first call to a closed port: %v, want a connection error", err)
	}
	if err := errors.Join(s.Close(), s.Close()); err != nil {
		t.Errorf("Close twice: %v", err)
	}
}
