// Package qos keeps the traffic-protection state of the edge — rate-limit
// buckets, circuit breakers, HTTP caches and the cluster rate-limit store —
// alive across snapshot swaps (STYLE §5).
//
// plan.Build takes a Lease from the long-lived Registry and asks it for each
// endpoint's and backend's components by identity (endpoint or backend name)
// and settings. A component whose name and settings are unchanged since a
// previous plan is the same instance, so its counters and state carry over;
// changed settings get a fresh instance. When a plan is retired its Lease is
// released; a component no live lease holds is closed after a grace period
// (Config.Grace), unless a newer lease picks it up again in the meantime.
//
// The components live in sub-packages with transport-free APIs:
// edge/qos/ratelimit (token buckets), edge/qos/breaker, edge/qos/httpcache
// and edge/qos/clusterlimit (Redis). Package qos and its sub-packages must
// not import edge/proxy, edge/aggregate, edge/server, edge/watch, edge/plan,
// controlplane, or fasthttp.
package qos

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/apigw/gateway/edge/qos/breaker"
	"github.com/apigw/gateway/edge/qos/clock"
	"github.com/apigw/gateway/edge/qos/clusterlimit"
	"github.com/apigw/gateway/edge/qos/httpcache"
	"github.com/apigw/gateway/edge/qos/ratelimit"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// ErrClosed is returned by Lease methods after Registry.Close.
var ErrClosed = errors.New("qos registry: closed")

// DefaultGrace is how long an unheld component survives by default: long
// enough for requests still running on a retired plan to finish.
const DefaultGrace = 30 * time.Second

// SharedCacheName is the identity of `shared: true` HTTP caches: every
// backend with the same cache settings and shared set uses one Cache.
const SharedCacheName = "shared"

// Config configures a Registry. The zero value is valid.
type Config struct {
	// Grace is how long a component no lease holds stays open (and
	// reusable) before Close; 0 means DefaultGrace.
	Grace time.Duration
	// Logger receives breaker transitions (for breakers configured with
	// log_status_change, at warn level) and cluster store degradation.
	Logger zerolog.Logger
	// OnBreakerStateChange, when set, sees every breaker transition (for
	// metrics), whatever log_status_change says. It must not block.
	OnBreakerStateChange func(name string, from, to breaker.State)
	// OnClusterDegraded, when set, sees the cluster store fall back to local
	// limits (true) and recover (false). It must not block.
	OnClusterDegraded func(addr string, degraded bool)
	// MaxClients bounds the per-client buckets of each router limiter; 0
	// means ratelimit.DefaultMaxClients.
	MaxClients int
	// Clock is handed to every component; defaults to clock.System().
	Clock clock.Clock
}

// Registry owns every component across plans. Safe for concurrent use. It
// runs one goroutine (the grace sweeper), stopped by Close.
type Registry struct {
	cfg   Config
	grace int64

	mu sync.Mutex
	// mu guards the fields below.
	entries map[string]*entry
	closed  bool

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type closer interface{ Close() error }

type entry struct {
	key       string
	value     closer
	refs      int   // leases holding it
	idleSince int64 // clock.Nanotime when refs dropped to 0
}

// New returns an empty Registry and starts its sweeper.
func New(cfg Config) (*Registry, error) {
	if cfg.Grace < 0 {
		return nil, fmt.Errorf("qos config: grace %v: must not be negative", cfg.Grace)
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System()
	}
	r := &Registry{
		cfg:     cfg,
		grace:   int64(cfg.Grace),
		entries: map[string]*entry{},
		stop:    make(chan struct{}),
	}
	r.wg.Add(1)
	go r.sweepLoop(max(cfg.Grace/4, 100*time.Millisecond))
	return r, nil
}

func (r *Registry) sweepLoop(period time.Duration) {
	defer r.wg.Done()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.Sweep()
		}
	}
}

// Sweep closes every component that no lease has held for the grace period
// and returns how many it closed. The sweeper calls it periodically.
func (r *Registry) Sweep() int {
	now := r.cfg.Clock.Nanotime()
	var doomed []closer
	r.mu.Lock()
	for k, e := range r.entries {
		if e.refs == 0 && now-e.idleSince >= r.grace {
			delete(r.entries, k)
			doomed = append(doomed, e.value)
		}
	}
	r.mu.Unlock()
	for _, c := range doomed {
		c.Close()
	}
	return len(doomed)
}

