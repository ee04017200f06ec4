package ratelimit

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/apigw/gateway/edge/qos/clock"
)

// Strategy says where the client identity of a router limit comes from. The
// limiter does not read requests: the caller extracts the key per Strategy
// and Key and passes it to Router.Allow.
type Strategy string

const (
	// StrategyIP: the client IP (honouring the listener's trusted proxies).
	// With Key set, the first IP in that header, falling back to the client
	// IP when the header is absent (KrakenD).
	StrategyIP Strategy = "ip"
	// StrategyHeader: the value of header Key.
	StrategyHeader Strategy = "header"
	// StrategyParam: the value of endpoint path parameter Key.
	StrategyParam Strategy = "param"
)

// Remote is a cluster-wide store for a router limit (see package
// edge/qos/clusterlimit). Allow returns an error when the store cannot answer
// in time; the Router then decides locally. Implementations must be safe for
// concurrent use and not retain clientKey.
type Remote interface {
	Allow(ctx context.Context, clientKey []byte) (Decision, error)
}

// RouterConfig configures an endpoint limit (`qos/ratelimit/router`). Build
// one with RouterConfigFromProto. At least one of MaxRate and ClientMaxRate
// must be > 0.
type RouterConfig struct {
	// MaxRate (per Every) and Capacity define the endpoint-wide bucket
	// (rejections answer 503). MaxRate 0 disables it.
	MaxRate  float64
	Capacity uint64
	// ClientMaxRate (per Every) and ClientCapacity define each client's
	// bucket (rejections answer 429). ClientMaxRate 0 disables them.
	// ClientCapacity 0 means ClientMaxRate (min 1): KrakenD's "1 when
	// max_rate is 0" quirk is fixed.
	ClientMaxRate  float64
	ClientCapacity uint64
	// Strategy and Key tell the caller how to identify clients. Empty
	// Strategy with ClientMaxRate > 0 means StrategyIP (KrakenD disables the
	// client limit instead; we fix that).
	Strategy Strategy
	Key      string
	// Every is the rate period: 0 means one second and values under one
	// second are clamped to one second (KrakenD router semantics).
	Every time.Duration
	// NumShards, CleanupPeriod and MaxClients size the client table (see
	// ClientConfig).
	NumShards     int
	CleanupPeriod time.Duration
	MaxClients    int
	// Remote, when set, is consulted first; the local buckets are the
	// fallback while it is unavailable.
	Remote Remote
	// Clock defaults to clock.System().
	Clock clock.Clock
}

// Validate reports a configuration that cannot build a Router.
func (c RouterConfig) Validate() error {
	global, client := c.Rates()
	if !global.Enabled() && !client.Enabled() {
		return fmt.Errorf("ratelimit config: max_rate %v, client_max_rate %v: one must be a positive finite number", c.MaxRate, c.ClientMaxRate)
	}
	switch c.Strategy {
	case "", StrategyIP:
	case StrategyHeader, StrategyParam:
		if client.Enabled() && c.Key == "" {
			return fmt.Errorf("ratelimit config: strategy %q: key is required", c.Strategy)
		}
	default:
		return fmt.Errorf("ratelimit config: strategy %q: must be ip, header or param", c.Strategy)
	}
	if c.Every < 0 {
		return fmt.Errorf("ratelimit config: every %v: must not be negative", c.Every)
	}
	if c.NumShards < 0 || c.MaxClients < 0 || c.CleanupPeriod < 0 {
		return fmt.Errorf("ratelimit config: num_shards %d, max_clients %d, cleanup_period %v: must not be negative", c.NumShards, c.MaxClients, c.CleanupPeriod)
	}
	return nil
}

// RouterEvery applies KrakenD's router normalisation of `every`: 0 means one
// second and anything shorter than a second is clamped to one second.
func RouterEvery(every time.Duration) time.Duration { return max(every, time.Second) }

