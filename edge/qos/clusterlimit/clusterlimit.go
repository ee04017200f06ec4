// Package clusterlimit shares router rate limits across edges through Redis
// (our `qos/ratelimit/cluster`, behind RouterRateLimit.cluster): each check
// is one atomic Lua script (GCRA on the Redis server's clock) over the
// client's and the endpoint's buckets, so N edges together allow what one
// edge would.
//
// Redis is on the request path, so it is guarded: every call has a strict
// timeout (CallTimeout, 50 ms by default), and a small circuit breaker
// (edge/qos/breaker) degrades the Store after FailureThreshold consecutive
// failures. While degraded, Limiter.Allow returns ErrUnavailable at once,
// without touching the network, and ratelimit.Router falls back to its
// node-local buckets; after RetryInterval one request probes Redis, and the
// first success ends the degradation. OnDegraded reports both transitions.
// While degraded each edge enforces the full limit on its own, so the
// cluster as a whole may allow up to N times the limit.
//
// Keys: <prefix>{<16 hex digits>}:c:<client> and ...:g, where the digits
// hash the endpoint name and its normalised rates, so a settings change
// starts fresh buckets (as the local registry does) and both keys of a check
// share one Redis Cluster hash slot. Keys expire once their bucket would be
// full again. Redis >= 5 (scripts replicated by effects, TIME allowed).
//
// A check allocates (go-redis builds commands and replies); it is not on the
// zero-allocation list. This package must not import edge/proxy,
// edge/aggregate, edge/server, edge/watch, edge/plan, controlplane, or
// fasthttp.
package clusterlimit

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/rs/zerolog"

	"github.com/apigw/gateway/edge/qos/breaker"
	"github.com/apigw/gateway/edge/qos/clock"
	"github.com/apigw/gateway/edge/qos/ratelimit"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// ErrUnavailable is returned while the Store is degraded (no Redis call is
// made). ratelimit.Router then decides locally.
var ErrUnavailable = errors.New("cluster rate limit: redis unavailable")

// Defaults of Config.
const (
	DefaultKeyPrefix        = "gw:rl:"
	DefaultCallTimeout      = 50 * time.Millisecond
	DefaultFailureThreshold = 2
	DefaultRetryInterval    = time.Second
)

// Config configures a Store. Addr is required.
type Config struct {
	// Addr is the Redis "host:port".
	Addr string
	// KeyPrefix starts every key; "" means DefaultKeyPrefix.
	KeyPrefix string
	// DialTimeout bounds connecting; 0 means CallTimeout. A dial happens
	// inside a call, so CallTimeout bounds it too.
	DialTimeout time.Duration
	// CallTimeout bounds one check, pool wait and dial included; 0 means
	// DefaultCallTimeout.
	CallTimeout time.Duration
	// FailureThreshold consecutive failed checks degrade the Store; 0 means
	// DefaultFailureThreshold.
	FailureThreshold uint32
	// RetryInterval is how long the Store stays degraded before one request
	// probes Redis again; 0 means DefaultRetryInterval.
	RetryInterval time.Duration
	// PoolSize bounds connections; 0 means go-redis' default (10 per CPU).
	PoolSize int
	// OnDegraded, when set, is called (outside locks, must not block) when
	// the Store starts (true) and stops (false) falling back to local limits.
	OnDegraded func(addr string, degraded bool)
	// Clock drives the degradation breaker; defaults to clock.System().
	// Bucket time is the Redis server's clock.
	Clock clock.Clock
}

// Validate reports a configuration that cannot build a Store.
func (c Config) Validate() error {
	if c.Addr == "" {
		return errors.New("cluster rate limit config: redis_address: required")
	}
	if c.DialTimeout < 0 || c.CallTimeout < 0 || c.RetryInterval < 0 || c.PoolSize < 0 {
		return fmt.Errorf("cluster rate limit config: dial_timeout %v, call_timeout %v, retry_interval %v, pool_size %d: must not be negative",
			c.DialTimeout, c.CallTimeout, c.RetryInterval, c.PoolSize)
	}
	return nil
}

// ConfigFromProto converts the service's cluster_rate_limit. ok is false
// when pb is nil or has no redis_address.
func ConfigFromProto(pb *gatewayv1.ClusterRateLimit) (cfg Config, ok bool) {
	if pb.GetRedisAddress() == "" {
		return Config{}, false
	}
	return Config{
		Addr:        pb.GetRedisAddress(),
		KeyPrefix:   pb.GetKeyPrefix(),
		DialTimeout: time.Duration(pb.GetDialTimeoutMs()) * time.Millisecond,
	}, true
}

