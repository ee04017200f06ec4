package plan_test

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/apigw/gateway/edge/plan"
	"github.com/apigw/gateway/edge/qos/breaker"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// seriesWith lists the series of reg whose labels mention value.
func seriesWith(t *testing.T, reg *prometheus.Registry, value string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.HasPrefix(l.GetValue(), value) {
					out = append(out, mf.GetName()+"{"+l.GetName()+"="+l.GetValue()+"}")
				}
			}
		}
	}
	return out
}

// TestRemovedEndpointSeriesDeleted: once the plan that served an endpoint
// is released and no live plan has it, its request, duration and backend
// error series are gone; a kept endpoint's series stay, and a failed
// build leaves no series of its own.
func TestRemovedEndpointSeriesDeleted(t *testing.T) {
	t.Parallel()
	addr := fastBackend(t, nil)
	reg := prometheus.NewRegistry()
	m, err := plan.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	deps := plan.Deps{Metrics: m}
	keep := func() *plan.Plan {
		return mustBuild(t, snapshot(endpoint("GET", "/keep", backend(addr, "/users/1"))), deps)
	}
	p1 := mustBuild(t, snapshot(endpoint("GET", "/keep", backend(addr, "/users/1")), endpoint("GET", "/gone", backend(addr, "/users/1"))), deps)
	for _, path := range []string{"/keep", "/gone"} {
		if st := serveOnce(p1.Serve, newCtx("GET", path, "")); st != 200 {
			t.Fatalf("%s: %d", path, st)
		}
	}
	if got := seriesWith(t, reg, "GET /gone"); len(got) == 0 {
		t.Fatal("no series for GET /gone while its plan is live")
	}
	// Breaker transitions of the removed endpoint's backend go with it.
	goneBackend := ""
	for _, s := range seriesWith(t, reg, "GET /gone") {
		if name, ok := strings.CutPrefix(s, "gw_edge_backend_duration_seconds{backend="); ok {
			goneBackend = strings.TrimSuffix(name, "}")
		}
	}
	if goneBackend == "" {
		t.Fatal("no backend series for GET /gone")
	}
	m.BreakerChanged(goneBackend, breaker.Closed, breaker.Open)
	m.BreakerChanged(goneBackend, breaker.Open, breaker.HalfOpen)
	m.BreakerChanged(goneBackend, breaker.HalfOpen, breaker.Closed)
	p2 := keep()
	defer p2.Release()
	if got := seriesWith(t, reg, "GET /gone"); len(got) == 0 {
		t.Fatal("series deleted while the plan serving them is still live")
	}
	p1.Release()
	if got := seriesWith(t, reg, "GET /gone"); len(got) != 0 {
		t.Errorf("series of the removed endpoint after release: %v", got)
	}
	if got := seriesWith(t, reg, "GET /keep"); len(got) == 0 {
		t.Error("series of the kept endpoint deleted")
	}

	// A failed build (an invalid output encoding) creates no lasting series.
	bad := endpoint("GET", "/bad", backend(addr, "/users/1"))
	bad.OutputEncoding = "nope"
	if _, err := plan.Build(snapshot(endpoint("GET", "/keep", backend(addr, "/users/1")), bad), deps); err == nil {
		t.Fatal("bad snapshot built")
	}
	if got := seriesWith(t, reg, "GET /bad"); len(got) != 0 {
		t.Errorf("series left by a failed build: %v", got)
	}
	if got := seriesWith(t, reg, "GET /keep"); len(got) == 0 {
		t.Error("a failed build deleted the series of a live plan")
	}
}

