package modifier

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// The last of the modifiers KrakenD CE registers, with martian's semantics:
//
//   - cookie.Modifier adds "name=value" to the request's Cookie header
//     (as Go's Request.AddCookie: after the cookies already there; fasthttp
//     keeps cookies parsed, so a value Go quotes, with a space or a comma,
//     is sent unquoted), or a
//     Set-Cookie header (Go's Cookie.String: path, domain, expires,
//     max-age, httpOnly, secure) to the response. fasthttp keeps one
//     Set-Cookie per name, so a backend cookie of the same name is
//     replaced where martian would send both.
//   - cookie.Filter runs its modifier when the request has the cookie (on
//     a response, a Set-Cookie of it), with the value when one is given,
//     else its else modifier.
//   - status.Modifier sets the backend response's status (response scope
//     only): it runs before the gateway checks the status, as in KrakenD.
//   - port.Modifier sends the request to another port (port), to the
//     scheme's default (defaultForScheme: the port is written, 80 or 443),
//     or to the URL without a port (remove). The Host header stays what
//     it was: martian sets the "Host" entry of the header map, which Go's
//     client ignores in favour of req.Host (request scope only).
//   - port.Filter runs its modifier when the URL's port (written, or the
//     scheme's default) is port. On a response it reads the request's URL
//     and, as martian, fails the call when that URL has no port and port
//     is not the scheme's default ("missing port in address").
//   - url.Filter runs its modifier when each non-empty part matches the
//     request URL (scheme, path and query exactly, host with martian's
//     "*" labels: "*.example.com"), else its else modifier.
//   - url.RegexFilter matches the regular expression against the request's
//     full URL (martian: url.URL.String(); here fasthttp's full URI, the
//     same text for the URLs the edge builds).
//   - Verifiers (header, querystring, status, url) do nothing: KrakenD
//     never reads what they record. The compiler warns about them.