// Len returns the number of components held (in use or in grace).
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// Close stops the sweeper and closes every component, held or not. Lease
// methods fail with ErrClosed afterwards. Idempotent.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		close(r.stop)
		r.wg.Wait()
		r.mu.Lock()
		r.closed = true
		all := r.entries
		r.entries = map[string]*entry{}
		r.mu.Unlock()
		for _, e := range all {
			e.value.Close()
		}
	})
	return nil
}

// Lease is the set of components one plan uses. Get one per plan.Build with
// NewLease and Release it when the plan is retired (or when the build
// fails). Safe for concurrent use.
type Lease struct {
	r *Registry
	// r.mu guards the fields below.
	held     map[*entry]struct{}
	released bool
}

// NewLease starts a lease for one plan build.
func (r *Registry) NewLease() *Lease {
	return &Lease{r: r, held: map[*entry]struct{}{}}
}

// Release gives the lease's components back: those no other lease holds
// close after the grace period. Idempotent.
func (l *Lease) Release() {
	r := l.r
	now := r.cfg.Clock.Nanotime()
	r.mu.Lock()
	defer r.mu.Unlock()
	if l.released {
		return
	}
	l.released = true
	for e := range l.held {
		e.refs--
		if e.refs == 0 {
			e.idleSince = now
		}
	}
	l.held = nil
}

// get returns the component under key, building it when missing, and makes
// the lease hold it.
func (l *Lease) get(key string, build func() (closer, error)) (closer, error) {
	r := l.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if l.released {
		return nil, errors.New("qos lease: released")
	}
	e := r.entries[key]
	if e == nil {
		v, err := build()
		if err != nil {
			return nil, err
		}
		e = &entry{key: key, value: v}
		r.entries[key] = e
	}
	if _, ok := l.held[e]; !ok {
		l.held[e] = struct{}{}
		e.refs++
	}
	return e.value, nil
}

// identity is kind, name and the exact settings (deterministic proto bytes):
// equal identity means "same settings", with no hash collisions to reason
// about.
func identity(kind, name string, settings ...proto.Message) (string, error) {
	b := make([]byte, 0, 64)
	b = append(b, kind...)
	b = append(b, 0)
	b = append(b, name...)
	for _, m := range settings {
		b = append(b, 0)
		if m == nil {
			continue
		}
		var err error
		if b, err = (proto.MarshalOptions{Deterministic: true}).MarshalAppend(b, m); err != nil {
			return "", fmt.Errorf("qos %s %q: marshal settings: %w", kind, name, err)
		}
	}
	return string(b), nil
}

// RouterLimiter returns the limiter of the endpoint called name
// (`qos/ratelimit/router`), or nil when rl sets no rate (nil allows
// everything). When rl.cluster is set, cluster (the service's
// cluster_rate_limit) must name a Redis: the limiter then checks Redis
// first and degrades to its local buckets.
func (l *Lease) RouterLimiter(name string, rl *gatewayv1.RouterRateLimit, cluster *gatewayv1.ClusterRateLimit) (*ratelimit.Router, error) {
	cfg, ok := ratelimit.RouterConfigFromProto(rl)
	if !ok {
		return nil, nil
	}
	cfg.Clock, cfg.MaxClients = l.r.cfg.Clock, l.r.cfg.MaxClients
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("qos router limiter %q: %w", name, err)
	}
	var store *clusterlimit.Store
	if rl.GetCluster() {
		var err error
		if store, err = l.clusterStore(cluster); err != nil {
			return nil, fmt.Errorf("qos router limiter %q: %w", name, err)
		}
	} else {
		cluster = nil // not part of this limiter's identity
	}
	key, err := identity("router", name, rl, cluster)
	if err != nil {
		return nil, err
	}
	v, err := l.get(key, func() (closer, error) {
		if store != nil {
			g, c := cfg.Rates()
			cfg.Remote = store.Limiter(name, g, c)
		}
		return ratelimit.NewRouter(cfg)
	})
	if err != nil {
		return nil, fmt.Errorf("qos router limiter %q: %w", name, err)
	}
	return v.(*ratelimit.Router), nil
}

