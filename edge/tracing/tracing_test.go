package tracing

import (
	"context"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseTraceparent(t *testing.T) {
	t.Parallel()
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	tests := []struct {
		name    string
		in      string
		valid   bool
		sampled bool
	}{
		{"sampled", "00-" + tid + "-" + sid + "-01", true, true},
		{"unsampled", "00-" + tid + "-" + sid + "-00", true, false},
		{"future version with more fields", "01-" + tid + "-" + sid + "-01-xyz", true, true},
		{"version 00 with more fields", "00-" + tid + "-" + sid + "-01-xyz", false, false},
		{"version ff", "ff-" + tid + "-" + sid + "-01", false, false},
		{"upper case", "00-4BF92F3577B34DA6A3CE929D0E0E4736-" + sid + "-01", false, false},
		{"zero trace id", "00-00000000000000000000000000000000-" + sid + "-01", false, false},
		{"zero span id", "00-" + tid + "-0000000000000000-01", false, false},
		{"short", "00-" + tid + "-" + sid, false, false},
		{"empty", "", false, false},
	}
	for _, tc := range tests {
		sc := parseTraceparent([]byte(tc.in))
		if sc.IsValid() != tc.valid || sc.IsSampled() != tc.sampled {
			t.Errorf("%s: valid %v sampled %v, want %v %v", tc.name, sc.IsValid(), sc.IsSampled(), tc.valid, tc.sampled)
		}
		if tc.valid && (sc.TraceID().String() != tid || sc.SpanID().String() != sid || !sc.IsRemote()) {
			t.Errorf("%s: got %s/%s", tc.name, sc.TraceID(), sc.SpanID())
		}
	}
}

func TestPropagatorsOption(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in        string
		fast, err bool
	}{
		{"", true, false},
		{"tracecontext", true, false},
		{"tracecontext,baggage,b3", false, false},
		{"b3multi", false, false},
		{"none", false, false},
		{"xray", false, true},
	} {
		_, fast, _, err := propagators(tc.in)
		if fast != tc.fast || (err != nil) != tc.err {
			t.Errorf("%q: fast %v err %v, want %v %v", tc.in, fast, err, tc.fast, tc.err)
		}
	}
}

// TestB3 reads a B3 parent from the client and writes B3 to the backend
// when OTEL_PROPAGATORS says so.
func TestB3(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	tr, err := New(&gatewayv1.OpenTelemetry{ServiceName: "b3", TraceSampleRate: 0}, Options{Propagators: "b3multi", Exporter: rec})
	if err != nil {
		t.Fatal(err)
	}
	const tid, sid = "463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312"
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/x")
	ctx.Request.Header.Set("X-B3-TraceId", tid)
	ctx.Request.Header.Set("X-B3-SpanId", sid)
	ctx.Request.Header.Set("X-B3-Sampled", "1")
	var r Request
	tr.Start(&r, &ctx)
	if !r.Sampled() || string(r.TraceID()) != tid {
		t.Fatalf("sampled %v trace %s: want the B3 parent's sampled trace", r.Sampled(), r.TraceID())
	}
	var req fasthttp.Request
	req.SetRequestURI("http://127.0.0.1:1/b")
	call := r.StartCall(NewLayer(&gatewayv1.TraceLayer{}, "backend"), "b", &req)
	if got := string(req.Header.Peek("X-B3-TraceId")); got != tid {
		t.Errorf("backend X-B3-TraceId %q, want %q", got, tid)
	}
	if got := string(req.Header.Peek("X-B3-SpanId")); got == sid || len(got) != 16 {
		t.Errorf("backend X-B3-SpanId %q, want the call span's id", got)
	}
	call.End(200, "", nil)
	r.End(&ctx)
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.spans); n != 2 {
		t.Errorf("%d spans, want server and call", n)
	}
}

// TestDisablePropagation: with layers.global.disable_propagation the
// client's context is ignored (a new root, sampled at the rate) and
// nothing is written to backends.
func TestDisablePropagation(t *testing.T) {
	t.Parallel()
	tr, err := New(&gatewayv1.OpenTelemetry{ServiceName: "p", TraceSampleRate: 0, DisablePropagation: true}, Options{Exporter: &recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/x")
	ctx.Request.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	var r Request
	tr.Start(&r, &ctx)
	if r.Sampled() {
		t.Error("a client's sampled flag was followed with propagation disabled")
	}
	var req fasthttp.Request
	r.StartCall(nil, "b", &req)
	if v := req.Header.Peek("Traceparent"); len(v) != 0 {
		t.Errorf("backend got traceparent %q with propagation disabled", v)
	}
}

type recorder struct {
	mu    sync.Mutex
	spans tracetest.SpanStubs
}

func (r *recorder) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = append(r.spans, tracetest.SpanStubsFromReadOnlySpans(spans)...)
	return nil
}

func (r *recorder) Shutdown(context.Context) error { return nil }
