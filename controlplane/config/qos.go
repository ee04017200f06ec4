package config

import (
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Traffic protection: `qos/ratelimit/router` (endpoint), `qos/ratelimit/proxy`,
// `qos/circuit-breaker` and `qos/http-cache` (backend), and our service-level
// `qos/ratelimit/cluster` store (krakend-ratelimit, krakend-circuitbreaker,
// krakend-httpcache semantics).

var rateLimitStrategies = []string{"ip", "header", "param"}

const (
	// maxRate bounds max_rate and client_max_rate (tokens per `every`):
	// beyond it a limit limits nothing, and the default capacity (the rate
	// rounded down) must stay exact.
	maxRate = 1e9
	// maxRateLimitShards bounds num_shards (one map and mutex each).
	maxRateLimitShards = 1 << 16
)

func (d *decoder) routerRateLimit(n *node, p path) *RouterRateLimit {
	r := &RouterRateLimit{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"max_rate":        d.number(&r.MaxRate),
		"capacity":        d.optInteger(&r.Capacity),
		"client_max_rate": d.number(&r.ClientMaxRate),
		"client_capacity": d.optInteger(&r.ClientCapacity),
		"strategy":        d.str(&r.Strategy),
		"key":             d.str(&r.Key),
		"every":           d.optDuration(&r.Every),
		"num_shards":      d.optInteger(&r.NumShards),
		"cleanup_period":  d.optDuration(&r.CleanupPeriod),
		"cleanup_threads": d.noEffect(d.integer(&r.CleanupThreads), "the edge's limiter keeps no per-thread cleanup workers"),
		"cluster":         d.boolean(&r.Cluster),
	}})
	return r
}

func (d *decoder) clusterRateLimit(n *node, p path) *ClusterRateLimit {
	c := &ClusterRateLimit{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"address":      d.str(&c.Address),
		"key_prefix":   d.str(&c.KeyPrefix),
		"dial_timeout": d.optDuration(&c.DialTimeout),
	}})
	return c
}

func (d *decoder) backendRateLimit(n *node, p path) *BackendRateLimit {
	r := &BackendRateLimit{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"max_rate": d.optNumber(&r.MaxRate),
		"capacity": d.optInteger(&r.Capacity),
		"every":    d.optDuration(&r.Every),
	}})
	return r
}

func (d *decoder) circuitBreaker(n *node, p path) *CircuitBreaker {
	c := &CircuitBreaker{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"interval":          d.optInteger(&c.Interval),
		"timeout":           d.optInteger(&c.Timeout),
		"max_errors":        d.optInteger(&c.MaxErrors),
		"name":              d.str(&c.Name),
		"log_status_change": d.boolean(&c.LogStatusChange),
	}})
	return c
}

func (d *decoder) httpCache(n *node, p path) *HTTPCache {
	c := &HTTPCache{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"shared":    d.boolean(&c.Shared),
		"max_size":  d.optInteger(&c.MaxSize),
		"max_items": d.optInteger(&c.MaxItems),
	}})
	return c
}

