package security

import (
	"bytes"
	"errors"
	"fmt"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/internal/ascii"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Defaults KrakenD applies to empty `security/cors` settings: krakend-cors
// turns empty allow_origins and allow_headers into "*" (handled in
// NewCORS), rs/cors defaults the methods and the preflight status. The
// control plane resolves them already; the edge applies them again so
// that a hand-built snapshot behaves the same.
var defaultCORSMethods = []string{fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodHead}

const defaultOptionsSuccessStatus = fasthttp.StatusNoContent

// CORS header names, canonical.
var (
	hdrOrigin   = []byte("Origin")
	hdrVary     = []byte("Vary")
	hdrACRM     = []byte("Access-Control-Request-Method")
	hdrACRPN    = []byte("Access-Control-Request-Private-Network")
	hdrACAO     = []byte("Access-Control-Allow-Origin")
	hdrACAM     = []byte("Access-Control-Allow-Methods")
	hdrACAH     = []byte("Access-Control-Allow-Headers")
	hdrACAC     = []byte("Access-Control-Allow-Credentials")
	hdrACAPN    = []byte("Access-Control-Allow-Private-Network")
	hdrACMA     = []byte("Access-Control-Max-Age")
	hdrACEH     = []byte("Access-Control-Expose-Headers")
	valAny      = []byte("*")
	valTrue     = []byte("true")
	varyActual  = []byte("Origin")
	varyPrefl   = []byte("Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	varyPreflPN = []byte("Origin, Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network")
)

// acrhKey is the Access-Control-Request-Headers name for PeekAll.
const acrhKey = "Access-Control-Request-Headers"

// maxStackOrigin bounds the Origin values lower-cased on the stack; a
// longer one (no real origin is) takes an allocating slow path.
const maxStackOrigin = 512

// CORS answers CORS preflights and decorates actual cross-origin requests,
// with the semantics of rs/cors v1.11 as KrakenD CE configures it:
//
//   - A preflight is an OPTIONS request with a non-empty
//     Access-Control-Request-Method, whatever its path (the handler sits
//     in front of the router). It always gets
//     "Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
//     (plus Access-Control-Request-Private-Network when private network
//     access is allowed) and is answered with options_success_status (204
//     by default) — also when the origin, the method or a requested header
//     is not allowed: then no Access-Control-* header is set and the
//     browser blocks the call. A preflight without Origin is answered the
//     same way. With options_passthrough the headers are set and the
//     request continues to the router instead.
//   - An allowed preflight gets Access-Control-Allow-Origin (see below),
//     Access-Control-Allow-Methods echoing the requested method (OPTIONS is
//     always allowed; other methods match allow_methods exactly),
//     Access-Control-Allow-Headers echoing the requested headers (when
//     allow_headers is "*" or lists every requested header, compared
//     case-insensitively), Access-Control-Allow-Credentials,
//     Access-Control-Allow-Private-Network when allowed and requested with
//     "Access-Control-Request-Private-Network: true", and
//     Access-Control-Max-Age when max_age is at least one second.
//   - Every other request gets "Vary: Origin"; when its Origin and method
//     are allowed it also gets Access-Control-Allow-Origin,
//     Access-Control-Expose-Headers and Access-Control-Allow-Credentials.
//   - Access-Control-Allow-Origin is "*" when every origin is allowed and
//     credentials are not; otherwise it echoes the request's Origin
//     (browsers refuse "*" with credentials, so we echo where rs/cors v1.11
//     would send "*"; the control plane rejects that combination anyway).
//   - Origins match case-insensitively; an allowed origin may hold one "*"
//     standing for any (possibly empty) run of characters, as in
//     "https://*.example.com".
//
// A CORS is immutable and safe for concurrent use. A nil *CORS is valid:
// Handle does nothing.
type CORS struct {
	originsAll  bool
	origins     map[string]struct{} // lower-case exact origins
	wildcards   []wildcard
	methods     [][]byte
	headersAll  bool
	headers     []string // lower-case allowed request headers
	credentials bool
	privateNet  bool
	passthrough bool
	status      int
	vary        []byte // preflight Vary value
	maxAge      []byte // nil: no Access-Control-Max-Age
	expose      []byte // nil: no Access-Control-Expose-Headers
}

// wildcard is an allowed origin with one "*": prefix*suffix, lower case.
type wildcard struct {
	prefix, suffix []byte
}

func (w *wildcard) match(origin []byte) bool {
	return len(origin) >= len(w.prefix)+len(w.suffix) &&
		bytes.HasPrefix(origin, w.prefix) && bytes.HasSuffix(origin, w.suffix)
}

// NewCORS compiles the `security/cors` settings. It returns nil (and no
// error) when cfg is nil: CORS is not configured and a nil *CORS does
// nothing. Errors name the offending field; the caller reports them as a
// build violation.
func NewCORS(cfg *gatewayv1.CORS) (*CORS, error) {
	if cfg == nil {
		return nil, nil
	}
	c := &CORS{
		credentials: cfg.GetAllowCredentials(),
		privateNet:  cfg.GetAllowPrivateNetwork(),
		passthrough: cfg.GetOptionsPassthrough(),
		status:      int(cfg.GetOptionsSuccessStatus()),
		vary:        varyPrefl,
	}
	var errs []error
	origins := cfg.GetAllowOrigins()
	if len(origins) == 0 {
		c.originsAll = true
	}
	c.origins = make(map[string]struct{}, len(origins))
	for i, o := range origins {
		o = strings.ToLower(o)
		switch n := strings.Count(o, "*"); {
		case o == "*":
			c.originsAll = true
		case o == "" || hasCtl(o) || strings.ContainsAny(o, " ,"):
			errs = append(errs, fmt.Errorf("allow_origins[%d]: invalid origin %q", i, o))
		case n > 1:
			errs = append(errs, fmt.Errorf("allow_origins[%d]: %q: at most one \"*\" per origin", i, o))
		case n == 1:
			star := strings.IndexByte(o, '*')
			c.wildcards = append(c.wildcards, wildcard{prefix: []byte(o[:star]), suffix: []byte(o[star+1:])})
		default:
			c.origins[o] = struct{}{}
		}
	}
	if c.originsAll {
		c.origins, c.wildcards = nil, nil
	}

	methods := cfg.GetAllowMethods()
	if len(methods) == 0 {
		methods = defaultCORSMethods
	}
	for i, m := range methods {
		if !isToken(m) {
			errs = append(errs, fmt.Errorf("allow_methods[%d]: %q is not an HTTP method", i, m))
			continue
		}
		c.methods = append(c.methods, []byte(m))
	}

	headers := cfg.GetAllowHeaders()
	if len(headers) == 0 {
		c.headersAll = true
	}
	for i, h := range headers {
		switch {
		case h == "*":
			c.headersAll = true
		case !isToken(h):
			errs = append(errs, fmt.Errorf("allow_headers[%d]: %q is not a header name", i, h))
		default:
			c.headers = append(c.headers, strings.ToLower(h))
		}
	}
	if c.headersAll {
		c.headers = nil
	}

	expose := make([]string, 0, len(cfg.GetExposeHeaders()))
	for i, h := range cfg.GetExposeHeaders() {
		if !isToken(h) {
			errs = append(errs, fmt.Errorf("expose_headers[%d]: %q is not a header name", i, h))
			continue
		}
		expose = append(expose, textproto.CanonicalMIMEHeaderKey(h))
	}
	if len(expose) > 0 {
		c.expose = []byte(strings.Join(expose, ", "))
	}

	switch ms := cfg.GetMaxAgeMs(); {
	case ms < 0:
		errs = append(errs, fmt.Errorf("max_age: %dms must not be negative", ms))
	case ms >= 1000:
		// krakend-cors passes int(max_age.Seconds()) to rs/cors, which
		// omits the header for 0.
		c.maxAge = strconv.AppendInt(nil, ms/1000, 10)
	}

	switch {
	case c.status == 0:
		c.status = defaultOptionsSuccessStatus
	case c.status < 200 || c.status > 299:
		errs = append(errs, fmt.Errorf("options_success_status: %d: a preflight answer must have a 2xx status", c.status))
	}
	if c.privateNet {
		c.vary = varyPreflPN
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("security/cors: %w", err)
	}
	return c, nil
}

// Handle applies CORS to the request of ctx before routing. It returns
// true when it has answered the request (a preflight, unless
// options_passthrough); the caller must then not serve it further. On an
// actual request it only adds response headers and returns false. It does
// not allocate for an actual request. ctx is not retained.
func (c *CORS) Handle(ctx *fasthttp.RequestCtx) (done bool) {
	if c == nil {
		return false
	}
	h := &ctx.Request.Header
	if h.IsOptions() {
		if acrm := h.PeekBytes(hdrACRM); len(acrm) > 0 {
			c.preflight(ctx, acrm)
			if c.passthrough {
				return false
			}
			ctx.SetStatusCode(c.status)
			return true
		}
	}
	c.actual(ctx)
	return false
}

func (c *CORS) preflight(ctx *fasthttp.RequestCtx, acrm []byte) {
	req := &ctx.Request.Header
	resp := &ctx.Response.Header
	resp.AddBytesKV(hdrVary, c.vary)
	origin := req.PeekBytes(hdrOrigin)
	if len(origin) == 0 || !c.originAllowed(origin) || !c.methodAllowed(acrm) {
		return
	}
	acrh := req.PeekAll(acrhKey)
	if len(acrh) > 0 && !c.headersAll && !c.headersAllowed(acrh) {
		return
	}
	c.setOrigin(resp, origin)
	resp.SetCanonical(hdrACAM, acrm)
	if len(acrh) > 0 && len(acrh[0]) > 0 {
		// rs/cors echoes every Access-Control-Request-Headers line (some
		// proxies split the list, rs/cors#184).
		for _, v := range acrh {
			resp.AddBytesKV(hdrACAH, v)
		}
	}
	if c.credentials {
		resp.SetCanonical(hdrACAC, valTrue)
	}
	if c.privateNet && string(req.PeekBytes(hdrACRPN)) == "true" {
		resp.SetCanonical(hdrACAPN, valTrue)
	}
	if c.maxAge != nil {
		resp.SetCanonical(hdrACMA, c.maxAge)
	}
}

func (c *CORS) actual(ctx *fasthttp.RequestCtx) {
	resp := &ctx.Response.Header
	resp.AddBytesKV(hdrVary, varyActual)
	origin := ctx.Request.Header.PeekBytes(hdrOrigin)
	if len(origin) == 0 || !c.originAllowed(origin) || !c.methodAllowed(ctx.Method()) {
		return
	}
	c.setOrigin(resp, origin)
	if c.expose != nil {
		resp.SetCanonical(hdrACEH, c.expose)
	}
	if c.credentials {
		resp.SetCanonical(hdrACAC, valTrue)
	}
}

func (c *CORS) setOrigin(resp *fasthttp.ResponseHeader, origin []byte) {
	if c.originsAll && !c.credentials {
		resp.SetCanonical(hdrACAO, valAny)
		return
	}
	resp.SetCanonical(hdrACAO, origin)
}

// originAllowed matches origin case-insensitively against the allowed
// origins without allocating (for origins up to maxStackOrigin bytes).
func (c *CORS) originAllowed(origin []byte) bool {
	if c.originsAll {
		return true
	}
	var buf [maxStackOrigin]byte
	lo := origin
	if hasUpper(origin) {
		if len(origin) > len(buf) {
			lo = bytes.ToLower(origin)
		} else {
			for i, b := range origin {
				buf[i] = ascii.Lower(b)
			}
			lo = buf[:len(origin)]
		}
	}
	if _, ok := c.origins[string(lo)]; ok {
		return true
	}
	for i := range c.wildcards {
		if c.wildcards[i].match(lo) {
			return true
		}
	}
	return false
}

func hasUpper(b []byte) bool {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

// methodAllowed follows rs/cors: OPTIONS is always allowed, any other
// method must be listed (exact, case-sensitive: the control plane
// upper-cases allow_methods and browsers upper-case the standard methods).
func (c *CORS) methodAllowed(m []byte) bool {
	if len(c.methods) == 0 {
		return false
	}
	if string(m) == fasthttp.MethodOptions {
		return true
	}
	for _, am := range c.methods {
		if bytes.Equal(am, m) {
			return true
		}
	}
	return false
}

// headersAllowed reports whether every name of the comma-separated
// Access-Control-Request-Headers values is allowed. Unlike rs/cors, which
// also requires the browser's sorted lower-case form, it accepts any order
// and case: only browsers enforce CORS and they always send that form.
func (c *CORS) headersAllowed(values [][]byte) bool {
	for _, v := range values {
		for len(v) > 0 {
			var name []byte
			if i := bytes.IndexByte(v, ','); i >= 0 {
				name, v = v[:i], v[i+1:]
			} else {
				name, v = v, nil
			}
			if name = trimOWS(name); len(name) > 0 && !c.headerAllowed(name) {
				return false
			}
		}
	}
	return true
}

func (c *CORS) headerAllowed(name []byte) bool {
	for _, h := range c.headers {
		if ascii.EqualFold(name, h) {
			return true
		}
	}
	return false
}
