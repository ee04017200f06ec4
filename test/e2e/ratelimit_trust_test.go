package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// ipKeyConfig limits /limited to 2 requests a minute per client, the
// client read from X-Forwarded-For (strategy ip + key), with routerExtra
// inside the router namespace.
func ipKeyConfig(backendURL, routerExtra string) string {
	return fmt.Sprintf(`{
  "version": 3,
  "host": [%q],
  "extra_config": {"router": {%s}},
  "endpoints": [{
    "endpoint": "/limited",
    "backend": [{"url_pattern": "/x"}],
    "extra_config": {"qos/ratelimit/router": {"client_max_rate": 2, "every": "1m", "strategy": "ip", "key": "X-Forwarded-For"}}
  }]
}`, backendURL, routerExtra)
}

// passed sends n requests to url, the i-th with the header xff(i), and
// returns how many were answered 200 (the rest must be 429).
func passed(t *testing.T, url string, n int, xff func(i int) string) int {
	t.Helper()
	ok := 0
	for i := range n {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("X-Forwarded-For", xff(i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	return ok
}

// TestIPKeyRateLimitTrust: `strategy: ip` with `key: X-Forwarded-For` used
// to take any header value as the client, so 8 requests with a rotating
// header all passed a 2-request limit. The header is now believed only
// from router.trusted_proxies, its rightmost untrusted address is the
// client, and without trusted proxies the config is refused.
func TestIPKeyRateLimitTrust(t *testing.T) {
	bins := testenv.Build(t)
	backend := echoBackend(t, "x")
	dir := t.TempDir()
	rotating := func(i int) string { return fmt.Sprintf("198.51.100.%d", i+1) }

	t.Run("untrusted peer", func(t *testing.T) {
		// The test's own loopback address is not a trusted proxy.
		cfg := testenv.WriteFile(t, dir, "untrusted.json", ipKeyConfig(backend.URL, `"trusted_proxies": ["10.0.0.1"]`))
		e := testenv.StartStandalone(t, bins, cfg)
		if got := passed(t, e.URL()+"/limited", 8, rotating); got != 2 {
			t.Fatalf("%d of 8 requests with a rotating X-Forwarded-For passed a 2-request limit, want 2", got)
		}
	})

	t.Run("trusted proxy", func(t *testing.T) {
		cfg := testenv.WriteFile(t, dir, "trusted.json", ipKeyConfig(backend.URL, `"trusted_proxies": ["127.0.0.1"]`))
		e := testenv.StartStandalone(t, bins, cfg)
		// From the proxy, each forwarded client has its own bucket.
		if got := passed(t, e.URL()+"/limited", 4, rotating); got != 4 {
			t.Fatalf("%d of 4 distinct forwarded clients passed, want 4", got)
		}
		// A client prepending addresses: the proxy appended the real one.
		spoof := func(i int) string { return rotating(10+i) + ", 203.0.113.7" }
		if got := passed(t, e.URL()+"/limited", 6, spoof); got != 2 {
			t.Fatalf("%d of 6 requests from 203.0.113.7 with spoofed prefixes passed, want 2", got)
		}
		// Trusted hops on the right are skipped.
		hops := func(i int) string { return rotating(20+i) + ", 203.0.113.8, 127.0.0.1" }
		if got := passed(t, e.URL()+"/limited", 4, hops); got != 2 {
			t.Fatalf("%d of 4 requests from 203.0.113.8 behind two proxies passed, want 2", got)
		}
	})

	t.Run("refused without trusted proxies", func(t *testing.T) {
		cfg := testenv.WriteFile(t, dir, "none.json", ipKeyConfig(backend.URL, ""))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bins.Edge, "run", "-c", cfg, "--listen", "127.0.0.1:0").CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 1 {
			t.Fatalf("gw-edge run: %v, want exit 1\n%s", err, out)
		}
		if want := `endpoints[0].extra_config["qos/ratelimit/router"].key: invalid`; !strings.Contains(string(out), want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	})
}
