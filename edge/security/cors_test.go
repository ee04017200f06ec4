package security_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/apigw/gateway/edge/security"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

const (
	varyPreflight   = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
	varyPreflightPN = varyPreflight + ", Access-Control-Request-Private-Network"
)

// listed is a typical production setting: listed origins (one wildcard),
// credentials, a header allow-list.
func listed() *gatewayv1.CORS {
	return &gatewayv1.CORS{
		AllowOrigins:         []string{"https://app.example.com", "https://*.example.org"},
		AllowMethods:         []string{"GET", "POST", "PUT"},
		AllowHeaders:         []string{"Content-Type", "X-Token"},
		ExposeHeaders:        []string{"X-Request-Id", "content-length"},
		AllowCredentials:     true,
		MaxAgeMs:             600_000,
		OptionsSuccessStatus: 204,
	}
}

func preflight(origin, method, headers string) request {
	r := request{method: http.MethodOptions, path: "/no/such/route", header: h("Access-Control-Request-Method", method)}
	if origin != "" {
		r.header.Set("Origin", origin)
	}
	if headers != "" {
		r.header.Set("Access-Control-Request-Headers", headers)
	}
	return r
}

func TestCORS(t *testing.T) {
	t.Parallel()
	withCfg := func(f func(*gatewayv1.CORS)) *gatewayv1.CORS {
		c := listed()
		f(c)
		return c
	}
	noPreflight := answer{Status: http.StatusNoContent, Headers: h("Vary", varyPreflight)}
	tests := []struct {
		name string
		cfg  *gatewayv1.CORS
		req  request
		want answer
	}{
		{
			name: "defaults: actual request from any origin gets *",
			cfg:  &gatewayv1.CORS{},
			req:  request{header: h("Origin", "https://anything.test")},
			want: answer{Status: 200, Next: true, Headers: h("Vary", "Origin", "Access-Control-Allow-Origin", "*")},
		},
		{
			name: "defaults: preflight reflects method and headers",
			cfg:  &gatewayv1.CORS{},
			req:  preflight("https://anything.test", "POST", "content-type,x-custom"),
			want: answer{Status: 204, Headers: h(
				"Vary", varyPreflight,
				"Access-Control-Allow-Origin", "*",
				"Access-Control-Allow-Methods", "POST",
				"Access-Control-Allow-Headers", "content-type,x-custom",
			)},
		},
		{
			name: "defaults: preflight for a method outside GET POST HEAD",
			cfg:  &gatewayv1.CORS{},
			req:  preflight("https://anything.test", "DELETE", ""),
			want: noPreflight,
		},
		{
			name: "actual request without Origin only varies",
			cfg:  listed(),
			req:  request{},
			want: answer{Status: 200, Next: true, Headers: h("Vary", "Origin")},
		},
		{
			name: "actual request from a listed origin",
			cfg:  listed(),
			req:  request{method: http.MethodPost, header: h("Origin", "https://app.example.com")},
			want: answer{Status: 200, Next: true, Headers: h(
				"Vary", "Origin",
				"Access-Control-Allow-Origin", "https://app.example.com",
				"Access-Control-Expose-Headers", "X-Request-Id, Content-Length",
				"Access-Control-Allow-Credentials", "true",
			)},
		},
		{
			name: "origin matches case-insensitively and is echoed as sent",
			cfg:  listed(),
			req:  request{header: h("Origin", "HTTPS://App.Example.COM")},
			want: answer{Status: 200, Next: true, Headers: h(
				"Vary", "Origin",
				"Access-Control-Allow-Origin", "HTTPS://App.Example.COM",
				"Access-Control-Expose-Headers", "X-Request-Id, Content-Length",
				"Access-Control-Allow-Credentials", "true",
			)},
		},
		{
			name: "actual request from an unlisted origin",
			cfg:  listed(),
			req:  request{header: h("Origin", "https://evil.test")},
			want: answer{Status: 200, Next: true, Headers: h("Vary", "Origin")},
		},
		{
			name: "actual request with a method not allowed",
			cfg:  listed(),
			req:  request{method: http.MethodDelete, header: h("Origin", "https://app.example.com")},
			want: answer{Status: 200, Next: true, Headers: h("Vary", "Origin")},
		},
		{
			name: "wildcard origin matches a nested subdomain",
			cfg:  listed(),
			req:  request{header: h("Origin", "https://a.b.example.org")},
			want: answer{Status: 200, Next: true, Headers: h(
				"Vary", "Origin",
				"Access-Control-Allow-Origin", "https://a.b.example.org",
				"Access-Control-Expose-Headers", "X-Request-Id, Content-Length",
				"Access-Control-Allow-Credentials", "true",
			)},
		},
		{
			name: "wildcard origin does not match the bare domain",
			cfg:  listed(),
			req:  request{header: h("Origin", "https://example.org")},
			want: answer{Status: 200, Next: true, Headers: h("Vary", "Origin")},
		},
		{
			name: "wildcard origin does not match another scheme",
			cfg:  listed(),
			req:  request{header: h("Origin", "http://a.example.org")},
			want: answer{Status: 200, Next: true, Headers: h("Vary", "Origin")},
		},
		{
			name: "preflight allowed on an unknown path",
			cfg:  listed(),
			req:  preflight("https://app.example.com", "PUT", "content-type,x-token"),
			want: answer{Status: 204, Headers: h(
				"Vary", varyPreflight,
				"Access-Control-Allow-Origin", "https://app.example.com",
				"Access-Control-Allow-Methods", "PUT",
				"Access-Control-Allow-Headers", "content-type,x-token",
				"Access-Control-Allow-Credentials", "true",
				"Access-Control-Max-Age", "600",
			)},
		},
		{
			name: "preflight header names match in any case, order and spacing",
			cfg:  listed(),
			req:  preflight("https://app.example.com", "GET", "X-Token , Content-Type"),
			want: answer{Status: 204, Headers: h(
				"Vary", varyPreflight,
				"Access-Control-Allow-Origin", "https://app.example.com",
				"Access-Control-Allow-Methods", "GET",
				"Access-Control-Allow-Headers", "X-Token , Content-Type",
				"Access-Control-Allow-Credentials", "true",
				"Access-Control-Max-Age", "600",
			)},
		},
		{
			name: "preflight headers split over several lines are all echoed",
			cfg:  listed(),
			req: request{method: http.MethodOptions, path: "/x", header: http.Header{
				"Origin":                         {"https://app.example.com"},
				"Access-Control-Request-Method":  {"POST"},
				"Access-Control-Request-Headers": {"content-type", "x-token"},
			}},
			want: answer{Status: 204, Headers: http.Header{
				"Vary":                             {varyPreflight},
				"Access-Control-Allow-Origin":      {"https://app.example.com"},
				"Access-Control-Allow-Methods":     {"POST"},
				"Access-Control-Allow-Headers":     {"content-type", "x-token"},
				"Access-Control-Allow-Credentials": {"true"},
				"Access-Control-Max-Age":           {"600"},
			}},
		},
		{
			name: "preflight from an unlisted origin: 204 without CORS headers",
			cfg:  listed(),
			req:  preflight("https://evil.test", "PUT", ""),
			want: noPreflight,
		},
		{
			name: "preflight for a method not allowed",
			cfg:  listed(),
			req:  preflight("https://app.example.com", "DELETE", ""),
			want: noPreflight,
		},
		{
			name: "preflight method matches exactly",
			cfg:  listed(),
			req:  preflight("https://app.example.com", "put", ""),
			want: noPreflight,
		},
		{
			name: "preflight with a header not allowed",
			cfg:  listed(),
			req:  preflight("https://app.example.com", "PUT", "content-type,x-other"),
			want: noPreflight,
		},
		{
			name: "preflight without Origin",
			cfg:  listed(),
			req:  preflight("", "PUT", ""),
			want: noPreflight,
		},
		{
			name: "OPTIONS without Access-Control-Request-Method is an actual request",
			cfg:  listed(),
			req:  request{method: http.MethodOptions, header: h("Origin", "https://app.example.com")},
			want: answer{Status: 200, Next: true, Headers: h(
				"Vary", "Origin",
				"Access-Control-Allow-Origin", "https://app.example.com",
				"Access-Control-Expose-Headers", "X-Request-Id, Content-Length",
				"Access-Control-Allow-Credentials", "true",
			)},
		},
		{
			name: "options_passthrough hands the preflight to the router",
			cfg:  withCfg(func(c *gatewayv1.CORS) { c.OptionsPassthrough = true; c.MaxAgeMs = 0 }),
			req:  preflight("https://app.example.com", "PUT", ""),
			want: answer{Status: 200, Next: true, Headers: h(
				"Vary", varyPreflight,
				"Access-Control-Allow-Origin", "https://app.example.com",
				"Access-Control-Allow-Methods", "PUT",
				"Access-Control-Allow-Credentials", "true",
			)},
		},
		{
			name: "options_success_status 200",
			cfg:  withCfg(func(c *gatewayv1.CORS) { c.OptionsSuccessStatus = 200; c.AllowCredentials = false }),
			req:  preflight("https://app.example.com", "GET", ""),
			want: answer{Status: 200, Headers: h(
				"Vary", varyPreflight,
				"Access-Control-Allow-Origin", "https://app.example.com",
				"Access-Control-Allow-Methods", "GET",
				"Access-Control-Max-Age", "600",
			)},
		},
		{
			name: "max_age under a second sends no Max-Age",
			cfg:  withCfg(func(c *gatewayv1.CORS) { c.MaxAgeMs = 999 }),
			req:  preflight("https://app.example.com", "GET", ""),
			want: answer{Status: 204, Headers: h(
				"Vary", varyPreflight,
				"Access-Control-Allow-Origin", "https://app.example.com",
				"Access-Control-Allow-Methods", "GET",
				"Access-Control-Allow-Credentials", "true",
			)},
		},
		{
			name: "private network access allowed and requested",
			cfg:  withCfg(func(c *gatewayv1.CORS) { c.AllowPrivateNetwork = true; c.MaxAgeMs = 0 }),
			req: request{method: http.MethodOptions, header: h(
				"Origin", "https://app.example.com",
				"Access-Control-Request-Method", "GET",
				"Access-Control-Request-Private-Network", "true",
			)},
			want: answer{Status: 204, Headers: h(
				"Vary", varyPreflightPN,
				"Access-Control-Allow-Origin", "https://app.example.com",
				"Access-Control-Allow-Methods", "GET",
				"Access-Control-Allow-Credentials", "true",
				"Access-Control-Allow-Private-Network", "true",
			)},
		},
		{
			name: "private network access allowed but not requested",
			cfg:  withCfg(func(c *gatewayv1.CORS) { c.AllowPrivateNetwork = true; c.MaxAgeMs = 0 }),
			req:  preflight("https://app.example.com", "GET", ""),
			want: answer{Status: 204, Headers: h(
				"Vary", varyPreflightPN,
				"Access-Control-Allow-Origin", "https://app.example.com",
				"Access-Control-Allow-Methods", "GET",
				"Access-Control-Allow-Credentials", "true",
			)},
		},
		{
			name: "private network access requested but not allowed",
			cfg:  withCfg(func(c *gatewayv1.CORS) { c.MaxAgeMs = 0 }),
			req: request{method: http.MethodOptions, header: h(
				"Origin", "https://app.example.com",
				"Access-Control-Request-Method", "GET",
				"Access-Control-Request-Private-Network", "true",
			)},
			want: answer{Status: 204, Headers: h(
				"Vary", varyPreflight,
				"Access-Control-Allow-Origin", "https://app.example.com",
				"Access-Control-Allow-Methods", "GET",
				"Access-Control-Allow-Credentials", "true",
			)},
		},
		{
			name: "every origin with credentials echoes the origin, never *",
			cfg:  &gatewayv1.CORS{AllowOrigins: []string{"*"}, AllowCredentials: true},
			req:  request{header: h("Origin", "https://anything.test")},
			want: answer{Status: 200, Next: true, Headers: h(
				"Vary", "Origin",
				"Access-Control-Allow-Origin", "https://anything.test",
				"Access-Control-Allow-Credentials", "true",
			)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := security.NewCORS(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			base := serve(t, chain(c, nil), false)
			got := do(t, client(t), base, tc.req, isCORSHeader)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestCORSNil(t *testing.T) {
	t.Parallel()
	c, err := security.NewCORS(nil)
	if err != nil || c != nil {
		t.Fatalf("NewCORS(nil) = %v, %v; want nil, nil", c, err)
	}
	base := serve(t, chain(c, nil), false)
	got := do(t, client(t), base, preflight("https://a.test", "GET", ""), isCORSHeader)
	want := answer{Status: 200, Next: true, Headers: http.Header{}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestNewCORSErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  *gatewayv1.CORS
		want []string // fields named in the error
	}{
		{"two wildcards", &gatewayv1.CORS{AllowOrigins: []string{"https://*.*.example.com"}}, []string{"allow_origins[0]"}},
		{"empty origin", &gatewayv1.CORS{AllowOrigins: []string{"https://a.test", ""}}, []string{"allow_origins[1]"}},
		{"bad method", &gatewayv1.CORS{AllowMethods: []string{"GET", "BAD METHOD"}}, []string{"allow_methods[1]"}},
		{"bad allowed header", &gatewayv1.CORS{AllowHeaders: []string{"X-Ok", "x\r\nbad"}}, []string{"allow_headers[1]"}},
		{"bad exposed header", &gatewayv1.CORS{ExposeHeaders: []string{"a b"}}, []string{"expose_headers[0]"}},
		{"negative max age", &gatewayv1.CORS{MaxAgeMs: -1}, []string{"max_age"}},
		{"non-2xx status", &gatewayv1.CORS{OptionsSuccessStatus: 302}, []string{"options_success_status"}},
		{
			"all violations at once",
			&gatewayv1.CORS{AllowOrigins: []string{""}, MaxAgeMs: -1, OptionsSuccessStatus: 500},
			[]string{"allow_origins[0]", "max_age", "options_success_status"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := security.NewCORS(tc.cfg)
			if err == nil {
				t.Fatalf("NewCORS = %v, nil; want an error", c)
			}
			for _, f := range tc.want {
				if !strings.Contains(err.Error(), f+":") {
					t.Errorf("error %q does not name %s", err, f)
				}
			}
		})
	}
}
