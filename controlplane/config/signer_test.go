package config

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/apigw/gateway/proto/feature"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// testFingerprint is a well-formed jwk_fingerprints entry (32 bytes).
var testFingerprint = base64.URLEncoding.EncodeToString(make([]byte, 32))

// testKeeper is a well-formed base64key:// secret_url.
var testKeeper = "base64key://" + base64.URLEncoding.EncodeToString([]byte("keeper-key-0123456789abcdefghijk"))

// signerEP is an endpoint at path whose auth/signer has exactly members.
func signerEP(path, members string) string {
	return ep(path, `"extra_config": {"auth/signer": {`+members+`}}`)
}

func signerPath(field string) string { return `endpoints[0].extra_config["auth/signer"]` + field }

const validSigner = `"alg": "HS256", "kid": "sim2", "keys_to_sign": ["access_token"], "jwk_url": "https://idp/jwks"`

func TestValidateSignerRules(t *testing.T) {
	t.Parallel()
	checkRules(t, []rule{
		{"minimal", conf("", signerEP("/a", validSigner)), nil},
		{"long alias", conf("", ep("/a", `"extra_config": {"github.com/devopsfaith/krakend-jose/signer": {`+validSigner+`}}`)), nil},
		{"every key", conf("", signerEP("/a", validSigner+`, "full": true, "typ": "at+jwt", "disable_jwk_security": false,
			"cipher_suites": [49199], "jwk_fingerprints": ["`+testFingerprint+`"], "jwk_local_ca": "ca.pem"`)), nil},
		{"local file", conf("", signerEP("/a", `"alg": "RS256", "kid": "k", "keys_to_sign": ["t"], "jwk_local_path": "./k.json"`)), nil},
		{"http with disable_jwk_security", conf("", signerEP("/a", `"alg": "HS256", "kid": "k", "keys_to_sign": ["t"], "jwk_url": "http://127.0.0.1/k", "disable_jwk_security": true`)), nil},
		{"empty", conf("", signerEP("/a", ``)),
			[]pair{{signerPath(".alg"), KindRequired}, {signerPath(".jwk_url"), KindRequired}, {signerPath(".keys_to_sign"), KindRequired}, {signerPath(".kid"), KindRequired}}},
		{"alg none", conf("", signerEP("/a", `"alg": "none", "kid": "k", "keys_to_sign": ["t"], "jwk_url": "https://idp/jwks"`)),
			[]pair{{signerPath(".alg"), KindUnsupported}}},
		{"alg unknown", conf("", signerEP("/a", `"alg": "A128KW", "kid": "k", "keys_to_sign": ["t"], "jwk_url": "https://idp/jwks"`)),
			[]pair{{signerPath(".alg"), KindUnsupported}}},
		{"http without disable_jwk_security", conf("", signerEP("/a", `"alg": "HS256", "kid": "k", "keys_to_sign": ["t"], "jwk_url": "http://idp/jwks"`)),
			[]pair{{signerPath(".jwk_url"), KindInvalid}}},
		{"both key sources", conf("", signerEP("/a", validSigner+`, "jwk_local_path": "k.json"`)),
			[]pair{{signerPath(".jwk_url"), KindInvalid}}},
		{"keys_to_sign empty entry and repeat", conf("", signerEP("/a", `"alg": "HS256", "kid": "k", "keys_to_sign": ["a", "", "a"], "jwk_url": "https://idp/jwks"`)),
			[]pair{{signerPath(".keys_to_sign[1]"), KindInvalid}, {signerPath(".keys_to_sign[2]"), KindDuplicate}}},
		{"tls with a local file", conf("", signerEP("/a", `"alg": "RS256", "kid": "k", "keys_to_sign": ["t"], "jwk_local_path": "./k.json", "cipher_suites": [49199]`)),
			[]pair{{signerPath(".cipher_suites"), KindInvalid}}},
		{"bad fingerprint", conf("", signerEP("/a", validSigner+`, "jwk_fingerprints": ["!!"]`)),
			[]pair{{signerPath(".jwk_fingerprints[0]"), KindInvalid}}},
		{"encrypted local file", conf("", signerEP("/a", `"alg": "RS256", "kid": "k", "keys_to_sign": ["t"], "jwk_local_path": "./k.enc",
			"secret_url": "`+testKeeper+`", "cypher_key": "eA=="`)), nil},
		{"encryption with jwk_url", conf("", signerEP("/a", validSigner+`, "secret_url": "`+testKeeper+`", "cypher_key": "eA=="`)),
			[]pair{{signerPath(".secret_url"), KindInvalid}}},
		{"cloud keeper", conf("", signerEP("/a", `"alg": "RS256", "kid": "k", "keys_to_sign": ["t"], "jwk_local_path": "./k.enc",
			"secret_url": "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", "cypher_key": "eA=="`)),
			[]pair{{signerPath(".secret_url"), KindUnsupported}}},
		{"no-op output", conf("", `{"endpoint": "/a", "output_encoding": "no-op", "backend": [{"url_pattern": "/x"}],
			"extra_config": {"auth/signer": {`+validSigner+`}}}`),
			[]pair{{"endpoints[0].output_encoding", KindInvalid}}},
		{"at service level", conf(`"extra_config": {"auth/signer": {`+validSigner+`}}`, ep("/a", "")),
			[]pair{{`extra_config["auth/signer"]`, KindUnsupported}}},
	})
}