func (l *Lease) clusterStore(pb *gatewayv1.ClusterRateLimit) (*clusterlimit.Store, error) {
	cfg, ok := clusterlimit.ConfigFromProto(pb)
	if !ok {
		return nil, errors.New("cluster: service cluster_rate_limit.redis_address is not set")
	}
	key, err := identity("cluster", "", pb)
	if err != nil {
		return nil, err
	}
	r := l.r
	cfg.Clock = r.cfg.Clock
	cfg.OnDegraded = func(addr string, degraded bool) {
		if degraded {
			r.cfg.Logger.Warn().Str("redis", addr).Msg("cluster rate limit degraded to local limits")
		} else {
			r.cfg.Logger.Info().Str("redis", addr).Msg("cluster rate limit recovered")
		}
		if r.cfg.OnClusterDegraded != nil {
			r.cfg.OnClusterDegraded(addr, degraded)
		}
	}
	v, err := l.get(key, func() (closer, error) { return clusterlimit.New(cfg) })
	if err != nil {
		return nil, err
	}
	return v.(*clusterlimit.Store), nil
}

// BackendLimiter returns the token bucket of the backend called name
// (`qos/ratelimit/proxy`, every not clamped), or nil when rl sets no rate.
func (l *Lease) BackendLimiter(name string, rl *gatewayv1.BackendRateLimit) (*ratelimit.Bucket, error) {
	cfg, ok := ratelimit.BackendConfigFromProto(rl)
	if !ok {
		return nil, nil
	}
	cfg.Clock = l.r.cfg.Clock
	key, err := identity("backend", name, rl)
	if err != nil {
		return nil, err
	}
	v, err := l.get(key, func() (closer, error) {
		b, err := ratelimit.NewBucket(cfg)
		return nopCloser[*ratelimit.Bucket]{b}, err
	})
	if err != nil {
		return nil, fmt.Errorf("qos backend limiter %q: %w", name, err)
	}
	return v.(nopCloser[*ratelimit.Bucket]).v, nil
}

// Breaker returns the circuit breaker of the backend called name
// (`qos/circuit-breaker`), or nil when cb is unset or all zero (KrakenD:
// disabled; nil admits everything). callTimeout is the backend call timeout,
// used to expire a half-open probe that never reports (0: the breaker
// default). Transitions are logged at warn level when cb.log_status_change
// is set, and always passed to Config.OnBreakerStateChange.
func (l *Lease) Breaker(name string, cb *gatewayv1.CircuitBreaker, callTimeout time.Duration) (*breaker.Breaker, error) {
	cfg, ok := breaker.ConfigFromProto(name, cb)
	if !ok {
		return nil, nil
	}
	r := l.r
	cfg.Clock, cfg.ProbeTimeout = r.cfg.Clock, max(callTimeout, 0)
	logIt := cb.GetLogStatusChange()
	cfg.OnStateChange = func(name string, from, to breaker.State) {
		if logIt {
			r.cfg.Logger.Warn().Str("breaker", name).Str("from", from.String()).Str("to", to.String()).Msg("circuit breaker state change")
		}
		if r.cfg.OnBreakerStateChange != nil {
			r.cfg.OnBreakerStateChange(name, from, to)
		}
	}
	key, err := identity("breaker", name+"\x00"+callTimeout.String(), cb)
	if err != nil {
		return nil, err
	}
	v, err := l.get(key, func() (closer, error) {
		b, err := breaker.New(cfg)
		return nopCloser[*breaker.Breaker]{b}, err
	})
	if err != nil {
		return nil, fmt.Errorf("qos breaker %q: %w", name, err)
	}
	return v.(nopCloser[*breaker.Breaker]).v, nil
}

// Cache returns the HTTP cache of the backend called name
// (`qos/http-cache`), or nil when hc is unset (nil never hits). With
// hc.shared, every backend with equal settings gets the same Cache.
func (l *Lease) Cache(name string, hc *gatewayv1.HTTPCache) (*httpcache.Cache, error) {
	cfg, ok := httpcache.ConfigFromProto(hc)
	if !ok {
		return nil, nil
	}
	cfg.Clock = l.r.cfg.Clock
	if hc.GetShared() {
		name = SharedCacheName
	}
	key, err := identity("cache", name, hc)
	if err != nil {
		return nil, err
	}
	v, err := l.get(key, func() (closer, error) { return httpcache.New(cfg) })
	if err != nil {
		return nil, fmt.Errorf("qos http cache %q: %w", name, err)
	}
	return v.(*httpcache.Cache), nil
}

// nopCloser wraps components that hold nothing to release.
type nopCloser[T any] struct{ v T }

func (nopCloser[T]) Close() error { return nil }
