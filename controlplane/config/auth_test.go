package config

import (
	"github.com/apigw/gateway/proto/feature"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// jwtEP is an endpoint at path with a valid auth/validator plus extra
// members of the validator object.
func jwtEP(path, extra string) string {
	v := `"alg": "RS256", "jwk_url": "https://idp.example.com/jwks.json"`
	if extra != "" {
		v += ", " + extra
	}
	return ep(path, `"extra_config": {"auth/validator": {`+v+`}}`)
}

// validatorEP is an endpoint at path whose auth/validator has exactly the
// given members.
func validatorEP(path, members string) string {
	return ep(path, `"extra_config": {"auth/validator": {`+members+`}}`)
}

// validatorPath is the violation path of an endpoint's auth/validator field.
func validatorPath(field string) string {
	return `endpoints[0].extra_config["auth/validator"]` + field
}

func TestValidateJWTRules(t *testing.T) {
	t.Parallel()
	checkRules(t, []rule{
		{"minimal", conf("", jwtEP("/a", "")), nil},
		{"long alias", conf("", ep("/a", `"extra_config": {"github.com/devopsfaith/krakend-jose/validator":
			{"alg": "EdDSA", "jwk_url": "https://idp/jwks"}}`)), nil},
		{"every key", conf("", jwtEP("/a", `"cache": true, "cache_duration": 60, "failed_jwk_key_cooldown": "1s",
			"audience": ["a", "b"], "issuer": "https://idp/", "leeway": "2s", "roles": ["admin"], "roles_key": "realm.roles",
			"roles_key_is_nested": true, "scopes": ["read"], "scopes_key": "scope", "scopes_matcher": "all",
			"propagate_claims": [["sub", "x-user"]], "propagate_claims_preserve_array": true, "auth_header_name": "X-Token",
			"cookie_key": "jwt", "key_identify_strategy": "kid_x5t", "operation_debug": true, "disable_jwk_security": false`)), nil},

		// alg
		{"alg missing", conf("", ep("/a", `"extra_config": {"auth/validator": {"jwk_url": "https://idp/jwks"}}`)),
			[]pair{{validatorPath(".alg"), KindRequired}}},
		{"alg none", conf("", validatorEP("/a", `"alg": "none", "jwk_url": "https://idp/jwks"`)), []pair{{validatorPath(".alg"), KindUnsupported}}},
		{"alg NONE", conf("", validatorEP("/a", `"alg": "NONE", "jwk_url": "https://idp/jwks"`)), []pair{{validatorPath(".alg"), KindUnsupported}}},
		{"alg is case-sensitive", conf("", validatorEP("/a", `"alg": "rs256", "jwk_url": "https://idp/jwks"`)), []pair{{validatorPath(".alg"), KindUnsupported}}},
		{"alg unknown", conf("", validatorEP("/a", `"alg": "RS1024", "jwk_url": "https://idp/jwks"`)), []pair{{validatorPath(".alg"), KindUnsupported}}},

		// key source
		{"no key source", conf("", ep("/a", `"extra_config": {"auth/validator": {"alg": "HS256"}}`)),
			[]pair{{validatorPath(".jwk_url"), KindRequired}}},
		{"local path", conf("", ep("/a", `"extra_config": {"auth/validator": {"alg": "HS256", "jwk_local_path": "./keys.json"}}`)), nil},
		{"both key sources", conf("", jwtEP("/a", `"jwk_local_path": "./keys.json"`)),
			[]pair{{validatorPath(".jwk_url"), KindInvalid}}},
		{"http jwk_url", conf("", validatorEP("/a", `"alg": "RS256", "jwk_url": "http://idp/jwks"`)), []pair{{validatorPath(".jwk_url"), KindInvalid}}},
		{"http jwk_url with disable_jwk_security", conf("", validatorEP("/a", `"alg": "RS256", "jwk_url": "http://idp:8080/jwks", "disable_jwk_security": true`)), nil},
		{"relative jwk_url", conf("", validatorEP("/a", `"alg": "RS256", "jwk_url": "jwks.json", "disable_jwk_security": true`)),
			[]pair{{validatorPath(".jwk_url"), KindInvalid}}},
		{"other scheme", conf("", validatorEP("/a", `"alg": "RS256", "jwk_url": "file:///etc/jwks.json"`)), []pair{{validatorPath(".jwk_url"), KindInvalid}}},
		{"user info", conf("", validatorEP("/a", `"alg": "RS256", "jwk_url": "https://u:p@idp/jwks"`)), []pair{{validatorPath(".jwk_url"), KindInvalid}}},
		{"cache with local path", conf("", ep("/a", `"extra_config": {"auth/validator": {"alg": "RS256", "jwk_local_path": "k.json", "cache": true}}`)),
			[]pair{{validatorPath(".cache"), KindInvalid}}},

		// durations
		{"cache_duration zero", conf("", jwtEP("/a", `"cache_duration": 0`)), []pair{{validatorPath(".cache_duration"), KindInvalid}}},
		{"cache_duration negative", conf("", jwtEP("/a", `"cache_duration": -5`)), []pair{{validatorPath(".cache_duration"), KindInvalid}}},
		{"cache_duration is seconds", conf("", jwtEP("/a", `"cache_duration": "15m"`)), []pair{{validatorPath(".cache_duration"), KindInvalid}}},
		{"cache_duration overflows", conf("", jwtEP("/a", `"cache_duration": 9223372036854775807`)),
			[]pair{{validatorPath(".cache_duration"), KindInvalid}}},
		{"cooldown below 1s", conf("", jwtEP("/a", `"failed_jwk_key_cooldown": "500ms"`)),
			[]pair{{validatorPath(".failed_jwk_key_cooldown"), KindInvalid}}},
		{"cooldown negative", conf("", jwtEP("/a", `"failed_jwk_key_cooldown": "-1s"`)),
			[]pair{{validatorPath(".failed_jwk_key_cooldown"), KindInvalid}}},
		{"leeway zero", conf("", jwtEP("/a", `"leeway": "0s"`)), []pair{{validatorPath(".leeway"), KindInvalid}}},
		{"leeway unparsable", conf("", jwtEP("/a", `"leeway": "1 second"`)), []pair{{validatorPath(".leeway"), KindInvalid}}},
		{"leeway above the cap", conf("", jwtEP("/a", `"leeway": "10m"`)), []pair{{validatorPath(".leeway"), KindInvalid}}},

		// claims
		{"scopes without scopes_key", conf("", jwtEP("/a", `"scopes": ["read"]`)), []pair{{validatorPath(".scopes_key"), KindRequired}}},
		{"scopes_key alone", conf("", jwtEP("/a", `"scopes_key": "scope"`)), nil},
		{"scopes_matcher", conf("", jwtEP("/a", `"scopes": ["r"], "scopes_key": "scope", "scopes_matcher": "some"`)),
			[]pair{{validatorPath(".scopes_matcher"), KindUnsupported}}},
		{"empty list entries", conf("", jwtEP("/a", `"audience": ["a", ""], "roles": [""], "scopes": ["", "r"], "scopes_key": "s"`)),
			[]pair{{validatorPath(".audience[1]"), KindInvalid}, {validatorPath(".roles[0]"), KindInvalid}, {validatorPath(".scopes[0]"), KindInvalid}}},
		{"key_identify_strategy", conf("", jwtEP("/a", `"key_identify_strategy": "jku"`)),
			[]pair{{validatorPath(".key_identify_strategy"), KindUnsupported}}},
		{"x5t#S256", conf("", jwtEP("/a", `"key_identify_strategy": "x5t#S256"`)), nil},
		{"auth_header_name", conf("", jwtEP("/a", `"auth_header_name": "X Token"`)), []pair{{validatorPath(".auth_header_name"), KindInvalid}}},
		{"cookie_key", conf("", jwtEP("/a", `"cookie_key": "a=b"`)), []pair{{validatorPath(".cookie_key"), KindInvalid}}},
		{"propagate_claims", conf("", jwtEP("/a", `"propagate_claims": [["sub", "x-user"], ["sub"], ["a", 1], ["", "X-A"],
			["b", "X User"], ["c", "X-USER"], "d", ["e", ""]]`)),
			[]pair{
				{validatorPath(".propagate_claims[1]"), KindInvalid},
				{validatorPath(".propagate_claims[2][1]"), KindInvalid},
				{validatorPath(".propagate_claims[3][0]"), KindInvalid},
				{validatorPath(".propagate_claims[4][1]"), KindInvalid},
				{validatorPath(".propagate_claims[5][1]"), KindDuplicate},
				{validatorPath(".propagate_claims[6]"), KindInvalid},
				{validatorPath(".propagate_claims[7][1]"), KindInvalid},
			}},
		{"propagate_claims not a list", conf("", jwtEP("/a", `"propagate_claims": {"sub": "X-User"}`)),
			[]pair{{validatorPath(".propagate_claims"), KindInvalid}}},

		// JWKS client TLS
		{"tls keys", conf("", jwtEP("/a", `"jwk_fingerprints": ["`+testFingerprint+`"], "jwk_local_ca": "ca.pem", "cipher_suites": [49199, 52392]`)), nil},
		{"tls keys wrong", conf("", jwtEP("/a", `"jwk_fingerprints": ["x", "AAAA"], "cipher_suites": [5, 1]`)),
			[]pair{
				{validatorPath(".cipher_suites[0]"), KindUnsupported},
				{validatorPath(".cipher_suites[1]"), KindInvalid},
				{validatorPath(".jwk_fingerprints[0]"), KindInvalid},
				{validatorPath(".jwk_fingerprints[1]"), KindInvalid},
			}},
		{"tls keys with a local file", conf("", ep("/a", `"extra_config": {"auth/validator": {"alg": "HS256", "jwk_local_path": "./k.json", "jwk_local_ca": "ca.pem"}}`)),
			[]pair{{validatorPath(".jwk_local_ca"), KindInvalid}}},

		// encrypted local JWKS
		{"encrypted local file", conf("", validatorEP("/a", `"alg": "HS256", "jwk_local_path": "k.enc", "secret_url": "`+testKeeper+`", "cypher_key": "c2VhbGVk"`)), nil},
		{"encryption keys wrong", conf("", jwtEP("/a", `"secret_url": "awskms://k", "cypher_key": "c", "issuers": ["x"]`)),
			[]pair{
				{validatorPath(".cypher_key"), KindInvalid},
				{validatorPath(".issuers"), KindUnsupported},
				{validatorPath(".secret_url"), KindInvalid},
				{validatorPath(".secret_url"), KindUnsupported},
			}},
		{"secret_url alone", conf("", validatorEP("/a", `"alg": "HS256", "jwk_local_path": "k.enc", "secret_url": "`+testKeeper+`"`)),
			[]pair{{validatorPath(".cypher_key"), KindRequired}}},
		{"random keeper", conf("", validatorEP("/a", `"alg": "HS256", "jwk_local_path": "k.enc", "secret_url": "base64key://", "cypher_key": "c2VhbGVk"`)),
			[]pair{{validatorPath(".secret_url"), KindUnsupported}}},
		{"not an object", conf("", ep("/a", `"extra_config": {"auth/validator": true}`)),
			[]pair{{validatorPath(""), KindInvalid}}},

		// {JWT.claim} placeholders
		{"JWT placeholder", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/u/{JWT.sub}/{JWT.realm.id}"}],
			"extra_config": {"auth/validator": {"alg": "RS256", "jwk_url": "https://idp/jwks"}}}`), nil},
		{"JWT placeholder without validator", conf("", `{"endpoint": "/a", "backend": [{"url_pattern": "/u/{JWT.sub}"}]}`),
			[]pair{{"endpoints[0].backend[0].url_pattern", KindNotFound}}},
		{"JWT placeholder, validator on another endpoint", conf("", jwtEP("/a", ""),
			`{"endpoint": "/b", "backend": [{"url_pattern": "/u/{JWT.sub}"}]}`),
			[]pair{{"endpoints[1].backend[0].url_pattern", KindNotFound}}},

		// service level
		{"service shared_cache_duration", conf(`"extra_config": {"auth/validator": {"shared_cache_duration": 300}}`), nil},
		{"service shared_cache_duration zero", conf(`"extra_config": {"auth/validator": {"shared_cache_duration": 0}}`),
			[]pair{{`extra_config["auth/validator"].shared_cache_duration`, KindInvalid}}},
		{"service validator keys", conf(`"extra_config": {"auth/validator": {"alg": "RS256"}}`),
			[]pair{{`extra_config["auth/validator"].alg`, KindUnsupported}}},
	})
}

// revoker builds a service with an auth/revoker object.
func revoker(members string) string {
	return conf(`"extra_config": {"auth/revoker": {` + members + `}}`)
}

const validRevoker = `"N": 10000000, "P": 1e-7, "TTL": 1500, "token_keys": ["jti"]`

func TestValidateRevokerRules(t *testing.T) {
	t.Parallel()
	rp := func(field string) string { return `extra_config["auth/revoker"]` + field }
	checkRules(t, []rule{
		{"minimal", revoker(validRevoker), nil},
		{"KrakenD's full form through the long alias", conf(`"extra_config": {"github_com/devopsfaith/bloomfilter":
			{"N": 100, "P": 0.001, "hash_name": "optimal", "TTL": 60, "port": 1234, "token_keys": ["jti", "sub"]}}`), nil},
		{"empty", revoker(""), []pair{
			{rp(".N"), KindRequired}, {rp(".P"), KindRequired}, {rp(".TTL"), KindRequired}, {rp(".token_keys"), KindRequired},
		}},
		{"N zero", revoker(`"N": 0, "P": 0.01, "TTL": 1, "token_keys": ["jti"]`), []pair{{rp(".N"), KindInvalid}}},
		{"N fractional", revoker(`"N": 1.5, "P": 0.01, "TTL": 1, "token_keys": ["jti"]`), []pair{{rp(".N"), KindInvalid}}},
		{"N too large for its P", revoker(`"N": 1000000000000, "P": 1e-9, "TTL": 1, "token_keys": ["jti"]`),
			[]pair{{rp(".N"), KindTooMany}}},
		{"KrakenD's 10^8 at 10^-9 fits", revoker(`"N": 100000000, "P": 1e-9, "TTL": 1, "token_keys": ["jti"]`), nil},
		{"P zero", revoker(`"N": 10, "P": 0, "TTL": 1, "token_keys": ["jti"]`), []pair{{rp(".P"), KindInvalid}}},
		{"P one", revoker(`"N": 10, "P": 1, "TTL": 1, "token_keys": ["jti"]`), []pair{{rp(".P"), KindInvalid}}},
		{"P as a string", revoker(`"N": 10, "P": "0.1", "TTL": 1, "token_keys": ["jti"]`), []pair{{rp(".P"), KindInvalid}}},
		{"TTL zero", revoker(`"N": 10, "P": 0.1, "TTL": 0, "token_keys": ["jti"]`), []pair{{rp(".TTL"), KindInvalid}}},
		{"TTL as a duration", revoker(`"N": 10, "P": 0.1, "TTL": "1h", "token_keys": ["jti"]`), []pair{{rp(".TTL"), KindInvalid}}},
		{"token_keys empty", revoker(`"N": 10, "P": 0.1, "TTL": 1, "token_keys": []`), []pair{{rp(".token_keys"), KindRequired}}},
		{"token_keys entries", revoker(`"N": 10, "P": 0.1, "TTL": 1, "token_keys": ["jti", "jti", ""]`),
			[]pair{{rp(".token_keys[1]"), KindDuplicate}, {rp(".token_keys[2]"), KindInvalid}}},
		{"legacy hasher", revoker(validRevoker + `, "hash_name": "default"`), []pair{{rp(".hash_name"), KindUnsupported}}},
		{"unknown hasher", revoker(validRevoker + `, "hash_name": "md5"`), []pair{{rp(".hash_name"), KindUnsupported}}},
		{"port accepted", revoker(validRevoker + `, "port": 1234`), nil},
		{"enterprise keys", revoker(validRevoker + `, "revoke_server_ping_url": "http://rs/instances", "revoke_server_api_key": "k"`),
			[]pair{{rp(".revoke_server_api_key"), KindUnsupported}, {rp(".revoke_server_ping_url"), KindUnsupported}}},
		{"headers not wired", revoker(validRevoker + `, "headers": ["X-Token"]`), []pair{{rp(".headers"), KindUnsupported}}},
		{"endpoint level", conf("", ep("/a", `"extra_config": {"auth/revoker": {`+validRevoker+`}}`)),
			[]pair{{`endpoints[0].extra_config["auth/revoker"]`, KindUnsupported}}},
	})
}

// TestCompileAuthDefaults checks what the auth namespaces compile to,
// every default resolved.
func TestCompileAuthDefaults(t *testing.T) {
	t.Parallel()
	snap := compileDoc(t, conf(`"extra_config": {"auth/revoker": {`+validRevoker+`}, "auth/validator": {"shared_cache_duration": 60}}`,
		`{"endpoint": "/a", "backend": [{"url_pattern": "/u/{JWT.sub}"}],
		  "extra_config": {"auth/validator": {"alg": "RS256", "jwk_url": "https://idp/jwks",
		    "propagate_claims": [["sub", "x-user-id"]], "auth_header_name": "x-token"}}}`))
	wantJWT := &gatewayv1.JWTValidator{
		Alg:                 "RS256",
		JwkUrl:              "https://idp/jwks",
		CacheDurationMs:     900_000,
		LeewayMs:            1000,
		RolesKey:            "roles",
		ScopesMatcher:       "any",
		PropagateClaims:     []*gatewayv1.ClaimHeader{{Claim: "sub", Header: "X-User-Id"}},
		AuthHeaderName:      "X-Token",
		CookieKey:           "access_token",
		KeyIdentifyStrategy: "kid",
	}
	if diff := cmp.Diff(wantJWT, snap.GetEndpoints()[0].GetJwt(), protocmp.Transform()); diff != "" {
		t.Errorf("jwt (-want +got):\n%s", diff)
	}
	wantRevoker := &gatewayv1.Revoker{N: 10_000_000, P: 1e-7, TtlMs: 1_500_000, TokenKeys: []string{"jti"}}
	if diff := cmp.Diff(wantRevoker, snap.GetService().GetRevoker(), protocmp.Transform()); diff != "" {
		t.Errorf("revoker (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{feature.AuthJWT, feature.AuthRevoker}, snap.GetFeatures()); diff != "" {
		t.Errorf("features (-want +got):\n%s", diff)
	}
}

// TestValidateJWTLimitsRules covers our apigw/jwt namespace: it needs the
// endpoint's auth/validator, and with auth/revoker it may not loosen what
// the edge enforces (exp required, lifetime within the revoker TTL).
func TestValidateJWTLimitsRules(t *testing.T) {
	t.Parallel()
	lp := func(field string) string { return `endpoints[0].extra_config["apigw/jwt"]` + field }
	limited := func(limits string) string {
		return ep("/a", `"extra_config": {"auth/validator": {"alg": "RS256", "jwk_url": "https://idp/jwks"}, "apigw/jwt": {`+limits+`}}`)
	}
	withRevoker := `"extra_config": {"auth/revoker": {` + validRevoker + `}}` // TTL 1500 s
	checkRules(t, []rule{
		{"both keys", conf("", limited(`"require_exp": true, "max_token_lifetime": "1h"`)), nil},
		{"without a validator", conf("", ep("/a", `"extra_config": {"apigw/jwt": {"require_exp": true}}`)),
			[]pair{{`endpoints[0].extra_config["apigw/jwt"]`, KindInvalid}}},
		{"lifetime below 1s", conf("", limited(`"max_token_lifetime": "500ms"`)), []pair{{lp(".max_token_lifetime"), KindInvalid}}},
		{"lifetime unparsable", conf("", limited(`"max_token_lifetime": "forever"`)), []pair{{lp(".max_token_lifetime"), KindInvalid}}},
		{"require_exp not a bool", conf("", limited(`"require_exp": "yes"`)), []pair{{lp(".require_exp"), KindInvalid}}},
		{"unknown key", conf("", limited(`"max_age": "1h"`)), []pair{{lp(".max_age"), KindUnsupported}}},
		{"revoker: lifetime within TTL", conf(withRevoker, limited(`"max_token_lifetime": "24m58s"`)), nil},
		{"revoker: lifetime within TTL, not leeway", conf(withRevoker, limited(`"max_token_lifetime": "24m59s"`)), []pair{{lp(".max_token_lifetime"), KindInvalid}}},
		{"revoker: lifetime beyond TTL", conf(withRevoker, limited(`"max_token_lifetime": "25m1s"`)), []pair{{lp(".max_token_lifetime"), KindInvalid}}},
		{"revoker: require_exp false", conf(withRevoker, limited(`"require_exp": false`)), []pair{{lp(".require_exp"), KindInvalid}}},
		{"no revoker: require_exp false", conf("", limited(`"require_exp": false`)), nil},
	})
}

func TestCompileJWTLimits(t *testing.T) {
	t.Parallel()
	snap := compileDoc(t, conf("", ep("/a", `"extra_config": {"auth/validator": {"alg": "RS256", "jwk_url": "https://idp/jwks"},
		"apigw/jwt": {"require_exp": true, "max_token_lifetime": "90m"}}`), jwtEP("/b", "")))
	a, b := snap.GetEndpoints()[0].GetJwt(), snap.GetEndpoints()[1].GetJwt()
	if !a.GetRequireExp() || a.GetMaxTokenLifetimeMs() != 90*60*1000 {
		t.Errorf("/a: require_exp %v, max_token_lifetime_ms %d; want true, 5400000", a.GetRequireExp(), a.GetMaxTokenLifetimeMs())
	}
	if b.GetRequireExp() || b.GetMaxTokenLifetimeMs() != 0 {
		t.Errorf("/b (no apigw/jwt): require_exp %v, max_token_lifetime_ms %d; want false, 0", b.GetRequireExp(), b.GetMaxTokenLifetimeMs())
	}
}
