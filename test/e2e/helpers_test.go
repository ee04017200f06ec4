package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/apigw/gateway/test/testenv"
)

// echoBackend answers every path with {"path": "<path>", "tag": tag}.
func echoBackend(t *testing.T, tag string) *testenv.Backend {
	return testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"path": r.URL.Path, "tag": tag})
	}))
}

// helloConfig is a KrakenD config whose /hello endpoint proxies to
// backend path upstream.
func helloConfig(backendURL, upstream string) string {
	return fmt.Sprintf(`{
  "version": 3,
  "name": "e2e",
  "timeout": "1s",
  "host": [%q],
  "endpoints": [
    {"endpoint": "/hello", "backend": [{"url_pattern": %q}]},
    {"endpoint": "/items/{id}", "backend": [{"url_pattern": "/items/{id}", "allow": ["path"]}]}
  ]
}`, backendURL, upstream)
}

// bodyField fetches url from the edge and returns the JSON field key.
func bodyField(t *testing.T, url, key string) string {
	t.Helper()
	code, _, body := testenv.Get(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: status %d, body %s", url, code, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("GET %s: body %q is not a JSON object: %v", url, body, err)
	}
	s, _ := m[key].(string)
	return s
}

func mustContain(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, s)
		}
	}
}
