package accesslog

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// at is a fixed end time; start is derived per test from the latency.
var at = time.Date(2026, 12, 7, 6, 0, 21, 0, time.Local)

func write(t *testing.T, cfg Config, e func(*Entry), r Request, latency time.Duration) string {
	t.Helper()
	var out bytes.Buffer
	cfg.Out = &out
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	en := l.Start(r.Path, at.Add(-latency))
	if en == nil {
		return ""
	}
	if e != nil {
		e(en)
	}
	en.Finish(&r, at)
	return out.String()
}

// TestKrakenDLine compares with lines a KrakenD CE 2.12.1 wrote for the
// same requests (its gin logger, colours off).
func TestKrakenDLine(t *testing.T) {
	t.Parallel()
	get := []byte("GET")
	tests := []struct {
		name    string
		r       Request
		latency time.Duration
		errs    string
		want    string
	}{
		{"backend error", Request{Method: get, Path: []byte("/a"), Query: []byte("q=1"), ClientIP: []byte("127.0.0.1"), Status: 500},
			7067001 * time.Nanosecond, "invalid status code 404 [GET /x]: http://127.0.0.1:18914/x",
			"[GIN] 2026/12/07 - 06:00:21 | 500 |    7.067001ms |       127.0.0.1 | GET      \"/a?q=1\"\nError #01: invalid status code 404 [GET /x]: http://127.0.0.1:18914/x\n"},
		{"not found", Request{Method: get, Path: []byte("/nope"), ClientIP: []byte("127.0.0.1"), Status: 404},
			4246 * time.Nanosecond, "",
			"[GIN] 2026/12/07 - 06:00:21 | 404 |       4.246µs |       127.0.0.1 | GET      \"/nope\"\n"},
		{"health", Request{Method: get, Path: []byte("/__health"), ClientIP: []byte("127.0.0.1"), Status: 200},
			69935 * time.Nanosecond, "",
			"[GIN] 2026/12/07 - 06:00:21 | 200 |      69.935µs |       127.0.0.1 | GET      \"/__health\"\n"},
		{"long method, quoting, two errors", Request{Method: []byte("OPTIONS"), Path: []byte("/é\"x"), ClientIP: []byte("2001:db8::1"), Status: 200},
			90 * time.Second, "e1\ne2",
			"[GIN] 2026/12/07 - 06:00:21 | 200 |         1m30s |     2001:db8::1 | OPTIONS  \"/é\\\"x\"\nError #01: e1\nError #02: e2\n"},
	}
	for _, tc := range tests {
		got := write(t, Config{}, func(e *Entry) { e.Errors = append(e.Errors, tc.errs...) }, tc.r, tc.latency)
		if got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestJSONLine(t *testing.T) {
	t.Parallel()
	r := Request{Method: []byte("GET"), Path: []byte("/users/1"), Query: []byte("a=\"b"), ClientIP: []byte("10.0.0.1"),
		Status: 200, Bytes: 17, Complete: []byte("false"), TraceID: []byte("4bf92f3577b34da6a3ce929d0e0e4736")}
	got := write(t, Config{Format: FormatJSON}, func(e *Entry) {
		e.Route, e.Backends = "/users/{id}", 2
		e.Errors = append(e.Errors, "backend b1: timeout\nx"...)
	}, r, 1500*time.Microsecond)
	if !strings.HasSuffix(got, "}\n") || strings.Count(got, "\n") != 1 {
		t.Fatalf("not one line: %q", got)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(got), &m); err != nil {
		t.Fatalf("%q: %v", got, err)
	}
	want := map[string]any{
		"time": at.UTC().Format(time.RFC3339Nano), "component": "access", "method": "GET", "path": "/users/1",
		"query": "a=\"b", "route": "/users/{id}", "backends": 2.0, "status": 200.0, "duration_ms": 1.5, "bytes": 17.0,
		"client_ip": "10.0.0.1", "complete": false, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
		"errors": []any{"backend b1: timeout", "x"},
	}
	for k, v := range want {
		if gb, _ := json.Marshal(m[k]); string(gb) != mustJSON(v) {
			t.Errorf("%s = %s, want %s", k, gb, mustJSON(v))
		}
	}
	if len(m) != len(want) {
		t.Errorf("fields %v, want %d", m, len(want))
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestSkipPaths(t *testing.T) {
	t.Parallel()
	r := Request{Method: []byte("GET"), Path: []byte("/__health"), Status: 200}
	if got := write(t, Config{SkipPaths: []string{"/__health"}}, nil, r, time.Millisecond); got != "" {
		t.Errorf("skipped path logged: %q", got)
	}
	r.Path = []byte("/__health/")
	if got := write(t, Config{SkipPaths: []string{"/__health"}}, nil, r, time.Millisecond); got == "" {
		t.Error("a path that is not skipped (exact match only) was not logged")
	}
}

// TestSampling: a 10% sample logs about a tenth of the 2xx requests and
// every 5xx one.
func TestSampling(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	l, err := New(Config{Out: &out, SampleRate: 0.1, Format: FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	for i := range n {
		r := Request{Method: []byte("GET"), Path: []byte("/a"), Status: 200}
		if i%10 == 0 {
			r.Status = 503
		}
		l.Start(r.Path, at).Finish(&r, at)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var s5, s2 int
	for _, ln := range lines {
		if strings.Contains(ln, `"status":503`) {
			s5++
		} else {
			s2++
		}
	}
	if s5 != n/10 {
		t.Errorf("5xx lines %d, want all %d", s5, n/10)
	}
	// 18000 2xx at 10%: 1800 expected, sd ~40; a wide bound that a broken
	// sampler (0 or all) cannot meet.
	if s2 < 1500 || s2 > 2100 {
		t.Errorf("2xx lines %d, want about 1800", s2)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []Config{{}, {Out: &bytes.Buffer{}, SampleRate: 1.5}, {Out: &bytes.Buffer{}, SampleRate: -1}, {Out: &bytes.Buffer{}, Format: 9}} {
		if _, err := New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("xml format accepted")
	}
}

func TestAppendDuration(t *testing.T) {
	t.Parallel()
	ds := []time.Duration{0, 1, 999, 1000, 1001, 4246, 69935, 999999, 1000000, 7067001, 999999999, time.Second,
		1500 * time.Millisecond, time.Minute, 90 * time.Second, time.Hour + 2*time.Minute + 3*time.Second + 4,
		-1, -1500 * time.Microsecond, -time.Hour, 1<<63 - 1, -1 << 63}
	for v := time.Duration(1); v < 1<<62; v = v*7 + 3 {
		ds = append(ds, v, -v)
	}
	for _, d := range ds {
		if got := string(AppendDuration(nil, d)); got != d.String() {
			t.Errorf("AppendDuration(%d) = %q, want %q", int64(d), got, d.String())
		}
	}
}
