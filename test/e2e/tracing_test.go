package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// jaeger is a real Jaeger (v1.75.0, the v2 all-in-one binary with in-memory
// storage) started on loopback ports for one test.
type jaeger struct {
	query  string // base URL of the query API
	otlp   string // OTLP gRPC host:port
	http   string // OTLP HTTP host:port
	thrift string // Jaeger thrift over HTTP: the collector's URL
	agent  string // Jaeger thrift compact over UDP (the agent's): host:port
	zipkin string // Zipkin v2: the collector's URL
}

// startJaeger starts bin/tools/jaeger (`make tools` builds it from
// test/tools/jaeger). Without it the test skips, except in CI where
// .ci/run builds it.
func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	bin := filepath.Join(testenv.RepoRoot(), "bin", "tools", "jaeger")
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("jaeger not built (%v): .ci/run runs make tools", err)
		}
		t.Skipf("jaeger not built: run make tools (%v)", err)
	}
	ports := freePorts(t, 6)
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	agent := udp.LocalAddr().String()
	udp.Close()
	j := &jaeger{query: "http://" + ports[0], otlp: ports[2], http: ports[3],
		thrift: "http://" + ports[4] + "/api/traces", agent: agent, zipkin: "http://" + ports[5] + "/api/v2/spans"}
	cfg := testenv.WriteFile(t, t.TempDir(), "jaeger.yaml", fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp, jaeger, zipkin]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: %s
    grpc:
      endpoint: %s
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 1000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s
  jaeger:
    protocols:
      thrift_http:
        endpoint: %s
      thrift_compact:
        endpoint: %s
  zipkin:
    endpoint: %s
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`, ports[0], ports[1], ports[2], ports[3], ports[4], agent, ports[5]))
	testenv.Start(t, "jaeger", bin, "--config", "file:"+cfg)
	testenv.Eventually(t, 30*time.Second, func() error {
		resp, err := http.Get(j.query + "/api/services")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return errorf("query API answered %d", resp.StatusCode)
		}
		return nil
	})
	return j
}

// freePorts reserves n loopback ports from the kernel and releases them
// for a process that cannot bind port 0 and report it (a small race the
// tests accept).
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var lns []net.Listener
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

// jaegerTrace is the part of the query API's trace that the test reads.
type jaegerTrace struct {
	TraceID string `json:"traceID"`
	Spans   []struct {
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		References    []struct {
			RefType string `json:"refType"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		Tags []struct {
			Key   string `json:"key"`
			Value any    `json:"value"`
		} `json:"tags"`
		ProcessID string `json:"processID"`
	} `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

// traces asks the query API for the service's traces.
func (j *jaeger) traces(service string) ([]jaegerTrace, error) {
	resp, err := http.Get(j.query + "/api/traces?service=" + service + "&lookback=1h&limit=20")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		Data []jaegerTrace `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("query API: %v: %s", err, body)
	}
	return out.Data, nil
}