// rest compiles the modifiers of this file.
func (c *compiler) rest(m *gatewayv1.MartianModifier, path string, onReq, onResp bool) (requestModifier, responseModifier) {
	onlyScope := func(what, phase string) bool {
		for _, s := range m.GetScope() {
			if s != phase {
				c.fail(join(path, "scope"), "%s only modifies %ss", what, phase)
				return false
			}
		}
		return true
	}
	switch k := m.GetKind().(type) {
	case *gatewayv1.MartianModifier_CookieModifier:
		p := join(path, "cookie_modifier")
		mod, err := newCookieModifier(k.CookieModifier)
		if err != nil {
			c.fail(p, "%v", err)
			return nil, nil
		}
		return reqOrNil(mod, onReq), respOrNil(mod, onResp)
	case *gatewayv1.MartianModifier_CookieFilter:
		p := join(path, "cookie_filter")
		f := k.CookieFilter
		if !isToken(f.GetName()) {
			c.fail(join(p, "name"), "%q is not a cookie name", f.GetName())
			return nil, nil
		}
		cond := &cookieCond{name: []byte(f.GetName()), value: []byte(f.GetValue())}
		return c.filter(p, f.GetModifier(), f.GetElse(), cond, onReq, onResp)
	case *gatewayv1.MartianModifier_StatusModifier:
		p := join(path, "status_modifier")
		code := int(k.StatusModifier.GetStatusCode())
		if code < 100 || code > 999 {
			c.fail(join(p, "status_code"), "%d is not an HTTP status code", code)
			return nil, nil
		}
		if !onlyScope("status.Modifier", ScopeResponse) {
			return nil, nil
		}
		return nil, respOrNil(statusModifier(code), onResp)
	case *gatewayv1.MartianModifier_PortModifier:
		p := join(path, "port_modifier")
		pm := k.PortModifier
		set := 0
		for _, b := range []bool{pm.GetPort() != 0, pm.GetDefaultForScheme(), pm.GetRemove()} {
			if b {
				set++
			}
		}
		if set != 1 || pm.GetPort() < 0 || pm.GetPort() > 65535 {
			c.fail(p, "exactly one of a port (1 to 65535), default_for_scheme or remove is required")
			return nil, nil
		}
		if !onlyScope("port.Modifier", ScopeRequest) {
			return nil, nil
		}
		c.reroutes = true
		mod := &portModifier{defaultForScheme: pm.GetDefaultForScheme(), remove: pm.GetRemove()}
		if pm.GetPort() != 0 {
			mod.port = []byte(strconv.Itoa(int(pm.GetPort())))
		}
		return reqOrNil(mod, onReq), nil
	case *gatewayv1.MartianModifier_PortFilter:
		p := join(path, "port_filter")
		f := k.PortFilter
		if f.GetPort() < 1 || f.GetPort() > 65535 {
			c.fail(join(p, "port"), "%d is not a TCP port", f.GetPort())
			return nil, nil
		}
		if f.GetModifier() == nil {
			c.fail(join(p, "modifier"), "a filter needs a modifier")
			return nil, nil
		}
		tr, ts := c.node(f.GetModifier(), join(p, "modifier"), onReq, onResp)
		port := int(f.GetPort())
		var r requestModifier
		var s responseModifier
		if onReq && tr != nil {
			r = &requestFilter{cond: portCond(port), then: tr}
		}
		if onResp {
			// Even without a response modifier: martian's port.Filter
			// parses the port in the response phase, and fails on a URL
			// without one.
			s = &portResponseFilter{port: port, then: ts}
		}
		return r, s
	case *gatewayv1.MartianModifier_UrlFilter:
		p := join(path, "url_filter")
		f := k.UrlFilter
		cond := &urlCond{scheme: []byte(f.GetScheme()), host: f.GetHost(), path: []byte(f.GetPath()), query: []byte(f.GetQuery())}
		return c.filter(p, f.GetModifier(), f.GetElse(), cond, onReq, onResp)
	case *gatewayv1.MartianModifier_UrlRegexFilter:
		p := join(path, "url_regex_filter")
		f := k.UrlRegexFilter
		re, err := regexp.Compile(f.GetRegex())
		if err != nil {
			c.fail(join(p, "regex"), "%v", err)
			return nil, nil
		}
		return c.filter(p, f.GetModifier(), f.GetElse(), &urlRegexCond{re: re}, onReq, onResp)
	case *gatewayv1.MartianModifier_Verifier:
		return nil, nil
	case *gatewayv1.MartianModifier_StaticModifier:
		return c.static(k.StaticModifier, path, onReq, onResp)
	}
	c.fail(path, "unsupported modifier %T", m.GetKind())
	return nil, nil
}

// cookieModifier is cookie.Modifier; its texts are net/http's, made once.
type cookieModifier struct {
	pair      []byte // name=value, as Request.AddCookie writes it
	setCookie []byte // Cookie.String()
}

var hdrCookie = []byte("Cookie")

func newCookieModifier(pc *gatewayv1.MartianCookie) (*cookieModifier, error) {
	if !isToken(pc.GetName()) {
		return nil, fmt.Errorf("name: %q is not a cookie name", pc.GetName())
	}
	ck := &http.Cookie{
		Name: pc.GetName(), Value: pc.GetValue(), Path: pc.GetPath(), Domain: pc.GetDomain(),
		Secure: pc.GetSecure(), HttpOnly: pc.GetHttpOnly(), MaxAge: int(pc.GetMaxAge()),
	}
	if e := pc.GetExpires(); e != "" {
		t, err := time.Parse(time.RFC3339, e)
		if err != nil {
			return nil, fmt.Errorf("expires: %v", err)
		}
		ck.Expires = t
	}
	r := &http.Request{Header: http.Header{}}
	r.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
	return &cookieModifier{pair: []byte(r.Header.Get("Cookie")), setCookie: []byte(ck.String())}, nil
}

func (m *cookieModifier) modifyRequest(req *fasthttp.Request) error {
	old := req.Header.PeekBytes(hdrCookie)
	if len(old) == 0 {
		req.Header.SetCanonical(hdrCookie, m.pair)
		return nil
	}
	var stack [256]byte
	v := append(append(append(stack[:0], old...), "; "...), m.pair...)
	// fasthttp parses a Cookie header into its cookie list, adding to it:
	// clear the list, then set the whole header.
	req.Header.DelAllCookies()
	req.Header.SetCanonical(hdrCookie, v)
	return nil
}

