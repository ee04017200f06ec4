package security_test

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/security"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// krakendFixture is the bot detector of KrakenD CE's tests/fixtures/krakend.json.
func krakendFixture(cacheSize uint32) *gatewayv1.BotDetector {
	return &gatewayv1.BotDetector{
		Deny:      []string{"a", "b"},
		Allow:     []string{"c", "Pingdom.com_bot_version_1.1"},
		Patterns:  []string{"(Pingdom.com_bot_version_).*", "(facebookexternalhit)/.*"},
		CacheSize: cacheSize,
	}
}

func TestBotDetectorVerdicts(t *testing.T) {
	tests := []struct {
		ua   string
		want bool
	}{
		{"a", true},                                // deny
		{"b", true},                                // deny
		{"c", false},                               // allow
		{"Pingdom.com_bot_version_1.1", false},     // allow wins over a pattern
		{"Pingdom.com_bot_version_1.14", true},     // pattern
		{"facebookexternalhit/1.1", true},          // pattern
		{"x facebookexternalhit/1.1 y", true},      // patterns are not anchored
		{"facebookexternalhit", false},             // no "/"
		{"A", false},                               // exact, case-sensitive lists
		{"Mozilla/5.0 (X11; Linux x86_64)", false}, // human
		{"", false},                                // empty is not a bot by default
	}
	for _, size := range []uint32{0, 2, 100} {
		d, err := security.NewBotDetector(krakendFixture(size))
		if err != nil {
			t.Fatal(err)
		}
		for round := 0; round < 2; round++ { // the second round hits the cache
			for _, tc := range tests {
				if got := d.IsBot([]byte(tc.ua)); got != tc.want {
					t.Errorf("cache_size %d round %d: IsBot(%q) = %v, want %v", size, round, tc.ua, got, tc.want)
				}
			}
		}
	}
}

func TestBotDetectorEmptyUserAgent(t *testing.T) {
	for _, size := range []uint32{0, 10} {
		d, err := security.NewBotDetector(&gatewayv1.BotDetector{EmptyUserAgentIsBot: true, CacheSize: size})
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsBot(nil) || !d.IsBot([]byte{}) {
			t.Errorf("cache_size %d: an empty User-Agent is not a bot", size)
		}
		if d.IsBot([]byte("curl/8")) {
			t.Errorf("cache_size %d: curl/8 is a bot without any list", size)
		}
	}
}

func TestBotDetectorNil(t *testing.T) {
	d, err := security.NewBotDetector(nil)
	if err != nil || d != nil {
		t.Fatalf("NewBotDetector(nil) = %v, %v", d, err)
	}
	ctx := newCtx("GET", "/", "api.test", "User-Agent", "a")
	if d.Handle(ctx) || d.IsBot(nil) {
		t.Error("a nil detector rejected a request")
	}
}

func TestBotDetectorRejectsBadConfig(t *testing.T) {
	if _, err := security.NewBotDetector(&gatewayv1.BotDetector{Patterns: []string{"ok", "(unclosed"}}); err == nil ||
		!strings.Contains(err.Error(), "patterns[1]") {
		t.Errorf("bad pattern: err = %v, want one naming patterns[1]", err)
	}
	if _, err := security.NewBotDetector(&gatewayv1.BotDetector{CacheSize: security.MaxBotCacheSize + 1}); err == nil {
		t.Error("a cache_size above the edge's limit was accepted")
	}
}

// TestBotDetectorHandle: a bot gets KrakenD's answer, an empty 403 without
// Content-Type; anything else is left alone.
func TestBotDetectorHandle(t *testing.T) {
	d, err := security.NewBotDetector(krakendFixture(10))
	if err != nil {
		t.Fatal(err)
	}
	ctx := newCtx("GET", "/users/1", "api.test", "User-Agent", "facebookexternalhit/1.1")
	if !d.Handle(ctx) {
		t.Fatal("a bot was not handled")
	}
	r := &ctx.Response
	if r.StatusCode() != fasthttp.StatusForbidden || len(r.Body()) != 0 || len(r.Header.ContentType()) != 0 {
		t.Errorf("answer = %d %q, Content-Type %q; want an empty 403 without Content-Type",
			r.StatusCode(), r.Body(), r.Header.ContentType())
	}
	ctx = newCtx("GET", "/users/1", "api.test", "User-Agent", "Mozilla/5.0")
	if d.Handle(ctx) || ctx.Response.StatusCode() != fasthttp.StatusOK {
		t.Errorf("a human was handled (status %d)", ctx.Response.StatusCode())
	}
}

func BenchmarkBotDetector(b *testing.B) {
	d, err := security.NewBotDetector(krakendFixture(1000))
	if err != nil {
		b.Fatal(err)
	}
	nocache, err := security.NewBotDetector(krakendFixture(0))
	if err != nil {
		b.Fatal(err)
	}
	ua := []byte("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0")
	b.Run("cache_hit", func(b *testing.B) {
		d.IsBot(ua)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			d.IsBot(ua)
		}
	})
	b.Run("no_cache", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			nocache.IsBot(ua)
		}
	})
}
