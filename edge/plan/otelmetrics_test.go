package plan_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/apigw/gateway/edge/plan"
	"github.com/apigw/gateway/edge/tracing"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// meteredSnapshot is tracedSnapshot with OpenTelemetry metrics on every
// layer, a static attribute on each. With three backends the second is
// dead (at dead, where nothing listens).
func meteredSnapshot(addr, dead string, backends ...string) *gatewayv1.Snapshot {
	bs := make([]*gatewayv1.Backend, 0, len(backends))
	for i, path := range backends {
		a := addr
		if i == 1 && len(backends) > 2 {
			a = dead
		}
		bs = append(bs, backend(a, path))
	}
	ep := endpoint("GET", "/agg", bs...)
	ep.Trace = &gatewayv1.TraceLayer{}
	ep.Metrics = &gatewayv1.MetricsLayer{Attributes: []*gatewayv1.KeyValue{{Key: "layer", Value: "proxy"}}}
	for _, b := range ep.Backends {
		b.Trace = &gatewayv1.TraceLayer{}
		b.Metrics = &gatewayv1.MetricsLayer{RoundTrip: true, ReadPayload: true, Attributes: []*gatewayv1.KeyValue{{Key: "layer", Value: "backend"}}}
	}
	snap := snapshot(ep)
	snap.Service.Opentelemetry = &gatewayv1.OpenTelemetry{
		ServiceName: "edge-test", TraceSampleRate: 0, Global: &gatewayv1.TraceLayer{},
		GlobalMetrics: &gatewayv1.MetricsLayer{Attributes: []*gatewayv1.KeyValue{{Key: "region", Value: "eu"}}},
	}
	snap.Features = []string{"telemetry.opentelemetry", "telemetry.opentelemetry.metrics"}
	return snap
}

// points collects the reader's data points by instrument name.
type points map[string][]point

type point struct {
	attrs attribute.Set
	count uint64 // histograms
	sum   float64
}

func collect(t *testing.T, r sdkmetric.Reader) points {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := points{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{p.Attributes, p.Count, p.Sum})
				}
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{p.Attributes, p.Count, float64(p.Sum)})
				}
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{p.Attributes, 0, float64(p.Value)})
				}
			}
		}
	}
	return out
}

// find returns the points of name whose attributes include want.
func (ps points) find(name string, want ...attribute.KeyValue) []point {
	var out []point
next:
	for _, p := range ps[name] {
		for _, kv := range want {
			if v, ok := p.attrs.Value(kv.Key); !ok || v != kv.Value {
				continue next
			}
		}
		out = append(out, p)
	}
	return out
}

// total sums the counts (histograms) or values (counters) of points.
func total(ps []point) float64 {
	var n float64
	for _, p := range ps {
		if p.count > 0 {
			n += float64(p.count)
		} else {
			n += p.sum
		}
	}
	return n
}

