package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// TestOpenCensusToJaeger: telemetry/opencensus (krakend-opencensus' legacy
// namespace) on a real gw-edge sends krakend-opencensus' spans to a real
// Jaeger: over Jaeger's thrift protocol to the collector (exporters.jaeger
// endpoint) or the agent's UDP port (agent_endpoint), and as Zipkin v2 JSON
// (exporters.zipkin), each under its own service name. The trace holds
// the spans KrakenD CE 2.12.1 records for the same config (compared by
// hand with the reference binary): Recv./agg/:id > pipe-/agg/:id >
// backend-/a/{{.Id}} > Sent./a, the client's B3 context is followed and
// each backend receives B3 headers naming its client span.
func TestOpenCensusToJaeger(t *testing.T) {
	bins := testenv.Build(t)
	j := startJaeger(t)
	var mu sync.Mutex
	seen := map[string]http.Header{} // backend path -> request headers
	b := testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Clone()
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{%q:true}`, strings.Trim(r.URL.Path, "/")[:1])
	}))
	for _, tc := range []struct {
		name, jaeger, service string
		zipkin                bool
	}{
		{"collector", fmt.Sprintf(`"endpoint": %q`, j.thrift), "oc-collector", true},
		{"agent", fmt.Sprintf(`"agent_endpoint": %q`, j.agent), "oc-agent", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			zipkin := ""
			if tc.zipkin {
				zipkin = fmt.Sprintf(`, "zipkin": {"collector_url": %q, "service_name": %q}`, j.zipkin, tc.service+"-zipkin")
			}
			cfg := testenv.WriteFile(t, t.TempDir(), "krakend.json", fmt.Sprintf(`{
  "version": 3,
  "extra_config": {
    "telemetry/opencensus": {
      "sample_rate": 100,
      "exporters": {"jaeger": {%s, "service_name": %q}%s}
    }
  },
  "endpoints": [
    {"endpoint": "/agg/{id}", "backend": [
      {"host": [%[4]q], "url_pattern": "/a/{id}"},
      {"host": [%[4]q], "url_pattern": "/b"}
    ]}
  ]
}`, tc.jaeger, tc.service, zipkin, b.URL))
			e := testenv.StartStandalone(t, bins, cfg)
			// The client's B3 context: the trace continues it.
			const clientTrace, clientSpan = "463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312"
			req, _ := http.NewRequest("GET", e.URL()+"/agg/7", nil)
			req.Header.Set("X-B3-TraceId", clientTrace)
			req.Header.Set("X-B3-SpanId", clientSpan)
			req.Header.Set("X-B3-Sampled", "1")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("GET /agg/7: %d", resp.StatusCode)
			}

			tr := waitTrace(t, j, tc.service, clientTrace, 6)
			byOp := map[string]int{}
			for i, s := range tr.Spans {
				if svc := tr.Processes[s.ProcessID].ServiceName; svc == tc.service {
					byOp[s.OperationName] = i
				}
			}
			span := func(op string) int {
				i, ok := byOp[op]
				if !ok {
					t.Fatalf("no span %q from %s in %v", op, tc.service, byOp)
				}
				return i
			}
			parent := func(op string) string {
				for _, r := range tr.Spans[span(op)].References {
					if r.RefType == "CHILD_OF" {
						return r.SpanID
					}
				}
				return ""
			}
			id := func(op string) string { return tr.Spans[span(op)].SpanID }
			tags := func(op string) map[string]string {
				out := map[string]string{}
				for _, kv := range tr.Spans[span(op)].Tags {
					out[kv.Key] = fmt.Sprint(kv.Value)
				}
				return out
			}
			if len(byOp) != 6 {
				t.Errorf("%s sent %d spans %v, want 6 (server, pipe, 2 backends, 2 clients)", tc.service, len(byOp), byOp)
			}
			if p := parent("Recv./agg/:id"); p != clientSpan {
				t.Errorf("server span's parent %q, want the client's B3 span %s", p, clientSpan)
			}
			if st := tags("Recv./agg/:id"); st["http.path"] != "/agg/7" || st["http.method"] != "GET" || st["http.url"] != "/agg/7" {
				t.Errorf("server span tags %v", st)
			}
			if parent("pipe-/agg/:id") != id("Recv./agg/:id") || tags("pipe-/agg/:id")["complete"] != "true" {
				t.Errorf("pipe span: parent %s, tags %v", parent("pipe-/agg/:id"), tags("pipe-/agg/:id"))
			}
			for _, c := range []struct{ backend, client, path string }{
				{"backend-/a/{{.Id}}", "Sent./a/7", "/a/7"},
				{"backend-/b", "Sent./b", "/b"},
			} {
				if parent(c.backend) != id("pipe-/agg/:id") || tags(c.backend)["complete"] != "true" {
					t.Errorf("%s: parent %s, tags %v", c.backend, parent(c.backend), tags(c.backend))
				}
				if parent(c.client) != id(c.backend) {
					t.Errorf("%s not under %s", c.client, c.backend)
				}
				if ct := tags(c.client); ct["http.status_code"] != "200" || ct["http.path"] != c.path || ct["span.kind"] != "client" {
					t.Errorf("%s tags %v", c.client, ct)
				}
				mu.Lock()
				h := seen[c.path]
				mu.Unlock()
				if h.Get("X-B3-Traceid") != clientTrace || h.Get("X-B3-Spanid") != id(c.client) || h.Get("X-B3-Sampled") != "1" {
					t.Errorf("backend %s got B3 %q %q %q, want %s %s 1", c.path,
						h.Get("X-B3-Traceid"), h.Get("X-B3-Spanid"), h.Get("X-B3-Sampled"), clientTrace, id(c.client))
				}
			}
			if tc.zipkin {
				// Zipkin's model lowercases span names; the exporter adds no prefix.
				tr := waitTrace(t, j, tc.service+"-zipkin", clientTrace, 6)
				zs := 0
				for _, s := range tr.Spans {
					if tr.Processes[s.ProcessID].ServiceName == tc.service+"-zipkin" {
						zs++
						if strings.HasPrefix(s.OperationName, "Recv.") || strings.HasPrefix(s.OperationName, "Sent.") {
							t.Errorf("zipkin span %q has the Jaeger exporter's prefix", s.OperationName)
						}
					}
				}
				if zs != 6 {
					t.Errorf("%d spans from the zipkin exporter, want 6", zs)
				}
			}
		})
	}
}

// TestOpenCensusLayers: enabled_layers router false leaves the server span
// out (the pipe span is the trace's root, the client's B3 context is not
// read) and backend false the backend and client spans; a request still
// carries B3 headers to the backend.
func TestOpenCensusLayers(t *testing.T) {
	bins := testenv.Build(t)
	j := startJaeger(t)
	var mu sync.Mutex
	var got http.Header
	b := testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	cfg := testenv.WriteFile(t, t.TempDir(), "krakend.json", fmt.Sprintf(`{
  "version": 3,
  "extra_config": {
    "telemetry/opencensus": {
      "sample_rate": 100,
      "enabled_layers": {"pipe": true},
      "exporters": {"jaeger": {"endpoint": %q, "service_name": "oc-layers"}}
    }
  },
  "endpoints": [{"endpoint": "/one", "backend": [{"host": [%q], "url_pattern": "/x"}]}]
}`, j.thrift, b.URL))
	e := testenv.StartStandalone(t, bins, cfg)
	req, _ := http.NewRequest("GET", e.URL()+"/one", nil)
	req.Header.Set("X-B3-TraceId", "463ac35c9f6413ad48485a3953bb6124")
	req.Header.Set("X-B3-SpanId", "a2fb4a1d1a96d312")
	req.Header.Set("X-B3-Sampled", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	tid := got.Get("X-B3-Traceid")
	mu.Unlock()
	if tid == "" || tid == "463ac35c9f6413ad48485a3953bb6124" {
		t.Fatalf("backend got X-B3-TraceId %q: want a new trace (the router layer, which reads B3, is off)", tid)
	}
	tr := waitTrace(t, j, "oc-layers", tid, 1)
	if len(tr.Spans) != 1 || tr.Spans[0].OperationName != "pipe-/one" || len(tr.Spans[0].References) != 0 {
		var ops []string
		for _, s := range tr.Spans {
			ops = append(ops, s.OperationName)
		}
		t.Errorf("spans %v, want the root pipe-/one alone", ops)
	}
}

// waitTrace waits for trace id (hex, as B3 wrote it) to hold at least n
// spans of service in Jaeger.
func waitTrace(t *testing.T, j *jaeger, service, id string, n int) jaegerTrace {
	t.Helper()
	var tr jaegerTrace
	testenv.Eventually(t, 30*time.Second, func() error {
		traces, err := j.traces(service)
		if err != nil {
			return err
		}
		for _, x := range traces {
			if x.TraceID == id {
				count := 0
				for _, s := range x.Spans {
					if x.Processes[s.ProcessID].ServiceName == service {
						count++
					}
				}
				if count >= n {
					tr = x
					return nil
				}
			}
		}
		return errorf("trace %s of %s not (fully) in Jaeger yet: %d traces", id, service, len(traces))
	})
	return tr
}
