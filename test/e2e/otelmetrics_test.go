package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/apigw/gateway/test/testenv"
)

// otelMetricsConfig is an aggregate endpoint over two backends (the
// second one dead) with telemetry/opentelemetry exporting metrics
// through exporters (a JSON object).
func otelMetricsConfig(backend, dead, exporters string) string {
	return fmt.Sprintf(`{
  "version": 3,
  "extra_config": {
    "telemetry/opentelemetry": {
      "service_name": "edge-metrics",
      "metric_reporting_period": 1,
      "exporters": %s,
      "layers": {
        "global": {"metrics_static_attributes": [{"key": "region", "value": "eu-test"}]},
        "backend": {"metrics": {"round_trip": true, "read_payload": true}}
      }
    }
  },
  "endpoints": [
    {"endpoint": "/agg", "backend": [
      {"host": [%q], "url_pattern": "/a"},
      {"host": [%q], "url_pattern": "/b"}
    ]}
  ]
}`, exporters, backend, dead)
}

func jsonBackend(t *testing.T) *testenv.Backend {
	return testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{%q:true}`, strings.Trim(r.URL.Path, "/"))
	}))
}

// promValue reads one sample (name{labels...} value) from a Prometheus text
// scrape whose labels include every one of labels; -1 when absent.
func promValue(body, name string, labels ...string) float64 {
	// Label values may hold braces ({id} in a path label): the labels run
	// to the line's last "} ".
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(?:\{(.*)\})? (\S+)$`)
	total, found := 0.0, false
next:
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		for _, l := range labels {
			if !strings.Contains(m[1], l) {
				continue next
			}
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err == nil {
			total, found = total+v, true
		}
	}
	if !found {
		return -1
	}
	return total
}

func scrapeMetrics(t *testing.T, url string) string {
	t.Helper()
	st, _, body := testenv.Get(t, url)
	if st != 200 {
		t.Fatalf("GET %s: %d %s", url, st, body)
	}
	return body
}

