package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"github.com/apigw/gateway/proto/feature"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	k8syaml "sigs.k8s.io/yaml"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// golden compares got with testdata/name, rewriting it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", file, diff)
	}
}

// snapshotJSON renders a snapshot as stable, indented JSON (protojson
// output is deliberately unstable in its whitespace).
func snapshotJSON(t *testing.T, s *gatewayv1.Snapshot) []byte {
	t.Helper()
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		t.Fatal(err)
	}
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func mustCompileFile(t *testing.T, file string) *Compiled {
	t.Helper()
	c, err := CompileFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCompileGolden(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"krakend", "krakend-security"} {
		c := mustCompileFile(t, "testdata/"+name+".json")
		golden(t, name+".golden", snapshotJSON(t, c.Snapshot))
	}
}

func TestViolationsGolden(t *testing.T) {
	t.Parallel()
	_, err := CompileFile("testdata/bad.json")
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("CompileFile(bad.json) = %v, want *ValidationError", err)
	}
	var b strings.Builder
	for _, v := range ve.Violations {
		b.WriteString(FormatViolation(v) + "\n")
	}
	golden(t, "bad.golden", []byte(b.String()))
}

func TestCompileIsDeterministic(t *testing.T) {
	t.Parallel()
	content, err := os.ReadFile("testdata/krakend.json")
	if err != nil {
		t.Fatal(err)
	}
	first, err := Compile("krakend.json", content)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		again, err := Compile("krakend.json", content)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first.Payload, again.Payload) || first.SHA256 != again.SHA256 {
			t.Fatalf("compile %d produced different bytes", i)
		}
	}
	// The payload round-trips: what an edge unmarshals re-marshals to the
	// same bytes and hash.
	var decoded gatewayv1.Snapshot
	if err := proto.Unmarshal(first.Payload, &decoded); err != nil {
		t.Fatal(err)
	}
	payload, sum, err := Marshal(&decoded)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(payload, first.Payload) || sum != first.SHA256 {
		t.Error("re-marshalled snapshot differs from the compiled payload")
	}
	if len(first.SHA256) != 64 || strings.ToLower(first.SHA256) != first.SHA256 {
		t.Errorf("SHA256 %q is not lowercase hex", first.SHA256)
	}
}

// TestYAMLAndJSONCompileIdentically checks that the same configuration in
// JSON and in YAML has the same sha256: the generated YAML of the example,
// and a hand-written YAML file with comments, anchors and a different key
// order.
func TestYAMLAndJSONCompileIdentically(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"krakend", "krakend-security"} {
		jsonDoc, err := os.ReadFile("testdata/" + name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		yamlDoc, err := k8syaml.JSONToYAML(jsonDoc)
		if err != nil {
			t.Fatal(err)
		}
		fromJSON, err := Compile(name+".json", jsonDoc)
		if err != nil {
			t.Fatal(err)
		}
		fromYAML, err := Compile(name+".yaml", yamlDoc)
		if err != nil {
			t.Fatal(err)
		}
		if fromJSON.SHA256 != fromYAML.SHA256 {
			t.Errorf("%s: sha256 differs: json %s, yaml %s\n%s", name, fromJSON.SHA256, fromYAML.SHA256,
				cmp.Diff(fromJSON.Snapshot, fromYAML.Snapshot, protocmp.Transform()))
		}
	}

	small := mustCompileFile(t, "testdata/small.json")
	smallYAML := mustCompileFile(t, "testdata/small.yaml")
	if small.SHA256 != smallYAML.SHA256 {
		t.Errorf("small.json and small.yaml differ:\n%s", cmp.Diff(small.Snapshot, smallYAML.Snapshot, protocmp.Transform()))
	}
}

