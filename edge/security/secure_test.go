package security_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/apigw/gateway/edge/security"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

const badRequest = `{"error":"bad_request"}`

func isSecureHeader(k string) bool {
	switch k {
	case "Strict-Transport-Security", "X-Frame-Options", "X-Content-Type-Options", "X-Xss-Protection",
		"Content-Security-Policy", "Referrer-Policy", "Location", "Content-Type":
		return true
	}
	return false
}

// allHeaders enables every response header.
func allHeaders() *gatewayv1.SecurityHTTP {
	return &gatewayv1.SecurityHTTP{
		StsSeconds:            31536000,
		StsIncludeSubdomains:  true,
		FrameDeny:             true,
		ContentTypeNosniff:    true,
		BrowserXssFilter:      true,
		ContentSecurityPolicy: "default-src 'self'",
		ReferrerPolicy:        "strict-origin-when-cross-origin",
	}
}

// plainHeaders are the headers of allHeaders on a plain-HTTP request.
func plainHeaders(kv ...string) http.Header {
	out := h(
		"X-Frame-Options", "DENY",
		"X-Content-Type-Options", "nosniff",
		"X-Xss-Protection", "1; mode=block",
		"Content-Security-Policy", "default-src 'self'",
		"Referrer-Policy", "strict-origin-when-cross-origin",
		"Content-Type", "text/plain; charset=utf-8",
	)
	for i := 0; i < len(kv); i += 2 {
		out.Set(kv[i], kv[i+1])
	}
	return out
}