// TestBackendFailuresLogged: failed backend calls are logged at warn with
// the backend and the reason, sampled (one line per second per backend,
// counting the failures it stands for).
func TestBackendFailuresLogged(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer failing.Close()

	var logs bytes.Buffer
	deps := plan.Deps{Logger: zerolog.New(&logs)}
	p := mustBuild(t, snapshot(
		endpoint("GET", "/dead", backend(dead, "/x")),
		endpoint("GET", "/status", backend(strings.TrimPrefix(failing.URL, "http://"), "/x")),
	), deps)
	defer p.Release()
	const n = 5
	for range n {
		for _, path := range []string{"/dead", "/status"} {
			if st := serveOnce(p.Serve, newCtx("GET", path, "")); st != 500 {
				t.Fatalf("%s: status %d, want 500", path, st)
			}
		}
	}
	lines := map[string][]map[string]any{}
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["message"] == "backend call failed" {
			b, _ := m["backend"].(string)
			lines[b] = append(lines[b], m)
		}
	}
	for backend, reason := range map[string]string{"GET /dead backend[0]": "connect", "GET /status backend[0]": "status"} {
		got := lines[backend]
		if len(got) == 0 || len(got) >= n {
			t.Errorf("%s: %d lines for %d failures, want sampled (1 per second)", backend, len(got), n)
			continue
		}
		if got[0]["level"] != "warn" || got[0]["reason"] != reason || got[0]["failures"] != 1.0 {
			t.Errorf("%s: first line %v, want warn, reason %s, failures 1", backend, got[0], reason)
		}
	}
}

// TestIncompleteResponsesCounted: gw_edge_incomplete_responses_total moves
// for a partial aggregate (one backend down) and not for a complete one.
func TestIncompleteResponsesCounted(t *testing.T) {
	t.Parallel()
	addr := fastBackend(t, nil)
	reg := prometheus.NewRegistry()
	m, err := plan.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	full := endpoint("GET", "/full", with(backend(addr, "/users/1"), func(b *gatewayv1.Backend) { b.Group = "a" }),
		with(backend(addr, "/users/2"), func(b *gatewayv1.Backend) { b.Group = "b" }))
	part := endpoint("GET", "/part", with(backend(addr, "/users/1"), func(b *gatewayv1.Backend) { b.Group = "a" }),
		with(backend("127.0.0.1:1", "/down"), func(b *gatewayv1.Backend) { b.Group = "b" }))
	p := mustBuild(t, snapshot(full, part), plan.Deps{Metrics: m})
	for range 2 {
		serveOnce(p.Serve, newCtx("GET", "/full", ""))
	}
	ctx := newCtx("GET", "/part", "")
	if st := serveOnce(p.Serve, ctx); st != 200 || string(ctx.Response.Header.Peek("X-Krakend-Completed")) != "false" {
		t.Fatalf("partial aggregate: %d, completed %q", st, ctx.Response.Header.Peek("X-Krakend-Completed"))
	}
	if got := counterValue(t, reg, "gw_edge_incomplete_responses_total", `endpoint="GET /part"`); got != 1 {
		t.Errorf("incomplete{GET /part} = %v, want 1", got)
	}
	if got := counterValue(t, reg, "gw_edge_incomplete_responses_total", `endpoint="GET /full"`); got != 0 {
		t.Errorf("incomplete{GET /full} = %v, want 0", got)
	}
}

// histogramCount is the sample count of the histogram series name with
// the label (name="value").
func histogramCount(t *testing.T, reg *prometheus.Registry, name, label string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName()+`="`+lp.GetValue()+`"` == label {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

// TestBackendLatencyObserved: every backend call that was sent is one
// sample of gw_edge_backend_duration_seconds{backend}, a failed connect
// included.
func TestBackendLatencyObserved(t *testing.T) {
	t.Parallel()
	addr := fastBackend(t, nil)
	reg := prometheus.NewRegistry()
	m, err := plan.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	agg := endpoint("GET", "/agg", with(backend(addr, "/users/1"), func(b *gatewayv1.Backend) { b.Group = "a" }),
		with(backend("127.0.0.1:1", "/down"), func(b *gatewayv1.Backend) { b.Group = "b" }))
	p := mustBuild(t, snapshot(agg), plan.Deps{Metrics: m})
	defer p.Release()
	names := []string{`backend="` + agg.GetBackends()[0].GetName() + `"`, `backend="` + agg.GetBackends()[1].GetName() + `"`}
	if names[0] == names[1] {
		t.Fatalf("backend names %v", names)
	}
	for _, n := range names {
		if got := histogramCount(t, reg, "gw_edge_backend_duration_seconds", n); got != 0 {
			t.Fatalf("%s observed %d calls before any request", n, got)
		}
	}
	for range 3 {
		serveOnce(p.Serve, newCtx("GET", "/agg", ""))
	}
	for _, n := range names {
		if got := histogramCount(t, reg, "gw_edge_backend_duration_seconds", n); got != 3 {
			t.Errorf("%s observed %d calls, want 3", n, got)
		}
	}
}