var hdrSetCookie = []byte("Set-Cookie")

func (m *cookieModifier) modifyResponse(resp *fasthttp.Response, _ *fasthttp.Request) error {
	resp.Header.AddBytesKV(hdrSetCookie, m.setCookie)
	return nil
}

// cookieCond is cookie.Filter's matcher.
type cookieCond struct{ name, value []byte }

func (c *cookieCond) matchRequest(req *fasthttp.Request) bool {
	for k, v := range req.Header.Cookies() {
		if bytes.Equal(k, c.name) && (len(c.value) == 0 || bytes.Equal(v, c.value)) {
			return true
		}
	}
	return false
}

func (c *cookieCond) matchResponse(resp *fasthttp.Response, _ *fasthttp.Request) bool {
	for k, v := range resp.Header.Cookies() {
		if !bytes.Equal(k, c.name) {
			continue
		}
		if len(c.value) == 0 {
			return true
		}
		ck := fasthttp.AcquireCookie()
		ok := ck.ParseBytes(v) == nil && bytes.Equal(ck.Value(), c.value)
		fasthttp.ReleaseCookie(ck)
		if ok {
			return true
		}
	}
	return false
}

// statusModifier is status.Modifier.
type statusModifier int

func (m statusModifier) modifyResponse(resp *fasthttp.Response, _ *fasthttp.Request) error {
	resp.SetStatusCode(int(m))
	return nil
}

// splitHostPort splits a URL host as net.SplitHostPort does ("[::1]:80"
// gives "::1" and "80"); hasPort is false when host has no ':' at all
// (martian's strings.Contains test).
func splitHostPort(host []byte) (h, port []byte, hasPort bool, err error) {
	if bytes.IndexByte(host, ':') < 0 {
		return host, nil, false, nil
	}
	if host[0] == '[' {
		end := bytes.IndexByte(host, ']')
		if end < 0 {
			return nil, nil, true, fmt.Errorf("address %s: missing ']' in address", host)
		}
		if end+1 == len(host) || host[end+1] != ':' {
			return nil, nil, true, fmt.Errorf("address %s: missing port in address", host)
		}
		return host[1:end], host[end+2:], true, nil
	}
	i := bytes.LastIndexByte(host, ':')
	if bytes.IndexByte(host[:i], ':') >= 0 {
		return nil, nil, true, fmt.Errorf("address %s: too many colons in address", host)
	}
	return host[:i], host[i+1:], true, nil
}

// appendHostPort is net.JoinHostPort.
func appendHostPort(dst, host, port []byte) []byte {
	if bytes.IndexByte(host, ':') >= 0 {
		dst = append(append(append(dst, '['), host...), ']')
	} else {
		dst = append(dst, host...)
	}
	return append(append(dst, ':'), port...)
}

// portModifier is port.Modifier.
type portModifier struct {
	port             []byte // set: use it
	defaultForScheme bool
	remove           bool
}

var (
	port80  = []byte("80")
	port443 = []byte("443")
)

func (m *portModifier) modifyRequest(req *fasthttp.Request) error {
	u := req.URI()
	host, _, _, err := splitHostPort(u.Host())
	if err != nil {
		return err
	}
	if !req.UseHostHeader {
		// Go's client keeps sending req.Host, the original host.
		req.Header.SetHostBytes(u.Host())
		req.UseHostHeader = true
	}
	var stack [300]byte
	switch {
	case m.remove:
		u.SetHostBytes(append(stack[:0], host...))
	case m.defaultForScheme:
		switch string(u.Scheme()) {
		case "http":
			u.SetHostBytes(appendHostPort(stack[:0], host, port80))
		case "https":
			u.SetHostBytes(appendHostPort(stack[:0], host, port443))
		}
	default:
		u.SetHostBytes(appendHostPort(stack[:0], host, m.port))
	}
	return nil
}

// defaultPort is the scheme's port for martian's port.Filter (0: neither
// http nor https).
func defaultPort(scheme []byte) int {
	switch string(scheme) {
	case "http":
		return 80
	case "https":
		return 443
	}
	return 0
}

