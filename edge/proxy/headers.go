package proxy

import (
	"bytes"
	"net"
	"net/netip"
	"net/textproto"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/internal/ascii"
	"github.com/apigw/gateway/edge/internal/hop"
	"github.com/apigw/gateway/edge/internal/zerocopy"
)

// Canonical header names, ready to hand to fasthttp's SetCanonical.
var (
	hdrXForwardedFor  = []byte("X-Forwarded-For")
	hdrXForwardedHost = []byte("X-Forwarded-Host")
	hdrXForwardedVia  = []byte("X-Forwarded-Via")
	hdrConnection     = "Connection"
)

// isHopByHop reports whether the canonical or raw name k is hop-by-hop
// (edge/internal/hop); such headers are never forwarded, in either
// direction.
func isHopByHop(k []byte) bool { return hop.Is(k) }

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
		if ascii.EqualFold(name, zerocopy.String(tok)) {
			return true
		}
	}
	return false
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

// AppendForwarded appends the client address that header value v names,
// when the request comes from remote and remote is a trusted proxy
// (TrustedProxies; forwarded_by_client_ip is not needed). The list is
// walked right to left and the first address that is not a trusted proxy
// wins, so addresses a client put in front of its proxy's are never
// believed. ok is false, and dst unchanged, when remote is not trusted or
// v holds no usable address: the caller then uses the client IP.
func (c *ClientIP) AppendForwarded(dst []byte, remote net.IP, v []byte) (_ []byte, ok bool) {
	if len(c.trusted) == 0 || len(v) == 0 {
		return dst, false
	}
	ra, ok := netip.AddrFromSlice(remote)
	if !ok || !c.isTrusted(ra) {
		return dst, false
	}
	ip, ok := c.fromHeader(v)
	if !ok {
		return dst, false
	}
	return ip.AppendTo(dst), true
}

// Trusts reports whether any trusted proxy is configured.
func (c *ClientIP) Trusts() bool { return len(c.trusted) > 0 }

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