// TestCompileDefaults checks the resolved defaults of a minimal config.
func TestCompileDefaults(t *testing.T) {
	t.Parallel()
	c, err := Compile("k.json", []byte(`{
		"version": 3,
		"host": ["backend:8000/"],
		"endpoints": [
			{"endpoint": "/a/{id}", "input_headers": ["x-trace-id", "X-TRACE-ID", "*"],
			 "backend": [{"url_pattern": "/b/{id}"},
			             {"url_pattern": "/s", "method": "post", "extra_config": {"proxy": {"shadow": true}}}]},
			{"endpoint": "/raw", "method": "put", "output_encoding": "no-op", "timeout": "1500us",
			 "backend": [{"url_pattern": "/raw"}]}
		]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &gatewayv1.Snapshot{
		SchemaVersion: SchemaVersion,
		Service: &gatewayv1.Service{
			Port:         DefaultPort,
			Router:       &gatewayv1.Router{HealthPath: "/__health"},
			Logging:      &gatewayv1.Logging{Level: "info", Stdout: true, Format: "default", SyslogFacility: "local3"},
			Metrics:      &gatewayv1.Metrics{},
			HttpServer:   &gatewayv1.HTTPServer{MaxHeaderBytes: 64 << 10},
			HttpClient:   &gatewayv1.HTTPClient{MaxIdleConnectionsPerHost: 250},
			MaxBodyBytes: 10 << 20,
		},
		Endpoints: []*gatewayv1.Endpoint{
			{
				Name: "GET /a/{id}", Path: "/a/{id}", Method: "GET",
				TimeoutMs: 2000, OutputEncoding: "json", ConcurrentCalls: 1,
				InputHeaders: []string{"*"},
				Backends: []*gatewayv1.Backend{
					{Name: "GET /a/{id} backend[0]", Hosts: []string{"http://backend:8000"}, UrlPattern: "/b/{id}", Method: "GET", Encoding: "json"},
					{Name: "GET /a/{id} backend[1]", Hosts: []string{"http://backend:8000"}, UrlPattern: "/s", Method: "POST", Encoding: "json",
						Shadow: true, ShadowTimeoutMs: 2000},
				},
			},
			{
				Name: "PUT /raw", Path: "/raw", Method: "PUT",
				TimeoutMs: 2, TimeoutNs: 1_500_000, OutputEncoding: "no-op", ConcurrentCalls: 1,
				InputHeaders: []string{"Content-Type"},
				Backends: []*gatewayv1.Backend{
					{Name: "PUT /raw backend[0]", Hosts: []string{"http://backend:8000"}, UrlPattern: "/raw", Method: "PUT", Encoding: "no-op"},
				},
			},
		},
		Features: []string{feature.DurationSubMs, feature.ProxyShadow},
	}
	if diff := cmp.Diff(want, c.Snapshot, protocmp.Transform()); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}
}

func TestCompileFeatures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		endpoints []string
		want      []string
	}{
		{"none", []string{ep("/a", "")}, nil},
		{"xml output", []string{ep("/a", `"output_encoding": "xml"`)}, []string{feature.EncodingXML}},
		{"xml backend", []string{`{"endpoint": "/a", "backend": [{"url_pattern": "/x", "encoding": "xml"}]}`}, []string{feature.EncodingXML}},
		{"negotiate", []string{ep("/a", `"output_encoding": "negotiate"`)}, []string{feature.OutputYAML}},
		{"yaml", []string{ep("/a", `"output_encoding": "yaml"`)}, []string{feature.OutputYAML}},
		{"catch-all", []string{ep("/a/*", "")}, []string{feature.RouteCatchAll}},
		{"sequential", []string{ep("/a", `"extra_config": {"proxy": {"sequential": true}}`)}, []string{feature.ProxySequential}},
		{"static", []string{ep("/a", `"extra_config": {"proxy": {"static": {"data": {"a": 1}}}}`)}, []string{feature.ProxyStatic}},
		{"backend flatmap", []string{`{"endpoint": "/a", "backend": [{"url_pattern": "/x",
			"extra_config": {"proxy": {"flatmap_filter": [{"type": "del", "args": ["a"]}]}}}]}`}, []string{feature.ProxyFlatmap}},
		{"endpoint flatmap ignored with one backend",
			[]string{ep("/a", `"extra_config": {"proxy": {"flatmap_filter": [{"type": "del", "args": ["a"]}]}}`)}, nil},
		{"endpoint flatmap with two backends", []string{`{"endpoint": "/a", "backend": [{"url_pattern": "/x"}, {"url_pattern": "/y"}],
			"extra_config": {"proxy": {"flatmap_filter": [{"type": "del", "args": ["a"]}]}}}`}, []string{feature.ProxyFlatmap}},
		{"sorted and deduplicated", []string{ep("/b/*", `"output_encoding": "xml"`), ep("/a/*", `"output_encoding": "xml"`)},
			[]string{feature.EncodingXML, feature.RouteCatchAll}},
		{"jwt", []string{jwtEP("/a", "")}, []string{feature.AuthJWT}},
		{"router rate limit", []string{limitEP("/a", `"max_rate": 1`)}, []string{feature.QoSRateLimit}},
		{"proxy rate limit", []string{backendNS(`"qos/ratelimit/proxy": {"max_rate": 1}`)}, []string{feature.QoSRateLimit}},
		{"circuit breaker", []string{backendNS(`"qos/circuit-breaker": {"interval": 1, "timeout": 1, "max_errors": 1}`)},
			[]string{feature.QoSCircuitBreaker}},
		{"http cache", []string{backendNS(`"qos/http-cache": {}`)}, []string{feature.QoSHTTPCache}},
		{"martian", []string{backendNS(`"modifier/martian": {"header.Modifier": {"name": "X-A"}}`)}, []string{feature.ModifierMartian}},
		{"json schema", []string{ep("/a", `"extra_config": {"validation/json-schema": {}}`)}, []string{feature.ValidationJSONSchema}},
		{"whole-ms timeout", []string{ep("/a", `"timeout": "1500ms"`)}, nil},
		{"sub-ms timeout", []string{ep("/a", `"timeout": "150us"`)}, []string{feature.DurationSubMs}},
		{"sub-ms rate-limit every", []string{limitEP("/a", `"max_rate": 1, "every": "1s100us"`)},
			[]string{feature.DurationSubMs, feature.QoSRateLimit}},
		{"sub-ms proxy rate-limit every", []string{backendNS(`"qos/ratelimit/proxy": {"max_rate": 1, "every": "1.5ms"}`)},
			[]string{feature.DurationSubMs, feature.QoSRateLimit}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Compile("k.json", []byte(conf("", tc.endpoints...)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, c.Snapshot.GetFeatures()); diff != "" {
				t.Errorf("features (-want +got):\n%s", diff)
			}
		})
	}

	// Service-level features, and all of them at once, sorted.
	c := mustCompileFile(t, "testdata/krakend-security.json")
	want := []string{
		feature.AuthJWT, feature.AuthRevoker, feature.ModifierMartian, feature.QoSCircuitBreaker, feature.QoSHTTPCache,
		feature.QoSRateLimit, feature.QoSRateLimitCluster, feature.SecurityCORS, feature.SecurityHTTP, feature.ValidationJSONSchema,
	}
	if diff := cmp.Diff(want, c.Snapshot.GetFeatures()); diff != "" {
		t.Errorf("krakend-security.json features (-want +got):\n%s", diff)
	}
}

func TestCompileFileMissing(t *testing.T) {
	t.Parallel()
	_, err := CompileFile(filepath.Join(t.TempDir(), "nope.json"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CompileFile(missing) = %v, want a wrapped os.ErrNotExist", err)
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		t.Error("a missing file is not a validation error")
	}
}

func TestMarshalNil(t *testing.T) {
	t.Parallel()
	if _, _, err := Marshal(nil); err == nil {
		t.Error("Marshal(nil) succeeded")
	}
}

func TestFormatViolation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v    *gatewayv1.FieldViolation
		want string
	}{
		{&gatewayv1.FieldViolation{Path: "port", Kind: KindInvalid, Detail: "-1: bad"}, "port: invalid: -1: bad"},
		{&gatewayv1.FieldViolation{Kind: KindTooMany, Detail: "and 3 more"}, "too_many: and 3 more"},
		{&gatewayv1.FieldViolation{Path: "a", Kind: KindInvalid, Detail: "two\nlines"}, "a: invalid: two lines"},
	}
	for _, tc := range tests {
		if got := FormatViolation(tc.v); got != tc.want {
			t.Errorf("FormatViolation = %q, want %q", got, tc.want)
		}
	}
	err := &ValidationError{Violations: []*gatewayv1.FieldViolation{tests[0].v}}
	if got := err.Error(); got != "invalid config: 1 violation\nport: invalid: -1: bad" {
		t.Errorf("Error() = %q", got)
	}
}

// TestCompileSubMsDurations: every duration that has a *_ns field keeps
// its exact value when it is not a whole number of milliseconds, next to the
// rounded-up milliseconds an edge without feature.DurationSubMs would read.
func TestCompileSubMsDurations(t *testing.T) {
	t.Parallel()
	root := `"timeout": "150us", "read_timeout": "1500us", "write_timeout": "2500us", "idle_timeout": "3500us",
		"read_header_timeout": "4500us", "idle_connection_timeout": "5500us", "response_header_timeout": "6500us",
		"dialer_timeout": "7500us"`
	c, err := Compile("k.json", []byte(conf(root,
		`{"endpoint": "/a", "backend": [{"url_pattern": "/x"}, {"url_pattern": "/s", "extra_config": {
			"proxy": {"shadow": true, "shadow_timeout": "250us"},
			"qos/ratelimit/proxy": {"max_rate": 1, "every": "10us"}}}],
		 "extra_config": {"qos/ratelimit/router": {"max_rate": 1, "every": "1s20us"}}}`)))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Snapshot
	hs, hc, e := s.GetService().GetHttpServer(), s.GetService().GetHttpClient(), s.GetEndpoints()[0]
	sh := e.GetBackends()[1]
	type pair struct{ Ms, Ns int64 }
	got := map[string]pair{
		"timeout":                 {e.GetTimeoutMs(), e.GetTimeoutNs()},
		"read_timeout":            {hs.GetReadTimeoutMs(), hs.GetReadTimeoutNs()},
		"write_timeout":           {hs.GetWriteTimeoutMs(), hs.GetWriteTimeoutNs()},
		"idle_timeout":            {hs.GetIdleTimeoutMs(), hs.GetIdleTimeoutNs()},
		"read_header_timeout":     {hs.GetReadHeaderTimeoutMs(), hs.GetReadHeaderTimeoutNs()},
		"idle_connection_timeout": {hc.GetIdleConnectionTimeoutMs(), hc.GetIdleConnectionTimeoutNs()},
		"response_header_timeout": {hc.GetResponseHeaderTimeoutMs(), hc.GetResponseHeaderTimeoutNs()},
		"dialer_timeout":          {hc.GetDialerTimeoutMs(), hc.GetDialerTimeoutNs()},
		"shadow_timeout":          {sh.GetShadowTimeoutMs(), sh.GetShadowTimeoutNs()},
		"proxy every":             {sh.GetRateLimit().GetEveryMs(), sh.GetRateLimit().GetEveryNs()},
		"router every":            {e.GetRateLimit().GetEveryMs(), e.GetRateLimit().GetEveryNs()},
	}
	want := map[string]pair{
		"timeout":                 {1, 150_000},
		"read_timeout":            {2, 1_500_000},
		"write_timeout":           {3, 2_500_000},
		"idle_timeout":            {4, 3_500_000},
		"read_header_timeout":     {5, 4_500_000},
		"idle_connection_timeout": {6, 5_500_000},
		"response_header_timeout": {7, 6_500_000},
		"dialer_timeout":          {8, 7_500_000},
		"shadow_timeout":          {1, 250_000},
		"proxy every":             {1, 10_000},
		"router every":            {1001, 1_000_020_000},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("durations (-want +got):\n%s", diff)
	}
	if !slices.Contains(s.GetFeatures(), feature.DurationSubMs) {
		t.Errorf("features %v lack %s", s.GetFeatures(), feature.DurationSubMs)
	}
}