func TestSecure(t *testing.T) {
	t.Parallel()
	with := func(f func(*gatewayv1.SecurityHTTP)) *gatewayv1.SecurityHTTP {
		s := allHeaders()
		f(s)
		return s
	}
	rejected := answer{Status: 400, Body: badRequest, Headers: h("Content-Type", "application/json")}
	tests := []struct {
		name string
		cfg  *gatewayv1.SecurityHTTP
		tls  bool
		req  request
		want answer
	}{
		{
			name: "every header on plain HTTP, no HSTS",
			cfg:  allHeaders(),
			want: answer{Status: 200, Next: true, Headers: plainHeaders()},
		},
		{
			name: "HSTS over TLS",
			cfg:  allHeaders(),
			tls:  true,
			want: answer{Status: 200, Next: true, Headers: plainHeaders("Strict-Transport-Security", "max-age=31536000; includeSubDomains")},
		},
		{
			name: "HSTS when a TLS-terminating proxy says https",
			cfg:  with(func(s *gatewayv1.SecurityHTTP) { s.SslProxyHeaders = map[string]string{"x-forwarded-proto": "https"} }),
			req:  request{header: h("X-Forwarded-Proto", "https")},
			want: answer{Status: 200, Next: true, Headers: plainHeaders("Strict-Transport-Security", "max-age=31536000; includeSubDomains")},
		},
		{
			name: "ssl proxy header value must match exactly",
			cfg:  with(func(s *gatewayv1.SecurityHTTP) { s.SslProxyHeaders = map[string]string{"X-Forwarded-Proto": "https"} }),
			req:  request{header: h("X-Forwarded-Proto", "HTTPS")},
			want: answer{Status: 200, Next: true, Headers: plainHeaders()},
		},
		{
			name: "force_sts_header on plain HTTP",
			cfg:  with(func(s *gatewayv1.SecurityHTTP) { s.ForceStsHeader = true; s.StsIncludeSubdomains = false }),
			want: answer{Status: 200, Next: true, Headers: plainHeaders("Strict-Transport-Security", "max-age=31536000")},
		},
		{
			name: "custom frame options override frame_deny",
			cfg:  with(func(s *gatewayv1.SecurityHTTP) { s.CustomFrameOptionsValue = "SAMEORIGIN" }),
			want: answer{Status: 200, Next: true, Headers: plainHeaders("X-Frame-Options", "SAMEORIGIN")},
		},
		{
			name: "nothing enabled sets nothing",
			cfg:  &gatewayv1.SecurityHTTP{},
			want: answer{Status: 200, Next: true, Headers: h("Content-Type", "text/plain; charset=utf-8")},
		},
		{
			name: "allowed host, exact and case-insensitive",
			cfg: with(func(s *gatewayv1.SecurityHTTP) {
				s.AllowedHosts = []string{"api.example.com", "Other.Example.com:8443"}
			}),
			req:  request{host: "other.example.COM:8443"},
			want: answer{Status: 200, Next: true, Headers: plainHeaders()},
		},
		{
			name: "host not allowed",
			cfg:  with(func(s *gatewayv1.SecurityHTTP) { s.AllowedHosts = []string{"api.example.com"} }),
			req:  request{host: "evil.test"},
			want: rejected,
		},
		{
			name: "host with another port is not allowed",
			cfg:  with(func(s *gatewayv1.SecurityHTTP) { s.AllowedHosts = []string{"api.example.com"} }),
			req:  request{host: "api.example.com:8080"},
			want: rejected,
		},
		{
			name: "regex host allowed",
			cfg: with(func(s *gatewayv1.SecurityHTTP) {
				s.AllowedHosts = []string{`(.+\.)?example\.com`}
				s.AllowedHostsAreRegex = true
			}),
			req:  request{host: "eu.api.example.com"},
			want: answer{Status: 200, Next: true, Headers: plainHeaders()},
		},
		{
			name: "regex host is anchored",
			cfg: with(func(s *gatewayv1.SecurityHTTP) {
				s.AllowedHosts = []string{`(.+\.)?example\.com`}
				s.AllowedHostsAreRegex = true
			}),
			req:  request{host: "example.com.evil.test"},
			want: rejected,
		},
		{
			name: "regex alternatives are anchored as a whole",
			cfg: with(func(s *gatewayv1.SecurityHTTP) {
				s.AllowedHosts = []string{`a\.test|b\.test`}
				s.AllowedHostsAreRegex = true
			}),
			req:  request{host: "evil-b.test"},
			want: rejected,
		},
		{
			name: "host proxy header replaces the Host",
			cfg: with(func(s *gatewayv1.SecurityHTTP) {
				s.AllowedHosts = []string{"api.example.com"}
				s.HostProxyHeaders = []string{"X-Forwarded-Host"}
			}),
			req:  request{host: "10.0.0.7:8080", header: h("X-Forwarded-Host", "api.example.com")},
			want: answer{Status: 200, Next: true, Headers: plainHeaders()},
		},
		{
			name: "host proxy header checked instead of a good Host",
			cfg: with(func(s *gatewayv1.SecurityHTTP) {
				s.AllowedHosts = []string{"api.example.com"}
				s.HostProxyHeaders = []string{"X-Forwarded-Host"}
			}),
			req:  request{host: "api.example.com", header: h("X-Forwarded-Host", "evil.test")},
			want: rejected,
		},
		{
			name: "ssl redirect keeps path and query",
			cfg:  with(func(s *gatewayv1.SecurityHTTP) { s.SslRedirect = true }),
			req:  request{path: "/users/a%2Fb?x=1&y=%20", host: "api.example.com"},
			want: answer{Status: 301, Headers: h("Location", "https://api.example.com/users/a%2Fb?x=1&y=%20")},
		},
		{
			name: "ssl redirect to ssl_host",
			cfg:  with(func(s *gatewayv1.SecurityHTTP) { s.SslRedirect = true; s.SslHost = "secure.example.com:8443" }),
			req:  request{path: "/p", host: "api.example.com"},
			want: answer{Status: 301, Headers: h("Location", "https://secure.example.com:8443/p")},
		},
		{
			name: "ssl redirect uses the host proxy header",
			cfg: with(func(s *gatewayv1.SecurityHTTP) {
				s.SslRedirect = true
				s.HostProxyHeaders = []string{"X-Forwarded-Host"}
			}),
			req:  request{path: "/", host: "10.0.0.7", header: h("X-Forwarded-Host", "api.example.com")},
			want: answer{Status: 301, Headers: h("Location", "https://api.example.com/")},
		},
		{
			name: "no redirect behind a TLS-terminating proxy",
			cfg: with(func(s *gatewayv1.SecurityHTTP) {
				s.SslRedirect = true
				s.SslProxyHeaders = map[string]string{"X-Forwarded-Proto": "https"}
			}),
			req:  request{header: h("X-Forwarded-Proto", "https")},
			want: answer{Status: 200, Next: true, Headers: plainHeaders("Strict-Transport-Security", "max-age=31536000; includeSubDomains")},
		},
		{
			name: "no redirect over TLS",
			cfg:  with(func(s *gatewayv1.SecurityHTTP) { s.SslRedirect = true }),
			tls:  true,
			want: answer{Status: 200, Next: true, Headers: plainHeaders("Strict-Transport-Security", "max-age=31536000; includeSubDomains")},
		},
		{
			name: "host check runs before the redirect",
			cfg: with(func(s *gatewayv1.SecurityHTTP) {
				s.SslRedirect = true
				s.AllowedHosts = []string{"api.example.com"}
			}),
			req:  request{host: "evil.test"},
			want: rejected,
		},
		{
			name: "is_development disables hosts, redirect and HSTS",
			cfg: with(func(s *gatewayv1.SecurityHTTP) {
				s.IsDevelopment = true
				s.AllowedHosts = []string{"api.example.com"}
				s.SslRedirect = true
				s.ForceStsHeader = true
			}),
			req:  request{host: "localhost"},
			want: answer{Status: 200, Next: true, Headers: plainHeaders()},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := security.NewSecure(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			base := serve(t, chain(nil, s), tc.tls)
			req := tc.req
			if req.path == "" {
				req.path = "/"
			}
			got := do(t, client(t), base, req, isSecureHeader)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// TestCORSThenSecure checks the order the edge uses: a preflight is
// answered by CORS before the host check, an actual request gets both.
func TestCORSThenSecure(t *testing.T) {
	t.Parallel()
	c, err := security.NewCORS(&gatewayv1.CORS{AllowOrigins: []string{"https://app.test"}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := security.NewSecure(&gatewayv1.SecurityHTTP{AllowedHosts: []string{"api.test"}, FrameDeny: true})
	if err != nil {
		t.Fatal(err)
	}
	base := serve(t, chain(c, s), false)
	cl := client(t)
	all := func(k string) bool { return isCORSHeader(k) || isSecureHeader(k) && k != "Content-Type" }
	tests := []struct {
		name string
		req  request
		want answer
	}{
		{
			name: "preflight skips the host check",
			req: request{method: http.MethodOptions, host: "other.test", header: h(
				"Origin", "https://app.test", "Access-Control-Request-Method", "GET")},
			want: answer{Status: 204, Headers: h(
				"Vary", varyPreflight,
				"Access-Control-Allow-Origin", "https://app.test",
				"Access-Control-Allow-Methods", "GET",
			)},
		},
		{
			name: "actual request gets CORS and secure headers",
			req:  request{host: "api.test", header: h("Origin", "https://app.test")},
			want: answer{Status: 200, Next: true, Headers: h(
				"Vary", "Origin",
				"Access-Control-Allow-Origin", "https://app.test",
				"X-Frame-Options", "DENY",
			)},
		},
		{
			name: "actual request to a bad host keeps the CORS headers",
			req:  request{host: "evil.test", header: h("Origin", "https://app.test")},
			want: answer{Status: 400, Body: badRequest, Headers: h(
				"Vary", "Origin",
				"Access-Control-Allow-Origin", "https://app.test",
			)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.path = "/x"
			got := do(t, cl, base, tc.req, all)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestNewSecureErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  *gatewayv1.SecurityHTTP
		want []string
	}{
		{"bad regex", &gatewayv1.SecurityHTTP{AllowedHosts: []string{"ok", "(unclosed"}, AllowedHostsAreRegex: true}, []string{"allowed_hosts[1]"}},
		{"empty host", &gatewayv1.SecurityHTTP{AllowedHosts: []string{""}}, []string{"allowed_hosts[0]"}},
		{"host with a path", &gatewayv1.SecurityHTTP{AllowedHosts: []string{"a.test/x"}}, []string{"allowed_hosts[0]"}},
		{"bad proxy header", &gatewayv1.SecurityHTTP{HostProxyHeaders: []string{"X Bad"}}, []string{"host_proxy_headers[0]"}},
		{"bad ssl proxy header", &gatewayv1.SecurityHTTP{SslProxyHeaders: map[string]string{"X-Proto": "a\nb"}}, []string{`ssl_proxy_headers["X-Proto"]`}},
		{"bad ssl host", &gatewayv1.SecurityHTTP{SslHost: "https://a.test"}, []string{"ssl_host"}},
		{"negative sts", &gatewayv1.SecurityHTTP{StsSeconds: -1}, []string{"sts_seconds"}},
		{"control character in CSP", &gatewayv1.SecurityHTTP{ContentSecurityPolicy: "a\r\nSet-Cookie: x"}, []string{"content_security_policy"}},
		{
			"all violations at once",
			&gatewayv1.SecurityHTTP{StsSeconds: -5, ReferrerPolicy: "\x00", CustomFrameOptionsValue: "\n"},
			[]string{"sts_seconds", "referrer_policy", "custom_frame_options_value"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := security.NewSecure(tc.cfg)
			if err == nil {
				t.Fatalf("NewSecure = %v, nil; want an error", s)
			}
			for _, f := range tc.want {
				if !strings.Contains(err.Error(), f+":") {
					t.Errorf("error %q does not name %s", err, f)
				}
			}
		})
	}
}

func TestSecureNil(t *testing.T) {
	t.Parallel()
	s, err := security.NewSecure(nil)
	if err != nil || s != nil {
		t.Fatalf("NewSecure(nil) = %v, %v; want nil, nil", s, err)
	}
	base := serve(t, chain(nil, s), false)
	got := do(t, client(t), base, request{path: "/"}, isSecureHeader)
	want := answer{Status: 200, Next: true, Headers: h("Content-Type", "text/plain; charset=utf-8")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}
