package config

import (
	"os"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func TestOpenTelemetryCompiles(t *testing.T) {
	t.Parallel()
	content, err := os.ReadFile("testdata/otel.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compile("otel.json", content)
	if err != nil {
		t.Fatal(err)
	}
	want := &gatewayv1.OpenTelemetry{
		ServiceName:     "edge-eu",
		ServiceVersion:  "1.4.2",
		DeployEnv:       "staging",
		TraceSampleRate: 0.25,
		SkipPaths:       []string{"/__health", "/internal/ping"},
		Otlp: []*gatewayv1.OTLPExporter{
			{Name: "jaeger", Host: "127.0.0.1", Port: 4317},
			{Name: "collector", Host: "127.0.0.1", Port: 4318, UseHttp: true},
		},
		Global: &gatewayv1.TraceLayer{
			Attributes:    []*gatewayv1.KeyValue{{Key: "region", Value: "eu"}},
			ReportHeaders: true,
			SkipHeaders:   []string{"Authorization"},
		},
		Proxy: &gatewayv1.TraceLayer{
			Attributes:    []*gatewayv1.KeyValue{{Key: "layer", Value: "proxy"}},
			ReportHeaders: true,
			SkipHeaders:   []string{"Cookie"},
		},
		Backend: &gatewayv1.TraceLayer{
			Attributes:    []*gatewayv1.KeyValue{{Key: "layer", Value: "backend"}},
			ReportHeaders: true,
			SkipHeaders:   []string{"X-Secret"},
		},
		MetricReportingPeriodS: 10,
		// jaeger and metrics-only have disable_metrics.
		OtlpMetrics: []*gatewayv1.OTLPExporter{
			{Name: "collector", Host: "127.0.0.1", Port: 4318, UseHttp: true, CustomMetricReportingPeriodS: 5},
		},
		Prometheus: []*gatewayv1.PrometheusExporter{
			{Name: "prom", Host: "127.0.0.1", Port: 9464, ProcessMetrics: true, GoMetrics: true},
		},
		SemanticConvention: "1.26",
		GlobalMetrics:      &gatewayv1.MetricsLayer{Attributes: []*gatewayv1.KeyValue{{Key: "region", Value: "eu"}}},
		ProxyMetrics:       &gatewayv1.MetricsLayer{Attributes: []*gatewayv1.KeyValue{{Key: "layer", Value: "proxy"}}},
		BackendMetrics: &gatewayv1.MetricsLayer{RoundTrip: true, ReadPayload: true,
			Attributes: []*gatewayv1.KeyValue{{Key: "layer", Value: "backend"}}},
	}
	if diff := cmp.Diff(want, c.Snapshot.GetService().GetOpentelemetry(), protocmp.Transform()); diff != "" {
		t.Errorf("opentelemetry (-want +got):\n%s", diff)
	}
	eps := c.Snapshot.GetEndpoints()
	// The first endpoint inherits the service's layers; the second
	// overrides its proxy layer, and its backend its backend layer.
	if diff := cmp.Diff(want.Proxy, eps[0].GetTrace(), protocmp.Transform()); diff != "" {
		t.Errorf("endpoints[0].trace (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want.Backend, eps[0].GetBackends()[1].GetTrace(), protocmp.Transform()); diff != "" {
		t.Errorf("endpoints[0].backends[1].trace (-want +got):\n%s", diff)
	}
	wantQuiet := &gatewayv1.TraceLayer{Disabled: true, Attributes: []*gatewayv1.KeyValue{{Key: "team", Value: "quiet"}}}
	if diff := cmp.Diff(wantQuiet, eps[1].GetTrace(), protocmp.Transform()); diff != "" {
		t.Errorf("endpoints[1].trace (-want +got):\n%s", diff)
	}
	wantC := &gatewayv1.TraceLayer{Disabled: true, ReportHeaders: true, SkipHeaders: []string{"X-B"},
		Attributes: []*gatewayv1.KeyValue{{Key: "team", Value: "c"}}}
	if diff := cmp.Diff(wantC, eps[1].GetBackends()[0].GetTrace(), protocmp.Transform()); diff != "" {
		t.Errorf("endpoints[1].backends[0].trace (-want +got):\n%s", diff)
	}
	// The metrics parts resolve as the tracing parts do.
	for _, tc := range []struct {
		name      string
		got, want *gatewayv1.MetricsLayer
	}{
		{"endpoints[0].metrics", eps[0].GetMetrics(), want.ProxyMetrics},
		{"endpoints[0].backends[1].metrics", eps[0].GetBackends()[1].GetMetrics(), want.BackendMetrics},
		{"endpoints[1].metrics", eps[1].GetMetrics(), &gatewayv1.MetricsLayer{Disabled: true}},
		{"endpoints[1].backends[0].metrics", eps[1].GetBackends()[0].GetMetrics(), &gatewayv1.MetricsLayer{
			Disabled: true, RoundTrip: true, ReadPayload: true, Attributes: []*gatewayv1.KeyValue{{Key: "team", Value: "c"}}}},
	} {
		if diff := cmp.Diff(tc.want, tc.got, protocmp.Transform()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	for _, f := range []string{"telemetry.opentelemetry", "telemetry.opentelemetry.metrics"} {
		if !slices.Contains(c.Snapshot.GetFeatures(), f) {
			t.Errorf("features %v lack %s", c.Snapshot.GetFeatures(), f)
		}
	}

	// Only what the edge cannot record warns.
	warned := map[string]bool{}
	for _, w := range c.Warnings {
		warned[w.GetPath()] = true
	}
	ns := `extra_config["telemetry/opentelemetry"]`
	for _, p := range []string{
		ns + ".layers.global.semantic_convention",
		ns + ".layers.backend.metrics.read_payload",
		ns + ".layers.backend.metrics.detailed_connection",
		ns + ".layers.backend.traces.detailed_connection",
		`endpoints[1].extra_config["telemetry/opentelemetry"].backend.traces.disable_stage`,
		`endpoints[1].backend[0].extra_config["telemetry/opentelemetry"].proxy.disable_traces`,
	} {
		if !warned[p] {
			t.Errorf("no warning at %s", p)
		}
	}
	for _, p := range []string{
		ns + ".trace_sample_rate", ns + ".exporters.otlp[0].host", ns + ".layers.global.disable_traces",
		ns + ".metric_reporting_period", ns + ".exporters.otlp[0].disable_metrics", ns + ".exporters.prometheus[0].port",
		ns + ".layers.global.metrics_static_attributes[0].key", ns + ".layers.backend.metrics.round_trip",
	} {
		if warned[p] {
			t.Errorf("unexpected warning at %s", p)
		}
	}
}

func TestOpenTelemetryDefaults(t *testing.T) {
	t.Parallel()
	c, err := Compile("d.json", []byte(conf(`"name": "shop", "extra_config": {"telemetry/opentelemetry": {}}`, ep("/a", ""))))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Snapshot.GetService().GetOpentelemetry()
	if o.GetServiceName() != "shop" || o.GetTraceSampleRate() != 1 {
		t.Errorf("service_name %q, sample rate %v: want shop and 1", o.GetServiceName(), o.GetTraceSampleRate())
	}
	if diff := cmp.Diff(DefaultOTelSkipPaths, o.GetSkipPaths()); diff != "" {
		t.Errorf("skip_paths (-want +got):\n%s", diff)
	}
	c, err = Compile("d.json", []byte(conf(`"extra_config": {"telemetry/opentelemetry": {}}`, ep("/a", ""))))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Snapshot.GetService().GetOpentelemetry().GetServiceName(); got != "KrakenD" {
		t.Errorf("unnamed service traced as %q, want KrakenD", got)
	}
}

func TestOpenTelemetryViolations(t *testing.T) {
	t.Parallel()
	ns := `extra_config["telemetry/opentelemetry"]`
	tests := []struct {
		name string
		doc  string
		want []pair
	}{
		{
			name: "every problem at once",
			doc: conf(`"extra_config": {"telemetry/opentelemetry": {
				"trace_sample_rate": 1.5,
				"exporters": {
					"otlp": [{"name": "a", "host": "127.0.0.1", "port": 70000}, {"name": "a", "port": 4317}],
					"prometheus": [{"name": "a", "port": 9090}, {"name": "p2"}, {"name": "p3", "port": -1}]
				},
				"metric_reporting_period": -1,
				"layers": {"global": {"traces_static_attributes": [{"key": "k", "value": "1"}, {"key": "k", "value": "2"}, {"value": "3"}]},
				           "proxy": {"disable_tracez": true}}
			}}`, ep("/a", `"extra_config": {"telemetry/opentelemetry": {"proxy": {"traces_static_attributes": [{"value": "x"}]}}}`)),
			want: []pair{
				{`endpoints[0].extra_config["telemetry/opentelemetry"].proxy.traces_static_attributes[0].key`, KindRequired},
				{ns + ".exporters.otlp[0].port", KindInvalid},
				{ns + ".exporters.otlp[1].host", KindRequired},
				{ns + ".exporters.otlp[1].name", KindDuplicate},
				{ns + ".exporters.prometheus[0].name", KindDuplicate},
				{ns + ".exporters.prometheus[1].port", KindDuplicate},
				{ns + ".exporters.prometheus[2].port", KindInvalid},
				{ns + ".layers.global.traces_static_attributes[1].key", KindDuplicate},
				{ns + ".layers.global.traces_static_attributes[2].key", KindRequired},
				{ns + ".layers.proxy.disable_tracez", KindUnsupported},
				{ns + ".metric_reporting_period", KindInvalid},
				{ns + ".trace_sample_rate", KindInvalid},
			},
		},
		{
			name: "global layer only at the service level",
			doc:  conf(`"extra_config": {"telemetry/opentelemetry": {}}`, ep("/a", `"extra_config": {"telemetry/opentelemetry": {"global": {}}}`)),
			want: []pair{{`endpoints[0].extra_config["telemetry/opentelemetry"].global`, KindUnsupported}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := pairsOf(violationsOf(t, "c.json", tc.doc))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOpenTelemetryOverrideWithoutServiceWarns(t *testing.T) {
	t.Parallel()
	c, err := Compile("o.json", []byte(conf("", ep("/a", `"extra_config": {"telemetry/opentelemetry": {"proxy": {"disable_traces": true}}}`))))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range c.Warnings {
		if w.GetPath() == `endpoints[0].extra_config["telemetry/opentelemetry"]` && w.GetKind() == KindNoEffect {
			return
		}
	}
	t.Errorf("warnings %v: want no_effect at the endpoint's telemetry/opentelemetry", c.Warnings)
}
