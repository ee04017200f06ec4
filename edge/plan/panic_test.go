package plan_test

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/apigw/gateway/edge/plan"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// panickyWriter is a log destination that panics on the first line holding
// marker (as a broken log sink would) and keeps every other line.
type panickyWriter struct {
	marker string
	mu     sync.Mutex
	fired  bool
	lines  bytes.Buffer
}

func (w *panickyWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.fired && bytes.Contains(b, []byte(w.marker)) {
		w.fired = true
		panic("log sink broke on " + w.marker)
	}
	return w.lines.Write(b)
}

func (w *panickyWriter) log() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lines.String()
}

// panicsAt is gw_edge_panics_total{where} in reg.
func panicsAt(t *testing.T, reg *prometheus.Registry, where string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "gw_edge_panics_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "where" && l.GetValue() == where {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no gw_edge_panics_total{where=%q}", where)
	return 0
}

func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestRequestPanicCounted: a panic on the request goroutine (here the log
// sink panicking while the failed backend call is logged) is recovered by
// the plan, answered 500 without internal text, counted in
// gw_edge_panics_total{where="request"} and logged; the next request is
// served normally.
func TestRequestPanicCounted(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := plan.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	w := &panickyWriter{marker: "backend call failed"}
	p := mustBuild(t, snapshot(endpoint("GET", "/dead", backend(deadAddr(t), "/x"))), plan.Deps{Metrics: m, Logger: zerolog.New(w)})
	if n := panicsAt(t, reg, "request"); n != 0 {
		t.Fatalf("panics before any request: %v", n)
	}
	ctx := newCtx("GET", "/dead", "")
	if st := serveOnce(p.Serve, ctx); st != 500 {
		t.Fatalf("status %d, want 500", st)
	}
	if body := string(ctx.Response.Body()); strings.Contains(body, "panic") || strings.Contains(body, "log sink") {
		t.Errorf("internal text in the answer: %q", body)
	}
	if n := panicsAt(t, reg, "request"); n != 1 {
		t.Errorf(`gw_edge_panics_total{where="request"} = %v, want 1`, n)
	}
	if n := panicsAt(t, reg, "backend_call"); n != 0 {
		t.Errorf(`gw_edge_panics_total{where="backend_call"} = %v, want 0`, n)
	}
	if !strings.Contains(w.log(), "request handler panicked") {
		t.Errorf("panic not logged:\n%s", w.log())
	}
	// The plan keeps serving (the writer no longer panics).
	if st := serveOnce(p.Serve, newCtx("GET", "/dead", "")); st != 500 {
		t.Fatalf("after the panic: status %d, want the backend failure's 500", st)
	}
	if n := panicsAt(t, reg, "request"); n != 1 {
		t.Errorf("a request without panic was counted: %v", n)
	}
}

// TestBackendCallPanicCounted: a panic on a backend call's goroutine (the
// log sink panicking while the call's circuit breaker logs its opening,
// log_status_change) is recovered by the pipe: the call fails (500), the
// request goroutine is unharmed, and gw_edge_panics_total{where=
// "backend_call"} counts it.
func TestBackendCallPanicCounted(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := plan.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	w := &panickyWriter{marker: "circuit breaker state change"}
	be := backend(deadAddr(t), "/x")
	be.CircuitBreaker = &gatewayv1.CircuitBreaker{MaxErrors: 1, IntervalMs: 60_000, TimeoutMs: 60_000, LogStatusChange: true}
	p := mustBuild(t, snapshot(endpoint("GET", "/dead", be)), plan.Deps{Metrics: m, Logger: zerolog.New(w)})
	// KrakenD's breaker opens when the consecutive errors exceed
	// max_errors: the second failure opens it and logs.
	for i := range 2 {
		if st := serveOnce(p.Serve, newCtx("GET", "/dead", "")); st != 500 {
			t.Fatalf("request %d: status %d, want 500", i, st)
		}
	}
	p.Wait() // the call goroutines have returned
	if n := panicsAt(t, reg, "backend_call"); n != 1 {
		t.Errorf(`gw_edge_panics_total{where="backend_call"} = %v, want 1`, n)
	}
	if n := panicsAt(t, reg, "request"); n != 0 {
		t.Errorf(`gw_edge_panics_total{where="request"} = %v, want 0`, n)
	}
	if !w.fired {
		t.Fatal("the breaker never logged its opening: no panic was provoked")
	}
}
