package agent_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/apigw/gateway/controlplane/config"
	"github.com/apigw/gateway/edge/plan"
	"github.com/apigw/gateway/edge/tracing"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

type spanRecorder struct {
	mu    sync.Mutex // guards spans
	spans []tracetest.SpanStub
}

func (r *spanRecorder) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = append(r.spans, tracetest.SpanStubsFromReadOnlySpans(spans)...)
	return nil
}

func (r *spanRecorder) Shutdown(context.Context) error { return nil }

// TestAgentMessageTraces: with telemetry/opentelemetry, each message an
// agent processes is a trace: a server span named after the agent, the
// proxy span under it and a client span for the backend call.
func TestAgentMessageTraces(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, func(string, int) int { return http.StatusOK })
	doc := fmt.Sprintf(`{"version": 3, "async_agent": [{"name": "traced",
		"backend": [{"host": [%q], "url_pattern": "/in", "method": "POST"}],
		"extra_config": {"async/amqp": {"host": "amqp://127.0.0.1:1/", "exchange": "e"}}}]}`, rec.url)
	c, err := config.Compile("a.json", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	snap := c.Snapshot
	snap.Service.Opentelemetry = &gatewayv1.OpenTelemetry{ServiceName: "agent-test", TraceSampleRate: 1,
		Global: &gatewayv1.TraceLayer{}, Proxy: &gatewayv1.TraceLayer{}, Backend: &gatewayv1.TraceLayer{}}
	snap.AsyncAgents[0].Endpoint.Trace = &gatewayv1.TraceLayer{}
	snap.AsyncAgents[0].Endpoint.Backends[0].Trace = &gatewayv1.TraceLayer{}
	snap.Features = append(snap.Features, "telemetry.opentelemetry")
	exp := &spanRecorder{}
	reg := tracing.NewRegistry(tracing.Options{Exporter: exp})
	p, err := plan.Build(snap, plan.Deps{Tracers: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Agents()[0].Process([]byte(`{"m":1}`)); err != nil {
		t.Fatalf("Process: %v", err)
	}
	p.Release()
	reg.Close() // flushes
	exp.mu.Lock()
	defer exp.mu.Unlock()
	byName := map[string]tracetest.SpanStub{}
	for _, s := range exp.spans {
		byName[s.Name] = s
	}
	server, ok := byName["AsyncAgent traced"]
	if !ok || server.SpanKind != trace.SpanKindServer {
		t.Fatalf("no server span for the message among %d spans: %v", len(exp.spans), byName)
	}
	proxy, ok := byName["proxy traced"]
	if !ok || proxy.Parent.SpanID() != server.SpanContext.SpanID() {
		t.Fatalf("proxy span %v not under the message span", proxy)
	}
	call, ok := byName["traced backend[0]"]
	if !ok || call.SpanKind != trace.SpanKindClient || call.Parent.SpanID() != proxy.SpanContext.SpanID() {
		t.Fatalf("backend span %v not under the proxy span (spans %v)", call, byName)
	}
}
