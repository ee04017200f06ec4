//go:build !race

package security_test

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/security"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func TestCORSAllocs(t *testing.T) {
	c, err := security.NewCORS(listed())
	if err != nil {
		t.Fatal(err)
	}
	all, err := security.NewCORS(&gatewayv1.CORS{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cors *security.CORS
		ctx  *fasthttp.RequestCtx
	}{
		{"listed origin", c, newCtx("GET", "/users/1", "api.test", "Origin", "https://app.example.com")},
		{"mixed-case origin", c, newCtx("POST", "/users", "api.test", "Origin", "https://App.Example.com")},
		{"wildcard origin", c, newCtx("GET", "/users/1", "api.test", "Origin", "https://eu.example.org")},
		{"unlisted origin", c, newCtx("GET", "/users/1", "api.test", "Origin", "https://evil.test")},
		{"no origin", c, newCtx("GET", "/users/1", "api.test")},
		{"any origin", all, newCtx("GET", "/users/1", "api.test", "Origin", "https://app.example.com")},
		{"preflight", c, newCtx("OPTIONS", "/users/1", "api.test", "Origin", "https://app.example.com",
			"Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "content-type,x-token")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := testing.AllocsPerRun(200, func() {
				tc.ctx.Response.Reset()
				tc.cors.Handle(tc.ctx)
			})
			if n != 0 {
				t.Errorf("allocs = %v, want 0", n)
			}
		})
	}
}

func TestSecureAllocs(t *testing.T) {
	cfg := allHeaders()
	cfg.AllowedHosts = []string{"other.test", "api.test"}
	cfg.SslProxyHeaders = map[string]string{"X-Forwarded-Proto": "https"}
	exact, err := security.NewSecure(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg = allHeaders()
	cfg.AllowedHosts = []string{`(.+\.)?api\.test`}
	cfg.AllowedHostsAreRegex = true
	cfg.HostProxyHeaders = []string{"X-Forwarded-Host"}
	cfg.SslRedirect = true
	re, err := security.NewSecure(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		secure *security.Secure
		ctx    *fasthttp.RequestCtx
	}{
		{"exact host", exact, newCtx("GET", "/users/1", "API.test")},
		{"https via proxy header", exact, newCtx("GET", "/users/1", "api.test", "X-Forwarded-Proto", "https")},
		{"bad host", exact, newCtx("GET", "/users/1", "evil.test")},
		{"regex host via proxy header", re, newCtx("GET", "/", "10.0.0.1", "X-Forwarded-Host", "eu.api.test")},
		{"redirect", re, newCtx("GET", "/users/1?x=1", "api.test")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := testing.AllocsPerRun(200, func() {
				tc.ctx.Response.Reset()
				tc.secure.Handle(tc.ctx)
			})
			if n != 0 {
				t.Errorf("allocs = %v, want 0", n)
			}
		})
	}
}

// TestBotDetectorAllocs: a cache hit allocates nothing, for a human and a
// bot alike (the 403 included).
func TestBotDetectorAllocs(t *testing.T) {
	d, err := security.NewBotDetector(&gatewayv1.BotDetector{
		Deny: []string{"a"}, Patterns: []string{"(facebookexternalhit)/.*"}, CacheSize: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, ua := range []string{"Mozilla/5.0 (X11; Linux x86_64)", "facebookexternalhit/1.1", "a"} {
		ctx := newCtx("GET", "/users/1", "api.test", "User-Agent", ua)
		d.Handle(ctx) // fills the cache
		if n := testing.AllocsPerRun(200, func() { d.Handle(ctx) }); n != 0 {
			t.Errorf("User-Agent %q: %v allocations per cache hit, want 0", ua, n)
		}
	}
}
