package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/apigw/gateway/test/testenv"
)

// TestGatewayChainHeaders: an edge whose no-op backend is another edge (or
// KrakenD) passes the inner gateway's X-KrakenD and X-KrakenD-Completed on
// after its own, as KrakenD CE 2.12.1 does (recorded on loopback with two
// KrakenDs: "X-Krakend: [Version 2.12.1 Version 2.12.1]", Completed
// "[false true]" over an inner JSON endpoint). A JSON endpoint over the
// same inner edge sends one of each: KrakenD copies no backend header there.
func TestGatewayChainHeaders(t *testing.T) {
	bins := testenv.Build(t)
	be := testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"a":1}`))
	}))
	inner := testenv.StartStandalone(t, bins, testenv.WriteFile(t, t.TempDir(), "inner.json", fmt.Sprintf(`{
  "version": 3, "host": [%q],
  "endpoints": [
    {"endpoint": "/json", "backend": [{"url_pattern": "/x"}]},
    {"endpoint": "/raw", "output_encoding": "no-op", "backend": [{"url_pattern": "/x", "encoding": "no-op"}]}
  ]
}`, be.URL)))
	outer := testenv.StartStandalone(t, bins, testenv.WriteFile(t, t.TempDir(), "outer.json", fmt.Sprintf(`{
  "version": 3, "host": [%q],
  "endpoints": [
    {"endpoint": "/raw-json", "output_encoding": "no-op", "backend": [{"url_pattern": "/json", "encoding": "no-op"}]},
    {"endpoint": "/raw-raw", "output_encoding": "no-op", "backend": [{"url_pattern": "/raw", "encoding": "no-op"}]},
    {"endpoint": "/json", "backend": [{"url_pattern": "/raw"}]}
  ]
}`, inner.URL())))
	const v = "Version apigw-1"
	for _, tc := range []struct {
		path           string
		krakend, compl []string
	}{
		{"/raw-json", []string{v, v}, []string{"false", "true"}},
		{"/raw-raw", []string{v, v}, []string{"false", "false"}},
		{"/json", []string{v}, []string{"true"}},
	} {
		code, h, body := testenv.Get(t, outer.URL()+tc.path)
		if code != 200 || body != `{"a":1}` {
			t.Errorf("%s: %d %q", tc.path, code, body)
		}
		if got := h.Values("X-Krakend"); !slices.Equal(got, tc.krakend) {
			t.Errorf("%s: X-Krakend %q, want %q", tc.path, got, tc.krakend)
		}
		if got := h.Values("X-Krakend-Completed"); !slices.Equal(got, tc.compl) {
			t.Errorf("%s: X-Krakend-Completed %q, want %q (the outer gateway's first)", tc.path, got, tc.compl)
		}
	}
}