// TestTracingToJaeger: a request through an aggregate endpoint of a real
// gw-edge, exporting over OTLP (gRPC, then HTTP) to a real Jaeger, shows up
// in Jaeger's query API as one trace holding the server span, the proxy
// span and one client span per backend, parented as the request ran; each
// backend received its span in traceparent, and the access log carries the
// trace id.
func TestTracingToJaeger(t *testing.T) {
	bins := testenv.Build(t)
	j := startJaeger(t)
	var mu sync.Mutex
	seen := map[string]string{} // backend path -> traceparent
	b := testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Get("Traceparent")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{%q:true}`, strings.Trim(r.URL.Path, "/"))
	}))
	for _, tc := range []struct {
		name, service, host string
		port                string
		useHTTP             bool
	}{
		{"otlp-grpc", "edge-grpc", "127.0.0.1", j.otlp[strings.LastIndexByte(j.otlp, ':')+1:], false},
		{"otlp-http", "edge-http", "127.0.0.1", j.http[strings.LastIndexByte(j.http, ':')+1:], true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testenv.WriteFile(t, t.TempDir(), "krakend.json", fmt.Sprintf(`{
  "version": 3,
  "extra_config": {
    "telemetry/opentelemetry": {
      "service_name": %q,
      "deploy_env": "e2e",
      "trace_sample_rate": 1,
      "exporters": {"otlp": [{"name": "jaeger", "host": %q, "port": %s, "use_http": %v, "disable_metrics": true}]},
      "layers": {"global": {"traces_static_attributes": [{"key": "region", "value": "eu-test"}]}}
    }
  },
  "endpoints": [
    {"endpoint": "/agg", "backend": [
      {"host": [%[5]q], "url_pattern": "/a"},
      {"host": [%[5]q], "url_pattern": "/b"}
    ]}
  ]
}`, tc.service, tc.host, tc.port, tc.useHTTP, b.URL))
			e := testenv.StartStandalone(t, bins, cfg, "--access-log", "json")
			if st, _, body := testenv.Get(t, e.URL()+"/agg"); st != 200 || !strings.Contains(body, `"a":true`) || !strings.Contains(body, `"b":true`) {
				t.Fatalf("GET /agg: %d %s", st, body)
			}

			var traceID string
			testenv.Eventually(t, 10*time.Second, func() error {
				for _, l := range e.Lines() {
					var m map[string]any
					if json.Unmarshal([]byte(l), &m) == nil && m["component"] == "access" && m["path"] == "/agg" {
						traceID, _ = m["trace_id"].(string)
						return nil
					}
				}
				return errorf("no access line for /agg")
			})
			if len(traceID) != 32 {
				t.Fatalf("access log trace_id %q, want 32 hex digits", traceID)
			}

			var tr jaegerTrace
			testenv.Eventually(t, 30*time.Second, func() error {
				traces, err := j.traces(tc.service)
				if err != nil {
					return err
				}
				for _, x := range traces {
					if x.TraceID == traceID && len(x.Spans) >= 4 {
						tr = x
						return nil
					}
				}
				return errorf("trace %s not (fully) in Jaeger yet: %d traces", traceID, len(traces))
			})
			if len(tr.Spans) != 4 {
				t.Errorf("%d spans, want 4 (server, proxy, 2 backends)", len(tr.Spans))
			}
			byOp := map[string]int{}
			for i, s := range tr.Spans {
				byOp[s.OperationName] = i
				if svc := tr.Processes[s.ProcessID].ServiceName; svc != tc.service {
					t.Errorf("span %s from service %q, want %q", s.OperationName, svc, tc.service)
				}
			}
			parentOf := func(op string) string {
				i, ok := byOp[op]
				if !ok {
					t.Fatalf("no span %q in %v", op, byOp)
				}
				for _, r := range tr.Spans[i].References {
					if r.RefType == "CHILD_OF" {
						return r.SpanID
					}
				}
				return ""
			}
			id := func(op string) string { return tr.Spans[byOp[op]].SpanID }
			if p := parentOf("GET /agg"); p != "" {
				t.Errorf("server span has parent %s, want a root", p)
			}
			if parentOf("proxy /agg") != id("GET /agg") {
				t.Errorf("proxy span not under the server span")
			}
			server := tr.Spans[byOp["GET /agg"]]
			tags := map[string]any{}
			for _, kv := range server.Tags {
				tags[kv.Key] = kv.Value
			}
			if tags["http.route"] != "/agg" || tags["region"] != "eu-test" || fmt.Sprint(tags["http.response.status_code"]) != "200" {
				t.Errorf("server span tags %v", tags)
			}
			for i, path := range []string{"/a", "/b"} {
				op := fmt.Sprintf("GET /agg backend[%d]", i)
				if parentOf(op) != id("proxy /agg") {
					t.Errorf("%s not under the proxy span", op)
				}
				mu.Lock()
				got := seen[path]
				mu.Unlock()
				if want := "00-" + traceID + "-" + id(op) + "-01"; got != want {
					t.Errorf("backend %s got traceparent %q, want %q", path, got, want)
				}
			}
		})
	}
}