func (v *validator) routerRateLimit(p path, rl *RouterRateLimit, r route) {
	v.rate(p.field("max_rate"), rl.MaxRate)
	v.rate(p.field("client_max_rate"), rl.ClientMaxRate)
	if rl.MaxRate == 0 && rl.ClientMaxRate == 0 {
		v.vs.add(p.field("max_rate"), KindRequired, "set max_rate (all clients together) and/or client_max_rate (each client); 0 means no limit")
	}
	v.capacity(p.field("capacity"), rl.Capacity, rl.MaxRate, "max_rate")
	v.capacity(p.field("client_capacity"), rl.ClientCapacity, rl.ClientMaxRate, "client_max_rate")

	sp, kp := p.field("strategy"), p.field("key")
	switch {
	case rl.ClientMaxRate == 0 && rl.Strategy != "":
		v.vs.add(sp, KindInvalid, "strategy identifies clients for client_max_rate, which is not set")
	case rl.ClientMaxRate == 0 && rl.Key != "":
		v.vs.add(kp, KindInvalid, "key identifies clients for client_max_rate, which is not set")
	case rl.ClientMaxRate == 0:
	case rl.Strategy == "ip":
		// key optionally names the header holding the client IP. KrakenD
		// believes it from anyone, so a client rotating the header gets a
		// new bucket per request; the edge believes it only from
		// router.trusted_proxies, and without any the key is refused.
		switch {
		case rl.Key == "":
		case !isToken(rl.Key):
			v.vs.add(kp, KindInvalid, "%q is not a valid header name", rl.Key)
		case v.s.ExtraConfig.Router == nil || len(v.s.ExtraConfig.Router.TrustedProxies) == 0:
			v.vs.add(kp, KindInvalid, "strategy ip with key %q reads the client address from a header any client can set; "+
				"list the proxies that set it in router.trusted_proxies (the header is then believed from them only), or drop key to limit by the connection's address", rl.Key)
		}
	case rl.Strategy == "header":
		switch {
		case rl.Key == "":
			v.vs.add(kp, KindRequired, "strategy header needs key, the header that identifies a client")
		case !isToken(rl.Key):
			v.vs.add(kp, KindInvalid, "%q is not a valid header name", rl.Key)
		}
	case rl.Strategy == "param":
		switch {
		case rl.Key == "":
			v.vs.add(kp, KindRequired, "strategy param needs key, the endpoint parameter that identifies a client")
		case r.ok && !r.hasParam(rl.Key):
			v.vs.add(kp, KindNotFound, "{%s} is not a parameter of the endpoint (parameters: %s)", rl.Key, paramList(r.params))
		}
	default:
		v.vs.unsupportedValue(sp, rl.Strategy, rateLimitStrategies)
	}

	if rl.Every != nil && *rl.Every < time.Second {
		v.vs.add(p.field("every"), KindInvalid, "%s: must be at least 1s (KrakenD raises shorter periods to 1s; express the rate per second instead)", *rl.Every)
	}
	if rl.NumShards != nil {
		switch n := *rl.NumShards; {
		case n < 0:
			v.vs.add(p.field("num_shards"), KindInvalid, "%d: must not be negative", n)
		case n > maxRateLimitShards:
			v.vs.add(p.field("num_shards"), KindTooMany, "%d: at most %d shards are allowed", n, maxRateLimitShards)
		}
	}
	if rl.CleanupPeriod != nil && *rl.CleanupPeriod < time.Second {
		v.vs.add(p.field("cleanup_period"), KindInvalid, "%s: must be at least 1s (KrakenD raises shorter periods to 1s)", *rl.CleanupPeriod)
	}
	if rl.CleanupThreads < 0 {
		v.vs.add(p.field("cleanup_threads"), KindInvalid, "%d: must not be negative", rl.CleanupThreads)
	}
	if rl.Cluster {
		switch {
		case v.s.ExtraConfig.ClusterRateLimit == nil:
			v.vs.add(p.field("cluster"), KindNotFound, "cluster: true needs the service-level extra_config \"qos/ratelimit/cluster\" store")
		case rl.ClientMaxRate == 0:
			v.vs.add(p.field("cluster"), KindInvalid, "cluster shares the per-client buckets, and client_max_rate is not set")
		}
	}
}

// rate checks a token rate (0 means no limit).
func (v *validator) rate(p path, rate float64) {
	switch {
	case rate < 0:
		v.vs.add(p, KindInvalid, "%g: must not be negative", rate)
	case rate > maxRate:
		v.vs.add(p, KindTooMany, "%g: at most %g tokens per period are allowed", rate, float64(maxRate))
	}
}

// capacity checks an explicit bucket size for the limit named rateName.
func (v *validator) capacity(p path, capacity *int64, rate float64, rateName string) {
	switch {
	case capacity == nil:
	case rate == 0:
		v.vs.add(p, KindInvalid, "sizes the %s bucket, and %s is not set", rateName, rateName)
	case *capacity < 1:
		v.vs.add(p, KindInvalid, "%d: must be at least 1 (omit it to use %s rounded down)", *capacity, rateName)
	}
}

func (v *validator) clusterRateLimit(p path, c *ClusterRateLimit) {
	ap := p.field("address")
	if c.Address == "" {
		v.vs.add(ap, KindRequired, "address (host:port of the Redis server) is required")
	} else if host, port, err := net.SplitHostPort(c.Address); err != nil || host == "" || !validPort(port) {
		v.vs.add(ap, KindInvalid, "%q: want host:port", c.Address)
	}
	if c.DialTimeout != nil {
		v.positive(p.field("dial_timeout"), *c.DialTimeout)
	}
	if strings.ContainsAny(c.KeyPrefix, " \t\r\n") {
		v.vs.add(p.field("key_prefix"), KindInvalid, "%q: must not contain whitespace", c.KeyPrefix)
	}
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535
}

func (v *validator) backendRateLimit(p path, r *BackendRateLimit) {
	mp := p.field("max_rate")
	switch {
	case r.MaxRate == nil:
		v.vs.add(mp, KindRequired, "max_rate (requests to this backend per period) is required")
	case *r.MaxRate <= 0:
		v.vs.add(mp, KindInvalid, "%g: must be greater than 0", *r.MaxRate)
	default:
		v.rate(mp, *r.MaxRate)
		v.capacity(p.field("capacity"), r.Capacity, *r.MaxRate, "max_rate")
	}
	if r.Every != nil {
		v.positive(p.field("every"), *r.Every)
	}
}

