package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/apigw/gateway/test/testenv"
)

// TestOpenCensusPrometheus: telemetry/opencensus exporters.prometheus on a
// real gw-edge serves krakend-opencensus' ochttp views on :port/metrics,
// and a real scrape shows them move with the traffic, under the names,
// labels and buckets KrakenD CE 2.12.1 gave the same config and requests
// (compared by hand with the reference binary: the same series, label
// values included, and the same HELP and TYPE lines): path_aggregation
// pattern, lastparam and off; noroute and nomethod for the 404 and 405
// handlers; status 500 for a backend that cannot be reached.
func TestOpenCensusPrometheus(t *testing.T) {
	bins := testenv.Build(t)
	b := jsonBackend(t)
	ports := freePorts(t, 2)
	promPort := ports[0][strings.LastIndexByte(ports[0], ':')+1:]
	oc := func(mode string) string {
		return fmt.Sprintf(`"extra_config": {"telemetry/opencensus": {"path_aggregation": %q}}`, mode)
	}
	cfg := testenv.WriteFile(t, t.TempDir(), "krakend.json", fmt.Sprintf(`{
  "version": 3,
  "extra_config": {
    "telemetry/opencensus": {
      "exporters": {"prometheus": {"port": %s, "namespace": "krakend", "tag_path": true, "tag_method": true, "tag_statuscode": true}}
    }
  },
  "endpoints": [
    {"endpoint": "/users/{id}", "backend": [{"host": [%[2]q], "url_pattern": "/u/{id}"}]},
    {"endpoint": "/last/{a}/{id}", %[3]s, "backend": [{"host": [%[2]q], "url_pattern": "/l/{a}/{id}", %[3]s}]},
    {"endpoint": "/off/{id}", %[4]s, "backend": [{"host": [%[2]q], "url_pattern": "/o/{id}", %[4]s}]},
    {"endpoint": "/dead", "backend": [{"host": ["http://%[5]s"], "url_pattern": "/d"}]}
  ]
}`, promPort, b.URL, oc("lastparam"), oc("off"), ports[1]))
	e := testenv.StartStandalone(t, bins, cfg)
	url := "http://127.0.0.1:" + promPort + "/metrics"

	before := scrapeMetrics(t, url)
	if v := promValue(before, "krakend_opencensus_io_http_server_request_count"); v > 0 {
		t.Fatalf("request_count = %v before any request", v)
	}
	if !strings.Contains(before, "go_goroutines") || !strings.Contains(before, "process_cpu_seconds_total") {
		t.Errorf("no Go or process collector in the scrape")
	}
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/users/1", 200}, {"GET", "/users/2", 200}, {"GET", "/last/Seven/9", 200}, {"GET", "/off/9", 200},
		{"GET", "/dead", 500}, {"GET", "/nope", 404}, {"POST", "/users/3", 405},
	} {
		req, _ := http.NewRequest(c.method, e.URL()+c.path, strings.NewReader(""))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Fatalf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.status)
		}
	}
	body := scrapeMetrics(t, url)
	const ns = "krakend_opencensus_io_http_"
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{ns + "server_request_count", []string{`http_path="/users/{id}"`, `http_method="GET"`, `http_status=""`}, 2},
		{ns + "server_request_count_by_method", []string{`http_path="/users/{id}"`, `http_method="GET"`}, 2},
		{ns + "server_response_count_by_status_code", []string{`http_path="/users/{id}"`, `http_status="200"`}, 2},
		{ns + "server_latency_count", []string{`http_path="/users/{id}"`, `http_status="200"`}, 2},
		{ns + "server_request_bytes_count", []string{`http_path="/users/{id}"`}, 2},
		{ns + "server_response_bytes_count", []string{`http_path="/users/{id}"`}, 2},
		{ns + "server_latency_count", []string{`http_path="/last/seven/{id}"`}, 1},
		{ns + "server_latency_count", []string{`http_path="/off/9"`}, 1},
		{ns + "server_latency_count", []string{`http_path="/dead"`, `http_status="500"`}, 1},
		{ns + "server_latency_count", []string{`http_path="noroute"`, `http_status="404"`}, 1},
		{ns + "server_latency_count", []string{`http_path="nomethod"`, `http_method="POST"`, `http_status="405"`}, 1},
		{ns + "client_completed_count", []string{`http_client_path="/u/{id}"`, `http_client_method="GET"`, `http_client_status="200"`}, 2},
		{ns + "client_roundtrip_latency_count", []string{`http_client_path="/u/{id}"`}, 2},
		{ns + "client_sent_bytes_count", []string{`http_client_path="/u/{id}"`}, 2},
		{ns + "client_received_bytes_count", []string{`http_client_path="/u/{id}"`}, 2},
		{ns + "client_completed_count", []string{`http_client_path="/l/seven/{id}"`}, 1},
		{ns + "client_completed_count", []string{`http_client_path="/o/9"`}, 1},
		{ns + "client_completed_count", []string{`http_client_path="/d"`, `http_client_status="500"`}, 1},
	} {
		if got := promValue(body, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := promValue(body, ns+"client_received_bytes_sum", `http_client_path="/u/{id}"`); got <= 0 {
		t.Errorf("client_received_bytes_sum{/u/{id}} = %v, want the bodies' bytes", got)
	}
	// The buckets are ochttp's DefaultLatencyDistribution (ms) and
	// DefaultSizeDistribution (bytes).
	buckets := func(name string) string {
		re := regexp.MustCompile(`(?m)^` + name + `_bucket\{[^}]*http_path="/users/\{id\}"[^}]*le="([^"]+)"\} `)
		var les []string
		for _, m := range re.FindAllStringSubmatch(body, -1) {
			les = append(les, m[1])
		}
		return strings.Join(les, ",")
	}
	if got, want := buckets(ns+"server_latency"), "1,2,3,4,5,6,8,10,13,16,20,25,30,40,50,65,80,100,130,160,200,250,300,400,500,650,800,1000,2000,5000,10000,20000,50000,100000,+Inf"; got != want {
		t.Errorf("latency buckets %s, want %s", got, want)
	}
	if got, want := buckets(ns+"server_response_bytes"), "1024,2048,4096,16384,65536,262144,1.048576e+06,4.194304e+06,1.6777216e+07,6.7108864e+07,2.68435456e+08,1.073741824e+09,4.294967296e+09,+Inf"; got != want {
		t.Errorf("size buckets %s, want %s", got, want)
	}
	// tag_host is off: no host label.
	if strings.Contains(body, "http_host=") || strings.Contains(body, "http_client_host=") {
		t.Errorf("host labels without tag_host")
	}
}
