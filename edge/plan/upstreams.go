package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/apigw/gateway/edge/proxy"
)

// DefaultUpstreamGrace is how long an upstream client no plan uses stays
// open: requests of a released plan may still be in flight.
const DefaultUpstreamGrace = 30 * time.Second

// Upstreams is the registry of upstream clients shared by successive plans,
// keyed by backend name + a hash of the client settings: a snapshot swap
// reuses the keep-alive pools of unchanged backends, and a client no plan
// uses any more is closed after a grace period. Safe for concurrent use;
// Close is idempotent.
type Upstreams struct {
	grace time.Duration

	mu      sync.Mutex // guards the fields below
	entries map[string]*upstream
	closed  bool
}

type upstream struct {
	client *proxy.Client
	refs   int         // plans using it
	timer  *time.Timer // pending close while refs == 0
}

// NewUpstreams returns an empty registry with DefaultUpstreamGrace.
func NewUpstreams() *Upstreams {
	return &Upstreams{grace: DefaultUpstreamGrace, entries: map[string]*upstream{}}
}

// upstreamKey identifies a client: the backend name and every setting the
// client is built from.
func upstreamKey(cfg proxy.ClientConfig) string {
	h := sha256.New()
	fmt.Fprintf(h, "%q|%d|%d|%d|%d|%t|%t|%t|%d|%t", cfg.Hosts, cfg.MaxConns, cfg.MaxIdleConnDuration,
		cfg.DialTimeout, cfg.MaxResponseBodySize, cfg.DisableKeepAlives, cfg.InsecureSkipVerify,
		cfg.RoundRobin, cfg.MaxShadowCalls, cfg.DisableCompression)
	return cfg.Name + "\x00" + hex.EncodeToString(h.Sum(nil))
}

var errUpstreamsClosed = errors.New("upstreams: registry closed")

// acquire returns the client for cfg, creating it (created is true then)
// or reusing the entry of an earlier plan, and takes a reference on it.
func (u *Upstreams) acquire(key string, cfg proxy.ClientConfig) (c *proxy.Client, created bool, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, false, errUpstreamsClosed
	}
	if e, ok := u.entries[key]; ok {
		if e.timer != nil {
			e.timer.Stop() // expire re-checks refs, so a timer already firing is harmless
			e.timer = nil
		}
		e.refs++
		return e.client, false, nil
	}
	c, err = proxy.NewClient(cfg)
	if err != nil {
		return nil, false, err
	}
	u.entries[key] = &upstream{client: c, refs: 1}
	return c, true, nil
}

// release drops one reference per key; clients left unused close after
// the grace period, except those in closeNow (created by a Build that
// failed: no request ever used them), which close at once.
func (u *Upstreams) release(keys []string, closeNow map[string]bool) {
	var now []*proxy.Client
	u.mu.Lock()
	for _, key := range keys {
		e, ok := u.entries[key]
		if !ok || e.refs == 0 {
			continue
		}
		e.refs--
		switch {
		case e.refs > 0 || u.closed:
		case closeNow[key]:
			delete(u.entries, key)
			now = append(now, e.client)
		default:
			e.timer = time.AfterFunc(u.grace, func() { u.expire(key, e) })
		}
	}
	u.mu.Unlock()
	for _, c := range now {
		c.Close()
	}
}

// expire closes e if no plan took it back meanwhile.
func (u *Upstreams) expire(key string, e *upstream) {
	u.mu.Lock()
	if u.entries[key] != e || e.refs > 0 {
		u.mu.Unlock()
		return
	}
	delete(u.entries, key)
	u.mu.Unlock()
	e.client.Close()
}

// Len returns the number of clients held (in use or in their grace period).
func (u *Upstreams) Len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.entries)
}

// Close closes every client now, whatever uses it. Close is idempotent.
func (u *Upstreams) Close() {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return
	}
	u.closed = true
	clients := make([]*proxy.Client, 0, len(u.entries))
	for key, e := range u.entries {
		if e.timer != nil {
			e.timer.Stop()
		}
		clients = append(clients, e.client)
		delete(u.entries, key)
	}
	u.mu.Unlock()
	for _, c := range clients {
		c.Close()
	}
}