// portOf is the port of a URL for port.Filter; err as martian's.
func portOf(u *fasthttp.URI) (port int, err error) {
	_, p, hasPort, err := splitHostPort(u.Host())
	if err != nil {
		return 0, err
	}
	if !hasPort {
		return defaultPort(u.Scheme()), nil
	}
	n, err := strconv.Atoi(string(p))
	if err != nil {
		return 0, fmt.Errorf("strconv.Atoi: parsing %q: invalid syntax", p)
	}
	return n, nil
}

// portCond is port.Filter's request test (a port that does not parse never
// matches; martian fails the call then, see portRequestFilter).
type portCond int

func (p portCond) matchRequest(req *fasthttp.Request) bool {
	n, err := portOf(req.URI())
	return err == nil && n == int(p)
}

func (p portCond) matchResponse(_ *fasthttp.Response, req *fasthttp.Request) bool {
	return req != nil && p.matchRequest(req)
}

// portResponseFilter is port.Filter on a response.
type portResponseFilter struct {
	port int
	then responseModifier // nil: nothing
}

func (f *portResponseFilter) modifyResponse(resp *fasthttp.Response, req *fasthttp.Request) error {
	if req == nil {
		return errors.New("port.Filter: no request")
	}
	u := req.URI()
	var n int
	if _, p, hasPort, err := splitHostPort(u.Host()); err != nil {
		return err
	} else if hasPort {
		if n, err = strconv.Atoi(string(p)); err != nil {
			return fmt.Errorf("strconv.Atoi: parsing %q: invalid syntax", p)
		}
	} else if f.port == defaultPort(u.Scheme()) {
		n = f.port
	} else {
		return fmt.Errorf("address %s: missing port in address", u.Host())
	}
	if n != f.port || f.then == nil {
		return nil
	}
	return f.then.modifyResponse(resp, req)
}

// urlCond is url.Filter's matcher.
type urlCond struct {
	scheme, path, query []byte
	host                string
}

func (c *urlCond) matchRequest(req *fasthttp.Request) bool {
	if req == nil {
		return false
	}
	u := req.URI()
	switch {
	case len(c.scheme) > 0 && !bytes.Equal(c.scheme, u.Scheme()):
		return false
	case c.host != "" && !matchHost(u.Host(), c.host):
		return false
	case len(c.path) > 0 && !bytes.Equal(c.path, u.Path()):
		return false
	case len(c.query) > 0 && !bytes.Equal(c.query, rawQuery(u)):
		return false
	}
	return true
}

func (c *urlCond) matchResponse(_ *fasthttp.Response, req *fasthttp.Request) bool {
	return c.matchRequest(req)
}

// rawQuery is the query as it will be sent (after querystring modifiers).
func rawQuery(u *fasthttp.URI) []byte {
	ru := u.RequestURI()
	if i := bytes.IndexByte(ru, '?'); i >= 0 {
		return ru[i+1:]
	}
	return nil
}

// matchHost is martian's MatchHost: host equals match, or match's "*"
// labels stand for any one label ("*.example.com", "api.*.com").
func matchHost(host []byte, match string) bool {
	if len(host) == 0 {
		return false
	}
	if string(host) == match {
		return true
	}
	hi := len(host) - 1
	for mi := len(match) - 1; mi >= 0; mi-- {
		if match[mi] == '*' {
			for hi > 0 && host[hi] != '.' {
				hi--
			}
			if mi == 0 && hi == 0 {
				return true
			}
			continue
		}
		if host[hi] != match[mi] {
			return false
		}
		if hi == 0 {
			return mi == 0
		}
		hi--
	}
	return false
}

// urlRegexCond is url.RegexFilter's matcher.
type urlRegexCond struct{ re *regexp.Regexp }

func (c *urlRegexCond) matchRequest(req *fasthttp.Request) bool {
	return req != nil && c.re.Match(req.URI().FullURI())
}

func (c *urlRegexCond) matchResponse(_ *fasthttp.Response, req *fasthttp.Request) bool {
	return c.matchRequest(req)
}