func (v *validator) circuitBreaker(p path, c *CircuitBreaker) {
	for _, f := range []struct {
		name  string
		value *int64
		what  string
	}{
		{"interval", c.Interval, "seconds after which the error count resets"},
		{"timeout", c.Timeout, "seconds the circuit stays open before a probe"},
		{"max_errors", c.MaxErrors, "consecutive errors tolerated before the circuit opens"},
	} {
		if f.value == nil {
			v.vs.add(p.field(f.name), KindRequired, "%s (%s) is required", f.name, f.what)
		}
	}
	if c.Interval != nil {
		v.seconds(p.field("interval"), *c.Interval, 0)
	}
	if c.Timeout != nil {
		if *c.Timeout == 0 && deref(c.Interval) == 0 && deref(c.MaxErrors) == 0 {
			// KrakenD disables an all-zero breaker without a word.
			v.vs.add(p.field("timeout"), KindInvalid, "an all-zero circuit breaker does nothing (KrakenD disables it); set timeout or remove the namespace")
		} else {
			v.seconds(p.field("timeout"), *c.Timeout, 1)
		}
	}
	if c.MaxErrors != nil && (*c.MaxErrors < 0 || *c.MaxErrors > math.MaxUint32) {
		v.vs.add(p.field("max_errors"), KindInvalid, "%d: must be between 0 and %d", *c.MaxErrors, uint32(math.MaxUint32))
	}
}

// sharedCache remembers the first `qos/http-cache` with shared: true; all
// shared caches are one cache, so they must agree on its size.
type sharedCache struct {
	path     path
	maxSize  int64
	maxItems int64
}

func (v *validator) httpCache(p path, c *HTTPCache, b *Backend) {
	if b.Method != "GET" && b.Method != "HEAD" {
		v.vs.add(p, KindInvalid, "only GET and HEAD responses are cached, and this backend is called with %s", b.Method)
	}
	sizeOK := true
	switch {
	case c.MaxSize == nil && c.MaxItems != nil:
		v.vs.add(p.field("max_size"), KindRequired, "max_items needs max_size: the cache is bounded in bytes")
		sizeOK = false
	case c.MaxSize != nil && *c.MaxSize < 1:
		v.vs.add(p.field("max_size"), KindInvalid, "%d: must be at least 1 byte", *c.MaxSize)
		sizeOK = false
	}
	if c.MaxItems != nil && *c.MaxItems < 1 {
		v.vs.add(p.field("max_items"), KindInvalid, "%d: must be at least 1 (omit it to bound the cache by max_size only)", *c.MaxItems)
		sizeOK = false
	}
	if !c.Shared || !sizeOK {
		return
	}
	size, items := deref(c.MaxSize), deref(c.MaxItems)
	if v.shared == nil {
		v.shared = &sharedCache{path: p, maxSize: size, maxItems: items}
		return
	}
	if size != v.shared.maxSize || items != v.shared.maxItems {
		v.vs.add(p, KindInvalid, "shared caches are one cache: max_size %d and max_items %d differ from %s (max_size %d, max_items %d)",
			size, items, v.shared.path, v.shared.maxSize, v.shared.maxItems)
	}
}

func compileRouterRateLimit(r *RouterRateLimit, features map[string]bool) *gatewayv1.RouterRateLimit {
	everyMs, everyNs := exact(deref(r.Every), features)
	return &gatewayv1.RouterRateLimit{
		MaxRate:         r.MaxRate,
		Capacity:        uint64(deref(r.Capacity)),
		ClientMaxRate:   r.ClientMaxRate,
		ClientCapacity:  uint64(deref(r.ClientCapacity)),
		Strategy:        r.Strategy,
		Key:             r.Key,
		EveryMs:         everyMs,
		EveryNs:         everyNs,
		NumShards:       uint32(deref(r.NumShards)),
		CleanupPeriodMs: ms(deref(r.CleanupPeriod)),
		Cluster:         r.Cluster,
	}
}

func compileClusterRateLimit(c *ClusterRateLimit) *gatewayv1.ClusterRateLimit {
	return &gatewayv1.ClusterRateLimit{
		RedisAddress:  c.Address,
		KeyPrefix:     c.KeyPrefix,
		DialTimeoutMs: ms(deref(c.DialTimeout)),
	}
}

func compileBackendRateLimit(r *BackendRateLimit, features map[string]bool) *gatewayv1.BackendRateLimit {
	everyMs, everyNs := exact(deref(r.Every), features)
	return &gatewayv1.BackendRateLimit{
		MaxRate:  deref(r.MaxRate),
		Capacity: uint64(deref(r.Capacity)),
		EveryMs:  everyMs,
		EveryNs:  everyNs,
	}
}

func compileCircuitBreaker(c *CircuitBreaker) *gatewayv1.CircuitBreaker {
	return &gatewayv1.CircuitBreaker{
		IntervalMs:      deref(c.Interval) * 1000,
		TimeoutMs:       deref(c.Timeout) * 1000,
		MaxErrors:       uint32(deref(c.MaxErrors)),
		Name:            c.Name,
		LogStatusChange: c.LogStatusChange,
	}
}

func compileHTTPCache(c *HTTPCache) *gatewayv1.HTTPCache {
	return &gatewayv1.HTTPCache{
		Shared:   c.Shared,
		MaxSize:  deref(c.MaxSize),
		MaxItems: uint64(deref(c.MaxItems)),
	}
}
