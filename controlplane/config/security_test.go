package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func TestValidateCORSRules(t *testing.T) {
	t.Parallel()
	cors := func(members string) string { return conf(`"extra_config": {"security/cors": {` + members + `}}`) }
	cp := func(field string) string { return `extra_config["security/cors"]` + field }
	checkRules(t, []rule{
		{"defaults", cors(""), nil},
		{"long alias", conf(`"extra_config": {"github_com/devopsfaith/krakend-cors": {"allow_origins": ["https://a.example"]}}`), nil},
		{"every key", cors(`"allow_origins": ["https://a.example", "http://localhost:3000", "https://*.example.org"],
			"allow_methods": ["GET", "patch"], "allow_headers": ["*"], "expose_headers": ["X-Total"], "allow_credentials": true,
			"max_age": "12h", "allow_private_network": true, "options_passthrough": true, "options_success_status": 200, "debug": true`), nil},
		{"credentials with the default wildcard", cors(`"allow_credentials": true`), []pair{{cp(".allow_credentials"), KindInvalid}}},
		{"credentials with an explicit wildcard", cors(`"allow_origins": ["https://a.example", "*"], "allow_credentials": true`),
			[]pair{{cp(".allow_credentials"), KindInvalid}}},
		{"origins", cors(`"allow_origins": ["example.com", "https://a.example/path", "https://*.*.example", "https://u@a.example", "://x", "*"]`),
			[]pair{
				{cp(".allow_origins[0]"), KindInvalid},
				{cp(".allow_origins[1]"), KindInvalid},
				{cp(".allow_origins[2]"), KindInvalid},
				{cp(".allow_origins[3]"), KindInvalid},
				{cp(".allow_origins[4]"), KindInvalid},
			}},
		{"methods", cors(`"allow_methods": ["GET", "B AD", ""]`),
			[]pair{{cp(".allow_methods[1]"), KindInvalid}, {cp(".allow_methods[2]"), KindInvalid}}},
		{"headers", cors(`"allow_headers": ["X A"], "expose_headers": ["", "X-Ok"]`),
			[]pair{{cp(".allow_headers[0]"), KindInvalid}, {cp(".expose_headers[0]"), KindInvalid}}},
		{"max_age negative", cors(`"max_age": "-1s"`), []pair{{cp(".max_age"), KindInvalid}}},
		{"max_age in seconds", cors(`"max_age": 3600`), []pair{{cp(".max_age"), KindInvalid}}},
		{"options_success_status zero", cors(`"options_success_status": 0`), []pair{{cp(".options_success_status"), KindInvalid}}},
		{"options_success_status not 2xx", cors(`"options_success_status": 404`), []pair{{cp(".options_success_status"), KindInvalid}}},
		{"unknown key", cors(`"allowed_origins": ["*"]`), []pair{{cp(".allowed_origins"), KindUnsupported}}},
		{"endpoint level is Enterprise", conf("", ep("/a", `"extra_config": {"security/cors": {}}`)),
			[]pair{{`endpoints[0].extra_config["security/cors"]`, KindUnsupported}}},
	})
}

