package config

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/apigw/gateway/proto/feature"
)

// TestOpenCensus: telemetry/opencensus compiles onto the tracer under
// either namespace spelling (sample_rate a percentage, enabled_layers off
// when omitted from a given object, the Jaeger collector before the agent,
// the OpenCensus Jaeger exporter's default service name), warns where it
// exports nothing, and rejects endpoints no exporter could use.
func TestOpenCensus(t *testing.T) {
	t.Parallel()
	for _, ns := range []string{"telemetry/opencensus", "github_com/devopsfaith/krakend-opencensus"} {
		c, err := Compile("k.json", []byte(conf(`"name": "svc", "extra_config": {"`+ns+`": {"sample_rate": 25,
			"exporters": {"jaeger": {"endpoint": "http://j:14268/api/traces"}, "zipkin": {"collector_url": "http://z:9411/api/v2/spans", "service_name": "zz"}}}}`,
			ep("/a", ""))))
		if err != nil {
			t.Fatal(err)
		}
		o := c.Snapshot.GetService().GetOpentelemetry()
		if !o.GetOpencensus() || o.GetNoServerSpan() || o.GetTraceSampleRate() != 0.25 || o.GetServiceName() != "svc" || len(o.GetSkipPaths()) != 0 {
			t.Errorf("%s: tracer %v", ns, o)
		}
		if j := o.GetJaeger(); len(j) != 1 || j[0].GetCollectorEndpoint() != "http://j:14268/api/traces" || j[0].GetServiceName() != "OpenCensus" {
			t.Errorf("%s: jaeger %v", ns, j)
		}
		if z := o.GetZipkin(); len(z) != 1 || z[0].GetCollectorUrl() != "http://z:9411/api/v2/spans" || z[0].GetServiceName() != "zz" {
			t.Errorf("%s: zipkin %v", ns, z)
		}
		e := c.Snapshot.GetEndpoints()[0]
		if e.GetTrace().GetDisabled() || e.GetBackends()[0].GetTrace().GetDisabled() {
			t.Errorf("%s: layers off by default", ns)
		}
		if !slices.Contains(c.Snapshot.GetFeatures(), feature.TelemetryOpenCensus) {
			t.Errorf("%s: feature not required", ns)
		}
		if len(c.Warnings) != 0 {
			t.Errorf("%s: warnings %v", ns, c.Warnings)
		}
	}

	c, err := Compile("k.json", []byte(conf(`"extra_config": {"telemetry/opencensus": {"sample_rate": 300, "enabled_layers": {"backend": true},
		"exporters": {"jaeger": {"agent_endpoint": "j:6831", "buffer_max_count": 10}}}}`, ep("/a", ""))))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Snapshot.GetService().GetOpentelemetry()
	if o.GetTraceSampleRate() != 1 || !o.GetNoServerSpan() || o.GetJaeger()[0].GetAgentEndpoint() != "j:6831" || o.GetJaeger()[0].GetBufferMaxCount() != 10 {
		t.Errorf("tracer %v", o)
	}
	if e := c.Snapshot.GetEndpoints()[0]; !e.GetTrace().GetDisabled() || e.GetBackends()[0].GetTrace().GetDisabled() {
		t.Errorf("enabled_layers {backend} gave pipe %v backend %v", e.GetTrace(), e.GetBackends()[0].GetTrace())
	}

	warnings := func(doc string) []pair {
		t.Helper()
		c, err := Compile("k.json", []byte(conf(doc, ep("/a", ""))))
		if err != nil {
			t.Fatal(err)
		}
		var out []pair
		for _, w := range c.Warnings {
			out = append(out, pair{w.GetPath(), w.GetKind()})
		}
		return out
	}
	const p = `extra_config["telemetry/opencensus"]`
	for _, tc := range []struct {
		doc  string
		want []pair
	}{
		{`"extra_config": {"telemetry/opencensus": {"exporters": {"logger": {}}}}`,
			[]pair{{p, KindNoEffect}, {p + ".exporters.logger", KindNoEffect}}},
		{`"extra_config": {"telemetry/opencensus": {"exporters": {"jaeger": {"service_name": "x"}, "zipkin": {}}}}`,
			[]pair{{p, KindNoEffect}, {p + ".exporters.jaeger", KindNoEffect}, {p + ".exporters.zipkin", KindNoEffect}}},
		{`"extra_config": {"telemetry/opentelemetry": {}, "telemetry/opencensus": {"exporters": {"jaeger": {"endpoint": "http://j:1/api/traces"}}}}`,
			[]pair{{p, KindNoEffect}}},
	} {
		if diff := cmp.Diff(tc.want, warnings(tc.doc)); diff != "" {
			t.Errorf("%s: warnings (-want +got):\n%s", tc.doc, diff)
		}
	}
	c, err = Compile("k.json", []byte(conf(`"extra_config": {"telemetry/opentelemetry": {}, "telemetry/opencensus": {"exporters": {"jaeger": {"endpoint": "http://j:1/api/traces"}}}}`, ep("/a", ""))))
	if err != nil {
		t.Fatal(err)
	}
	if c.Snapshot.GetService().GetOpentelemetry().GetOpencensus() {
		t.Error("telemetry/opencensus compiled next to telemetry/opentelemetry")
	}

	vs := violationsOf(t, "k.json", conf(`"extra_config": {"telemetry/opencensus": {"sample_rate": 0.5, "exporters": {
		"jaeger": {"endpoint": "j:14268", "agent_endpoint": "j", "buffer_max_count": -1}, "zipkin": {"collector_url": "ftp://z"}}}}`, ep("/a", "")))
	want := []pair{
		{p + ".exporters.jaeger.agent_endpoint", KindInvalid},
		{p + ".exporters.jaeger.buffer_max_count", KindInvalid},
		{p + ".exporters.jaeger.endpoint", KindInvalid},
		{p + ".exporters.zipkin.collector_url", KindInvalid},
		{p + ".sample_rate", KindInvalid},
	}
	if diff := cmp.Diff(want, pairsOf(vs)); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
}

