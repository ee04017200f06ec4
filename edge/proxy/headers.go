package proxy

import (
	"bytes"
	"net"
	"net/netip"
	"net/textproto"
	"strings"

	"github.com/valyala/fasthttp"
)

// Canonical header names, ready to hand to fasthttp's SetCanonical.
var (
	hdrXForwardedFor  = []byte("X-Forwarded-For")
	hdrXForwardedHost = []byte("X-Forwarded-Host")
	hdrXForwardedVia  = []byte("X-Forwarded-Via")
	hdrConnection     = "Connection"
)

// hopByHop lists the headers that describe one connection (RFC 9110 §7.6.1,
// plus Proxy-Connection and Keep-Alive that old clients still send). They
// are never forwarded, in either direction.
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// isHopByHop reports whether the canonical or raw name k is hop-by-hop.
func isHopByHop(k []byte) bool {
	for _, h := range hopByHop {
		if len(k) == len(h) && asciiEqualFold(k, h) {
			return true
		}
	}
	return false
}

// namedInConnection reports whether name appears as a token of the
// Connection header value conn ("keep-alive, X-Foo"); such headers are
// hop-by-hop for this message only.
func namedInConnection(conn, name []byte) bool {
	for len(conn) > 0 {
		var tok []byte
		if i := bytes.IndexByte(conn, ','); i >= 0 {
			tok, conn = conn[:i], conn[i+1:]
		} else {
			tok, conn = conn, nil
		}
		tok = bytes.TrimSpace(tok)
		if len(tok) == len(name) && asciiEqualFold(name, string(tok)) {
			return true
		}
	}
	return false
}

// asciiEqualFold compares ASCII case-insensitively without allocating.
func asciiEqualFold(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if x|0x20 != y|0x20 || x|0x20 < 'a' || x|0x20 > 'z' {
			return false
		}
	}
	return true
}

// ClientIPConfig says which inbound headers may name the client address.
// The zero value trusts none: X-Forwarded-For is always the socket address.
type ClientIPConfig struct {
	// ForwardedByClientIP enables reading RemoteIPHeaders (router.forwarded_by_client_ip).
	ForwardedByClientIP bool
	// RemoteIPHeaders are read in order; empty means gin's default
	// ["X-Forwarded-For", "X-Real-IP"].
	RemoteIPHeaders []string
	// TrustedProxies are the CIDRs or addresses whose forwarded headers are
	// believed. Empty means nobody is trusted (gin would trust everyone:
	// a deliberate difference, see the README).
	TrustedProxies []string
}

// ClientIP resolves the client address the way gin's Context.ClientIP does,
// restricted to trusted proxies. Build it once per plan; it is immutable
// and safe for concurrent use.
type ClientIP struct {
	enabled bool
	headers []string
	trusted []netip.Prefix
}

// NewClientIP compiles cfg.
func NewClientIP(cfg ClientIPConfig) (*ClientIP, error) {
	c := &ClientIP{enabled: cfg.ForwardedByClientIP}
	c.headers = append([]string(nil), cfg.RemoteIPHeaders...)
	if len(c.headers) == 0 {
		c.headers = []string{"X-Forwarded-For", "X-Real-IP"}
	}
	for i, h := range c.headers {
		c.headers[i] = textproto.CanonicalMIMEHeaderKey(h)
	}
	for _, p := range cfg.TrustedProxies {
		if strings.Contains(p, "/") {
			pfx, err := netip.ParsePrefix(p)
			if err != nil {
				return nil, err
			}
			c.trusted = append(c.trusted, pfx.Masked())
			continue
		}
		a, err := netip.ParseAddr(p)
		if err != nil {
			return nil, err
		}
		c.trusted = append(c.trusted, netip.PrefixFrom(a, a.BitLen()))
	}
	if len(c.trusted) == 0 {
		c.enabled = false
	}
	return c, nil
}

func (c *ClientIP) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Append appends the client address of a request coming from remote to dst.
// Forwarded headers are consulted only when enabled and remote is a trusted
// proxy; the address chain is then walked right to left, skipping trusted
// proxies (gin's validateHeader).
func (c *ClientIP) Append(dst []byte, remote net.IP, h *fasthttp.RequestHeader) []byte {
	ra, ok := netip.AddrFromSlice(remote)
	if !ok {
		return dst
	}
	ra = ra.Unmap()
	if c.enabled && c.isTrusted(ra) {
		for _, name := range c.headers {
			if ip, ok := c.fromHeader(h.Peek(name)); ok {
				return ip.AppendTo(dst)
			}
		}
	}
	return ra.AppendTo(dst)
}

func (c *ClientIP) fromHeader(v []byte) (netip.Addr, bool) {
	for len(v) > 0 {
		var item []byte
		last := bytes.LastIndexByte(v, ',')
		if last >= 0 {
			item, v = v[last+1:], v[:last]
		} else {
			item, v = v, nil
		}
		a, err := netip.ParseAddr(b2s(bytes.TrimSpace(item)))
		if err != nil {
			return netip.Addr{}, false
		}
		a = a.Unmap()
		if last < 0 || !c.isTrusted(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}
