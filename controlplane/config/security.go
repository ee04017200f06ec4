package config

import (
	"net/textproto"
	"regexp"
	"strings"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Service-wide HTTP security: `security/cors` (krakend-cors, rs/cors) and
// `security/http` (krakend-httpsecure, unrolled/secure).

// referrerPolicies are the Referrer-Policy tokens browsers understand; a
// misspelt one makes them ignore the header.
var referrerPolicies = []string{
	"no-referrer", "no-referrer-when-downgrade", "origin", "origin-when-cross-origin",
	"same-origin", "strict-origin", "strict-origin-when-cross-origin", "unsafe-url",
}

// sslHost is a host name with an optional port, without a scheme or path.
var sslHost = regexp.MustCompile(`^[a-zA-Z0-9._\-]+(:[0-9]{1,5})?$`)

func (d *decoder) cors(n *node, p path) *CORS {
	c := &CORS{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"allow_origins":          d.strings(&c.AllowOrigins),
		"allow_methods":          d.strings(&c.AllowMethods),
		"allow_headers":          d.strings(&c.AllowHeaders),
		"expose_headers":         d.strings(&c.ExposeHeaders),
		"allow_credentials":      d.boolean(&c.AllowCredentials),
		"max_age":                d.duration(&c.MaxAge),
		"allow_private_network":  d.boolean(&c.AllowPrivateNetwork),
		"options_passthrough":    d.boolean(&c.OptionsPassthrough),
		"options_success_status": d.optInteger(&c.OptionsSuccessStatus),
		"debug":                  d.noEffect(d.boolean(&c.Debug), "CORS decisions are not logged"),
	}})
	return c
}

func (d *decoder) securityHTTP(n *node, p path) *SecurityHTTP {
	s := &SecurityHTTP{}
	d.object(n, p, objectSpec{
		fields: map[string]handler{
			"allowed_hosts":              d.strings(&s.AllowedHosts),
			"allowed_hosts_are_regex":    d.boolean(&s.AllowedHostsAreRegex),
			"host_proxy_headers":         d.strings(&s.HostProxyHeaders),
			"sts_seconds":                d.integer(&s.STSSeconds),
			"sts_include_subdomains":     d.boolean(&s.STSIncludeSubdomains),
			"force_sts_header":           d.boolean(&s.ForceSTSHeader),
			"frame_deny":                 d.boolean(&s.FrameDeny),
			"custom_frame_options_value": d.str(&s.CustomFrameOptionsValue),
			"content_security_policy":    d.str(&s.ContentSecurityPolicy),
			"content_type_nosniff":       d.boolean(&s.ContentTypeNosniff),
			"browser_xss_filter":         d.boolean(&s.BrowserXSSFilter),
			"referrer_policy":            d.str(&s.ReferrerPolicy),
			"ssl_redirect":               d.boolean(&s.SSLRedirect),
			"ssl_host":                   d.str(&s.SSLHost),
			"ssl_proxy_headers":          d.stringMap(&s.SSLProxyHeaders),
			"is_development":             d.boolean(&s.IsDevelopment),
		},
		notSupported: map[string]string{
			"hpkp_public_key": "HTTP public key pinning (hpkp_public_key) is obsolete, browsers ignore it, and it is not supported",
		},
	})
	return s
}

func (v *validator) cors(p path, c *CORS) {
	op := p.field("allow_origins")
	wildcard := false
	for i, o := range c.AllowOrigins {
		switch {
		case o == "*":
			wildcard = true
		case !validOrigin(o):
			v.vs.add(op.index(i), KindInvalid, "%q: want \"*\" or scheme://host[:port], with at most one \"*\" (https://*.example.com)", o)
		}
	}
	if c.AllowCredentials && wildcard {
		v.vs.add(p.field("allow_credentials"), KindInvalid,
			"browsers refuse credentials when any origin is allowed (\"*\" in allow_origins); list the allowed origins instead")
	}
	for i, m := range c.AllowMethods {
		if !isToken(m) {
			v.vs.add(p.field("allow_methods").index(i), KindInvalid, "%q is not an HTTP method", m)
		}
	}
	v.headerNames(p.field("allow_headers"), c.AllowHeaders, true)
	v.headerNames(p.field("expose_headers"), c.ExposeHeaders, true)
	v.nonNegative(p.field("max_age"), c.MaxAge)
	if s := deref(c.OptionsSuccessStatus); s < 200 || s > 299 {
		v.vs.add(p.field("options_success_status"), KindInvalid, "%d: a preflight answer must have a 2xx status", s)
	}
}

// validOrigin accepts scheme://host[:port] with at most one "*" (rs/cors's
// wildcard origins), and no path, query, fragment or user info.
func validOrigin(o string) bool {
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok || scheme == "" || rest == "" || strings.Count(o, "*") > 1 || strings.ContainsAny(rest, "/?#@ \t\r\n") {
		return false
	}
	for i := 0; i < len(scheme); i++ {
		c := scheme[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' && i > 0 || strings.IndexByte("+-.", c) >= 0 && i > 0) {
			return false
		}
	}
	return true
}