// TestOpenCensusPrometheus: exporters.prometheus compiles with its keys and
// the router and backend switches of enabled_layers, and path_aggregation
// onto each endpoint's and backend's layer: pattern by default (and for
// unknown values, or lastparam without a last parameter, warned),
// lastparam, off, with the pattern the edge makes the label of. Without exporters.prometheus, path_aggregation is warned.
func TestOpenCensusPrometheus(t *testing.T) {
	t.Parallel()
	oc := `"telemetry/opencensus": {"path_aggregation": `
	c, err := Compile("k.json", []byte(conf(`"extra_config": {"telemetry/opencensus": {"enabled_layers": {"router": true},
		"exporters": {"prometheus": {"namespace": "krakend", "port": 9091, "tag_path": true, "tag_statuscode": true}}}}`,
		`{"endpoint": "/Users/{Id}", "backend": [{"url_pattern": "/u/{Id}"}]}`,
		`{"endpoint": "/last/{a}/{b}", "extra_config": {`+oc+`"lastparam"}}, "backend": [{"url_pattern": "/l/{a}/{b}", "extra_config": {`+oc+`"lastparam"}}}]}`,
		`{"endpoint": "/off/{a}", "extra_config": {`+oc+`"off"}}, "backend": [{"url_pattern": "/o/{a}", "extra_config": {`+oc+`"off"}}}]}`,
		`{"endpoint": "/odd/{a}/x", "extra_config": {`+oc+`"lastparam"}}, "backend": [{"url_pattern": "/o", "extra_config": {`+oc+`"other"}}}]}`,
	)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.Snapshot.GetFeatures(), feature.TelemetryOpenCensusPrometheus) {
		t.Error("feature telemetry.opencensus.prometheus not required")
	}
	got := c.Snapshot.GetService().GetOpentelemetry().GetOcPrometheus()
	if got.GetNamespace() != "krakend" || got.GetPort() != 9091 || got.GetTagHost() || !got.GetTagPath() || got.GetTagMethod() ||
		!got.GetTagStatuscode() || !got.GetRouter() || got.GetBackend() {
		t.Errorf("oc_prometheus %v", got)
	}
	type layer struct{ Mode, Path string }
	var layers []layer
	for _, e := range c.Snapshot.GetEndpoints() {
		layers = append(layers, layer{e.GetTrace().GetOcPathMode(), e.GetTrace().GetOcPath()})
		for _, b := range e.GetBackends() {
			layers = append(layers, layer{b.GetTrace().GetOcPathMode(), b.GetTrace().GetOcPath()})
		}
	}
	want := []layer{
		{"pattern", "/Users/{Id}"}, {"pattern", "/u/{Id}"},
		{"lastparam", "/last/{a}/{b}"}, {"lastparam", "/l/{a}/{b}"},
		{"off", ""}, {"off", ""},
		{"pattern", "/odd/{a}/x"}, {"pattern", "/o"},
	}
	if diff := cmp.Diff(want, layers); diff != "" {
		t.Errorf("layers (-want +got):\n%s", diff)
	}
	var warned []pair
	for _, w := range c.Warnings {
		warned = append(warned, pair{w.GetPath(), w.GetKind()})
	}
	const pa = `extra_config["telemetry/opencensus"].path_aggregation`
	wantW := []pair{{"endpoints[3].backend[0]." + pa, KindNoEffect}, {"endpoints[3]." + pa, KindNoEffect}}
	if diff := cmp.Diff(wantW, warned); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}

	c, err = Compile("k.json", []byte(conf(`"extra_config": {"telemetry/opencensus": {"exporters": {"zipkin": {"collector_url": "http://z:9411/api/v2/spans"}}}}`,
		`{"endpoint": "/a/{x}", "extra_config": {`+oc+`"lastparam"}}, "backend": [{"url_pattern": "/x"}]}`)))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || c.Warnings[0].GetPath() != "endpoints[0]."+pa || c.Warnings[0].GetKind() != KindNoEffect {
		t.Errorf("path_aggregation without exporters.prometheus: warnings %v", c.Warnings)
	}
	if c.Snapshot.GetService().GetOpentelemetry().GetOcPrometheus() != nil || c.Snapshot.GetEndpoints()[0].GetTrace().GetOcPathMode() != "" {
		t.Error("oc_prometheus compiled without exporters.prometheus")
	}
	vs := violationsOf(t, "k.json", conf(`"extra_config": {"telemetry/opencensus": {"exporters": {"prometheus": {"port": 70000}}}}`, ep("/a", "")))
	if diff := cmp.Diff([]pair{{`extra_config["telemetry/opencensus"].exporters.prometheus.port`, KindInvalid}}, pairsOf(vs)); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
}