// TestOTelPrometheusExporter: a real gw-edge serves krakend-otel's
// instruments on the exporters.prometheus[] listener, and a real scrape
// shows them move with the traffic: the server, proxy and backend stage
// durations, the HTTP client's started and failed counts (the dead
// backend), with the static and semantic attributes.
func TestOTelPrometheusExporter(t *testing.T) {
	bins := testenv.Build(t)
	b := jsonBackend(t)
	ports := freePorts(t, 2)
	promPort := ports[0][strings.LastIndexByte(ports[0], ':')+1:]
	cfg := testenv.WriteFile(t, t.TempDir(), "krakend.json", otelMetricsConfig(b.URL, "http://"+ports[1],
		fmt.Sprintf(`{"prometheus": [{"name": "local", "host": "127.0.0.1", "port": %s, "go_metrics": true}]}`, promPort)))
	e := testenv.StartStandalone(t, bins, cfg)
	url := "http://127.0.0.1:" + promPort + "/metrics"

	before := scrapeMetrics(t, url)
	if v := promValue(before, "http_server_duration_count", `http_route="/agg"`); v > 0 {
		t.Fatalf("http_server_duration_count{/agg} = %v before any request", v)
	}
	for range 3 {
		if st, _, body := testenv.Get(t, e.URL()+"/agg"); st != 200 || !strings.Contains(body, `"a":true`) {
			t.Fatalf("GET /agg: %d %s", st, body)
		}
	}
	body := scrapeMetrics(t, url)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"http_server_duration_count", []string{`http_route="/agg"`, `http_response_status_code="200"`, `region="eu-test"`, `http_request_method="GET"`}, 3},
		{"krakend_proxy_duration_count", []string{`http_route="/agg"`, `complete="false"`, `error="true"`}, 3},
		{"krakend_backend_duration_count", []string{`http_route="/a"`, `error="false"`, `krakend_endpoint_route="/agg"`}, 3},
		{"krakend_backend_duration_count", []string{`http_route="/b"`, `error="true"`}, 3},
		{"http_client_request_started_count_total", []string{`clientname="/a"`, `http_response_status_code="200"`}, 3},
		{"http_client_request_failed_count_total", []string{`clientname="/b"`, `http_response_status_code="0"`}, 3},
		{"http_client_response_read_size_b_total", []string{`clientname="/a"`}, 3 * float64(len(`{"a":true}`))},
	} {
		if got := promValue(body, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if promValue(body, "go_goroutines") <= 0 {
		t.Errorf("go_metrics: no go_goroutines in the scrape")
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", body)
	}
}

// otlpSink is a minimal OTLP metrics receiver (the collector's gRPC
// service and the OTLP/HTTP /v1/metrics path) that keeps the data points
// it is sent: the receiving end of the exporter under test.
type otlpSink struct {
	colmetrics.UnimplementedMetricsServiceServer
	mu       sync.Mutex // guards below
	services map[string]bool
	counts   map[string]uint64 // histogram name -> latest cumulative count summed over points
	requests int
}

func newSink() *otlpSink {
	return &otlpSink{services: map[string]bool{}, counts: map[string]uint64{}}
}

func (s *otlpSink) Export(_ context.Context, req *colmetrics.ExportMetricsServiceRequest) (*colmetrics.ExportMetricsServiceResponse, error) {
	s.record(req)
	return &colmetrics.ExportMetricsServiceResponse{}, nil
}

func (s *otlpSink) record(req *colmetrics.ExportMetricsServiceRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	for _, rm := range req.GetResourceMetrics() {
		for _, a := range rm.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				s.services[a.GetValue().GetStringValue()] = true
			}
		}
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				if h, ok := m.GetData().(*metricspb.Metric_Histogram); ok {
					var n uint64
					for _, p := range h.Histogram.GetDataPoints() {
						n += p.GetCount()
					}
					s.counts[m.GetName()] = n // cumulative: the latest export has it all
				}
			}
		}
	}
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/metrics" {
		http.NotFound(w, r)
		return
	}
	b, err := io.ReadAll(r.Body)
	var req colmetrics.ExportMetricsServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.record(&req)
	out, _ := proto.Marshal(&colmetrics.ExportMetricsServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (s *otlpSink) count(name string) (uint64, bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[name], s.services["edge-metrics"], s.requests
}

// TestOTelMetricsOTLP: a real gw-edge pushes the instruments every
// metric_reporting_period (1s) to an OTLP receiver, over gRPC and over
// HTTP; the received histograms count the requests made.
func TestOTelMetricsOTLP(t *testing.T) {
	bins := testenv.Build(t)
	b := jsonBackend(t)
	for _, useHTTP := range []bool{false, true} {
		t.Run(map[bool]string{false: "grpc", true: "http"}[useHTTP], func(t *testing.T) {
			sink := newSink()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if useHTTP {
				srv := &http.Server{Handler: sink, ReadHeaderTimeout: 5 * time.Second}
				go func() { _ = srv.Serve(ln) }()
				t.Cleanup(func() { _ = srv.Close() })
			} else {
				srv := grpc.NewServer()
				colmetrics.RegisterMetricsServiceServer(srv, sink)
				go func() { _ = srv.Serve(ln) }()
				t.Cleanup(srv.Stop)
			}
			port := ln.Addr().(*net.TCPAddr).Port
			dead := freePorts(t, 1)[0]
			cfg := testenv.WriteFile(t, t.TempDir(), "krakend.json", otelMetricsConfig(b.URL, "http://"+dead,
				fmt.Sprintf(`{"otlp": [{"name": "sink", "host": "127.0.0.1", "port": %d, "use_http": %v, "disable_traces": true}]}`, port, useHTTP)))
			e := testenv.StartStandalone(t, bins, cfg)
			for range 4 {
				if st, _, body := testenv.Get(t, e.URL()+"/agg"); st != 200 {
					t.Fatalf("GET /agg: %d %s", st, body)
				}
			}
			testenv.Eventually(t, 20*time.Second, func() error {
				for name, want := range map[string]uint64{"http.server.duration": 4, "krakend.proxy.duration": 4,
					"krakend.backend.duration": 8, "http.client.duration": 8} {
					got, svc, reqs := sink.count(name)
					if got != want || !svc {
						return errorf("%s: %d received (service seen %v, %d exports), want %d", name, got, svc, reqs, want)
					}
				}
				return nil
			})
		})
	}
}