// Rates returns the normalised global and per-client rates (a zero Rate is
// disabled). A Remote implementation uses them to mirror the local buckets.
func (c RouterConfig) Rates() (global, client Rate) {
	every := RouterEvery(c.Every)
	return NewRate(c.MaxRate, every, c.Capacity), NewRate(c.ClientMaxRate, every, c.ClientCapacity)
}

// Router is an endpoint limit: optional per-client buckets checked first
// (429), then an optional endpoint-wide bucket (503), optionally backed by a
// cluster-wide Remote. Safe for concurrent use; a nil *Router allows
// everything. Close stops the client sweeper.
type Router struct {
	global   *Bucket
	clients  *Clients
	remote   Remote
	clock    clock.Clock
	strategy Strategy
	key      string
}

// NewRouter builds the buckets (full) and starts the client sweeper when
// client limits are enabled.
func NewRouter(cfg RouterConfig) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System()
	}
	global, client := cfg.Rates()
	r := &Router{remote: cfg.Remote, clock: cfg.Clock, key: cfg.Key, strategy: cfg.Strategy}
	if global.Enabled() {
		r.global = newBucket(global, cfg.Clock)
	}
	if client.Enabled() {
		if r.strategy == "" {
			r.strategy = StrategyIP
		}
		r.clients = newClients(client, ClientConfig{
			NumShards:     cfg.NumShards,
			CleanupPeriod: cfg.CleanupPeriod,
			MaxClients:    cfg.MaxClients,
			Clock:         cfg.Clock,
		})
	} else {
		r.strategy, r.key = "", ""
	}
	return r, nil
}

// Strategy returns how the caller must identify clients; "" when there is
// no per-client limit (then Allow ignores its key and nil is fine).
func (r *Router) Strategy() Strategy {
	if r == nil {
		return ""
	}
	return r.strategy
}

// Key returns the header or parameter name of the Strategy.
func (r *Router) Key() string {
	if r == nil {
		return ""
	}
	return r.key
}

// Allow checks one request from the client identified by clientKey (not
// retained). Order: an empty clientKey is rejected when client limits are
// on (429, as KrakenD); then the Remote if set and reachable; otherwise the
// local client bucket, then the local global bucket. When the global bucket
// rejects, the client token is refunded.
//
// The reported bucket (Limit/Remaining/Reset) is the client's when client
// limits are on, else the global one; on a rejection it is the one that
// rejected. ctx bounds the Remote call only; without a Remote, Allow does
// no I/O and does not allocate for a known client.
func (r *Router) Allow(ctx context.Context, clientKey []byte) Decision {
	if r == nil {
		return Decision{Allowed: true}
	}
	if r.clients != nil && len(clientKey) == 0 {
		return Decision{RejectedBy: ScopeClient}
	}
	if r.remote != nil {
		if d, err := r.remote.Allow(ctx, clientKey); err == nil {
			return d
		}
	}
	return r.AllowLocal(clientKey)
}

// AllowLocal is Allow without the Remote: the node-local buckets only.
func (r *Router) AllowLocal(clientKey []byte) Decision {
	if r == nil {
		return Decision{Allowed: true}
	}
	now := r.clock.Nanotime()
	var cd Decision
	var buf [1 + sha256.Size]byte
	if r.clients != nil {
		if len(clientKey) == 0 {
			return Decision{RejectedBy: ScopeClient}
		}
		clientKey = normKey(clientKey, &buf)
		cd = r.clients.allowAt(clientKey, now)
		if !cd.Allowed {
			return cd
		}
	}
	if r.global != nil {
		gd := r.global.allowAt(now)
		if !gd.Allowed {
			if r.clients != nil {
				r.clients.refund(clientKey)
			}
			return gd
		}
		if r.clients == nil {
			return gd
		}
	}
	return cd
}

// Clients returns the per-client table (nil without client limits), for
// metrics (Len) and tests.
func (r *Router) Clients() *Clients {
	if r == nil {
		return nil
	}
	return r.clients
}

// Close stops the client sweeper. Idempotent; Allow keeps working.
func (r *Router) Close() error {
	if r == nil {
		return nil
	}
	return r.clients.Close()
}