// Stats are counters since New.
type Stats struct {
	// Calls is the number of scripts sent to Redis, Failures those that
	// failed or timed out, Fallbacks the checks answered locally because the
	// Store was degraded or the call failed.
	Calls, Failures, Fallbacks uint64
}

// Store is a connection to one Redis shared by the Limiters of all
// endpoints. Safe for concurrent use. It connects lazily: New does no I/O.
type Store struct {
	rdb         *redis.Client
	addr        string
	prefix      string
	callTimeout time.Duration
	br          *breaker.Breaker
	onDegraded  func(addr string, degraded bool)

	calls, failures, fallbacks atomic.Uint64
	closeOnce                  sync.Once
	closeErr                   error
}

// New returns a Store; no connection is made until the first check.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{
		addr:        cfg.Addr,
		prefix:      cfg.KeyPrefix,
		callTimeout: cfg.CallTimeout,
		onDegraded:  cfg.OnDegraded,
	}
	if s.prefix == "" {
		s.prefix = DefaultKeyPrefix
	}
	if s.callTimeout == 0 {
		s.callTimeout = DefaultCallTimeout
	}
	dial := cfg.DialTimeout
	if dial == 0 {
		dial = s.callTimeout
	}
	threshold := cfg.FailureThreshold
	if threshold == 0 {
		threshold = DefaultFailureThreshold
	}
	retry := cfg.RetryInterval
	if retry == 0 {
		retry = DefaultRetryInterval
	}
	br, err := breaker.New(breaker.Config{
		Name:          "cluster-ratelimit " + cfg.Addr,
		MaxErrors:     threshold - 1,
		Timeout:       retry,
		ProbeTimeout:  2 * max(s.callTimeout, dial),
		OnStateChange: s.stateChange,
		Clock:         cfg.Clock,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster rate limit: %w", err)
	}
	s.br = br
	s.rdb = redis.NewClient(&redis.Options{
		Addr:                  cfg.Addr,
		DialTimeout:           dial,
		DialerRetries:         1,
		ReadTimeout:           s.callTimeout,
		WriteTimeout:          s.callTimeout,
		PoolTimeout:           s.callTimeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1, // a retry would blow the call budget; the breaker decides
		PoolSize:              cfg.PoolSize,
		DisableIdentity:       true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	return s, nil
}

func (s *Store) stateChange(_ string, from, to breaker.State) {
	if s.onDegraded == nil {
		return
	}
	switch {
	case to == breaker.Open && from == breaker.Closed:
		s.onDegraded(s.addr, true)
	case to == breaker.Closed:
		s.onDegraded(s.addr, false)
	}
}

// Degraded reports whether checks currently fall back to local limits.
func (s *Store) Degraded() bool { return s.br.State() != breaker.Closed }

// Stats returns the counters.
func (s *Store) Stats() Stats {
	return Stats{Calls: s.calls.Load(), Failures: s.failures.Load(), Fallbacks: s.fallbacks.Load()}
}

// Close closes the Redis connections. Idempotent; later checks fail with an
// error (and so fall back to local limits).
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.rdb.Close() })
	return s.closeErr
}

// Limiter is the cluster-wide form of one endpoint's router limit; it
// implements ratelimit.Remote. Safe for concurrent use.
type Limiter struct {
	s            *Store
	clientPrefix string // <prefix>{<hash>}:c:
	globalKey    string // <prefix>{<hash>}:g
	clientOn     bool
	clientBurst  uint64
	globalBurst  uint64
	args         []any // script ARGV, fixed per limiter
}

// Limiter returns the cluster limiter for the endpoint called name with the
// given settings (see ratelimit.RouterConfig.Rates). Set it as the Remote of
// the ratelimit.Router built from the same settings.
func (s *Store) Limiter(name string, global, client ratelimit.Rate) *Limiter {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%d/%d\x00%d/%d", name, global.Interval, global.Burst, client.Interval, client.Burst)
	tag := fmt.Sprintf("%s{%016x}", s.prefix, h.Sum64())
	ci, ct := micros(client)
	gi, gt := micros(global)
	return &Limiter{
		s:            s,
		clientPrefix: tag + ":c:",
		globalKey:    tag + ":g",
		clientOn:     client.Enabled(),
		clientBurst:  client.Burst,
		globalBurst:  global.Burst,
		args:         []any{ci, ct, gi, gt},
	}
}

