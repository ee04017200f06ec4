package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

const dnsBackend = `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "sd": "dns", "disable_host_sanitize": true, "host": ["_api._tcp.example.com"]}]}`

func TestSDDNSWarnings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		want []pair
	}{
		{"dns backend", conf("", dnsBackend), nil},
		{"dns_cache_ttl applied", conf(`"dns_cache_ttl": "5s"`, dnsBackend), nil},
		{"dns_cache_ttl below KrakenD's floor", conf(`"dns_cache_ttl": "500ms"`, dnsBackend), []pair{{"dns_cache_ttl", KindNormalized}}},
		{"dns_cache_ttl without a dns backend", conf(`"dns_cache_ttl": "5s"`, ep("/a", "")), []pair{{"dns_cache_ttl", KindNoEffect}}},
		{"hosts after the SRV name", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "sd": "dns", "disable_host_sanitize": true, "host": ["a.example.com", "b.example.com"]}]}`),
			[]pair{{"endpoints[0].backend[0].host[1]", KindNoEffect}}},
		{"sd_scheme on a static backend", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "sd_scheme": "https"}]}`),
			[]pair{{"endpoints[0].backend[0].sd_scheme", KindNoEffect}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, warningsOf(t, tt.doc)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSDDNSSnapshot(t *testing.T) {
	t.Parallel()
	snap := compileDoc(t, conf(`"dns_cache_ttl": "12s"`, `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "sd": "dns", "sd_scheme": "https", "disable_host_sanitize": true, "host": ["_api._tcp.example.com."]}]}`))
	be := snap.GetEndpoints()[0].GetBackends()[0]
	if be.GetSd() != "dns" || be.GetSdScheme() != "https" || !cmp.Equal(be.GetHosts(), []string{"_api._tcp.example.com."}) {
		t.Errorf("backend sd=%q scheme=%q hosts=%v", be.GetSd(), be.GetSdScheme(), be.GetHosts())
	}
	if got := snap.GetService().GetHttpClient().GetDnsCacheTtlMs(); got != 12000 {
		t.Errorf("dns_cache_ttl_ms = %d, want 12000", got)
	}
	var hasFeature bool
	for _, f := range snap.GetFeatures() {
		hasFeature = hasFeature || f == "sd.dns"
	}
	if !hasFeature {
		t.Errorf("features %v lack sd.dns", snap.GetFeatures())
	}
	def := compileDoc(t, conf("", dnsBackend))
	if got := def.GetService().GetHttpClient().GetDnsCacheTtlMs(); got != 30000 {
		t.Errorf("default dns_cache_ttl_ms = %d, want KrakenD's 30000", got)
	}
	if got := def.GetEndpoints()[0].GetBackends()[0].GetSdScheme(); got != "http" {
		t.Errorf("default sd_scheme = %q", got)
	}
	static := compileDoc(t, conf("", ep("/a", "")))
	if proto.Equal(static.GetService().GetHttpClient(), &gatewayv1.HTTPClient{}) || static.GetService().GetHttpClient().GetDnsCacheTtlMs() != 0 {
		t.Error("a config without sd: dns carries a dns_cache_ttl_ms")
	}
}
