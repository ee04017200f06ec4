package testenv

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// InfluxDB is a real InfluxDB 1.x server (Debian's influxdb, influxd) run
// by the test: HTTP API and RPC port on 127.0.0.1, meta, data and WAL in a
// temporary directory, no reporting, no _internal monitoring. It is never
// the system service.
type InfluxDB struct {
	URL  string // http://127.0.0.1:PORT
	Proc *Proc
}

// StartInfluxDB starts influxd and waits until it answers /ping. Without
// influxd the test is skipped, except under CI (CI set) where it fails.
func StartInfluxDB(t testing.TB) *InfluxDB {
	t.Helper()
	bin, err := exec.LookPath("influxd")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("influxd not installed (Debian package influxdb; .ci/run installs it)")
		}
		t.Skip("influxd not installed (Debian package influxdb; .ci/run installs it)")
	}
	dir := t.TempDir()
	ports := make([]string, 2)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().String()
		ln.Close()
	}
	cfg := WriteFile(t, dir, "influxdb.conf", fmt.Sprintf(`reporting-enabled = false
bind-address = %q
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
[http]
  bind-address = %q
  log-enabled = false
`, ports[0], filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), ports[1]))
	x := &InfluxDB{URL: "http://" + ports[1]}
	x.Proc = Start(t, "influxd", bin, "-config", cfg)
	Eventually(t, 20*time.Second, func() error {
		resp, err := http.Get(x.URL + "/ping")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("ping: %s", resp.Status)
		}
		return nil
	})
	return x
}

// InfluxSeries is one series of a query result.
type InfluxSeries struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// Rows returns the series' rows as column -> value maps.
func (s InfluxSeries) Rows() []map[string]any {
	out := make([]map[string]any, 0, len(s.Values))
	for _, v := range s.Values {
		r := make(map[string]any, len(v))
		for i, c := range s.Columns {
			if i < len(v) {
				r[c] = v[i]
			}
		}
		for k, tv := range s.Tags {
			r[k] = tv
		}
		out = append(out, r)
	}
	return out
}

// Query runs an InfluxQL statement against db (as the influx CLI does,
// through /query; times as Unix seconds) and returns the series of its
// first result.
func (x *InfluxDB) Query(db, q string) ([]InfluxSeries, error) {
	resp, err := http.PostForm(x.URL+"/query", url.Values{"db": {db}, "q": {q}, "epoch": {"s"}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Results []struct {
			Series []InfluxSeries `json:"series"`
			Error  string         `json:"error"`
		} `json:"results"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", q, resp.Status, err)
	}
	if r.Error != "" {
		return nil, fmt.Errorf("%s: %s", q, r.Error)
	}
	if len(r.Results) == 0 {
		return nil, nil
	}
	if r.Results[0].Error != "" {
		return nil, fmt.Errorf("%s: %s", q, r.Results[0].Error)
	}
	return r.Results[0].Series, nil
}

// MustQuery is Query failing the test on an error.
func (x *InfluxDB) MustQuery(t testing.TB, db, q string) []InfluxSeries {
	t.Helper()
	s, err := x.Query(db, q)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