func TestValidateSecurityHTTPRules(t *testing.T) {
	t.Parallel()
	sec := func(members string) string { return conf(`"extra_config": {"security/http": {` + members + `}}`) }
	sp := func(field string) string { return `extra_config["security/http"]` + field }
	checkRules(t, []rule{
		{"empty", sec(""), nil},
		{"every key", sec(`"allowed_hosts": ["api.example.com", "api.example.com:8080"], "allowed_hosts_are_regex": false,
			"host_proxy_headers": ["X-Forwarded-Host"], "sts_seconds": 31536000, "sts_include_subdomains": true, "force_sts_header": true,
			"frame_deny": true, "custom_frame_options_value": "SAMEORIGIN", "content_security_policy": "default-src 'self'",
			"content_type_nosniff": true, "browser_xss_filter": true, "referrer_policy": "no-referrer, strict-origin-when-cross-origin",
			"ssl_redirect": true, "ssl_host": "secure.example.com:8443", "ssl_proxy_headers": {"X-Forwarded-Proto": "https"},
			"is_development": false`), nil},
		{"long alias", conf(`"extra_config": {"github_com/devopsfaith/krakend-httpsecure": {"frame_deny": true}}`), nil},
		{"regex hosts", sec(`"allowed_hosts": [".*\\.example\\.com", "(", ""], "allowed_hosts_are_regex": true`),
			[]pair{{sp(".allowed_hosts[1]"), KindInvalid}, {sp(".allowed_hosts[2]"), KindInvalid}}},
		{"plain hosts", sec(`"allowed_hosts": ["example.com/x", "a b"]`),
			[]pair{{sp(".allowed_hosts[0]"), KindInvalid}, {sp(".allowed_hosts[1]"), KindInvalid}}},
		{"host_proxy_headers", sec(`"host_proxy_headers": ["X Bad", ""]`),
			[]pair{{sp(".host_proxy_headers[0]"), KindInvalid}, {sp(".host_proxy_headers[1]"), KindInvalid}}},
		{"sts_seconds negative", sec(`"sts_seconds": -1`), []pair{{sp(".sts_seconds"), KindInvalid}}},
		{"referrer_policy typo", sec(`"referrer_policy": "same-origin, strict-origin-when-crossorigin"`),
			[]pair{{sp(".referrer_policy"), KindUnsupported}}},
		{"header injection", sec(`"custom_frame_options_value": "DENY\r\nX-Evil: 1", "content_security_policy": "a\u0000b"`),
			[]pair{{sp(".content_security_policy"), KindInvalid}, {sp(".custom_frame_options_value"), KindInvalid}}},
		{"ssl_host with a scheme", sec(`"ssl_host": "https://secure.example.com"`), []pair{{sp(".ssl_host"), KindInvalid}}},
		{"ssl_proxy_headers", sec(`"ssl_proxy_headers": {"X-Forwarded-Proto": "https", "x-forwarded-proto": "https", "Bad Key": "x", "X-Empty": ""}`),
			[]pair{
				{sp(`.ssl_proxy_headers["Bad Key"]`), KindInvalid},
				{sp(`.ssl_proxy_headers["X-Empty"]`), KindInvalid},
				{sp(`.ssl_proxy_headers["x-forwarded-proto"]`), KindDuplicate},
			}},
		{"hpkp is obsolete", sec(`"hpkp_public_key": "pin-sha256=\"x\""`), []pair{{sp(".hpkp_public_key"), KindUnsupported}}},
		{"wrong type", sec(`"sts_seconds": "1y"`), []pair{{sp(".sts_seconds"), KindInvalid}}},
	})
}

func TestCompileSecurityDefaults(t *testing.T) {
	t.Parallel()
	snap := compileDoc(t, conf(`"extra_config": {
		"security/cors": {"allow_origins": ["HTTPS://A.Example"], "allow_methods": ["put", "PUT"], "expose_headers": ["x-total"], "max_age": "90s"},
		"security/http": {"host_proxy_headers": ["x-forwarded-host"], "ssl_proxy_headers": {"x-forwarded-proto": "https"}, "frame_deny": true}}`))
	wantCORS := &gatewayv1.CORS{
		AllowOrigins:         []string{"https://a.example"},
		AllowMethods:         []string{"PUT"},
		AllowHeaders:         []string{"*"},
		ExposeHeaders:        []string{"X-Total"},
		MaxAgeMs:             90_000,
		OptionsSuccessStatus: 204,
	}
	if diff := cmp.Diff(wantCORS, snap.GetService().GetCors(), protocmp.Transform()); diff != "" {
		t.Errorf("cors (-want +got):\n%s", diff)
	}
	wantSec := &gatewayv1.SecurityHTTP{
		HostProxyHeaders: []string{"X-Forwarded-Host"},
		SslProxyHeaders:  map[string]string{"X-Forwarded-Proto": "https"},
		FrameDeny:        true,
	}
	if diff := cmp.Diff(wantSec, snap.GetService().GetSecurity(), protocmp.Transform()); diff != "" {
		t.Errorf("security (-want +got):\n%s", diff)
	}

	defaults := compileDoc(t, conf(`"extra_config": {"security/cors": {}}`)).GetService().GetCors()
	wantDefaults := &gatewayv1.CORS{
		AllowOrigins:         []string{"*"},
		AllowMethods:         []string{"GET", "POST", "HEAD"},
		AllowHeaders:         []string{"*"},
		OptionsSuccessStatus: 204,
	}
	if diff := cmp.Diff(wantDefaults, defaults, protocmp.Transform()); diff != "" {
		t.Errorf("cors defaults (-want +got):\n%s", diff)
	}
}