// micros renders a rate's interval and tolerance (burst × interval) in
// microseconds for the script; "0" disables the bucket.
func micros(r ratelimit.Rate) (interval, tolerance string) {
	if !r.Enabled() {
		return "0", "0"
	}
	iv := float64(r.Interval) / 1e3
	tol := math.Min(iv*float64(r.Burst), 1<<52)
	return strconv.FormatFloat(iv, 'f', 3, 64), strconv.FormatFloat(tol, 'f', 3, 64)
}

// Allow runs one check for clientKey (ignored without a client limit).
// Errors: ErrUnavailable while degraded (no I/O); a Redis or timeout error
// otherwise. Either way the caller decides locally. A cancelled ctx is not
// held against Redis.
func (l *Limiter) Allow(ctx context.Context, clientKey []byte) (ratelimit.Decision, error) {
	s := l.s
	tk, ok := s.br.Allow()
	if !ok {
		s.fallbacks.Add(1)
		return ratelimit.Decision{}, ErrUnavailable
	}
	clientK := l.globalKey
	if l.clientOn {
		clientK = l.clientPrefix + string(clientKey)
	}
	s.calls.Add(1)
	cctx, cancel := context.WithTimeout(ctx, s.callTimeout)
	res, err := script.Run(cctx, s.rdb, []string{clientK, l.globalKey}, l.args...).Int64Slice()
	cancel()
	if err == nil && len(res) != 5 {
		err = fmt.Errorf("cluster rate limit: script returned %d values, want 5", len(res))
	}
	if err != nil {
		s.fallbacks.Add(1)
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			s.br.Release(tk)
			return ratelimit.Decision{}, err
		}
		s.failures.Add(1)
		s.br.Done(tk, false)
		return ratelimit.Decision{}, fmt.Errorf("cluster rate limit %s: %w", s.addr, err)
	}
	s.br.Done(tk, true)
	d := ratelimit.Decision{
		Allowed:    res[0] == 1,
		RejectedBy: ratelimit.Scope(res[1]),
		RetryAfter: time.Duration(res[2]) * time.Microsecond,
		Remaining:  uint64(max(res[3], 0)),
		Reset:      time.Duration(res[4]) * time.Microsecond,
		Limit:      l.globalBurst,
	}
	if d.RejectedBy == ratelimit.ScopeClient || (d.Allowed && l.clientOn) {
		d.Limit = l.clientBurst
	}
	return d, nil
}

// script checks the client bucket (KEYS[1], if ARGV[1] > 0) then the global
// bucket (KEYS[2], if ARGV[3] > 0) with GCRA in microseconds of the server
// clock, and takes a token from both only when both allow. It returns
// {allowed, rejected_by (1 client, 2 global), retry_after_us, remaining,
// reset_us}, remaining/reset of the client bucket when enabled.
var script = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function check(key, iv, tol)
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local nxt = tat + iv
  local ahead = nxt - now
  if ahead > tol then
    return false, math.ceil(ahead - tol), math.ceil(tat - now)
  end
  return true, nxt, math.floor((tol - ahead) / iv), math.ceil(ahead)
end
local ci, ct = tonumber(ARGV[1]), tonumber(ARGV[2])
local gi, gt = tonumber(ARGV[3]), tonumber(ARGV[4])
local cnext, gnext, rem, reset
if ci > 0 then
  local ok, a, b, c = check(KEYS[1], ci, ct)
  if not ok then return {0, 1, a, 0, b} end
  cnext, rem, reset = a, b, c
end
if gi > 0 then
  local ok, a, b, c = check(KEYS[2], gi, gt)
  if not ok then return {0, 2, a, 0, b} end
  gnext = a
  if not cnext then rem, reset = b, c end
end
if cnext then
  redis.call('SET', KEYS[1], string.format('%.3f', cnext), 'PX', math.ceil((cnext - now) / 1000) + 1)
end
if gnext then
  redis.call('SET', KEYS[2], string.format('%.3f', gnext), 'PX', math.ceil((gnext - now) / 1000) + 1)
end
return {1, 0, 0, rem, reset}
`)

// SetRedisLogger routes go-redis' own log lines (dial and pool errors) to l
// at warn level. go-redis has one logger per process, so call it once from
// main, not per Store.
func SetRedisLogger(l zerolog.Logger) { redis.SetLogger(redisLogger{l}) }

type redisLogger struct{ l zerolog.Logger }

func (r redisLogger) Printf(_ context.Context, format string, v ...any) {
	r.l.Warn().Str("component", "go-redis").Msgf(format, v...)
}
