package config

import (
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// pair is what rule tests compare: never the detail text.
type pair struct{ Path, Kind string }

func pairsOf(vs []*gatewayv1.FieldViolation) []pair {
	var out []pair
	for _, v := range vs {
		out = append(out, pair{v.GetPath(), v.GetKind()})
	}
	return out
}

// violationsOf compiles doc (JSON) and returns its violations; nil if it
// compiled.
func violationsOf(t *testing.T, filename, doc string) []*gatewayv1.FieldViolation {
	t.Helper()
	return violationsOfWith(t, filename, doc, Options{})
}

func violationsOfWith(t *testing.T, filename, doc string, opts Options) []*gatewayv1.FieldViolation {
	t.Helper()
	_, err := CompileWith(filename, []byte(doc), opts)
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Compile: %v, want *ValidationError", err)
	}
	return ve.Violations
}

// conf builds a document: root is extra root members (may be empty), each
// endpoint a JSON object.
func conf(root string, endpoints ...string) string {
	var b strings.Builder
	b.WriteString(`{"version": 3, "host": ["http://backend:8080"]`)
	if root != "" {
		b.WriteString(", " + root)
	}
	b.WriteString(`, "endpoints": [` + strings.Join(endpoints, ",\n") + "]}")
	return b.String()
}

// ep is a minimal valid endpoint with extra members.
func ep(path, extra string) string {
	s := `{"endpoint": "` + path + `", "backend": [{"url_pattern": "/x"}]`
	if extra != "" {
		s += ", " + extra
	}
	return s + "}"
}

// rule is one (document, expected violations) case of a rule table.
type rule struct {
	name string
	doc  string
	want []pair
}

// checkRules compiles each document and compares its (path, kind) pairs.
func checkRules(t *testing.T, tests []rule) {
	t.Helper()
	checkRulesWith(t, Options{}, tests)
}

// checkRulesWith is checkRules compiling with opts.
func checkRulesWith(t *testing.T, opts Options, tests []rule) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vs := violationsOfWith(t, "krakend.json", tc.doc, opts)
			if diff := cmp.Diff(tc.want, pairsOf(vs)); diff != "" {
				t.Errorf("violations (-want +got):\n%s\nall: %v", diff, vs)
			}
		})
	}
}

func TestValidateRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		want []pair
	}{
		{"minimal config is valid", conf("", ep("/a", "")), nil},
		{"no endpoints is valid", `{"version": 3}`, nil},

		// root
		{"version missing", `{"endpoints": []}`, []pair{{"version", KindRequired}}},
		{"version 2", `{"version": 2}`, []pair{{"version", KindUnsupported}}},
		{"port out of range", conf(`"port": 70000`), []pair{{"port", KindInvalid}}},
		{"listen_ip not an IP", conf(`"listen_ip": "localhost"`), []pair{{"listen_ip", KindInvalid}}},
		{"service timeout zero", conf(`"timeout": "0s"`, ep("/a", "")), []pair{{"timeout", KindInvalid}}},
		{"negative server timeout", conf(`"read_timeout": "-1s"`), []pair{{"read_timeout", KindInvalid}}},
		{"negative max_header_bytes", conf(`"max_header_bytes": -1`), []pair{{"max_header_bytes", KindInvalid}}},
		{"service output_encoding", conf(`"output_encoding": "fast-json"`), []pair{{"output_encoding", KindUnsupported}}},
		{"debug_endpoint true", conf(`"debug_endpoint": true, "echo_endpoint": true`), nil},
		{"echo_endpoint false accepted", conf(`"echo_endpoint": false, "sequential_start": true, "dns_cache_ttl": "30s"`), nil},
		{"tls without certificate", conf(`"tls": {}`), []pair{{"tls", KindRequired}}},
		{"tls key without certificate", conf(`"tls": {"private_key": "/k.pem"}`), []pair{{"tls.public_key", KindRequired}}},
		{"tls keys[] half", conf(`"tls": {"keys": [{"public_key": "/c.pem"}]}`), []pair{{"tls.keys[0].private_key", KindRequired}}},
		{"tls versions crossed", conf(`"tls": {"public_key": "/c", "private_key": "/k", "min_version": "TLS13", "max_version": "TLS12"}`), []pair{{"tls.min_version", KindInvalid}}},
		{"tls cipher id too big", conf(`"tls": {"public_key": "/c", "private_key": "/k", "cipher_suites": [70000]}`), []pair{{"tls.cipher_suites[0]", KindInvalid}}},
		{"client_tls cert without key", conf(`"client_tls": {"client_certs": [{"certificate": "/c"}]}`), []pair{{"client_tls.client_certs[0].private_key", KindRequired}}},
		{"client_tls unknown key", conf(`"client_tls": {"public_key": "/c"}`), []pair{{"client_tls.public_key", KindUnsupported}}},

		// endpoint paths
		{"endpoint missing", conf("", `{"backend": [{"url_pattern": "/x"}]}`), []pair{{"endpoints[0].endpoint", KindRequired}}},
		{"endpoint without slash", conf("", ep("a", "")), []pair{{"endpoints[0].endpoint", KindInvalid}}},
		{"reserved debug", conf("", ep("/__debug/x", "")), []pair{{"endpoints[0].endpoint", KindInvalid}}},
		{"reserved echo", conf("", ep("/__echo", "")), []pair{{"endpoints[0].endpoint", KindInvalid}}},
		{"reserved health", conf("", ep("/__health", "")), []pair{{"endpoints[0].endpoint", KindInvalid}}},
		{"nested reserved segment", conf("", ep("/api/__health", "")), []pair{{"endpoints[0].endpoint", KindInvalid}}},
		{"reserved prefix only is fine", conf("", ep("/__healthy", "")), nil},
		{"configured health path", conf(`"extra_config": {"router": {"health_path": "/status"}}`, ep("/status", "")),
			[]pair{{"endpoints[0].endpoint", KindDuplicate}}},
		{"health path free when disabled",
			conf(`"extra_config": {"router": {"health_path": "/status", "disable_health": true}}`, ep("/status", "")), nil},
		{"star inside", conf("", ep("/a/*/b", "")), []pair{{"endpoints[0].endpoint", KindInvalid}}},
		{"star suffix without slash", conf("", ep("/a*", "")), []pair{{"endpoints[0].endpoint", KindInvalid}}},
		{"catch-all accepted", conf("", ep("/a/*", ""), ep("/*", "")), nil},
		{"param not a whole segment", conf("", ep("/file.{ext}", "")), []pair{{"endpoints[0].endpoint", KindInvalid}}},
		{"param in segment with disable_rest", conf(`"disable_rest": true`, ep("/file.{ext}", "")), nil},
		{"adjacent params with disable_rest", conf(`"disable_rest": true`, ep("/v{a}{b}", "")), []pair{{"endpoints[0].endpoint", KindInvalid}}},
		{"bad param name", conf("", ep("/a/{a.b}", "")), []pair{{"endpoints[0].endpoint", KindInvalid}}},
		{"empty param", conf("", ep("/a/{}", "")), []pair{{"endpoints[0].endpoint", KindInvalid}}},
		{"repeated param", conf("", ep("/a/{id}/b/{id}", "")), []pair{{"endpoints[0].endpoint", KindDuplicate}}},
		{"empty segment", conf("", ep("/a//b", "")), []pair{{"endpoints[0].endpoint", KindInvalid}}},
		{"query in path", conf("", ep("/a?x=1", "")), []pair{{"endpoints[0].endpoint", KindInvalid}}},
		{"endpoint disable_rest is service level", conf("", ep("/a", `"disable_rest": true`)),
			[]pair{{"endpoints[0].disable_rest", KindUnsupported}}},

		// route conflicts
		{"same route twice", conf("", ep("/a", ""), ep("/a", "")), []pair{{"endpoints[1].endpoint", KindDuplicate}}},
		{"params compared by position", conf("", ep("/a/{id}", ""), ep("/a/{name}", "")),
			[]pair{{"endpoints[1].endpoint", KindDuplicate}}},
		{"static beats param", conf("", ep("/a/{id}", ""), ep("/a/search", "")), nil},
		{"param beats catch-all", conf("", ep("/a/*", ""), ep("/a/{id}", "")), nil},
		{"different methods", conf("", ep("/a", ""), ep("/a", `"method": "POST"`)), nil},
		{"method case folded", conf("", ep("/a", `"method": "post"`), ep("/a", `"method": "POST"`)),
			[]pair{{"endpoints[1].endpoint", KindDuplicate}}},
		{"trailing slash differs", conf("", ep("/a", ""), ep("/a/", "")), nil},
		{"catch-all twice", conf("", ep("/a/*", ""), ep("/a/*", "")), []pair{{"endpoints[1].endpoint", KindDuplicate}}},
		{"mixed segments by position", conf(`"disable_rest": true`, ep("/f.{a}", ""), ep("/f.{b}", "")),
			[]pair{{"endpoints[1].endpoint", KindDuplicate}}},

		// methods
		{"HEAD is router behaviour", conf("", ep("/a", `"method": "HEAD"`)), []pair{{"endpoints[0].method", KindUnsupported}}},
		{"unknown method", conf("", ep("/a", `"method": "FETCH"`)), []pair{{"endpoints[0].method", KindUnsupported}}},
		{"backend method any token", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "method": "PROPFIND"}]}`), nil},
		{"backend method not a token", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "method": "GE T"}]}`),
			[]pair{{"endpoints[0].backend[0].method", KindInvalid}}},

		// endpoint values
		{"no backend", conf("", `{"endpoint": "/a"}`), []pair{{"endpoints[0].backend", KindRequired}}},
		{"empty backend list", conf("", `{"endpoint": "/a", "backend": []}`), []pair{{"endpoints[0].backend", KindRequired}}},
		{"concurrent_calls 0", conf("", ep("/a", `"concurrent_calls": 0`)), []pair{{"endpoints[0].concurrent_calls", KindInvalid}}},
		{"concurrent_calls 11", conf("", ep("/a", `"concurrent_calls": 11`)), []pair{{"endpoints[0].concurrent_calls", KindTooMany}}},
		{"concurrent_calls 10", conf("", ep("/a", `"concurrent_calls": 10`)), nil},
		{"endpoint timeout negative", conf("", ep("/a", `"timeout": "-2s"`)), []pair{{"endpoints[0].timeout", KindInvalid}}},
		{"cache_ttl negative", conf("", ep("/a", `"cache_ttl": "-1s"`)), []pair{{"endpoints[0].cache_ttl", KindInvalid}}},
		{"empty input header", conf("", ep("/a", `"input_headers": ["X-A", ""]`)), []pair{{"endpoints[0].input_headers[1]", KindInvalid}}},
		{"bad input header", conf("", ep("/a", `"input_headers": ["X A"]`)), []pair{{"endpoints[0].input_headers[0]", KindInvalid}}},
		{"empty query string", conf("", ep("/a", `"input_query_strings": [""]`)), []pair{{"endpoints[0].input_query_strings[0]", KindInvalid}}},
		{"output encoding", conf("", ep("/a", `"output_encoding": "fast-json"`)), []pair{{"endpoints[0].output_encoding", KindUnsupported}}},

		// no-op
		{"no-op two backends", conf("", `{"endpoint": "/a", "output_encoding": "no-op", "backend": [{"url_pattern": "/x"}, {"url_pattern": "/y"}]}`),
			[]pair{{"endpoints[0].backend", KindTooMany}}},
		{"no-op with a shadow", conf("", `{"endpoint": "/a", "output_encoding": "no-op", "backend": [{"url_pattern": "/x"},
			{"url_pattern": "/y", "extra_config": {"proxy": {"shadow": true}}}]}`), nil},
		{"no-op explicit gob backend", conf("", `{"endpoint": "/a", "output_encoding": "no-op", "backend": [{"url_pattern": "/x", "encoding": "gob"}]}`),
			[]pair{{"endpoints[0].backend[0].encoding", KindUnsupported}}},
		{"no-op from service default", conf(`"output_encoding": "no-op"`, `{"endpoint": "/a", "backend": [{"url_pattern": "/x"}, {"url_pattern": "/y"}]}`),
			[]pair{{"endpoints[0].backend", KindTooMany}}},
		{"only shadow backends", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "extra_config": {"proxy": {"shadow": true}}}]}`),
			[]pair{{"endpoints[0].backend", KindRequired}}},

		// backends
		{"url_pattern missing", conf("", `{"endpoint": "/a", "backend": [{}]}`), []pair{{"endpoints[0].backend[0].url_pattern", KindRequired}}},
		{"url_pattern without slash is normalised", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "x"}]}`), nil},
		{"unknown placeholder", conf("", `{"endpoint": "/a/{id}", "backend": [{"url_pattern": "/x/{idd}"}]}`),
			[]pair{{"endpoints[0].backend[0].url_pattern", KindNotFound}}},
		{"JWT placeholder accepted", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x/{JWT.sub}"}],
			"extra_config": {"auth/validator": {"alg": "RS256", "jwk_url": "https://idp.example.com/jwks.json"}}}`), nil},
		{"JWT placeholder needs auth/validator", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x/{JWT.sub}"}]}`),
			[]pair{{"endpoints[0].backend[0].url_pattern", KindNotFound}}},
		{"resp placeholder needs sequential", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x"}, {"url_pattern": "/y/{resp0_id}"}]}`),
			[]pair{{"endpoints[0].backend[1].url_pattern", KindInvalid}}},
		{"resp placeholder sequential", conf("", `{"endpoint": "/a", "extra_config": {"proxy": {"sequential": true}},
			"backend": [{"url_pattern": "/x"}, {"url_pattern": "/y/{resp0_a.b}"}]}`), nil},
		{"resp placeholder forward reference", conf("", `{"endpoint": "/a", "extra_config": {"proxy": {"sequential": true}},
			"backend": [{"url_pattern": "/x/{resp1_id}"}, {"url_pattern": "/y/{resp1_id}"}]}`),
			[]pair{{"endpoints[0].backend[0].url_pattern", KindNotFound}, {"endpoints[0].backend[1].url_pattern", KindNotFound}}},
		{"sequential single backend", conf("", ep("/a", `"extra_config": {"proxy": {"sequential": true}}`)), nil},
		{"no host anywhere", `{"version": 3, "endpoints": [{"endpoint": "/a", "backend": [{"url_pattern": "/x"}]}]}`,
			[]pair{{"endpoints[0].backend[0].host", KindRequired}}},
		{"bad backend host", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "host": ["ok:80", "amqp://q", "h/path"]}]}`),
			[]pair{{"endpoints[0].backend[0].host[1]", KindInvalid}, {"endpoints[0].backend[0].host[2]", KindInvalid}}},
		{"one-digit ports", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "host": ["http://127.0.0.1:9", "127.0.0.1:1/", "https://h:7"]}]}`), nil},
		{"port out of range", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "host": ["h:0", "h:65536", "h:123456"]}]}`),
			[]pair{{"endpoints[0].backend[0].host[0]", KindInvalid}, {"endpoints[0].backend[0].host[1]", KindInvalid}, {"endpoints[0].backend[0].host[2]", KindInvalid}}},
		{"bad inherited host reported once at the root",
			`{"version": 3, "host": ["ftp://x"], "endpoints": [` + ep("/a", "") + "," + ep("/b", "") + `]}`,
			[]pair{{"host[0]", KindInvalid}}},
		{"empty inherited host reported once",
			`{"version": 3, "host": [""], "endpoints": [` + ep("/a", "") + `]}`,
			[]pair{{"host[0]", KindInvalid}}},
		{"disable_host_sanitize", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "disable_host_sanitize": true,
			"host": ["http://[::1]:8080", "amqp://q"]}]}`),
			[]pair{{"endpoints[0].backend[0].host[1]", KindInvalid}}},
		{"sd dns with the service's hosts", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "sd": "dns"}]}`),
			[]pair{{"endpoints[0].backend[0].sd", KindInvalid}}},
		{"sd dns with a sanitised host", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "sd": "dns", "host": ["_api._tcp.example.com"]}]}`),
			[]pair{{"endpoints[0].backend[0].host[0]", KindInvalid}}},
		{"sd dns with a URL", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "sd": "dns", "disable_host_sanitize": true, "host": ["http://api.example.com"]}]}`),
			[]pair{{"endpoints[0].backend[0].host[0]", KindInvalid}}},
		{"sd dns scheme", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "sd": "dns", "sd_scheme": "ftp", "disable_host_sanitize": true, "host": ["api.example.com"]}]}`),
			[]pair{{"endpoints[0].backend[0].sd_scheme", KindUnsupported}}},
		{"sd consul", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "sd": "consul"}]}`),
			[]pair{{"endpoints[0].backend[0].sd", KindUnsupported}}},
		{"encoding rss", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "encoding": "rss"}]}`), nil},
		{"encoding atom", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "encoding": "atom"}]}`),
			[]pair{{"endpoints[0].backend[0].encoding", KindUnsupported}}},
		{"empty mapping value", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "mapping": {"a": ""}}]}`),
			[]pair{{`endpoints[0].backend[0].mapping["a"]`, KindInvalid}}},
		{"empty allow entry", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "allow": ["a", ""]}]}`),
			[]pair{{"endpoints[0].backend[0].allow[1]", KindInvalid}}},
		{"group must be a string", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "group": 1}]}`),
			[]pair{{"endpoints[0].backend[0].group", KindInvalid}}},
		{"target must be a string", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "target": ["a"]}]}`),
			[]pair{{"endpoints[0].backend[0].target", KindInvalid}}},

		// extra_config
		{"return_error_details empty", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x",
			"extra_config": {"backend/http": {"return_error_details": ""}}}]}`),
			[]pair{{`endpoints[0].backend[0].extra_config["backend/http"].return_error_details`, KindInvalid}}},
		{"static strategy", conf("", ep("/a", `"extra_config": {"proxy": {"static": {"strategy": "sometimes", "data": {}}}}`)),
			[]pair{{`endpoints[0].extra_config["proxy"].static.strategy`, KindUnsupported}}},
		{"static data must be an object", conf("", ep("/a", `"extra_config": {"proxy": {"static": {"data": [1]}}}`)),
			[]pair{{`endpoints[0].extra_config["proxy"].static.data`, KindInvalid}}},
		{"static data required", conf("", ep("/a", `"extra_config": {"proxy": {"static": {"strategy": "errored"}}}`)),
			[]pair{{`endpoints[0].extra_config["proxy"].static.data`, KindRequired}}},
		{"flatmap ops", conf("", ep("/a", `"extra_config": {"proxy": {"flatmap_filter": [
			{"type": "move", "args": ["a"]}, {"type": "del", "args": []}, {"type": "copy", "args": ["a", "b"]},
			{"args": ["a"]}, {"type": "append", "args": ["a", ""]}]}}`)),
			[]pair{
				{`endpoints[0].extra_config["proxy"].flatmap_filter[0].args`, KindInvalid},
				{`endpoints[0].extra_config["proxy"].flatmap_filter[1].args`, KindInvalid},
				{`endpoints[0].extra_config["proxy"].flatmap_filter[2].type`, KindUnsupported},
				{`endpoints[0].extra_config["proxy"].flatmap_filter[3].type`, KindRequired},
				{`endpoints[0].extra_config["proxy"].flatmap_filter[4].args[1]`, KindInvalid},
			}},
		{"propagated params", conf("", ep("/a", `"extra_config": {"proxy": {"sequential": true,
			"sequential_propagated_params": ["resp0_id", "resp0", "resp5_x", "user"]}}`)),
			[]pair{
				{`endpoints[0].extra_config["proxy"].sequential_propagated_params[2]`, KindNotFound},
				{`endpoints[0].extra_config["proxy"].sequential_propagated_params[3]`, KindInvalid},
			}},
		{"shadow_timeout zero", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x"},
			{"url_pattern": "/y", "extra_config": {"proxy": {"shadow": true, "shadow_timeout": "0s"}}}]}`),
			[]pair{{`endpoints[0].backend[1].extra_config["proxy"].shadow_timeout`, KindInvalid}}},
		{"unsupported endpoint namespace", conf("", ep("/a", `"extra_config": {"auth/api-keys": {"alg": "RS256"}}`)),
			[]pair{{`endpoints[0].extra_config["auth/api-keys"]`, KindUnsupported}}},
		{"unsupported long alias", conf("", ep("/a", `"extra_config": {"github_com/devopsfaith/krakend-gologging": {}}`)),
			[]pair{{`endpoints[0].extra_config["github_com/devopsfaith/krakend-gologging"]`, KindUnsupported}}},
		{"router at endpoint level", conf("", ep("/a", `"extra_config": {"router": {}}`)),
			[]pair{{`endpoints[0].extra_config["router"]`, KindUnsupported}}},
		{"proxy at service level", conf(`"extra_config": {"proxy": {}}`), []pair{{`extra_config["proxy"]`, KindUnsupported}}},
		{"long alias accepted and normalised", conf(`"extra_config": {"github_com/luraproject/lura/router/gin": {"health_path": "x"}}`),
			[]pair{{`extra_config["router"].health_path`, KindInvalid}}},
		{"alias and short name together", conf(`"extra_config": {"router": {}, "github_com/luraproject/lura/router/gin": {}}`),
			[]pair{{`extra_config["github_com/luraproject/lura/router/gin"]`, KindDuplicate}}},
		{"router default-only options", conf(`"extra_config": {"router": {"app_engine": false, "use_h2c": false,
			"max_multipart_memory": 33554432, "disable_path_decoding": false, "disable_redirect_fixed_path": false}}`), nil},
		{"router non-default options", conf(`"extra_config": {"router": {"app_engine": true, "max_multipart_memory": 1024,
			"disable_path_decoding": true, "max_payload": 10}}`),
			[]pair{
				{`extra_config["router"].app_engine`, KindUnsupported},
				{`extra_config["router"].max_multipart_memory`, KindUnsupported},
				{`extra_config["router"].max_payload`, KindUnsupported},
			}},
		{"router trusted proxies", conf(`"extra_config": {"router": {"trusted_proxies": ["10.0.0.0/8", "192.168.1.1", "nope"]}}`),
			[]pair{{`extra_config["router"].trusted_proxies[2]`, KindInvalid}}},
		{"router error body keys", conf(`"extra_config": {"router": {"error_body": {"404": {"e": 1}, "500": {}}}}`),
			[]pair{{`extra_config["router"].error_body["500"]`, KindUnsupported}}},
		{"logging", conf(`"extra_config": {"telemetry/logging": {"level": "TRACE", "format": "custom", "syslog": true}}`),
			[]pair{
				{`extra_config["telemetry/logging"].custom_format`, KindInvalid},
				{`extra_config["telemetry/logging"].level`, KindUnsupported},
			}},
		{"logging custom format", conf(`"extra_config": {"telemetry/logging": {"level": "INFO", "format": "custom", "custom_format": "%{level} %{nope}"}}`),
			[]pair{{`extra_config["telemetry/logging"].custom_format`, KindInvalid}}},
		{"metrics", conf(`"extra_config": {"telemetry/metrics": {"listen_address": "nope", "collection_time": "1x"}}`),
			[]pair{
				{`extra_config["telemetry/metrics"].collection_time`, KindInvalid},
				{`extra_config["telemetry/metrics"].listen_address`, KindInvalid},
			}},
		{"metrics on the service port", conf(`"extra_config": {"telemetry/metrics": {"listen_address": ":8080"}}`),
			[]pair{{`extra_config["telemetry/metrics"].listen_address`, KindDuplicate}}},

		// decoding
		{"unknown root key", conf(`"portt": 1`), []pair{{"portt", KindUnsupported}}},
		{"unknown backend key", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "hots": []}]}`),
			[]pair{{"endpoints[0].backend[0].hots", KindUnsupported}}},
		{"legacy endpoint keys", conf("", ep("/a", `"headers_to_pass": ["A"], "querystring_params": ["q"]`)),
			[]pair{{"endpoints[0].headers_to_pass", KindUnsupported}, {"endpoints[0].querystring_params", KindUnsupported}}},
		{"legacy backend keys", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "whitelist": ["a"], "blacklist": ["b"]}]}`),
			[]pair{{"endpoints[0].backend[0].blacklist", KindUnsupported}, {"endpoints[0].backend[0].whitelist", KindUnsupported}}},
		{"duplicate key", `{"version": 3, "version": 3}`, []pair{{"version", KindDuplicate}}},
		{"wrong type", conf(`"port": "8080"`), []pair{{"port", KindInvalid}}},
		{"non-integer", conf(`"port": 80.5`), []pair{{"port", KindInvalid}}},
		{"unparsable duration", conf(`"timeout": "2 seconds"`), []pair{{"timeout", KindInvalid}}},
		{"numeric duration", conf(`"timeout": 2`), []pair{{"timeout", KindInvalid}}},
		{"wrong list item type", `{"version": 3, "host": ["http://a", 3]}`, []pair{{"host[1]", KindInvalid}}},
		{"endpoint not an object", conf("", `"x"`, ep("/a", "")), []pair{{"endpoints[0]", KindInvalid}}},
		{"null means unset", conf(`"timeout": null, "name": null`, ep("/a", `"method": null`)), nil},
		{"document not an object", `[1, 2]`, []pair{{"", KindInvalid}}},
		{"syntax error", `{"version": 3,}`, []pair{{"", KindInvalid}}},

		// every problem at once
		{"all violations reported", conf(`"port": -1`,
			`{"endpoint": "a", "method": "TRACE", "backend": [{"url_pattern": "x", "host": ["bad host"], "encoding": "gob"}]}`,
			ep("/b", `"concurrent_calls": 50`)),
			[]pair{
				{"endpoints[0].backend[0].encoding", KindUnsupported},
				{"endpoints[0].backend[0].host[0]", KindInvalid},
				{"endpoints[0].endpoint", KindInvalid},
				{"endpoints[0].method", KindUnsupported},
				{"endpoints[1].concurrent_calls", KindTooMany},
				{"port", KindInvalid},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := pairsOf(violationsOf(t, "krakend.json", tc.doc))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("violations (-want +got):\n%s\nall: %v", diff, violationsOf(t, "krakend.json", tc.doc))
			}
		})
	}
}

func TestViolationsSortedByPathWithNumericIndexes(t *testing.T) {
	t.Parallel()
	var eps []string
	for i := 0; i < 12; i++ {
		eps = append(eps, `{"endpoint": "/e`+strings.Repeat("x", i)+`", "backend": [{"url_pattern": ""}]}`)
	}
	vs := violationsOf(t, "krakend.json", conf(`"port": -1`, eps...))
	var paths []string
	for _, v := range vs {
		paths = append(paths, v.GetPath())
	}
	if !sort.SliceIsSorted(vs, func(i, j int) bool { return comparePaths(vs[i].GetPath(), vs[j].GetPath()) < 0 }) {
		t.Fatalf("not sorted: %v", paths)
	}
	if paths[1] != "endpoints[1].backend[0].url_pattern" || paths[10] != "endpoints[10].backend[0].url_pattern" {
		t.Errorf("want numeric index order, got %v", paths)
	}
}

func TestViolationsCapped(t *testing.T) {
	t.Parallel()
	var eps []string
	for i := 0; i < 150; i++ {
		eps = append(eps, `{"endpoint": "bad", "backend": [{"url_pattern": "/x"}]}`)
	}
	vs := violationsOf(t, "krakend.json", conf("", eps...))
	if len(vs) != MaxViolations+1 {
		t.Fatalf("got %d violations, want %d", len(vs), MaxViolations+1)
	}
	last := vs[MaxViolations]
	if last.GetKind() != KindTooMany || last.GetDetail() != "and 50 more" || last.GetPath() != "" {
		t.Errorf("last violation = %v, want too_many \"and 50 more\"", last)
	}
}

func TestValidateNil(t *testing.T) {
	t.Parallel()
	if got := pairsOf(Validate(nil)); !cmp.Equal(got, []pair{{"", KindRequired}}) {
		t.Errorf("Validate(nil) = %v", got)
	}
}

// TestValidateStandalone runs the exported stages one by one, as a tool
// would.
func TestValidateStandalone(t *testing.T) {
	t.Parallel()
	s, vs := Decode("x.json", []byte(conf("", ep("/a", `"concurrent_calls": 20`))))
	if len(vs) != 0 {
		t.Fatalf("Decode: %v", vs)
	}
	Defaults(s)
	Defaults(s) // idempotent
	got := pairsOf(Validate(s))
	if diff := cmp.Diff([]pair{{"endpoints[0].concurrent_calls", KindTooMany}}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