func TestSignerWarnings(t *testing.T) {
	t.Parallel()
	got := warningsOf(t, conf("", `{"endpoint": "/a", "output_encoding": "xml", "backend": [{"url_pattern": "/x"}],
		"extra_config": {"auth/signer": {`+validSigner+`}}}`))
	if diff := cmp.Diff([]pair{{signerPath(""), KindNoEffect}}, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestCompileSigner(t *testing.T) {
	t.Parallel()
	snap := compileDoc(t, conf("", signerEP("/a", validSigner+`, "full": true, "typ": "at+jwt",
		"cipher_suites": [49199], "jwk_fingerprints": ["`+testFingerprint+`"], "jwk_local_ca": "ca.pem"`)))
	want := &gatewayv1.JWTSigner{
		Alg: "HS256", Kid: "sim2", Typ: "at+jwt", KeysToSign: []string{"access_token"}, Full: true,
		JwkUrl:  "https://idp/jwks",
		JwksTls: &gatewayv1.JWKSClientTLS{CipherSuites: []uint32{49199}, Fingerprints: [][]byte{make([]byte, 32)}, LocalCa: "ca.pem"},
	}
	if diff := cmp.Diff(want, snap.GetEndpoints()[0].GetSigner(), protocmp.Transform()); diff != "" {
		t.Errorf("signer (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{feature.AuthSigner}, snap.GetFeatures()); diff != "" {
		t.Errorf("features (-want +got):\n%s", diff)
	}

	snap = compileDoc(t, conf("", jwtEP("/a", `"jwk_local_ca": "ca.pem"`)))
	if diff := cmp.Diff(&gatewayv1.JWKSClientTLS{LocalCa: "ca.pem"}, snap.GetEndpoints()[0].GetJwt().GetJwksTls(), protocmp.Transform()); diff != "" {
		t.Errorf("validator jwks_tls (-want +got):\n%s", diff)
	}
}

// TestKeeperErrorsKeepTheKeySecret: a base64key:// URL is the key itself,
// so a refused one is never quoted in the violation; a cloud keeper is
// named by its scheme, with why it is refused, for the signer and the
// validator alike.
func TestKeeperErrorsKeepTheKeySecret(t *testing.T) {
	t.Parallel()
	const secret = "c2VjcmV0LWtleS10aGF0LWlzLW5vdC0zMi1ieXRlcw"
	local := `"alg": "RS256", "kid": "k", "keys_to_sign": ["t"], "jwk_local_path": "./k.enc", "cypher_key": "eA==", "secret_url": `
	for _, tc := range []struct {
		name, doc, path, want string
	}{
		{"short key", conf("", signerEP("/a", local+`"base64key://`+secret+`"`)), signerPath(".secret_url"), "32 bytes"},
		{"aws", conf("", signerEP("/a", local+`"awskms://alias/k?region=eu-west-1"`)), signerPath(".secret_url"), "awskms:// is a cloud KMS keeper"},
		{"validator vault", conf("", jwtEP("/a", `"jwk_local_path": "./k.enc", "cypher_key": "eA==", "secret_url": "hashivault://k"`)),
			`endpoints[0].extra_config["auth/validator"].secret_url`, "hashivault:// is a cloud KMS keeper"},
	} {
		var found bool
		for _, v := range violationsOf(t, "k.json", tc.doc) {
			if strings.Contains(v.GetDetail(), secret) {
				t.Errorf("%s: %s quotes the key: %s", tc.name, v.GetPath(), v.GetDetail())
			}
			found = found || v.GetPath() == tc.path && strings.Contains(v.GetDetail(), tc.want)
		}
		if !found {
			t.Errorf("%s: no violation at %s saying %q", tc.name, tc.path, tc.want)
		}
	}
}
