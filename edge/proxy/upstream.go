package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// ClientConfig configures an upstream Client: the transport settings
// alone, so that every backend with the same settings (the same hosts,
// TLS, timeouts and limits) can share one Client and its keep-alive pools.
// What belongs to one backend (its name, metrics, breaker, rate limit)
// lives in its Backend. The zero value is not usable: Hosts must list at
// least one base URL.
type ClientConfig struct {
	// Hosts are base URLs: "http://10.0.0.1:8080", "https://api.example.com".
	// With disable_host_sanitize a host may lack the scheme; http is assumed.
	Hosts []string
	// MaxConns bounds the connections per host; 0 means DefaultMaxConns.
	MaxConns int
	// MaxIdleConnDuration closes idle keep-alive connections; 0 means 90s
	// (Go's http.DefaultTransport, what KrakenD uses).
	MaxIdleConnDuration time.Duration
	// DialTimeout caps connection establishment; 0 leaves only the call deadline.
	DialTimeout time.Duration
	// DialerKeepAlive is the TCP keep-alive period of backend connections
	// (net.Dialer.KeepAlive, as KrakenD's dialer_keep_alive): 0 means Go's
	// default (15 s), negative disables keep-alive probes.
	DialerKeepAlive time.Duration
	// DialerFallbackDelay is how long a dual-stack dial waits before racing
	// the other address family (net.Dialer.FallbackDelay, as KrakenD's
	// dialer_fallback_delay): 0 means Go's default (300 ms).
	DialerFallbackDelay time.Duration
	// ResponseTimeout bounds reading a backend's response, headers and
	// body, once the request is written (KrakenD's response_header_timeout
	// bounds the headers alone; fasthttp has no such timeout). 0: none
	// besides the call deadline.
	ResponseTimeout time.Duration
	// MaxResponseBodySize bounds backend response bodies; 0 means unlimited.
	MaxResponseBodySize int
	// DisableKeepAlives closes the connection after every call.
	DisableKeepAlives bool
	// InsecureSkipVerify disables TLS certificate checks (allow_insecure_connections).
	// It applies when TLS.Config is nil.
	InsecureSkipVerify bool
	// SD, when its Name is set, discovers the hosts by DNS SRV instead of
	// Hosts (which then only names the backend in errors).
	SD SD
	// TLS, when its Config is set, is the configuration of HTTPS
	// connections to the hosts (client_tls); InsecureSkipVerify is then
	// ignored.
	TLS ClientTLS
	// RoundRobin picks hosts in turn (from a random start) instead of at
	// random. KrakenD balances at random when GOMAXPROCS > 1 and round-robin
	// otherwise; New applies that rule when RoundRobin is false and
	// GOMAXPROCS is 1.
	RoundRobin bool
	// MaxShadowCalls bounds the shadow calls in flight; 0 means DefaultMaxShadowCalls.
	MaxShadowCalls int
	// DisableCompression stops asking backends for gzip (Go's transport,
	// which KrakenD uses, sends Accept-Encoding: gzip when the call has no
	// Accept-Encoding of its own and decodes the answer transparently).
	DisableCompression bool
}

// ClientTLS is the TLS configuration of a client's HTTPS connections.
type ClientTLS struct {
	// Config is used as given (never modified); nil means TLS 1.2 and up,
	// the system's roots and ClientConfig.InsecureSkipVerify.
	Config *tls.Config
	// Key identifies Config among upstream clients: equal keys must mean
	// equal configurations (edge/tlsconf.NewClient makes one).
	Key string
}

// DefaultMaxConns is the per-host connection cap when ClientConfig.MaxConns is 0.
const DefaultMaxConns = 1024

// GoUserAgent is the User-Agent Go's net/http client sends on HTTP/1.1
// when a request has none. KrakenD's backend calls go through that client,
// so a backend whose input_headers drop User-Agent receives this one; the
// HostClients send it in the same case (never the backend's name, which
// fasthttp would send otherwise).
const GoUserAgent = "Go-http-client/1.1"

// DefaultMaxShadowCalls bounds detached shadow calls per Client: beyond it
// shadow copies are dropped rather than queued, so a slow shadow backend
// can never grow goroutines without bound.
const DefaultMaxShadowCalls = 256

// Validate reports whether c can build a Client.
func (c ClientConfig) Validate() error {
	if c.SD.Name != "" {
		switch c.SD.Scheme {
		case "", "http", "https":
		default:
			return fmt.Errorf("client config: sd scheme %q is not http or https", c.SD.Scheme)
		}
		return nil
	}
	if len(c.Hosts) == 0 {
		return errors.New("client config: no hosts")
	}
	for _, h := range c.Hosts {
		if _, _, err := splitHost(h); err != nil {
			return fmt.Errorf("client config: host %q: %w", h, err)
		}
	}
	if c.MaxConns < 0 || c.MaxResponseBodySize < 0 || c.MaxShadowCalls < 0 {
		return errors.New("client config: negative limit")
	}
	return nil
}

