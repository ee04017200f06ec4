package e2e

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

func influxConfig(backend, influxURL, db string, extra string) string {
	return fmt.Sprintf(`{
  "version": 3,
  "extra_config": {
    "telemetry/metrics": {"collection_time": "1s", "listen_address": "127.0.0.1:0"},
    "telemetry/influx": {"address": %q, "db": %q, "ttl": "1s"%s}
  },
  "endpoints": [
    {"endpoint": "/ok", "backend": [{"host": [%[4]q], "url_pattern": "/y"}]},
    {"endpoint": "/fail", "backend": [{"host": [%[4]q], "url_pattern": "/x"}]}
  ]
}`, influxURL, db, extra, backend)
}

func influxBackend(t *testing.T) *testenv.Backend {
	return testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/x" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
}

// one returns the single row of a query, or an error saying what came.
func influxRow(x *testenv.InfluxDB, db, q string) (map[string]any, error) {
	s, err := x.Query(db, q)
	if err != nil {
		return nil, err
	}
	if len(s) == 0 || len(s[0].Values) == 0 {
		return nil, errorf("%s: no rows yet", q)
	}
	rows := s[0].Rows()
	return rows[len(rows)-1], nil
}

// TestInflux: a real gw-edge with telemetry/metrics and telemetry/influx
// writes krakend-influx's measurements into a real InfluxDB 1.x: the
// proxy and backend layers' requests (counters and latency histogram
// fields, tagged layer/name/complete/error), the responses by status, the
// router connections, the runtime and GC series, all tagged with the
// host name.
func TestInflux(t *testing.T) {
	x := testenv.StartInfluxDB(t)
	x.MustQuery(t, "", "CREATE DATABASE gw")
	bins := testenv.Build(t)
	b := influxBackend(t)
	cfg := testenv.WriteFile(t, t.TempDir(), "krakend.json", influxConfig(b.URL, x.URL, "gw", ""))
	e, base := startMetricsEdge(t, bins, cfg)
	testenv.Get(t, e.URL()+"/fail")
	host, _ := os.Hostname()

	// The latency histograms are sent only when the snapshot sent holds
	// them (ttl and collection_time tick apart): keep the traffic going.
	var okRow map[string]any
	testenv.Eventually(t, 30*time.Second, func() error {
		testenv.Get(t, e.URL()+"/ok")
		var err error
		okRow, err = influxRow(x, "gw", `SELECT * FROM requests WHERE "layer"='pipe' AND "name"='/ok' AND "complete"='true' AND "error"='false' AND "max" > 0`)
		return err
	})
	if okRow["host"] != host || !(okRow["p0.5"].(float64) > 0) || !(okRow["mean"].(float64) > 0) {
		t.Errorf("pipe /ok latency point: %v", okRow)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		r, err := influxRow(x, "gw", `SELECT "total", "count" FROM requests WHERE "layer"='backend' AND "name"='/x' AND "complete"='false' AND "error"='true' AND "total" > 0`)
		if err != nil {
			return err
		}
		if r["total"] != float64(1) {
			return errorf("backend /x failed total %v, want 1", r["total"])
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		r, err := influxRow(x, "gw", `SELECT "total" FROM responses WHERE "name"='/fail' AND "status"='500'`)
		if err != nil {
			return err
		}
		if r["total"] != float64(1) {
			return errorf("responses /fail 500 total %v, want 1", r["total"])
		}
		return nil
	})
	// count is the increase since the last write: the sum of the counts is
	// the total.
	s := x.MustQuery(t, "gw", `SELECT sum("count"), last("total") FROM responses WHERE "name"='/ok' AND "status"='200'`)
	if len(s) == 0 || len(s[0].Values) == 0 || s[0].Values[0][1] != s[0].Values[0][2] {
		t.Errorf("responses /ok: sum(count) and last(total) differ: %+v", s)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		r, err := influxRow(x, "gw", `SELECT "total" FROM router WHERE "direction"='in' AND "total" > 1`)
		if err != nil {
			return err
		}
		_ = r
		return nil
	})
	for _, q := range []string{
		`SELECT "NumGoroutine", "MemStats.HeapAlloc" FROM runtime WHERE "NumGoroutine" > 0`,
		`SELECT "GCStats.NumGC" FROM debug`,
		`SELECT "gauge" FROM router WHERE "direction"='out'`,
	} {
		if _, err := influxRow(x, "gw", q); err != nil {
			t.Error(err)
		}
	}
	ms := x.MustQuery(t, "gw", "SHOW MEASUREMENTS")
	var names []string
	if len(ms) > 0 {
		for _, v := range ms[0].Values {
			names = append(names, fmt.Sprint(v[0]))
		}
	}
	for _, want := range []string{"debug", "requests", "responses", "router", "router.response-size", "router.response-time", "runtime"} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("measurement %s missing from %v", want, names)
		}
	}
	if v, ok := scrape(t, base, `gw_edge_influx_writes_total{result="ok"}`); !ok || v < 1 {
		t.Errorf("gw_edge_influx_writes_total{result=\"ok\"} = %v (present %v)", v, ok)
	}
}

// TestInfluxBuffersFailedWrites: writes to a database that does not exist
// fail (logged, counted) without touching the traffic; with buffer_size
// they are kept, and once the database exists the next write sends them,
// so points older than the database arrive.
func TestInfluxBuffersFailedWrites(t *testing.T) {
	x := testenv.StartInfluxDB(t)
	bins := testenv.Build(t)
	b := influxBackend(t)
	cfg := testenv.WriteFile(t, t.TempDir(), "krakend.json", influxConfig(b.URL, x.URL, "late", `, "buffer_size": 50`))
	e, base := startMetricsEdge(t, bins, cfg)
	testenv.Eventually(t, 15*time.Second, func() error {
		if st, _, _ := testenv.Get(t, e.URL()+"/ok"); st != 200 {
			t.Fatalf("GET /ok while InfluxDB refuses the writes: %d", st)
		}
		if v, _ := scrape(t, base, `gw_edge_influx_writes_total{result="failed"}`); v < 2 {
			return errorf("failed writes %v, want 2", v)
		}
		return nil
	})
	e.WaitLog(t, 0, 5*time.Second, testenv.MessageIs("telemetry/influx: couldn't write to server"))
	if v, _ := scrape(t, base, `gw_edge_influx_buffered_batches`); v < 2 {
		t.Errorf("buffered batches %v, want >= 2", v)
	}
	created := time.Now().Unix()
	x.MustQuery(t, "", "CREATE DATABASE late")
	testenv.Eventually(t, 15*time.Second, func() error {
		r, err := influxRow(x, "late", fmt.Sprintf(`SELECT "total" FROM responses WHERE time < %ds`, created))
		if err != nil {
			return err
		}
		_ = r
		if v, _ := scrape(t, base, `gw_edge_influx_buffered_batches`); v != 0 {
			return errorf("buffered batches %v after the retry, want 0", v)
		}
		return nil
	})
}
