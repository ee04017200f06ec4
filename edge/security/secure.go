package security

import (
	"errors"
	"fmt"
	"net/textproto"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/internal/ascii"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Secure header names and fixed values (unrolled/secure).
var (
	hdrSTS         = []byte("Strict-Transport-Security")
	hdrFrame       = []byte("X-Frame-Options")
	hdrNosniff     = []byte("X-Content-Type-Options")
	hdrXSS         = []byte("X-Xss-Protection")
	hdrCSP         = []byte("Content-Security-Policy")
	hdrReferrer    = []byte("Referrer-Policy")
	hdrLocation    = []byte("Location")
	valDeny        = []byte("DENY")
	valNosniff     = []byte("nosniff")
	valXSS         = []byte("1; mode=block")
	prefixHTTPS    = []byte("https://")
	bodyBadRequest = []byte(`{"error":"bad_request"}`)
	ctJSON         = []byte("application/json")
)

// Secure enforces `security/http` with the semantics of unrolled/secure as
// krakend-httpsecure configures it, in its order:
//
//  1. Host: the request's Host, replaced by the first non-empty value of
//     host_proxy_headers (in order) when any is set — as unrolled/secure
//     does, so list only headers a trusted proxy in front of the edge
//     overwrites. With allowed_hosts set, the host must equal one of them
//     (ASCII case-insensitive) or, with allowed_hosts_are_regex, fully
//     match one of the expressions. Otherwise the request is answered 400
//     with the fixed body {"error":"bad_request"} (unrolled/secure's default
//     handler answers 500 "Bad Host"; the edge's fixed error bodies have
//     no such code, and a bad Host is the client's fault). Each expression
//     is anchored as a whole, ^(?:expr)$: unrolled/secure writes ^expr$,
//     under which "a\.com|b\.com" would also match "evil-b.com".
//  2. HTTPS: a request is secure when it came over TLS, when its
//     request-URI is absolute with the https scheme, or when one of
//     ssl_proxy_headers has exactly its configured value. With ssl_redirect
//     an insecure request is answered 301 with
//     Location: https://<ssl_host or host><original path and query> and an
//     empty body.
//  3. Response headers, on every request that passed: HSTS
//     ("max-age=N[; includeSubDomains]", only when sts_seconds > 0 and the
//     request is secure or force_sts_header is set), X-Frame-Options
//     (custom_frame_options_value, else DENY with frame_deny),
//     X-Content-Type-Options: nosniff, X-XSS-Protection: 1; mode=block,
//     Content-Security-Policy and Referrer-Policy as configured. The CSP
//     value is sent as written: unrolled/secure's $NONCE placeholder (a
//     per-request nonce for HTML templates) has no meaning for an API
//     gateway and is not expanded.
//
// is_development disables the host check, the HTTPS redirect and HSTS,
// as in unrolled/secure. Rejected and redirected requests get none of the
// response headers (unrolled/secure returns before setting them).
//
// A Secure is immutable and safe for concurrent use. A nil *Secure is
// valid: Handle does nothing.
type Secure struct {
	hosts       []string         // lower-case exact allowed hosts
	hostRegexps []*regexp.Regexp // allowed_hosts_are_regex
	checkHosts  bool
	hostHeaders [][]byte // host_proxy_headers, canonical
	sslHeaders  []kv     // ssl_proxy_headers, canonical names
	sslRedirect bool
	sslHost     []byte
	sts         []byte // nil: no HSTS
	forceSTS    bool
	frame       []byte
	nosniff     bool
	xss         bool
	csp         []byte
	referrer    []byte
}

type kv struct{ key, value []byte }

// redirectBufs holds the scratch buffers of HTTPS redirects.
var redirectBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// NewSecure compiles the `security/http` settings. It returns nil (and no
// error) when cfg is nil: a nil *Secure does nothing. Errors name the
// offending field; the caller reports them as a build violation.
func NewSecure(cfg *gatewayv1.SecurityHTTP) (*Secure, error) {
	if cfg == nil {
		return nil, nil
	}
	dev := cfg.GetIsDevelopment()
	s := &Secure{
		checkHosts:  len(cfg.GetAllowedHosts()) > 0 && !dev,
		sslRedirect: cfg.GetSslRedirect() && !dev,
		forceSTS:    cfg.GetForceStsHeader(),
		nosniff:     cfg.GetContentTypeNosniff(),
		xss:         cfg.GetBrowserXssFilter(),
	}
	var errs []error
	for i, h := range cfg.GetAllowedHosts() {
		switch {
		case h == "":
			errs = append(errs, fmt.Errorf("allowed_hosts[%d]: empty host", i))
		case cfg.GetAllowedHostsAreRegex():
			re, err := regexp.Compile("^(?:" + h + ")$")
			if err != nil {
				errs = append(errs, fmt.Errorf("allowed_hosts[%d]: %q: %w", i, h, err))
				continue
			}
			s.hostRegexps = append(s.hostRegexps, re)
		case hasCtl(h) || strings.ContainsAny(h, " /"):
			errs = append(errs, fmt.Errorf("allowed_hosts[%d]: %q is not a host[:port]", i, h))
		default:
			s.hosts = append(s.hosts, strings.ToLower(h))
		}
	}
	for i, h := range cfg.GetHostProxyHeaders() {
		if !isToken(h) {
			errs = append(errs, fmt.Errorf("host_proxy_headers[%d]: %q is not a header name", i, h))
			continue
		}
		s.hostHeaders = append(s.hostHeaders, []byte(textproto.CanonicalMIMEHeaderKey(h)))
	}
	// Map order is random; sort so that behaviour and errors are stable.
	keys := make([]string, 0, len(cfg.GetSslProxyHeaders()))
	for k := range cfg.GetSslProxyHeaders() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := cfg.GetSslProxyHeaders()[k]
		if !isToken(k) || hasCtl(v) {
			errs = append(errs, fmt.Errorf("ssl_proxy_headers[%q]: invalid header %q: %q", k, k, v))
			continue
		}
		s.sslHeaders = append(s.sslHeaders, kv{[]byte(textproto.CanonicalMIMEHeaderKey(k)), []byte(v)})
	}
	if h := cfg.GetSslHost(); h != "" {
		if hasCtl(h) || strings.ContainsAny(h, " /?#@") {
			errs = append(errs, fmt.Errorf("ssl_host: %q is not a host[:port]", h))
		}
		s.sslHost = []byte(h)
	}
	switch n := cfg.GetStsSeconds(); {
	case n < 0:
		errs = append(errs, fmt.Errorf("sts_seconds: %d must not be negative", n))
	case n > 0 && !dev:
		v := strconv.AppendInt([]byte("max-age="), n, 10)
		if cfg.GetStsIncludeSubdomains() {
			v = append(v, "; includeSubDomains"...)
		}
		s.sts = v
	}
	s.frame = headerValue(&errs, "custom_frame_options_value", cfg.GetCustomFrameOptionsValue())
	if s.frame == nil && cfg.GetFrameDeny() {
		s.frame = valDeny
	}
	s.csp = headerValue(&errs, "content_security_policy", cfg.GetContentSecurityPolicy())
	s.referrer = headerValue(&errs, "referrer_policy", cfg.GetReferrerPolicy())
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("security/http: %w", err)
	}
	return s, nil
}

