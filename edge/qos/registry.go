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
// The registry and its leases are an edge/lease Registry and Lease, the
// edge's one mechanism for state that survives a swap.
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
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/apigw/gateway/edge/lease"
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

// Registry owns every component across plans: one lease.Registry (the
// edge's registry for state that survives a swap) keyed by identity. Safe
// for concurrent use. It runs one goroutine (the registry's grace sweeper),
// stopped by Close.
type Registry struct {
	cfg Config
	reg *lease.Registry[identity, closer]
}

type closer interface{ Close() error }

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
	return &Registry{
		cfg: cfg,
		reg: lease.New[identity](cfg.Grace, func(c closer) { c.Close() }, lease.WithClock(cfg.Clock.Nanotime)),
	}, nil
}

// Sweep closes every component that no lease has held for the grace period
// and returns how many it closed. The sweeper calls it periodically.
func (r *Registry) Sweep() int { return r.reg.Sweep() }

// Len returns the number of components held (in use or in grace).
func (r *Registry) Len() int { return r.reg.Len() }

// Close stops the sweeper and closes every component, held or not. Lease
// methods fail with ErrClosed afterwards. Idempotent.
func (r *Registry) Close() error {
	r.reg.Close()
	return nil
}

// Lease is the set of components one plan uses. Get one per plan.Build with
// NewLease and Release it when the plan is retired (or when the build
// fails). Safe for concurrent use.
type Lease struct {
	r *Registry
	l *lease.Lease[identity, closer]
}

// NewLease starts a lease for one plan build.
func (r *Registry) NewLease() *Lease { return &Lease{r: r, l: r.reg.NewLease()} }

// Release gives the lease's components back: those no other lease holds
// close after the grace period. Idempotent.
func (l *Lease) Release() { l.l.Release() }

// get returns the component under id, building it when missing, and makes
// the lease hold it.
func (l *Lease) get(id identity, build func() (closer, error)) (closer, error) {
	v, err := l.l.Acquire(id, build)
	switch {
	case errors.Is(err, lease.ErrClosed):
		return nil, ErrClosed
	case errors.Is(err, lease.ErrReleased):
		return nil, errors.New("qos lease: released")
	}
	return v, err
}

// identity is a component's key in the registry: its kind, its name, the
// edge-side input that shapes it (a breaker's call timeout) and the exact
// settings it is compiled from (the deterministic encoding of every
// settings message, so every field, one added later too, is part of it).
// Equal identity means "same settings", with no hash collisions to reason
// about.
type identity struct {
	kind        string
	name        string
	callTimeout time.Duration
	settings    string
}

func identityOf(kind, name string, settings ...proto.Message) (identity, error) {
	b := make([]byte, 0, 64)
	for _, m := range settings {
		var mb []byte
		if m != nil {
			var err error
			if mb, err = (proto.MarshalOptions{Deterministic: true}).Marshal(m); err != nil {
				return identity{}, fmt.Errorf("qos %s %q: marshal settings: %w", kind, name, err)
			}
		}
		// Length-prefixed, so the concatenation is injective.
		b = protowire.AppendVarint(b, uint64(len(mb)))
		b = append(b, mb...)
	}
	return identity{kind: kind, name: name, settings: string(b)}, nil
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
	id, err := identityOf("router", name, rl, cluster)
	if err != nil {
		return nil, err
	}
	v, err := l.get(id, func() (closer, error) {
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
	id, err := identityOf("cluster", "", pb)
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
	v, err := l.get(id, func() (closer, error) { return clusterlimit.New(cfg) })
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
	id, err := identityOf("backend", name, rl)
	if err != nil {
		return nil, err
	}
	v, err := l.get(id, func() (closer, error) {
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
	id, err := identityOf("breaker", name, cb)
	if err != nil {
		return nil, err
	}
	id.callTimeout = callTimeout
	v, err := l.get(id, func() (closer, error) {
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
	id, err := identityOf("cache", name, hc)
	if err != nil {
		return nil, err
	}
	v, err := l.get(id, func() (closer, error) { return httpcache.New(cfg) })
	if err != nil {
		return nil, fmt.Errorf("qos http cache %q: %w", name, err)
	}
	return v.(*httpcache.Cache), nil
}

// nopCloser wraps components that hold nothing to release.
type nopCloser[T any] struct{ v T }

func (nopCloser[T]) Close() error { return nil }
