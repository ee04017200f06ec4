package proxy

import (
	"cmp"
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"time"
)

// SD configures DNS SRV service discovery (KrakenD's sd: dns): the hosts
// of the backend are the targets of an SRV name, looked up when the client
// is built and again every TTL.
type SD struct {
	// Name is the SRV name looked up as it is ("_api._tcp.example.com",
	// "api.service.consul"); empty means static Hosts.
	Name string
	// Scheme is the scheme of the resolved hosts: "http" (the default) or
	// "https" (sd_scheme).
	Scheme string
	// TTL is the re-resolution period; below MinSDTTL it is DefaultSDTTL,
	// as KrakenD (dns_cache_ttl).
	TTL time.Duration
	// Resolver resolves Name and the targets it names; nil means
	// net.DefaultResolver.
	Resolver *net.Resolver
}

// KrakenD's SRV re-resolution period and its floor (lura sd/dnssrv).
const (
	DefaultSDTTL = 30 * time.Second
	MinSDTTL     = time.Second
)

// sdLookupTimeout bounds one SRV lookup.
const sdLookupTimeout = 5 * time.Second

// ErrNoHosts is the error of a call to a backend whose SRV name resolved
// to no host (yet).
var ErrNoHosts = errors.New("no host: the backend's SRV name resolved to no target")

// srvInstances turns SRV records into the host list KrakenD balances over:
// the records of the lowest priority, ordered by weight (heaviest first),
// target and port, each repeated in proportion to its weight (weights
// scaled to sum to at most 100, or the record count, and divided by their
// greatest common divisor). A target keeps its trailing dot, as Go's
// resolver returns it and KrakenD dials it.
func srvInstances(srvs []*net.SRV) []string {
	if len(srvs) == 0 {
		return nil
	}
	srvs = slices.Clone(srvs)
	slices.SortFunc(srvs, func(a, b *net.SRV) int {
		if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Weight, a.Weight); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Target, b.Target); c != 0 {
			return c
		}
		return cmp.Compare(a.Port, b.Port)
	})
	var ws []uint16
	var hosts []string
	for _, s := range srvs {
		if s.Priority > srvs[0].Priority {
			break
		}
		ws = append(ws, s.Weight)
		hosts = append(hosts, net.JoinHostPort(s.Target, strconv.Itoa(int(s.Port))))
	}
	var out []string
	for i, n := range compactWeights(ws) {
		for range n {
			out = append(out, hosts[i])
		}
	}
	return out
}

func compactWeights(ws []uint16) []uint16 {
	scale := max(100, len(ws))
	var sum int64
	for _, w := range ws {
		sum += int64(w)
	}
	norm := ws
	if sum > int64(scale) {
		norm = make([]uint16, len(ws))
		for i, w := range ws {
			norm[i] = uint16(int64(w) * int64(scale) / sum)
		}
	}
	var div uint16
	for i, w := range norm {
		if i == 0 {
			div = w
			continue
		}
		a, b := div, w
		for b > 0 {
			a, b = b, a%b
		}
		div = a
	}
	if div < 2 {
		return norm
	}
	out := make([]uint16, len(norm))
	for i, w := range norm {
		out[i] = w / div
	}
	return out
}

// resolve looks the SRV name up once and publishes the resulting host set.
// A failed lookup keeps the previous set, as KrakenD does. NewClient calls
// it, then refresh with sdMu held.
func (c *Client) resolve() {
	ctx, cancel := context.WithTimeout(context.Background(), sdLookupTimeout)
	defer cancel()
	r := c.sd.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	_, srvs, err := r.LookupSRV(ctx, "", "", c.sd.Name)
	if err != nil {
		c.sdErrors.Add(1)
		return
	}
	addrs := srvInstances(srvs)
	set := make([]*Host, 0, len(addrs))
	seen := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		h := c.byAddr[a]
		if h == nil {
			h = c.newHost(c.sd.Scheme, a)
			c.byAddr[a] = h
		}
		set = append(set, h)
		seen[a] = true
	}
	c.hosts.Store(&set)
	for a, h := range c.byAddr {
		if !seen[a] {
			// Calls in flight on it finish; its idle connections go.
			delete(c.byAddr, a)
			h.hc.CloseIdleConnections()
		}
	}
}

// refresh re-resolves the name and arms the next refresh, until the
// client closes. It runs on a timer: no goroutine waits between lookups.
func (c *Client) refresh() {
	c.sdMu.Lock()
	defer c.sdMu.Unlock()
	if c.sdClosed {
		return
	}
	c.resolve()
	c.sdTimer.Reset(c.sdTTL)
}

// stopSD stops the refreshes; once it returns, no lookup runs any more
// (a refresh in progress holds sdMu) and byAddr is the caller's.
func (c *Client) stopSD() {
	c.sdMu.Lock()
	defer c.sdMu.Unlock()
	c.sdClosed = true
	c.sdTimer.Stop()
}

// Hosts returns the base URLs the client balances over now (for a DNS
// backend, the current resolution, one entry per weight unit).
func (c *Client) Hosts() []string {
	set := *c.hosts.Load()
	out := make([]string, len(set))
	for i, h := range set {
		out[i] = string(h.scheme) + "://" + string(h.host)
	}
	return out
}