// TestOTelMetricsRecorded: an aggregate with one backend down moves every
// layer's instruments, with krakend-otel's attributes: the server
// duration and size by route and status, the proxy stage (incomplete, an
// error), the backend stage per backend, and the HTTP client's started,
// failed, duration and read-size instruments.
func TestOTelMetricsRecorded(t *testing.T) {
	hb := startHeaderBackend(t)
	reader := sdkmetric.NewManualReader()
	reg := tracing.NewRegistry(tracing.Options{MetricReader: reader})
	t.Cleanup(reg.Close)
	p := mustBuild(t, meteredSnapshot(hb.addr, deadAddr(t), "/a", "/b", "/c"), plan.Deps{Tracers: reg})
	t.Cleanup(p.Release)
	for range 3 {
		ctx := newCtx("GET", "/agg", "")
		if st := serveOnce(p.Serve, ctx); st != 200 {
			t.Fatalf("status %d: %s", st, bodyOf(ctx))
		}
	}
	ps := collect(t, reader)
	str, num, flag := attribute.String, attribute.Int, attribute.Bool
	for _, c := range []struct {
		name  string
		attrs []attribute.KeyValue
		want  float64
	}{
		{"http.server.duration", []attribute.KeyValue{str("http.route", "/agg"), num("http.response.status_code", 200),
			str("http.request.method", "GET"), str("url.scheme", "http"), str("region", "eu")}, 3},
		{"http.server.response.size", []attribute.KeyValue{str("http.route", "/agg")}, 3},
		{"krakend.proxy.duration", []attribute.KeyValue{str("http.route", "/agg"), flag("complete", false),
			flag("error", true), flag("canceled", false), str("layer", "proxy")}, 3},
		{"krakend.backend.duration", []attribute.KeyValue{str("http.route", "/a"), str("krakend.endpoint.route", "/agg"),
			flag("error", false), flag("complete", true), str("layer", "backend")}, 3},
		{"krakend.backend.duration", []attribute.KeyValue{str("http.route", "/b"), flag("error", true)}, 3},
		{"http.client.request.started.count", nil, 9},
		{"http.client.request.started.count", []attribute.KeyValue{str("clientname", "/c"), num("http.response.status_code", 200),
			str("server.address", "127.0.0.1"), str("http.request.method", "GET")}, 3},
		{"http.client.request.failed.count", []attribute.KeyValue{str("clientname", "/b"), num("http.response.status_code", 0)}, 3},
		{"http.client.request.failed.count", []attribute.KeyValue{str("clientname", "/a")}, 0},
		{"http.client.duration", []attribute.KeyValue{str("clientname", "/a")}, 3},
		{"http.client.response.size", []attribute.KeyValue{str("clientname", "/a")}, 3},
		{"http.client.response.read.size", []attribute.KeyValue{str("clientname", "/a")}, 3 * float64(len(`{"a":1}`))},
	} {
		if got := total(ps.find(c.name, c.attrs...)); got != c.want {
			t.Errorf("%s%v = %v, want %v (points %v)", c.name, c.attrs, got, c.want, ps[c.name])
		}
	}
}

// TestOTelMetricsLayersOff: disabled layers record nothing of theirs.
func TestOTelMetricsLayersOff(t *testing.T) {
	hb := startHeaderBackend(t)
	reader := sdkmetric.NewManualReader()
	reg := tracing.NewRegistry(tracing.Options{MetricReader: reader})
	t.Cleanup(reg.Close)
	snap := meteredSnapshot(hb.addr, "", "/a")
	snap.Service.Opentelemetry.GlobalMetrics.Disabled = true
	snap.Endpoints[0].Metrics.Disabled = true
	snap.Endpoints[0].Backends[0].Metrics = &gatewayv1.MetricsLayer{Disabled: true, RoundTrip: true}
	p := mustBuild(t, snap, plan.Deps{Tracers: reg})
	t.Cleanup(p.Release)
	if st := serveOnce(p.Serve, newCtx("GET", "/agg", "")); st != 200 {
		t.Fatalf("status %d", st)
	}
	ps := collect(t, reader)
	for _, name := range []string{"http.server.duration", "krakend.proxy.duration", "krakend.backend.duration", "http.client.response.read.size"} {
		if n := total(ps[name]); n != 0 {
			t.Errorf("%s recorded %v with its layer off", name, n)
		}
	}
	if n := total(ps["http.client.request.started.count"]); n != 1 {
		t.Errorf("round_trip on: started.count %v, want 1", n)
	}
}

// TestOTelMetricsSemConv: semantic_convention 1.27 selects the
// semantic-convention instrument names.
func TestOTelMetricsSemConv(t *testing.T) {
	hb := startHeaderBackend(t)
	reader := sdkmetric.NewManualReader()
	reg := tracing.NewRegistry(tracing.Options{MetricReader: reader})
	t.Cleanup(reg.Close)
	snap := meteredSnapshot(hb.addr, "", "/a")
	snap.Service.Opentelemetry.SemanticConvention = "1.27"
	p := mustBuild(t, snap, plan.Deps{Tracers: reg})
	t.Cleanup(p.Release)
	if st := serveOnce(p.Serve, newCtx("GET", "/agg", "")); st != 200 {
		t.Fatalf("status %d", st)
	}
	ps := collect(t, reader)
	for _, name := range []string{"http.server.request.duration", "http.server.response.body.size", "http.client.request.duration",
		"http.client.request.body.size", "http.client.response.body.size"} {
		if n := total(ps[name]); n != 1 {
			t.Errorf("%s = %v, want 1", name, n)
		}
	}
	for _, name := range []string{"http.server.duration", "http.client.duration", "http.client.request.started.count"} {
		if _, ok := ps[name]; ok {
			t.Errorf("%s recorded under semantic_convention 1.27", name)
		}
	}
}
