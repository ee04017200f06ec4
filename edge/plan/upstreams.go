package plan

import (
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/apigw/gateway/edge/lease"
	"github.com/apigw/gateway/edge/proxy"
)

// DefaultUpstreamGrace is how long an upstream client no plan uses stays
// open: requests of a released plan may still be in flight.
const DefaultUpstreamGrace = 30 * time.Second

// Upstreams is the registry of upstream clients shared by successive plans
// (a lease.Registry keyed by clientIdentity, every transport setting): the
// backends of one host with the same settings share one client, a snapshot
// swap reuses the keep-alive pools of unchanged hosts, and a client no plan
// uses any more is closed after a grace period. Safe for concurrent use; Close is
// idempotent.
type Upstreams struct {
	reg *lease.Registry[clientIdentity, *proxy.Client]
}

// NewUpstreams returns an empty registry with DefaultUpstreamGrace.
func NewUpstreams() *Upstreams { return newUpstreams(DefaultUpstreamGrace) }

func newUpstreams(grace time.Duration, opts ...lease.Option) *Upstreams {
	return &Upstreams{reg: lease.New[clientIdentity](grace, (*proxy.Client).Close, opts...)}
}

// clientIdentity identifies a client by every setting it is built from,
// as one comparable value. The backend's name is not one of them: 10,000
// backends on one host are one client (one pool of connections, not
// 10,000), and renaming endpoints keeps the pools. ClientConfig holds a slice, so it cannot be the
// key itself; TestClientIdentityCoversEverySetting walks ClientConfig's
// fields by reflection and fails when one does not change the identity, so
// a setting added later cannot silently reuse a client built without it.
type clientIdentity struct {
	hosts               string // Hosts, each length-prefixed (injective)
	maxConns            int
	maxIdleConnDuration time.Duration
	dialTimeout         time.Duration
	dialerKeepAlive     time.Duration
	dialerFallbackDelay time.Duration
	responseTimeout     time.Duration
	maxResponseBodySize int
	disableKeepAlives   bool
	insecureSkipVerify  bool
	tls                 string // TLS.Key
	sdName, sdScheme    string
	sdTTL               time.Duration
	sdResolver          *net.Resolver
	roundRobin          bool
	maxShadowCalls      int
	disableCompression  bool
}

func identityOf(c proxy.ClientConfig) clientIdentity {
	return clientIdentity{
		hosts:               hostsKey(c.Hosts),
		maxConns:            c.MaxConns,
		maxIdleConnDuration: c.MaxIdleConnDuration,
		dialTimeout:         c.DialTimeout,
		dialerKeepAlive:     c.DialerKeepAlive,
		dialerFallbackDelay: c.DialerFallbackDelay,
		responseTimeout:     c.ResponseTimeout,
		maxResponseBodySize: c.MaxResponseBodySize,
		disableKeepAlives:   c.DisableKeepAlives,
		insecureSkipVerify:  c.InsecureSkipVerify,
		tls:                 c.TLS.Key,
		sdName:              c.SD.Name,
		sdScheme:            c.SD.Scheme,
		sdTTL:               c.SD.TTL,
		sdResolver:          c.SD.Resolver,
		roundRobin:          c.RoundRobin,
		maxShadowCalls:      c.MaxShadowCalls,
		disableCompression:  c.DisableCompression,
	}
}

// hostsKey encodes hosts injectively: "<len>:<host>" for each.
func hostsKey(hosts []string) string {
	var b strings.Builder
	for _, h := range hosts {
		b.WriteString(strconv.Itoa(len(h)))
		b.WriteByte(':')
		b.WriteString(h)
	}
	return b.String()
}

// acquire returns the client for cfg, creating it (created is true then)
// or reusing the entry of an earlier plan, and takes a lease on it.
func (u *Upstreams) acquire(id clientIdentity, cfg proxy.ClientConfig) (c *proxy.Client, created bool, err error) {
	return u.reg.Acquire(id, func() (*proxy.Client, error) { return proxy.NewClient(cfg) })
}

// release ends one lease per identity; clients left unused close after the
// grace period, except those in closeNow (created by a Build that failed:
// no request ever used them), which close at once.
func (u *Upstreams) release(ids []clientIdentity, closeNow map[clientIdentity]bool) {
	u.reg.Release(ids, closeNow)
}

// sweep closes the clients unused for the grace period (the registry's
// sweeper does it periodically); tests call it with a fake clock.
func (u *Upstreams) sweep() int { return u.reg.Sweep() }

// Len returns the number of clients held (in use or in their grace period).
func (u *Upstreams) Len() int { return u.reg.Len() }

// Close closes every client now, whatever uses it. Close is idempotent.
func (u *Upstreams) Close() { u.reg.Close() }