// Host is one upstream host of a Client.
type Host struct {
	scheme []byte // "http" or "https"
	host   []byte // "10.0.0.1:8080" (Host header and URI host)
	hc     *fasthttp.HostClient
	t      Transport // set instead of hc for a backend that is not HTTP
}

// Client holds the keep-alive connection pools of the backends with one
// set of transport settings: one fasthttp.HostClient per host and a
// KrakenD-like balancer. It is safe for concurrent use; Close is
// idempotent.
type Client struct {
	hosts      atomic.Pointer[[]*Host] // the hosts balanced over; replaced by DNS SRV resolutions
	none       *Host                   // picked when hosts is empty: its calls fail with ErrNoHosts
	roundRobin bool
	next       atomic.Uint32
	keepAlive  bool
	gzip       bool // ask for gzip when the call names no Accept-Encoding

	// redirects carries the redirect hops that leave the backend's hosts.
	redirects *fasthttp.Client

	// Shadow calls are owned by the Client: Close waits for them.
	shadowSem chan struct{} // bounds shadow calls in flight
	shadowWG  sync.WaitGroup

	mu     sync.Mutex // guards closed and shadowWG.Add
	closed bool

	// DNS SRV discovery (sd.Name set): newHost builds a host's pool;
	// byAddr holds the pools of the current resolution, owned by the
	// resolving goroutine.
	sd       SD
	sdTTL    time.Duration
	newHost  func(scheme, host string) *Host
	byAddr   map[string]*Host // guarded by sdMu after NewClient
	sdMu     sync.Mutex
	sdClosed bool
	sdTimer  *time.Timer
	sdErrors atomic.Int64 // failed lookups, for tests
}

// NewClient builds the pools for cfg. No connection is opened until
// the first call.
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	maxConns := cfg.MaxConns
	if maxConns == 0 {
		maxConns = DefaultMaxConns
	}
	idle := cfg.MaxIdleConnDuration
	if idle <= 0 {
		idle = 90 * time.Second
	}
	shadow := cfg.MaxShadowCalls
	if shadow == 0 {
		shadow = DefaultMaxShadowCalls
	}
	c := &Client{
		roundRobin: cfg.RoundRobin || runtime.GOMAXPROCS(0) == 1,
		keepAlive:  !cfg.DisableKeepAlives,
		gzip:       !cfg.DisableCompression,
		shadowSem:  make(chan struct{}, shadow),
	}
	c.next.Store(rand.Uint32())
	dial := dialer(cfg)
	tlsCfg := cfg.TLS.Config
	if tlsCfg == nil {
		tlsCfg = &tls.Config{InsecureSkipVerify: cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // operator opt-in
	}
	c.newHost = func(scheme, host string) *Host {
		addr := host
		if _, _, err := net.SplitHostPort(host); err != nil {
			if scheme == "https" {
				addr = net.JoinHostPort(host, "443")
			} else {
				addr = net.JoinHostPort(host, "80")
			}
		}
		hc := &fasthttp.HostClient{
			Addr:                     addr,
			Name:                     GoUserAgent, // sent only when the request has no User-Agent
			NoDefaultUserAgentHeader: true,
			DialTimeout:              dial,
			IsTLS:                    scheme == "https",
			MaxConns:                 maxConns,
			MaxIdleConnDuration:      idle,
			MaxConnWaitTimeout:       time.Minute, // the call deadline cuts it shorter
			MaxResponseBodySize:      cfg.MaxResponseBodySize,
			ReadTimeout:              cfg.ResponseTimeout,
			ReadBufferSize:           16 << 10, // backend response headers up to 16 KiB
			DisablePathNormalizing:   true,     // BuildRequest encodes the path itself
			SecureErrorLogMessage:    true,
		}
		if hc.IsTLS {
			hc.TLSConfig = tlsCfg
		}
		return &Host{scheme: []byte(scheme), host: []byte(host), hc: hc}
	}
	if cfg.SD.Name != "" {
		c.sd = cfg.SD
		if c.sd.Scheme == "" {
			c.sd.Scheme = "http"
		}
		c.sdTTL = c.sd.TTL
		if c.sdTTL < MinSDTTL {
			c.sdTTL = DefaultSDTTL
		}
		c.none = &Host{scheme: []byte(c.sd.Scheme), host: []byte(c.sd.Name)}
		c.byAddr = map[string]*Host{}
		empty := []*Host{}
		c.hosts.Store(&empty)
		c.resolve()
		c.sdMu.Lock()
		c.sdTimer = time.AfterFunc(c.sdTTL, c.refresh)
		c.sdMu.Unlock()
	} else {
		set := make([]*Host, 0, len(cfg.Hosts))
		for _, raw := range cfg.Hosts {
			scheme, host, _ := splitHost(raw)
			set = append(set, c.newHost(scheme, host))
		}
		c.hosts.Store(&set)
	}
	c.redirects = &fasthttp.Client{
		Name:                     GoUserAgent,
		NoDefaultUserAgentHeader: true,
		DialTimeout:              dial,
		MaxConnsPerHost:          maxConns,
		MaxIdleConnDuration:      idle,
		MaxConnWaitTimeout:       time.Minute,
		MaxResponseBodySize:      cfg.MaxResponseBodySize,
		ReadTimeout:              cfg.ResponseTimeout,
		ReadBufferSize:           16 << 10,
		DisablePathNormalizing:   true,
		TLSConfig:                tlsCfg,
	}
	return c, nil
}

