package plan_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/apigw/gateway/edge/plan"
	"github.com/apigw/gateway/edge/tracing"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// headerBackend is a loopback backend that answers {} and records the
// traceparent each call carried, by path.
type headerBackend struct {
	addr string
	mu   sync.Mutex // guards seen
	seen map[string][]string
}

func startHeaderBackend(t testing.TB) *headerBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hb := &headerBackend{addr: ln.Addr().String(), seen: map[string][]string{}}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		hb.mu.Lock()
		hb.seen[string(ctx.Path())] = append(hb.seen[string(ctx.Path())], string(ctx.Request.Header.Peek("Traceparent")))
		hb.mu.Unlock()
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"` + strings.Trim(string(ctx.Path()), "/") + `":1}`)
	}}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return hb
}

func (hb *headerBackend) last(path string) string {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	s := hb.seen[path]
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// tracedSnapshot is an aggregate endpoint over /a and /b with tracing at
// rate.
func tracedSnapshot(addr string, rate float64) *gatewayv1.Snapshot {
	ep := endpoint("GET", "/agg", backend(addr, "/a"), backend(addr, "/b"))
	ep.Trace = &gatewayv1.TraceLayer{Attributes: []*gatewayv1.KeyValue{{Key: "team", Value: "core"}}}
	for _, b := range ep.Backends {
		b.Trace = &gatewayv1.TraceLayer{}
	}
	snap := snapshot(ep)
	snap.Service.Opentelemetry = &gatewayv1.OpenTelemetry{
		ServiceName: "edge-test", TraceSampleRate: rate, SkipPaths: []string{"/__health"},
		Global: &gatewayv1.TraceLayer{}, Proxy: &gatewayv1.TraceLayer{}, Backend: &gatewayv1.TraceLayer{},
	}
	snap.Features = []string{"telemetry.opentelemetry"}
	return snap
}

const (
	clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpan  = "00f067aa0ba902b7"
)

// TestTracingSampledAggregate: a sampled request through an aggregate
// endpoint records one trace, continued from the client's traceparent: the
// server span, the proxy span under it, and a client span per backend under
// that, each backend receiving its own span as parent.
func TestTracingSampledAggregate(t *testing.T) {
	hb := startHeaderBackend(t)
	exp := newRecorder()
	reg := tracing.NewRegistry(tracing.Options{Exporter: exp})
	p := mustBuild(t, tracedSnapshot(hb.addr, 0), plan.Deps{Tracers: reg})
	ctx := newCtx("GET", "/agg", "")
	ctx.Request.Header.Set("Traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	if st := serveOnce(p.Serve, ctx); st != 200 {
		t.Fatalf("status %d: %s", st, bodyOf(ctx))
	}
	p.Release()
	reg.Close() // flushes
	spans := exp.GetSpans()
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		if got := s.SpanContext.TraceID().String(); got != clientTrace {
			t.Errorf("span %q in trace %s, want the client's %s", s.Name, got, clientTrace)
		}
		byName[s.Name] = s
	}
	server, ok := byName["GET /agg"]
	if !ok {
		t.Fatalf("no server span among %v", names(spans))
	}
	if server.SpanKind != trace.SpanKindServer || server.Parent.SpanID().String() != clientSpan {
		t.Errorf("server span kind %v parent %s, want server under %s", server.SpanKind, server.Parent.SpanID(), clientSpan)
	}
	if attr(server, "http.route") != "/agg" || attr(server, "http.response.status_code") != "200" || attr(server, "http.request.method") != "GET" {
		t.Errorf("server span attributes %v", server.Attributes)
	}
	proxy, ok := byName["proxy /agg"]
	if !ok || proxy.Parent.SpanID() != server.SpanContext.SpanID() {
		t.Fatalf("proxy span %v not under the server span", proxy)
	}
	if attr(proxy, "team") != "core" || attr(proxy, "krakend.stage") != "proxy" {
		t.Errorf("proxy span attributes %v", proxy.Attributes)
	}
	for i, path := range []string{"/a", "/b"} {
		name := "GET /agg backend[" + string(rune('0'+i)) + "]"
		b, ok := byName[name]
		if !ok {
			t.Fatalf("no span %q among %v", name, names(spans))
		}
		if b.SpanKind != trace.SpanKindClient || b.Parent.SpanID() != proxy.SpanContext.SpanID() {
			t.Errorf("%s: kind %v parent %s, want client under the proxy span", name, b.SpanKind, b.Parent.SpanID())
		}
		if attr(b, "http.route") != path || attr(b, "http.response.status_code") != "200" || attr(b, "krakend.endpoint.route") != "/agg" {
			t.Errorf("%s attributes %v", name, b.Attributes)
		}
		want := "00-" + clientTrace + "-" + b.SpanContext.SpanID().String() + "-01"
		if got := hb.last(path); got != want {
			t.Errorf("backend %s got traceparent %q, want %q", path, got, want)
		}
	}
	if len(spans) != 4 {
		t.Errorf("%d spans %v, want 4", len(spans), names(spans))
	}
}

// TestTracingUnsampled: an unsampled request records nothing; its
// backends inherit the client's trace with the sampled flag off, or a new
// trace id when the client sent none.
func TestTracingUnsampled(t *testing.T) {
	hb := startHeaderBackend(t)
	exp := newRecorder()
	reg := tracing.NewRegistry(tracing.Options{Exporter: exp})
	p := mustBuild(t, tracedSnapshot(hb.addr, 0), plan.Deps{Tracers: reg})

	ctx := newCtx("GET", "/agg", "")
	ctx.Request.Header.Set("Traceparent", "00-"+clientTrace+"-"+clientSpan+"-00")
	if st := serveOnce(p.Serve, ctx); st != 200 {
		t.Fatalf("status %d", st)
	}
	if got, want := hb.last("/a"), "00-"+clientTrace+"-"+clientSpan+"-00"; got != want {
		t.Errorf("backend got %q, want the client's unsampled context %q", got, want)
	}

	ctx = newCtx("GET", "/agg", "")
	if st := serveOnce(p.Serve, ctx); st != 200 {
		t.Fatalf("status %d", st)
	}
	a, b := hb.last("/a"), hb.last("/b")
	if len(a) != 55 || !strings.HasSuffix(a, "-00") || strings.Contains(a, clientTrace) || a != b {
		t.Errorf("backends got %q and %q, want one new unsampled traceparent", a, b)
	}
	p.Release()
	reg.Close()
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans recorded for unsampled requests", n)
	}
}

// TestTracingRate: rate 1 samples a request without a parent; a
// skip_paths path is never traced.
func TestTracingRate(t *testing.T) {
	hb := startHeaderBackend(t)
	exp := newRecorder()
	reg := tracing.NewRegistry(tracing.Options{Exporter: exp})
	snap := tracedSnapshot(hb.addr, 1)
	snap.Service.Opentelemetry.SkipPaths = []string{"/agg"}
	skipped := mustBuild(t, snap, plan.Deps{Tracers: reg})
	if st := serveOnce(skipped.Serve, newCtx("GET", "/agg", "")); st != 200 {
		t.Fatalf("status %d", st)
	}
	if got := hb.last("/a"); got != "" {
		t.Errorf("skipped path propagated %q", got)
	}
	p := mustBuild(t, tracedSnapshot(hb.addr, 1), plan.Deps{Tracers: reg})
	if st := serveOnce(p.Serve, newCtx("GET", "/agg", "")); st != 200 {
		t.Fatalf("status %d", st)
	}
	if got := hb.last("/a"); !strings.HasSuffix(got, "-01") {
		t.Errorf("sampled root propagated %q, want a sampled traceparent", got)
	}
	skipped.Release()
	p.Release()
	reg.Close()
	if n := len(exp.GetSpans()); n != 4 {
		t.Errorf("%d spans %v, want 4 (one traced request)", n, names(exp.GetSpans()))
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// recorder is a span exporter that keeps what it got across Shutdown
// (tracetest's in-memory exporter forgets its spans there).
type recorder struct {
	mu    sync.Mutex // guards spans
	spans tracetest.SpanStubs
}

func newRecorder() *recorder { return &recorder{} }

func (r *recorder) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = append(r.spans, tracetest.SpanStubsFromReadOnlySpans(spans)...)
	return nil
}

func (r *recorder) Shutdown(context.Context) error { return nil }

func (r *recorder) GetSpans() tracetest.SpanStubs {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append(tracetest.SpanStubs(nil), r.spans...)
}
