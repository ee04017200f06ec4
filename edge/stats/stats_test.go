package stats

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func decode(t *testing.T, s *Stats) map[string]any {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/__stats", nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, rec.Body)
	}
	return m
}

// TestStatsDocument: the expvar shape KrakenD prints: "{\n", one sorted
// `"key": value` per line, "\n}\n", with cmdline and memstats, the
// layers' four combinations registered up front and histograms expanded.
func TestStatsDocument(t *testing.T) {
	s := New()
	l := s.Layer("pipe", "/agg")
	r := s.Route("/agg")
	start := time.Now().Add(-3 * time.Millisecond)
	l.Observe(start, true, false)
	r.Observe(200, 19, start)
	r.Observe(500, 0, start)
	body := string(s.AppendJSON(nil))
	if !strings.HasPrefix(body, "{\n\"cmdline\": ") || !strings.HasSuffix(body, "\n}\n") {
		t.Fatalf("document framing:\n%.200s", body)
	}
	lines := strings.Split(strings.TrimSuffix(strings.TrimPrefix(body, "{\n"), "\n}\n"), ",\n")
	for i := 1; i < len(lines); i++ {
		if lines[i-1] >= lines[i] {
			t.Fatalf("keys not sorted: %.60s before %.60s", lines[i-1], lines[i])
		}
	}
	m := decode(t, s)
	for k, want := range map[string]float64{
		"krakend.proxy.requests.layer.pipe.name./agg.complete.true.error.false":      1,
		"krakend.proxy.requests.layer.pipe.name./agg.complete.false.error.true":      0,
		"krakend.proxy.latency.layer.pipe.name./agg.complete.true.error.false.count": 1,
		"krakend.router.response./agg.status":                                        0,
		"krakend.router.response./agg.status.200.count":                              1,
		"krakend.router.response./agg.status.500.count":                              1,
		"krakend.router.response./agg.size.count":                                    2,
		"krakend.router.response./agg.size.max":                                      19,
		"krakend.router.response./agg.size.min":                                      -1,
		"krakend.router.response./agg.size.mean":                                     9,
		"krakend.router.response./agg.size.std-dev":                                  10,
		"krakend.router.response./agg.size.50-percentile":                            9,
		"krakend.router.response./agg.size.999-percentile":                           19,
		"krakend.router.connected":                                                   0,
	} {
		if got, ok := m[k].(float64); !ok || got != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
	if v, _ := m["krakend.proxy.latency.layer.pipe.name./agg.complete.true.error.false.min"].(float64); v < 3e6 {
		t.Errorf("latency min %v ns, want >= 3ms", v)
	}
	if _, ok := m["memstats"].(map[string]any); !ok {
		t.Errorf("no memstats object")
	}
}

// TestStatsCollect: a collection captures the runtime series, rolls the
// connection counters into their gauges and totals, and clears the
// histograms (counters keep counting).
func TestStatsCollect(t *testing.T) {
	s := New()
	l := s.Layer("backend", "/a")
	l.Observe(time.Now(), true, false)
	s.Connection()
	s.Connection()
	s.Disconnection()
	s.Collect()
	m := decode(t, s)
	for k, want := range map[string]float64{
		"krakend.router.connected": 0, "krakend.router.connected-gauge": 2, "krakend.router.connected-total": 2,
		"krakend.router.disconnected-gauge": 1, "krakend.router.disconnected-total": 1,
		"krakend.proxy.requests.layer.backend.name./a.complete.true.error.false":      1,
		"krakend.proxy.latency.layer.backend.name./a.complete.true.error.false.count": 0,
	} {
		if got, _ := m[k].(float64); got != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
	if n, _ := m["krakend.service.runtime.NumGoroutine"].(float64); n < 1 {
		t.Errorf("NumGoroutine %v after a collection", m["krakend.service.runtime.NumGoroutine"])
	}
	if n, _ := m["krakend.service.runtime.MemStats.Sys"].(float64); n <= 0 {
		t.Errorf("MemStats.Sys %v after a collection", n)
	}
}

// TestStatsRunInterval: Run collects every collection_time; Close stops it.
func TestStatsRunInterval(t *testing.T) {
	s := New()
	s.SetCollectionTime(10 * time.Millisecond)
	s.Run()
	defer s.Close()
	s.Connection()
	deadline := time.Now().Add(5 * time.Second)
	for s.connectedTotal.Count() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("no collection within 5s at a 10ms collection_time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPercentiles(t *testing.T) {
	got := percentiles([]int64{1, 2, 3, 4}, []float64{0.1, 0.5, 0.75, 0.99})
	want := []float64{1, 2.5, 3.75, 4}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("percentile %v = %v, want %v", []float64{0.1, 0.5, 0.75, 0.99}[i], got[i], want[i])
		}
	}
}