// dialer returns the dial function of a client: a net.Dialer as KrakenD's
// transport uses (dual stack with cfg's fallback delay, cfg's keep-alive
// period, names resolved on each dial), its timeout the sooner of
// DialTimeout and what is left of the call.
func dialer(cfg ClientConfig) fasthttp.DialFuncWithTimeout {
	limit, keepAlive, fallback, resolver := cfg.DialTimeout, cfg.DialerKeepAlive, cfg.DialerFallbackDelay, cfg.SD.Resolver
	return func(addr string, timeout time.Duration) (net.Conn, error) {
		if limit > 0 && limit < timeout {
			timeout = limit
		}
		d := net.Dialer{Timeout: timeout, KeepAlive: keepAlive, FallbackDelay: fallback, Resolver: resolver}
		return d.Dial("tcp", addr)
	}
}

// splitHost parses "scheme://host[:port]" (scheme optional, http assumed).
func splitHost(raw string) (scheme, host string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		// "10.0.0.1:8080" without scheme (disable_host_sanitize).
		u, err = url.Parse("http://" + raw)
		if err != nil || u.Host == "" {
			return "", "", errors.New("not a host URL")
		}
	}
	switch u.Scheme {
	case "http", "https":
	default:
		return "", "", fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Path != "" && u.Path != "/" {
		return "", "", errors.New("a host must not carry a path")
	}
	return u.Scheme, u.Host, nil
}

// Pick chooses the host for one call: KrakenD's balancer (random, or
// round-robin from a random start), a single host short-circuits.
func (c *Client) Pick() *Host {
	hosts := *c.hosts.Load()
	switch len(hosts) {
	case 0:
		return c.none
	case 1:
		return hosts[0]
	}
	var i uint32
	if c.roundRobin {
		i = c.next.Add(1)
	} else {
		i = rand.Uint32()
	}
	return hosts[i%uint32(len(hosts))]
}

// Do sends req to h and reads the response into resp, giving up at
// deadline. req must have been prepared for h (Backend.BuildRequest).
func (h *Host) Do(req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) error {
	if h.t != nil {
		return h.t.Do(req, resp, deadline)
	}
	if h.hc == nil {
		return ErrNoHosts
	}
	return h.hc.DoDeadline(req, resp, deadline)
}

// Close closes idle connections of every host and waits for shadow calls
// in flight (each is bounded by its own timeout). Connections in use close
// when their call ends. Close is idempotent.
func (c *Client) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	c.shadowWG.Wait()
	if c.sdTimer != nil {
		c.stopSD()
		for _, h := range c.byAddr {
			h.hc.CloseIdleConnections()
		}
	}
	for _, h := range *c.hosts.Load() {
		if h.hc != nil {
			h.hc.CloseIdleConnections()
		}
	}
	if c.redirects != nil {
		c.redirects.CloseIdleConnections()
	}
}

// Transport carries the calls of a backend that does not speak HTTP (an
// AMQP producer): Do gets the request BuildRequest made, after the
// backend's circuit breaker, rate limit and martian modifiers, and answers
// resp as an HTTP backend would. It must be safe for concurrent use and
// must not retain req or resp.
type Transport interface {
	Do(req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) error
}

// NewTransportClient returns a Client with one host, scheme://name, whose
// calls all go through t. It asks for no gzip and follows no redirects;
// Close leaves t alone (its owner closes it).
func NewTransportClient(name, scheme string, t Transport) *Client {
	c := &Client{keepAlive: true, shadowSem: make(chan struct{}, DefaultMaxShadowCalls)}
	set := []*Host{{scheme: []byte(scheme), host: []byte(name), t: t}}
	c.hosts.Store(&set)
	return c
}
