package config

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func warningsOf(t *testing.T, doc string) []pair {
	t.Helper()
	c, err := Compile("k.json", []byte(doc))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return pairsOf(c.Warnings)
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		want []pair
	}{
		{"none", conf("", ep("/a", "")), nil},
		{"backend timeout and concurrent_calls", conf("", `{"endpoint": "/a", "timeout": "2s", "backend": [{"url_pattern": "/x", "timeout": "9s", "concurrent_calls": 3}]}`),
			[]pair{{"endpoints[0].backend[0].concurrent_calls", KindOverridden}, {"endpoints[0].backend[0].timeout", KindOverridden}}},
		{"url_pattern without slash", conf("", `{"endpoint": "/a/{id}", "backend": [{"url_pattern": "x/{id}"}]}`),
			[]pair{{"endpoints[0].backend[0].url_pattern", KindNormalized}}},
		{"no-op endpoint, json backend", conf("", `{"endpoint": "/a", "output_encoding": "no-op", "backend": [{"url_pattern": "/x", "encoding": "json"}]}`),
			[]pair{{"endpoints[0].backend[0].encoding", KindNormalized}}},
		{"no-op endpoint, no-op backend", conf("", `{"endpoint": "/a", "output_encoding": "no-op", "backend": [{"url_pattern": "/x", "encoding": "no-op"}]}`), nil},
		{"tls disabled", conf(`"tls": {"disabled": true}`, ep("/a", "")), nil},
		{"tls disabled with keys", conf(`"tls": {"disabled": true, "public_key": "/c.pem", "private_key": "/k.pem", "min_version": "TLS13"}`, ep("/a", "")),
			[]pair{{"tls.min_version", KindNoEffect}, {"tls.private_key", KindNoEffect}, {"tls.public_key", KindNoEffect}}},
		{"empty async_agent", conf(`"async_agent": []`, ep("/a", "")), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, warningsOf(t, tc.doc)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWarningsNormalise(t *testing.T) {
	t.Parallel()
	c, err := Compile("k.json", []byte(conf("", `{"endpoint": "/a/{id}", "output_encoding": "no-op", "backend": [{"url_pattern": "x/{id}", "encoding": "json"}]}`)))
	if err != nil {
		t.Fatal(err)
	}
	b := c.Snapshot.GetEndpoints()[0].GetBackends()[0]
	if b.GetUrlPattern() != "/x/{id}" || b.GetEncoding() != "no-op" {
		t.Errorf("backend url_pattern %q encoding %q, want /x/{id} no-op", b.GetUrlPattern(), b.GetEncoding())
	}
	// The warned file and the file written as KrakenD reads it are one snapshot.
	want := compileDoc(t, conf("", `{"endpoint": "/a/{id}", "output_encoding": "no-op", "backend": [{"url_pattern": "/x/{id}"}]}`))
	if !cmp.Equal(mustMarshal(t, want), c.Payload) {
		t.Error("normalised snapshot differs from the one written without warnings")
	}
}

func mustMarshal(t *testing.T, s *gatewayv1.Snapshot) []byte {
	t.Helper()
	b, _, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStrictTurnsWarningsIntoViolations(t *testing.T) {
	t.Parallel()
	doc := []byte(conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "x"}]}`))
	if _, err := CompileWith("k.json", doc, Options{}); err != nil {
		t.Fatalf("not strict: %v", err)
	}
	_, err := CompileWith("k.json", doc, Options{Strict: true})
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("strict: %v, want a ValidationError", err)
	}
	if diff := cmp.Diff([]pair{{"endpoints[0].backend[0].url_pattern", KindNormalized}}, pairsOf(ve.Violations)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Without strict, warnings come back with violations too.
	_, err = CompileWith("k.json", []byte(conf(`"port": -1`, `{"endpoint": "/a", "backend": [{"url_pattern": "x"}]}`)), Options{})
	if !errors.As(err, &ve) || len(ve.Warnings) != 1 || len(ve.Violations) != 1 {
		t.Errorf("violations and warnings: %v %v", err, ve)
	}
}

// TestClientKeysApplied: upstream client keys issue 16 found inert now
// reach the snapshot (the edge applies them: edge/proxy's dial and
// response-timeout tests); response_header_timeout is applied with a
// warning saying how it differs from KrakenD's.
func TestClientKeysApplied(t *testing.T) {
	t.Parallel()
	base, err := Compile("k.json", []byte(conf("", ep("/a", ""))))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kv       string
		warnings []pair
	}{
		{`"dialer_keep_alive": "10s"`, nil},
		{`"dialer_fallback_delay": "1s"`, nil},
		{`"response_header_timeout": "1s"`, []pair{{"response_header_timeout", KindApproximated}}},
	} {
		c, err := Compile("k.json", []byte(conf(tc.kv, ep("/a", ""))))
		if err != nil {
			t.Fatal(err)
		}
		if c.SHA256 == base.SHA256 {
			t.Errorf("%s: the snapshot did not change", tc.kv)
		}
		if diff := cmp.Diff(tc.warnings, pairsOf(c.Warnings)); diff != "" {
			t.Errorf("%s: warnings (-want +got):\n%s", tc.kv, diff)
		}
	}
}

// TestInertKeysWarn lists every key issue 16 found accepted and ignored
// that the edge still does not apply: each compiles with a no_effect
// warning at its path.
func TestInertKeysWarn(t *testing.T) {
	t.Parallel()
	svc := func(kv string) string { return conf(kv, ep("/a", "")) }
	ns := func(name, kv string) string { return svc(`"extra_config": {"` + name + `": {` + kv + `}}`) }
	tests := []struct{ doc, path string }{
		{svc(`"max_idle_connections": 10`), "max_idle_connections"},
		{svc(`"expect_continue_timeout": "1s"`), "expect_continue_timeout"},
		{svc(`"dns_cache_ttl": "30s"`), "dns_cache_ttl"},
		{svc(`"sequential_start": true`), "sequential_start"},
		{ns("auth/validator", `"shared_cache_duration": 60`), `extra_config["auth/validator"].shared_cache_duration`},
		{ns("security/cors", `"allow_origins": ["*"], "debug": true`), `extra_config["security/cors"].debug`},
		{conf("", ep("/a", `"extra_config": {"proxy": {"force_sandboxed_request": true}}`)), `endpoints[0].extra_config["proxy"].force_sandboxed_request`},
		{conf("", ep("/a", `"extra_config": {"proxy": {"sequential": true, "sequential_propagated_params": ["resp0_id"]}}`)), `endpoints[0].extra_config["proxy"].sequential_propagated_params`},
		{conf("", ep("/a", `"extra_config": {"qos/ratelimit/router": {"max_rate": 10, "cleanup_threads": 2}}`)), `endpoints[0].extra_config["qos/ratelimit/router"].cleanup_threads`},
	}
	for _, tc := range tests {
		found := false
		for _, w := range warningsOf(t, tc.doc) {
			found = found || (w == pair{tc.path, KindNoEffect})
		}
		if !found {
			t.Errorf("%s: no no_effect warning; got %v", tc.path, warningsOf(t, tc.doc))
		}
	}
	// Keys the observability work made effective: no warning any more.
	for _, doc := range []string{
		ns("router", `"disable_access_log": true`),
		ns("router", `"logger_skip_paths": ["/x"]`),
	} {
		if got := warningsOf(t, doc); len(got) != 0 {
			t.Errorf("%s: warnings %v, want none", doc, got)
		}
	}
	rev := ns("auth/revoker", `"N": 100, "P": 0.001, "TTL": 60, "port": 1234, "token_keys": ["jti"]`)
	if got := warningsOf(t, rev); !cmp.Equal(got, []pair{{`extra_config["auth/revoker"].port`, KindNoEffect}}) {
		t.Errorf("revoker port: %v", got)
	}
}
