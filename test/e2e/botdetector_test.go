package e2e

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/apigw/gateway/test/testenv"
)

// TestBotDetector serves security/bot-detector at service and endpoint
// level through `gw-edge run -c` and compares the answers with KrakenD CE
// v2.12.1's, observed on the same config: a bot gets
// "403 Forbidden", Content-Length: 0, no body, no Content-Type and no
// X-Krakend header, on known and unknown paths alike.
func TestBotDetector(t *testing.T) {
	bins := testenv.Build(t)
	backend := echoBackend(t, "b1")
	cfg := testenv.WriteFile(t, t.TempDir(), "krakend.json", fmt.Sprintf(`{
  "version": 3,
  "timeout": "1s",
  "host": [%q],
  "extra_config": {"security/bot-detector": {
    "deny": ["a", "b"], "allow": ["c", "Pingdom.com_bot_version_1.1"],
    "patterns": ["(Pingdom.com_bot_version_).*", "(facebookexternalhit)/.*"], "cache_size": 10}},
  "endpoints": [
    {"endpoint": "/open", "backend": [{"url_pattern": "/up"}]},
    {"endpoint": "/strict", "backend": [{"url_pattern": "/up"}],
     "extra_config": {"security/bot-detector": {"empty_user_agent_is_bot": true}}}
  ]
}`, backend.URL))
	e := testenv.StartStandalone(t, bins, cfg)

	tests := []struct {
		path, ua string
		want     int
	}{
		{"/open", "Mozilla/5.0", http.StatusOK},
		{"/open", "c", http.StatusOK},
		{"/open", "Pingdom.com_bot_version_1.1", http.StatusOK},
		{"/open", "", http.StatusOK},
		{"/open", "a", http.StatusForbidden},
		{"/open", "Pingdom.com_bot_version_1.14", http.StatusForbidden},
		{"/open", "facebookexternalhit/1.1", http.StatusForbidden},
		{"/nope", "facebookexternalhit/1.1", http.StatusForbidden}, // service level runs before the 404
		{"/nope", "Mozilla/5.0", http.StatusNotFound},
		{"/strict", "", http.StatusForbidden},  // endpoint level
		{"/strict", "b", http.StatusForbidden}, // the service's lists still apply
		{"/strict", "curl/8", http.StatusOK},
	}
	for round := 0; round < 2; round++ { // the second round answers from the caches
		for _, tc := range tests {
			req, err := http.NewRequest(http.MethodGet, e.URL()+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("User-Agent", tc.ua) // "" sends no User-Agent
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("round %d: %s with User-Agent %q → %d, want %d", round, tc.path, tc.ua, resp.StatusCode, tc.want)
				continue
			}
			if tc.want != http.StatusForbidden {
				continue
			}
			if len(body) != 0 || resp.ContentLength != 0 {
				t.Errorf("%s %q: body %q (Content-Length %d), want empty", tc.path, tc.ua, body, resp.ContentLength)
			}
			for h, v := range resp.Header { // KrakenD sends Date and Content-Length only
				if h != "Date" && h != "Content-Length" {
					t.Errorf("%s %q: %s: %q, KrakenD sends only Date and Content-Length", tc.path, tc.ua, h, v)
				}
			}
		}
	}
}