func (v *validator) securityHTTP(p path, s *SecurityHTTP) {
	hp := p.field("allowed_hosts")
	for i, h := range s.AllowedHosts {
		switch {
		case h == "":
			v.vs.add(hp.index(i), KindInvalid, "empty host")
		case s.AllowedHostsAreRegex:
			// unrolled/secure anchors each expression (and panics on a bad one).
			if _, err := regexp.Compile("^" + h + "$"); err != nil {
				v.vs.add(hp.index(i), KindInvalid, "%q is not a valid regular expression: %v", h, err)
			}
		case strings.ContainsAny(h, "/ \t\r\n"):
			v.vs.add(hp.index(i), KindInvalid, "%q: want a host name with an optional port (set allowed_hosts_are_regex for patterns)", h)
		}
	}
	v.headerNames(p.field("host_proxy_headers"), s.HostProxyHeaders, false)
	if s.STSSeconds < 0 {
		v.vs.add(p.field("sts_seconds"), KindInvalid, "%d: must not be negative", s.STSSeconds)
	}
	v.headerValue(p.field("custom_frame_options_value"), s.CustomFrameOptionsValue)
	v.headerValue(p.field("content_security_policy"), s.ContentSecurityPolicy)
	if s.ReferrerPolicy != "" {
		for _, tok := range strings.Split(s.ReferrerPolicy, ",") {
			if tok = strings.TrimSpace(tok); !oneOf(tok, referrerPolicies) {
				v.vs.unsupportedValue(p.field("referrer_policy"), tok, referrerPolicies)
				break
			}
		}
	}
	if s.SSLHost != "" && !sslHost.MatchString(s.SSLHost) {
		v.vs.add(p.field("ssl_host"), KindInvalid, "%q: want host[:port] without a scheme or path", s.SSLHost)
	}
	sp := p.field("ssl_proxy_headers")
	seen := make(map[string]string, len(s.SSLProxyHeaders))
	for _, k := range sortedKeys(s.SSLProxyHeaders) {
		kp := sp.key(k)
		canonical := textproto.CanonicalMIMEHeaderKey(k)
		switch prev, dup := seen[canonical]; {
		case !isToken(k):
			v.vs.add(kp, KindInvalid, "%q is not a valid header name", k)
		case dup:
			v.vs.add(kp, KindDuplicate, "%q is the same header as %q", k, prev)
		default:
			seen[canonical] = k
		}
		if s.SSLProxyHeaders[k] == "" {
			v.vs.add(kp, KindInvalid, "empty value for %q", k)
		}
		v.headerValue(kp, s.SSLProxyHeaders[k])
	}
}

// headerValue rejects control characters, which would split or corrupt
// the header the edge writes.
func (v *validator) headerValue(p path, value string) {
	if strings.IndexFunc(value, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) >= 0 {
		v.vs.add(p, KindInvalid, "%q: a header value must not contain control characters", value)
	}
}

func compileCORS(c *CORS) *gatewayv1.CORS {
	return &gatewayv1.CORS{
		AllowOrigins:         allowList(c.AllowOrigins),
		AllowMethods:         allowList(c.AllowMethods),
		AllowHeaders:         allowList(c.AllowHeaders),
		ExposeHeaders:        allowList(c.ExposeHeaders),
		AllowCredentials:     c.AllowCredentials,
		MaxAgeMs:             ms(c.MaxAge),
		AllowPrivateNetwork:  c.AllowPrivateNetwork,
		OptionsPassthrough:   c.OptionsPassthrough,
		OptionsSuccessStatus: uint32(deref(c.OptionsSuccessStatus)),
	}
}

func compileSecurityHTTP(s *SecurityHTTP) *gatewayv1.SecurityHTTP {
	out := &gatewayv1.SecurityHTTP{
		AllowedHosts:            s.AllowedHosts,
		AllowedHostsAreRegex:    s.AllowedHostsAreRegex,
		HostProxyHeaders:        allowList(canonicalHeaders(s.HostProxyHeaders)),
		StsSeconds:              s.STSSeconds,
		StsIncludeSubdomains:    s.STSIncludeSubdomains,
		ForceStsHeader:          s.ForceSTSHeader,
		FrameDeny:               s.FrameDeny,
		CustomFrameOptionsValue: s.CustomFrameOptionsValue,
		ContentSecurityPolicy:   s.ContentSecurityPolicy,
		ContentTypeNosniff:      s.ContentTypeNosniff,
		BrowserXssFilter:        s.BrowserXSSFilter,
		ReferrerPolicy:          s.ReferrerPolicy,
		SslRedirect:             s.SSLRedirect,
		SslHost:                 s.SSLHost,
		IsDevelopment:           s.IsDevelopment,
	}
	if len(s.SSLProxyHeaders) > 0 {
		out.SslProxyHeaders = make(map[string]string, len(s.SSLProxyHeaders))
		for _, k := range sortedKeys(s.SSLProxyHeaders) {
			out.SslProxyHeaders[textproto.CanonicalMIMEHeaderKey(k)] = s.SSLProxyHeaders[k]
		}
	}
	return out
}
