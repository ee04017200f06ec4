package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// breakerConfig: /cb calls a backend that always fails, behind a breaker
// that opens after the first error (max_errors 1).
func breakerConfig(backendURL string) string {
	return fmt.Sprintf(`{
  "version": 3,
  "endpoints": [
    {"endpoint": "/cb", "backend": [{"host": [%q], "url_pattern": "/fail",
      "extra_config": {"qos/circuit-breaker": {"interval": 60, "timeout": 30, "max_errors": 1}}}]},
    {"endpoint": "/ok", "backend": [{"host": [%[1]q], "url_pattern": "/up"}]}
  ]
}`, backendURL)
}

// startMetricsEdge runs a standalone edge serving /metrics on a kernel
// port and returns it with the metrics base URL.
func startMetricsEdge(t *testing.T, bins testenv.Bins, cfg string) (*testenv.Edge, string) {
	t.Helper()
	e := testenv.StartStandalone(t, bins, cfg, "--metrics-listen", "127.0.0.1:0", "--access-log", "off")
	m := e.WaitLog(t, 0, 10*time.Second, testenv.MessageIs("metrics listening"))
	addr, _ := m["addr"].(string)
	if addr == "" {
		t.Fatalf("metrics listening line without addr: %v", m)
	}
	return e, "http://" + addr
}

// scrape returns the value of the sample named exactly series (name and
// labels as the text format prints them), and whether it is there.
func scrape(t *testing.T, base, series string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(l, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			return v, err == nil
		}
	}
	return 0, false
}

// TestMetricsBreakerAndBackendErrors: a real edge's /metrics shows the
// breaker opening (state and transition) and the backend errors by reason
// (status for the failed calls, refused for the call the open breaker
// turned away).
func TestMetricsBreakerAndBackendErrors(t *testing.T) {
	bins := testenv.Build(t)
	b := accessBackend(t)
	cfg := testenv.WriteFile(t, t.TempDir(), "krakend.json", breakerConfig(b.URL))
	e, base := startMetricsEdge(t, bins, cfg)

	const backend = `backend="GET /cb backend[0]"`
	if _, ok := scrape(t, base, `gw_edge_breaker_state{`+backend+`}`); ok {
		t.Error("breaker state series before any transition")
	}
	for range 3 {
		testenv.Get(t, e.URL()+"/cb")
	}
	checks := []struct {
		series string
		want   float64
	}{
		{`gw_edge_breaker_state{` + backend + `}`, 2},
		{`gw_edge_breaker_transitions_total{` + backend + `,to="open"}`, 1},
		// KrakenD's breaker trips when consecutive errors exceed
		// max_errors: two failed calls, then one refused.
		{`gw_edge_backend_errors_total{` + backend + `,reason="status"}`, 2},
		{`gw_edge_backend_errors_total{` + backend + `,reason="refused"}`, 1},
		{`gw_edge_requests_total{code_class="5xx",endpoint="GET /cb"}`, 3},
		// Two calls were sent; the refused one never left the edge.
		{`gw_edge_backend_duration_seconds_count{` + backend + `}`, 2},
	}
	for _, c := range checks {
		if got, ok := scrape(t, base, c.series); !ok || got != c.want {
			t.Errorf("%s = %v (present %v), want %v", c.series, got, ok, c.want)
		}
	}
}

// TestPrometheusScrapesEdge: a real Prometheus (Debian's package), started
// on loopback, scrapes a real edge and answers a query over what it
// scraped.
func TestPrometheusScrapesEdge(t *testing.T) {
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (Debian package prometheus; .ci/run installs it)")
	}
	bins := testenv.Build(t)
	b := accessBackend(t)
	cfg := testenv.WriteFile(t, t.TempDir(), "krakend.json", breakerConfig(b.URL))
	e, base := startMetricsEdge(t, bins, cfg)
	for range 4 {
		testenv.Get(t, e.URL()+"/ok")
	}

	dir := t.TempDir()
	u, _ := url.Parse(base)
	promCfg := testenv.WriteFile(t, dir, "prometheus.yml", fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: edge
    static_configs:
      - targets: [%q]
`, u.Host))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	promAddr := ln.Addr().String()
	ln.Close()
	testenv.Start(t, "prometheus", prom, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")

	query := `sum(gw_edge_requests_total{job="edge",endpoint="GET /ok",code_class="2xx"})`
	var got string
	testenv.Eventually(t, 30*time.Second, func() error {
		resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(query))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var r struct {
			Status string
			Data   struct {
				Result []struct {
					Value [2]any
				}
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return err
		}
		if r.Status != "success" || len(r.Data.Result) == 0 {
			return errorf("no result yet: %+v", r)
		}
		got = fmt.Sprint(r.Data.Result[0].Value[1])
		return nil
	})
	if got != "4" {
		t.Errorf("%s = %s, want 4", query, got)
	}
}