// headerValue returns v as a header value, nil when empty.
func headerValue(errs *[]error, field, v string) []byte {
	if v == "" {
		return nil
	}
	if hasCtl(v) {
		*errs = append(*errs, fmt.Errorf("%s: %q: control characters in a header value", field, v))
		return nil
	}
	return []byte(v)
}

// Handle applies `security/http` to the request of ctx before routing. It
// returns true when it has answered the request (400 for a host that is
// not allowed, 301 to HTTPS); the caller must then not serve it further.
// Otherwise it sets the security response headers and returns false. It
// does not allocate unless it redirects. ctx is not retained.
func (s *Secure) Handle(ctx *fasthttp.RequestCtx) (done bool) {
	if s == nil {
		return false
	}
	host := s.host(ctx)
	if s.checkHosts && !s.hostAllowed(host) {
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		ctx.SetContentTypeBytes(ctJSON)
		ctx.SetBody(bodyBadRequest)
		return true
	}
	secure := s.isSecure(ctx)
	if s.sslRedirect && !secure {
		s.redirect(ctx, host)
		return true
	}
	h := &ctx.Response.Header
	if s.sts != nil && (secure || s.forceSTS) {
		h.SetCanonical(hdrSTS, s.sts)
	}
	if s.frame != nil {
		h.SetCanonical(hdrFrame, s.frame)
	}
	if s.nosniff {
		h.SetCanonical(hdrNosniff, valNosniff)
	}
	if s.xss {
		h.SetCanonical(hdrXSS, valXSS)
	}
	if s.csp != nil {
		h.SetCanonical(hdrCSP, s.csp)
	}
	if s.referrer != nil {
		h.SetCanonical(hdrReferrer, s.referrer)
	}
	return false
}

// host resolves the request host as unrolled/secure does: the Host (or
// the absolute request-URI's host), unless one of host_proxy_headers is
// set.
func (s *Secure) host(ctx *fasthttp.RequestCtx) []byte {
	for _, name := range s.hostHeaders {
		if v := ctx.Request.Header.PeekBytes(name); len(v) > 0 {
			return v
		}
	}
	return ctx.Host()
}

func (s *Secure) hostAllowed(host []byte) bool {
	for _, h := range s.hosts {
		if ascii.EqualFold(host, h) {
			return true
		}
	}
	for _, re := range s.hostRegexps {
		if re.Match(host) {
			return true
		}
	}
	return false
}

func (s *Secure) isSecure(ctx *fasthttp.RequestCtx) bool {
	if ctx.IsTLS() || string(ctx.URI().Scheme()) == "https" {
		return true
	}
	for i := range s.sslHeaders {
		if string(ctx.Request.Header.PeekBytes(s.sslHeaders[i].key)) == string(s.sslHeaders[i].value) {
			return true
		}
	}
	return false
}

// redirect answers 301 to the same path and query over HTTPS, on ssl_host
// when set.
func (s *Secure) redirect(ctx *fasthttp.RequestCtx, host []byte) {
	bp := redirectBufs.Get().(*[]byte)
	b := append((*bp)[:0], prefixHTTPS...)
	if s.sslHost != nil {
		b = append(b, s.sslHost...)
	} else {
		b = append(b, host...)
	}
	uri := ctx.URI()
	path := uri.PathOriginal()
	if len(path) == 0 || path[0] != '/' {
		b = append(b, '/')
	}
	b = append(b, path...)
	if qs := uri.QueryString(); len(qs) > 0 {
		b = append(append(b, '?'), qs...)
	}
	ctx.Response.Header.SetCanonical(hdrLocation, b)
	ctx.SetStatusCode(fasthttp.StatusMovedPermanently)
	if cap(b) <= 4<<10 {
		*bp = b
		redirectBufs.Put(bp)
	}
}
