package e2e

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/apigw/gateway/test/testenv"
)

// TestLuaURLOtherHost: through `gw-edge run -c`, a modifier/lua-backend pre
// that sets url() to a second backend host sends the call there; an
// unparsable url() is KrakenD CE 2.12.1's answer for a single backend (its
// executor panics on lura's nil URL, gin's Recovery answers a bare 500:
// X-KrakenD only, no body, whatever return_error_msg says), and in an
// aggregate that backend fails and the others answer (KrakenD's process
// exits there: a deliberate fix). Both recorded on loopback.
func TestLuaURLOtherHost(t *testing.T) {
	bins := testenv.Build(t)
	named := func(name string) *testenv.Backend {
		return testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"server":%q,"uri":%q}`, name, r.URL.RequestURI())
		}))
	}
	first, second := named("first"), named("second")
	pre := func(js string) string {
		return `"extra_config": {"modifier/lua-backend": {"pre": "local r = request.load(); ` + js + `"}}`
	}
	cfg := fmt.Sprintf(`{
  "version": 3, "host": [%q],
  "extra_config": {"router": {"return_error_msg": true}},
  "endpoints": [
    {"endpoint": "/other", "backend": [{"url_pattern": "/orig", %s}]},
    {"endpoint": "/bad", "backend": [{"url_pattern": "/orig", %s}]},
    {"endpoint": "/badagg", "backend": [{"url_pattern": "/orig", "group": "a", %s}, {"url_pattern": "/fine", "group": "b"}]}
  ]
}`, first.URL, pre("r:url('"+second.URL+"/there?x=1')"), pre("r:url('::bad')"), pre("r:url('::bad')"))
	e := testenv.StartStandalone(t, bins, testenv.WriteFile(t, t.TempDir(), "krakend.json", cfg))

	if code, _, body := testenv.Get(t, e.URL()+"/other"); code != 200 || body != `{"server":"second","uri":"/there?x=1"}` {
		t.Errorf("/other: %d %s, want the second host's answer", code, body)
	}
	code, h, body := testenv.Get(t, e.URL()+"/bad")
	if code != 500 || body != "" || h.Get("Content-Type") != "" || h.Values("X-Krakend-Completed") != nil || h.Get("X-Krakend") == "" {
		t.Errorf("/bad: %d %q %v, want KrakenD's recovered bare 500", code, body, h)
	}
	code, h, body = testenv.Get(t, e.URL()+"/badagg")
	if code != 200 || body != `{"b":{"server":"first","uri":"/fine"}}` || h.Get("X-Krakend-Completed") != "false" {
		t.Errorf("/badagg: %d %q %v, want the partial answer", code, body, h)
	}
}
