package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lestrrat-go/jwx/v3/cert"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/valyala/fasthttp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func TestVerifyValidAlgorithms(t *testing.T) {
	t.Parallel()
	rsa, ec, ed, hs := rsaKey(t, "rsa-1"), ecKey(t, "ec-1"), edKey(t, "ed-1"), hmacKey(t, "hs-1")
	srv := newJWKSServer(t, rsa, ec, ed, hs)
	k := newTestKeys(t, KeysConfig{})
	now := time.Now()
	tests := []struct {
		name string
		alg  jwa.SignatureAlgorithm
		key  testKey
	}{
		{"RS256", jwa.RS256(), rsa},
		{"RS512", jwa.RS512(), rsa},
		{"PS256", jwa.PS256(), rsa},
		{"ES256", jwa.ES256(), ec},
		{"EdDSA", jwa.EdDSA(), ed},
		{"HS256", jwa.HS256(), hs},
		{"HS512", jwa.HS512(), hs},
	}
	// Build every validator first (they share one source while open).
	vs := make([]*Validator, len(tests))
	for i, tc := range tests {
		vs[i] = newTestValidator(t, k, nil, spec(srv.url(), tc.alg.String()))
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := vs[i]
			tok := sign(t, tc.key, tc.alg, claimsAt(now, nil), nil)
			got, reason := v.Verify([]byte(tok))
			if reason != ReasonOK || got == nil {
				t.Fatalf("Verify = %v, %v; want ok", got, reason)
			}
			if sub, _ := got.Claims().String("sub"); sub != "alice" {
				t.Errorf("sub = %q", sub)
			}
			// The second call is a cache hit with the same answer.
			if got2, reason := v.Verify([]byte(tok)); reason != ReasonOK || got2 != got {
				t.Errorf("cached Verify = %p, %v; want %p, ok", got2, reason, got)
			}
		})
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Errorf("jwks fetched %d times for 7 validators of one source; want 1", n)
	}
}

// hs256WithBytes signs header.payload with HMAC-SHA256 and secret, the
// classic algorithm-confusion forgery when secret is an RSA public key.
func hs256WithBytes(header, claims map[string]any, secret []byte) string {
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func unsigned(header, claims map[string]any, sig string) string {
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "." + sig
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	rsa, other := rsaKey(t, "rsa-1"), rsaAltKey(t, "rsa-other")
	srv := newJWKSServer(t, rsa)
	k := newTestKeys(t, KeysConfig{UnknownKeyWait: -1})
	sp := spec(srv.url(), "RS256")
	sp.Audience = []string{"api", "web"}
	sp.LeewayMs = 5000
	v := newTestValidator(t, k, nil, sp)

	now := time.Now()
	good := sign(t, rsa, jwa.RS256(), claimsAt(now, nil), nil)
	parts := strings.Split(good, ".")
	tampered := map[string]any{}
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	_ = json.Unmarshal(raw, &tampered)
	tampered["sub"] = "mallory"
	tp, _ := json.Marshal(tampered)
	tamperedTok := parts[0] + "." + base64.RawURLEncoding.EncodeToString(tp) + "." + parts[2]

	der, _ := x509.MarshalPKIXPublicKey(&rsaPriv.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	tests := []struct {
		name string
		tok  string
		want Reason
	}{
		{"valid", good, ReasonOK},
		{"within leeway", sign(t, rsa, jwa.RS256(), claimsAt(now, map[string]any{"exp": now.Add(-2 * time.Second).Unix()}), nil), ReasonOK},
		{"missing", "", ReasonMissing},
		{"garbage", "not-a-token", ReasonMalformed},
		{"jwe shape", "a.b.c.d.e", ReasonMalformed},
		{"expired", sign(t, rsa, jwa.RS256(), claimsAt(now, map[string]any{"exp": now.Add(-time.Minute).Unix()}), nil), ReasonExpired},
		{"not yet valid", sign(t, rsa, jwa.RS256(), claimsAt(now, map[string]any{"nbf": now.Add(time.Minute).Unix()}), nil), ReasonNotYetValid},
		{"issued in the future", sign(t, rsa, jwa.RS256(), claimsAt(now, map[string]any{"iat": now.Add(time.Hour).Unix()}), nil), ReasonNotYetValid},
		{"wrong issuer", sign(t, rsa, jwa.RS256(), claimsAt(now, map[string]any{"iss": "https://evil.test"}), nil), ReasonIssuer},
		{"missing issuer", sign(t, rsa, jwa.RS256(), claimsAt(now, map[string]any{"iss": nil}), nil), ReasonIssuer},
		{"audience lacks one", sign(t, rsa, jwa.RS256(), claimsAt(now, map[string]any{"aud": "api"}), nil), ReasonAudience},
		{"exp not a number", sign(t, rsa, jwa.RS256(), claimsAt(now, map[string]any{"exp": "tomorrow"}), nil), ReasonMalformed},
		{"tampered payload", tamperedTok, ReasonSignature},
		{"signed by another key with our kid", sign(t, testKey{kid: "rsa-1", priv: other.priv}, jwa.RS256(), claimsAt(now, nil), nil), ReasonSignature},
		{"unknown kid", sign(t, other, jwa.RS256(), claimsAt(now, nil), nil), ReasonUnknownKey},
		{"alg none", unsigned(map[string]any{"alg": "none", "kid": "rsa-1"}, claimsAt(now, nil), ""), ReasonMalformed},
		{"alg none with signature", unsigned(map[string]any{"alg": "none", "kid": "rsa-1"}, claimsAt(now, nil), "AAAA"), ReasonAlgorithm},
		{"HS256 signed with the RSA public key", hs256WithBytes(map[string]any{"alg": "HS256", "kid": "rsa-1"}, claimsAt(now, nil), pubPEM), ReasonAlgorithm},
		{"alg mismatch RS384", sign(t, rsa, jwa.RS384(), claimsAt(now, nil), nil), ReasonAlgorithm},
		{"crit header", sign(t, rsa, jwa.RS256(), claimsAt(now, nil), map[string]any{"crit": []string{"exp"}}), ReasonMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := v.Verify([]byte(tc.tok))
			if reason != tc.want {
				t.Fatalf("reason = %v, want %v", reason, tc.want)
			}
			if (got != nil) != (tc.want.Status() != 401) {
				t.Errorf("token = %v for reason %v", got, reason)
			}
			if reason.Status() != 401 && reason != ReasonOK {
				t.Errorf("status %d", reason.Status())
			}
		})
	}
}

// An HS256 validator whose JWKS holds only an RSA key must not accept an
// HMAC made with that key's public bytes: keys are typed.
func TestAlgorithmConfusionTypedKeys(t *testing.T) {
	t.Parallel()
	rsa := rsaKey(t, "rsa-1")
	srv := newJWKSServer(t, rsa)
	k := newTestKeys(t, KeysConfig{UnknownKeyWait: -1})
	v := newTestValidator(t, k, nil, spec(srv.url(), "HS256"))
	now := time.Now()
	der, _ := x509.MarshalPKIXPublicKey(&rsaPriv.PublicKey)
	for name, secret := range map[string][]byte{
		"pem": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		"der": der,
		"n":   rsaPriv.PublicKey.N.Bytes(),
	} {
		tok := hs256WithBytes(map[string]any{"alg": "HS256", "kid": "rsa-1"}, claimsAt(now, nil), secret)
		if _, reason := v.Verify([]byte(tok)); reason != ReasonUnknownKey {
			t.Errorf("%s: reason = %v, want unknown_key", name, reason)
		}
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	a, b := rsaKey(t, "key-a"), rsaAltKey(t, "key-b")
	srv := newJWKSServer(t, a)
	k := newTestKeys(t, KeysConfig{})
	v := newTestValidator(t, k, nil, spec(srv.url(), "RS256"))
	now := time.Now()
	tokA := []byte(sign(t, a, jwa.RS256(), claimsAt(now, nil), nil))
	tokB := []byte(sign(t, b, jwa.RS256(), claimsAt(now, nil), nil))
	if _, r := v.Verify(tokA); r != ReasonOK {
		t.Fatalf("token A: %v", r)
	}
	// The IdP rotates: B appears, A is removed.
	srv.set(t, b)
	// B's kid is unknown: the request gets 401 (or waits for the refetch),
	// never blocks past the bound; within the 1 s cooldown it is accepted.
	start := time.Now()
	_, r := v.Verify(tokB)
	if d := time.Since(start); d > time.Second {
		t.Errorf("unknown kid blocked the request %v", d)
	}
	if r != ReasonOK && r != ReasonUnknownKey {
		t.Fatalf("token B first try: %v", r)
	}
	if !eventually(t, 5*time.Second, func() bool { _, r := v.Verify(tokB); return r == ReasonOK }) {
		t.Fatal("token B never accepted after rotation")
	}
	// A was cached, but the key set changed: it is checked again and its
	// key is gone.
	if _, r := v.Verify(tokA); r != ReasonUnknownKey {
		t.Errorf("token A after rotation: %v, want unknown_key", r)
	}
}

func TestUnknownKidRefetchIsRateLimited(t *testing.T) {
	t.Parallel()
	a := rsaKey(t, "key-a")
	srv := newJWKSServer(t, a)
	k := newTestKeys(t, KeysConfig{UnknownKeyWait: -1})
	sp := spec(srv.url(), "RS256")
	sp.FailedJwkKeyCooldownMs = 2000
	v := newTestValidator(t, k, nil, sp)
	first := time.Unix(0, v.c.src.lastAttempt.Load()) // the initial fetch
	now := time.Now()
	before := srv.fetches.Load()
	for i := range 50 {
		tok := sign(t, testKey{kid: fmt.Sprintf("made-up-%d", i), priv: a.priv}, jwa.RS256(), claimsAt(now, nil), nil)
		if _, r := v.Verify([]byte(tok)); r != ReasonUnknownKey {
			t.Fatalf("made-up kid: %v", r)
		}
	}
	// The burst's refetch is deferred to the end of the cooldown: wait for
	// it (bounded), then check it came no earlier and was the only one.
	if !eventually(t, 10*time.Second, func() bool { return srv.fetches.Load() > before }) {
		t.Fatal("50 unknown kids never led to a refetch after the cooldown")
	}
	if gap := time.Unix(0, v.c.src.lastAttempt.Load()).Sub(first); gap < 2*time.Second {
		t.Errorf("refetch %s after the previous fetch, inside the 2s cooldown", gap)
	}
	if n := srv.fetches.Load() - before; n != 1 {
		t.Errorf("%d fetches for 50 unknown kids; want 1, at the end of the cooldown", n)
	}
}

func TestJWKSOutageKeepsKeys(t *testing.T) {
	t.Parallel()
	a := rsaKey(t, "key-a")
	srv := newJWKSServer(t, a)
	k := newTestKeys(t, KeysConfig{TokenCacheSize: -1})
	sp := spec(srv.url(), "RS256")
	sp.Cache = false
	v := newTestValidator(t, k, nil, sp)
	srv.srv.Close() // the IdP goes away after the first fetch
	now := time.Now()
	for i := range 3 {
		tok := sign(t, a, jwa.RS256(), claimsAt(now, map[string]any{"jti": fmt.Sprint(i)}), nil)
		if _, r := v.Verify([]byte(tok)); r != ReasonOK {
			t.Fatalf("known key during outage: %v", r)
		}
	}
	start := time.Now()
	tok := sign(t, rsaAltKey(t, "key-b"), jwa.RS256(), claimsAt(now, nil), nil)
	if _, r := v.Verify([]byte(tok)); r != ReasonUnknownKey {
		t.Errorf("unknown key during outage: %v", r)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("unknown key during outage took %v", d)
	}
	// Still good after the failed refetch.
	if _, r := v.Verify([]byte(sign(t, a, jwa.RS256(), claimsAt(now, map[string]any{"jti": "x"}), nil))); r != ReasonOK {
		t.Errorf("known key after failed refetch: %v", r)
	}
}

func TestFirstFetchFailsThenRecovers(t *testing.T) {
	t.Parallel()
	a := rsaKey(t, "key-a")
	srv := newJWKSServer(t, a)
	srv.fail.Store(true)
	k := newTestKeys(t, KeysConfig{})
	v := newTestValidator(t, k, nil, spec(srv.url(), "RS256"))
	if v.Ready() {
		t.Fatal("ready without keys")
	}
	tok := []byte(sign(t, a, jwa.RS256(), claimsAt(time.Now(), nil), nil))
	if _, r := v.Verify(tok); r != ReasonNoKeys {
		t.Fatalf("no keys yet: %v", r)
	}
	srv.fail.Store(false)
	if !eventually(t, 5*time.Second, func() bool { _, r := v.Verify(tok); return r == ReasonOK }) {
		t.Fatal("never recovered after the JWKS came back")
	}
}

func TestHTTPSWithTrustedCA(t *testing.T) {
	t.Parallel()
	a := rsaKey(t, "key-a")
	srv := newTLSJWKSServer(t, a)
	pool := x509.NewCertPool()
	pool.AddCert(srv.srv.Certificate())
	k := newTestKeys(t, KeysConfig{RootCAs: pool})
	sp := spec(srv.url(), "RS256")
	sp.DisableJwkSecurity = false
	v := newTestValidator(t, k, nil, sp)
	if _, r := v.Verify([]byte(sign(t, a, jwa.RS256(), claimsAt(time.Now(), nil), nil))); r != ReasonOK {
		t.Fatalf("https jwks: %v", r)
	}
	// Without the CA the fetch fails (TLS verification stays on, even with
	// disable_jwk_security) and nothing is accepted.
	k2 := newTestKeys(t, KeysConfig{})
	sp2 := spec(srv.url(), "RS256")
	v2 := newTestValidator(t, k2, nil, sp2)
	if _, r := v2.Verify([]byte(sign(t, a, jwa.RS256(), claimsAt(time.Now(), nil), nil))); r != ReasonNoKeys {
		t.Fatalf("untrusted https jwks: %v", r)
	}
}

func TestCheckSpec(t *testing.T) {
	t.Parallel()
	type pk struct{ Path, Kind string }
	tests := []struct {
		name string
		spec *gatewayv1.JWTValidator
		want []pk
	}{
		{"ok", &gatewayv1.JWTValidator{Alg: "RS256", JwkUrl: "https://idp/jwks"}, nil},
		{"nil", nil, []pk{{"jwt", "required"}}},
		{"http without disable", &gatewayv1.JWTValidator{Alg: "RS256", JwkUrl: "http://idp/jwks"}, []pk{{"jwt.jwk_url", "invalid"}}},
		{"http with disable", &gatewayv1.JWTValidator{Alg: "RS256", JwkUrl: "http://idp/jwks", DisableJwkSecurity: true}, nil},
		{"local path only", &gatewayv1.JWTValidator{Alg: "HS256", JwkLocalPath: "/etc/jwks.json"}, nil},
		{"no source, no alg", &gatewayv1.JWTValidator{}, []pk{{"jwt.alg", "required"}, {"jwt.jwk_url", "required"}}},
		{"alg none", &gatewayv1.JWTValidator{Alg: "none", JwkUrl: "https://idp/jwks"}, []pk{{"jwt.alg", "unsupported"}}},
		{"bad matcher and strategy", &gatewayv1.JWTValidator{Alg: "RS256", JwkUrl: "https://idp/jwks", ScopesMatcher: "some", KeyIdentifyStrategy: "x5c"}, []pk{{"jwt.key_identify_strategy", "unsupported"}, {"jwt.scopes_matcher", "unsupported"}}},
		{"bad propagate header", &gatewayv1.JWTValidator{Alg: "RS256", JwkUrl: "https://idp/jwks", PropagateClaims: []*gatewayv1.ClaimHeader{{Claim: "sub", Header: "X User"}}}, []pk{{"jwt.propagate_claims[0].header", "invalid"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []pk
			for _, v := range CheckSpec("jwt", tc.spec) {
				got = append(got, pk{v.GetPath(), v.GetKind()})
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("violations (-want +got):\n%s", d)
			}
		})
	}
}

func TestLocalJWKS(t *testing.T) {
	t.Parallel()
	hs := hmacKey(t, "")
	path := writeJWKS(t, hs)
	k := newTestKeys(t, KeysConfig{})
	v := newTestValidator(t, k, nil, &gatewayv1.JWTValidator{Alg: "HS256", JwkLocalPath: path})
	// No kid in the token: the single HS key of the set is used.
	if _, r := v.Verify([]byte(sign(t, hs, jwa.HS256(), claimsAt(time.Now(), nil), nil))); r != ReasonOK {
		t.Fatalf("local jwks: %v", r)
	}
	_, err := New(context.Background(), Config{Spec: &gatewayv1.JWTValidator{Alg: "HS256", JwkLocalPath: path + ".missing"}, Keys: k})
	if err == nil {
		t.Fatal("missing jwk_local_path accepted")
	}
}

func authzToken(t *testing.T, k testKey, extra map[string]any) []byte {
	return []byte(sign(t, k, jwa.RS256(), claimsAt(time.Now(), extra), nil))
}

func TestRolesAndScopes(t *testing.T) {
	t.Parallel()
	a := rsaKey(t, "key-a")
	srv := newJWKSServer(t, a)
	k := newTestKeys(t, KeysConfig{})
	base := func(mut func(*gatewayv1.JWTValidator)) *gatewayv1.JWTValidator {
		s := spec(srv.url(), "RS256")
		mut(s)
		return s
	}
	tests := []struct {
		name  string
		spec  *gatewayv1.JWTValidator
		extra map[string]any
		want  Reason
	}{
		{"role present", base(func(s *gatewayv1.JWTValidator) { s.Roles = []string{"admin", "ops"} }), map[string]any{"roles": []string{"user", "ops"}}, ReasonOK},
		{"role missing", base(func(s *gatewayv1.JWTValidator) { s.Roles = []string{"admin"} }), map[string]any{"roles": []string{"user"}}, ReasonRoles},
		{"roles claim absent", base(func(s *gatewayv1.JWTValidator) { s.Roles = []string{"admin"} }), nil, ReasonRoles},
		{"roles space separated", base(func(s *gatewayv1.JWTValidator) { s.Roles = []string{"admin"} }), map[string]any{"roles": "user admin"}, ReasonOK},
		{"custom roles key", base(func(s *gatewayv1.JWTValidator) { s.Roles = []string{"admin"}; s.RolesKey = "groups" }), map[string]any{"groups": []string{"admin"}}, ReasonOK},
		{"nested roles", base(func(s *gatewayv1.JWTValidator) {
			s.Roles = []string{"admin"}
			s.RolesKey = "realm_access.roles"
			s.RolesKeyIsNested = true
		}), map[string]any{"realm_access": map[string]any{"roles": []string{"admin"}}}, ReasonOK},
		{"nested roles key without is_nested is literal", base(func(s *gatewayv1.JWTValidator) {
			s.Roles = []string{"admin"}
			s.RolesKey = "realm_access.roles"
		}), map[string]any{"realm_access": map[string]any{"roles": []string{"admin"}}}, ReasonRoles},
		{"scopes any", base(func(s *gatewayv1.JWTValidator) { s.Scopes = []string{"read", "write"}; s.ScopesKey = "scope" }), map[string]any{"scope": "openid read"}, ReasonOK},
		{"scopes any none", base(func(s *gatewayv1.JWTValidator) { s.Scopes = []string{"write"}; s.ScopesKey = "scope" }), map[string]any{"scope": "openid read"}, ReasonScopes},
		{"scopes all ok", base(func(s *gatewayv1.JWTValidator) {
			s.Scopes = []string{"read", "write"}
			s.ScopesKey = "scp"
			s.ScopesMatcher = "all"
		}), map[string]any{"scp": []string{"write", "read", "x"}}, ReasonOK},
		{"scopes all missing one", base(func(s *gatewayv1.JWTValidator) {
			s.Scopes = []string{"read", "write"}
			s.ScopesKey = "scp"
			s.ScopesMatcher = "all"
		}), map[string]any{"scp": []string{"read"}}, ReasonScopes},
		{"scopes without scopes_key are skipped (KrakenD)", base(func(s *gatewayv1.JWTValidator) { s.Scopes = []string{"write"} }), map[string]any{"scope": "read"}, ReasonOK},
		{"roles checked before scopes", base(func(s *gatewayv1.JWTValidator) {
			s.Roles = []string{"admin"}
			s.Scopes = []string{"write"}
			s.ScopesKey = "scope"
		}), map[string]any{"scope": "read"}, ReasonRoles},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestValidator(t, k, nil, tc.spec)
			tok := authzToken(t, a, tc.extra)
			for range 2 { // uncached, then cached
				got, r := v.Verify(tok)
				if r != tc.want {
					t.Fatalf("reason = %v, want %v", r, tc.want)
				}
				if got == nil {
					t.Fatal("no token for a verified identity")
				}
				if r.Status() != map[bool]int{true: 200, false: 403}[r == ReasonOK] {
					t.Errorf("status %d", r.Status())
				}
			}
		})
	}
}

func TestExtract(t *testing.T) {
	t.Parallel()
	a := rsaKey(t, "key-a")
	srv := newJWKSServer(t, a)
	k := newTestKeys(t, KeysConfig{})
	tok := string(authzToken(t, a, nil))
	def := newTestValidator(t, k, nil, spec(srv.url(), "RS256"))
	custom := spec(srv.url(), "RS256")
	custom.AuthHeaderName = "X-Token"
	custom.CookieKey = "session"
	cv := newTestValidator(t, k, nil, custom)
	tests := []struct {
		name    string
		v       *Validator
		headers map[string]string
		cookies map[string]string
		want    Reason
	}{
		{"bearer", def, map[string]string{"Authorization": "Bearer " + tok}, nil, ReasonOK},
		{"bearer lowercase", def, map[string]string{"Authorization": "bearer " + tok}, nil, ReasonOK},
		{"BEARER extra spaces", def, map[string]string{"Authorization": "BEARER   " + tok}, nil, ReasonOK},
		{"bare token", def, map[string]string{"Authorization": tok}, nil, ReasonOK},
		{"default cookie", def, nil, map[string]string{"access_token": tok}, ReasonOK},
		{"header wins over cookie", def, map[string]string{"Authorization": "Bearer junk"}, map[string]string{"access_token": tok}, ReasonMalformed},
		{"nothing", def, nil, nil, ReasonMissing},
		{"basic auth is not a token", def, map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, nil, ReasonMalformed},
		{"custom header", cv, map[string]string{"X-Token": "Bearer " + tok}, nil, ReasonOK},
		{"custom header ignores Authorization", cv, map[string]string{"Authorization": "Bearer " + tok}, nil, ReasonMissing},
		{"custom cookie", cv, nil, map[string]string{"session": tok}, ReasonOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var req fasthttp.Request
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			for k, v := range tc.cookies {
				req.Header.SetCookie(k, v)
			}
			if _, r := tc.v.VerifyRequest(&req.Header); r != tc.want {
				t.Errorf("reason = %v, want %v", r, tc.want)
			}
		})
	}
}

func TestPropagateClaims(t *testing.T) {
	t.Parallel()
	a := rsaKey(t, "key-a")
	srv := newJWKSServer(t, a)
	k := newTestKeys(t, KeysConfig{})
	claims := map[string]any{
		"realm_access":            map[string]any{"roles": []string{"admin", "ops"}},
		"https://example.com/org": "acme",
		"level":                   3,
		"ratio":                   1.5,
		"verified":                true,
	}
	mk := func(preserve bool) *gatewayv1.JWTValidator {
		s := spec(srv.url(), "RS256")
		s.PropagateClaimsPreserveArray = preserve
		s.PropagateClaims = []*gatewayv1.ClaimHeader{
			{Claim: "sub", Header: "X-User"},
			{Claim: "realm_access.roles", Header: "X-Roles"},
			{Claim: "https://example.com/org", Header: "X-Org"},
			{Claim: "level", Header: "X-Level"},
			{Claim: "ratio", Header: "X-Ratio"},
			{Claim: "verified", Header: "X-Verified"},
			{Claim: "realm_access", Header: "X-Realm"},
			{Claim: "missing", Header: "X-Missing"},
		}
		return s
	}
	tests := []struct {
		name     string
		preserve bool
		want     map[string][]string
	}{
		{"joined", false, map[string][]string{
			"X-User": {"alice"}, "X-Roles": {"admin,ops"}, "X-Org": {"acme"}, "X-Level": {"3"},
			"X-Ratio": {"1.5"}, "X-Verified": {"true"}, "X-Realm": {`{"roles":["admin","ops"]}`},
		}},
		{"preserve array", true, map[string][]string{
			"X-User": {"alice"}, "X-Roles": {"admin", "ops"}, "X-Org": {"acme"}, "X-Level": {"3"},
			"X-Ratio": {"1.5"}, "X-Verified": {"true"}, "X-Realm": {`{"roles":["admin","ops"]}`},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestValidator(t, k, nil, mk(tc.preserve))
			tok, r := v.Verify(authzToken(t, a, claims))
			if r != ReasonOK {
				t.Fatal(r)
			}
			var req fasthttp.Request
			req.Header.Set("X-User", "spoofed")
			req.Header.Set("X-Missing", "spoofed")
			tok.SetHeaders(&req.Header)
			got := map[string][]string{}
			for _, name := range []string{"X-User", "X-Roles", "X-Org", "X-Level", "X-Ratio", "X-Verified", "X-Realm", "X-Missing"} {
				for _, val := range req.Header.PeekAll(name) {
					got[name] = append(got[name], string(val))
				}
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("headers (-want +got):\n%s", d)
			}
			hs := tok.Headers()
			if len(hs) != 8 || hs[7].Name != "X-Missing" || hs[7].Values != nil {
				t.Errorf("Headers() = %+v", hs)
			}
		})
	}
}

func TestPlaceholderValues(t *testing.T) {
	t.Parallel()
	a := rsaKey(t, "key-a")
	srv := newJWKSServer(t, a)
	k := newTestKeys(t, KeysConfig{})
	v := newTestValidator(t, k, nil, spec(srv.url(), "RS256"))
	tok, r := v.Verify(authzToken(t, a, map[string]any{
		"tenant":  "t-42",
		"num":     42,
		"float":   2.5,
		"big":     json.Number("12345678901234567890"),
		"sci":     json.Number("1e3"),
		"list":    []any{"a", 1, true},
		"obj":     map[string]any{"k": "v"},
		"flag":    false,
		"nothing": nil,
	}))
	if r != ReasonOK {
		t.Fatal(r)
	}
	tests := []struct {
		claim string
		want  string
		ok    bool
	}{
		{"tenant", "t-42", true},
		{"sub", "alice", true},
		{"num", "42", true},
		{"float", "2.5", true},
		{"big", "12345678901234567890", true},
		{"sci", "1000", true},
		{"list", "a,1,true", true},
		{"aud", "api,web", true},
		{"obj", `{"k":"v"}`, true},
		{"flag", "false", true},
		{"nothing", "", false},
		{"absent", "", false},
		{"obj.k", "", false}, // placeholders take top-level names only
	}
	for _, tc := range tests {
		got, ok := tok.Value(tc.claim)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Value(%q) = %q, %v; want %q, %v", tc.claim, got, ok, tc.want, tc.ok)
		}
	}
}

// The cache honours exp (via the clock hook) even for a token verified
// before, and a key-set change forces a full check.
func TestCacheExpiryAndGeneration(t *testing.T) {
	t.Parallel()
	a := rsaKey(t, "key-a")
	srv := newJWKSServer(t, a)
	var offset atomic.Int64
	k := newTestKeys(t, KeysConfig{Clock: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	v := newTestValidator(t, k, nil, spec(srv.url(), "RS256"))
	now := time.Now()
	tok := []byte(sign(t, a, jwa.RS256(), claimsAt(now, map[string]any{"exp": now.Add(10 * time.Second).Unix()}), nil))
	if _, r := v.Verify(tok); r != ReasonOK {
		t.Fatal(r)
	}
	if n := v.c.cache.len(); n != 1 {
		t.Fatalf("cache holds %d entries", n)
	}
	offset.Store(int64(12 * time.Second)) // past exp + 1 s leeway
	if _, r := v.Verify(tok); r != ReasonExpired {
		t.Fatalf("cached token after exp: %v", r)
	}
	offset.Store(0)
	gen := v.c.src.gen()
	// Same key, new set content: new generation, token re-verified and OK.
	srv.set(t, a, rsaAltKey(t, "key-b"))
	tokB := []byte(sign(t, rsaAltKey(t, "key-b"), jwa.RS256(), claimsAt(now, nil), nil))
	if !eventually(t, 5*time.Second, func() bool { _, r := v.Verify(tokB); return r == ReasonOK }) {
		t.Fatal("key-b never accepted")
	}
	if v.c.src.gen() == gen {
		t.Fatal("generation did not change with the key set")
	}
	if _, r := v.Verify(tok); r != ReasonOK {
		t.Fatalf("re-verified token: %v", r)
	}
}

func TestCacheBounded(t *testing.T) {
	t.Parallel()
	hs := hmacKey(t, "hs")
	path := writeJWKS(t, hs)
	k := newTestKeys(t, KeysConfig{TokenCacheSize: 64})
	v := newTestValidator(t, k, nil, &gatewayv1.JWTValidator{Alg: "HS256", JwkLocalPath: path})
	now := time.Now()
	for i := range 1000 {
		tok := sign(t, hs, jwa.HS256(), claimsAt(now, map[string]any{"jti": fmt.Sprint(i)}), nil)
		if _, r := v.Verify([]byte(tok)); r != ReasonOK {
			t.Fatal(r)
		}
	}
	if n := v.c.cache.len(); n > 64 {
		t.Errorf("cache holds %d entries, bound 64", n)
	}
}

// Validators with identical settings share one compiled core (and cache);
// closing all of them stops the source.
func TestSharedCoreLifecycle(t *testing.T) {
	t.Parallel()
	a := rsaKey(t, "key-a")
	srv := newJWKSServer(t, a)
	k := newTestKeys(t, KeysConfig{})
	sp := spec(srv.url(), "RS256")
	ctx := context.Background()
	v1, err := New(ctx, Config{Spec: sp, Keys: k})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := New(ctx, Config{Spec: spec(srv.url(), "RS256"), Keys: k})
	if err != nil {
		t.Fatal(err)
	}
	if v1.c != v2.c {
		t.Error("identical settings did not share a core")
	}
	tok := authzToken(t, a, nil)
	v1.Verify(tok)
	if v2.c.cache.len() != 1 {
		t.Error("cache not shared")
	}
	v1.Close()
	v1.Close()
	if _, r := v2.Verify(tok); r != ReasonOK {
		t.Errorf("v2 after v1.Close: %v", r)
	}
	v2.Close()
	ns, nc := k.sources.Len(), k.cores.Len()
	if ns != 0 || nc != 0 {
		t.Errorf("after closing every validator: %d sources, %d cores", ns, nc)
	}
}

func TestRevokedToken(t *testing.T) {
	t.Parallel()
	a := rsaKey(t, "key-a")
	srv := newJWKSServer(t, a)
	k := newTestKeys(t, KeysConfig{})
	var offset atomic.Int64
	rev := NewRevocations(RevocationsConfig{
		Revoker:       &gatewayv1.Revoker{N: 1000, P: 1e-6, TokenKeys: []string{"jti", "sub"}},
		RebuildPeriod: -1,
		Clock:         func() time.Time { return time.Now().Add(time.Duration(offset.Load())) },
	})
	t.Cleanup(rev.Close)
	v := newTestValidator(t, k, rev, spec(srv.url(), "RS256"))
	tok := authzToken(t, a, map[string]any{"jti": "abc", "sub": "bob"})
	other := authzToken(t, a, map[string]any{"jti": "def", "sub": "carol"})
	for _, tk := range [][]byte{tok, other} {
		if _, r := v.Verify(tk); r != ReasonOK {
			t.Fatal(r)
		}
	}
	until := time.Now().Add(time.Minute).UnixMilli()
	if err := rev.ApplyDelta([]*gatewayv1.RevocationEntry{{Seq: 1, Claim: "jti", Value: "abc", ExpiresUnixMs: until}}, 0, 1); err != nil {
		t.Fatal(err)
	}
	// Cached, but revocation runs on every request.
	if got, r := v.Verify(tok); r != ReasonRevoked || got != nil {
		t.Fatalf("revoked jti: %v, %v", got, r)
	}
	if _, r := v.Verify(other); r != ReasonOK {
		t.Fatalf("other token: %v", r)
	}
	if err := rev.ApplyDelta([]*gatewayv1.RevocationEntry{{Seq: 2, Claim: "sub", Value: "carol", ExpiresUnixMs: until}}, 1, 2); err != nil {
		t.Fatal(err)
	}
	if _, r := v.Verify(other); r != ReasonRevoked {
		t.Fatalf("revoked sub: %v", r)
	}
	// After the revocation expires the token is accepted again (it is
	// otherwise valid).
	offset.Store(int64(2 * time.Minute))
	if _, r := v.Verify(tok); r != ReasonOK {
		t.Fatalf("after revocation expiry: %v", r)
	}
}

func TestKeyIdentifyStrategies(t *testing.T) {
	t.Parallel()
	genKeys(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &rsaPriv.PublicKey, rsaPriv)
	if err != nil {
		t.Fatal(err)
	}
	s1 := sha1.Sum(der)
	s256 := sha256.Sum256(der)
	x5t, x5tS256 := base64.RawURLEncoding.EncodeToString(s1[:]), base64.RawURLEncoding.EncodeToString(s256[:])
	key := rsaKey(t, "kid-1")
	pub, err := key.pub.Clone()
	if err != nil {
		t.Fatal(err)
	}
	var chain cert.Chain
	if err := chain.AddString(base64.StdEncoding.EncodeToString(der)); err != nil {
		t.Fatal(err)
	}
	if err := pub.Set(jwk.X509CertChainKey, &chain); err != nil {
		t.Fatal(err)
	}
	key.pub = pub
	srv := newJWKSServer(t, key)
	k := newTestKeys(t, KeysConfig{UnknownKeyWait: -1})
	noKid := testKey{priv: key.priv}
	tests := []struct {
		strategy string
		hdr      map[string]any
		kid      bool
		want     Reason
	}{
		{"kid", nil, true, ReasonOK},
		{"x5t", map[string]any{"x5t": x5t}, false, ReasonOK},
		{"x5t", map[string]any{"x5t": x5tS256}, false, ReasonUnknownKey},
		{"x5t#S256", map[string]any{"x5t#S256": x5tS256}, false, ReasonOK},
		{"kid_x5t", map[string]any{"x5t": x5t}, true, ReasonOK},
		{"kid_x5t", nil, true, ReasonUnknownKey},
	}
	for _, tc := range tests {
		t.Run(tc.strategy, func(t *testing.T) {
			sp := spec(srv.url(), "RS256")
			sp.KeyIdentifyStrategy = tc.strategy
			v := newTestValidator(t, k, nil, sp)
			signer := noKid
			if tc.kid {
				signer = key
			}
			tok := sign(t, signer, jwa.RS256(), claimsAt(time.Now(), nil), tc.hdr)
			if _, r := v.Verify([]byte(tok)); r != tc.want {
				t.Errorf("reason = %v, want %v", r, tc.want)
			}
		})
	}
}

// A claim carrying NUL, CR LF or other control bytes never reaches a
// backend header with them (issue 10).
func TestHeaderSafe(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"alice":                   "alice",
		"alice\x00admin":          "aliceadmin",
		"a\r\nX-Admin: 1":         "aX-Admin: 1",
		"tab\tkept, del\x7f gone": "tab\tkept, del gone",
		"ünïcode":                 "ünïcode",
	} {
		if got := headerSafe(in); got != want {
			t.Errorf("headerSafe(%q) = %q, want %q", in, got, want)
		}
	}
	p := &propagation{claims: []string{"sub", "groups"}, names: []string{"X-Sub", "X-Groups"}, preserveArray: true}
	got := p.values(&Claims{m: map[string]any{"sub": "bob\x00root", "groups": []any{"a\x01", "b"}}})
	if got[0][0] != "bobroot" || got[1][0] != "a" || got[1][1] != "b" {
		t.Errorf("propagated values = %q", got)
	}
}

// TestTokenLifetime covers require_exp and max_token_lifetime: the bound is
// on exp - iat, so a long-lived token stays refused as it ages.
func TestTokenLifetime(t *testing.T) {
	t.Parallel()
	a := rsaKey(t, "key-a")
	srv := newJWKSServer(t, a)
	k := newTestKeys(t, KeysConfig{})
	now := time.Now()
	with := func(mut func(*gatewayv1.JWTValidator)) *gatewayv1.JWTValidator {
		s := spec(srv.url(), "RS256")
		mut(s)
		return s
	}
	requireExp := with(func(s *gatewayv1.JWTValidator) { s.RequireExp = true })
	hour := with(func(s *gatewayv1.JWTValidator) { s.MaxTokenLifetimeMs = time.Hour.Milliseconds() })
	tests := []struct {
		name   string
		spec   *gatewayv1.JWTValidator
		claims map[string]any
		want   Reason
	}{
		{"no exp, not required (KrakenD)", spec(srv.url(), "RS256"), claimsAt(now, map[string]any{"exp": nil}), ReasonOK},
		{"no exp, required", requireExp, claimsAt(now, map[string]any{"exp": nil}), ReasonNoExpiry},
		{"exp, required", requireExp, claimsAt(now, nil), ReasonOK},
		{"exp 1e300, required", requireExp, claimsAt(now, map[string]any{"exp": 1e300}), ReasonOK},
		{"exp 1e300, bounded", hour, claimsAt(now, map[string]any{"exp": 1e300}), ReasonLifetime},
		{"lifetime at the bound", hour, claimsAt(now, map[string]any{"exp": now.Add(time.Hour).Unix()}), ReasonOK},
		{"lifetime over the bound", hour, claimsAt(now, map[string]any{"exp": now.Add(time.Hour + time.Second).Unix()}), ReasonLifetime},
		{"bounded, no exp", hour, claimsAt(now, map[string]any{"exp": nil}), ReasonNoExpiry},
		{"bounded, no iat", hour, claimsAt(now, map[string]any{"iat": nil}), ReasonLifetime},
		// Issued 2 h ago for 3 h: 1 h left, but the lifetime is 3 h.
		{"aged long-lived token", hour, claimsAt(now, map[string]any{"iat": now.Add(-2 * time.Hour).Unix(), "nbf": nil, "exp": now.Add(time.Hour).Unix()}), ReasonLifetime},
		{"iat far in the past", hour, claimsAt(now, map[string]any{"iat": -1e300}), ReasonLifetime},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestValidator(t, k, nil, tc.spec)
			tok := []byte(sign(t, a, jwa.RS256(), tc.claims, nil))
			for range 2 { // uncached, then cached
				if _, r := v.Verify(tok); r != tc.want {
					t.Fatalf("reason = %v, want %v", r, tc.want)
				}
			}
			if tc.want != ReasonOK && tc.want.Status() != 401 {
				t.Fatalf("status %d, want 401", tc.want.Status())
			}
		})
	}
	if vs := CheckSpec("jwt", with(func(s *gatewayv1.JWTValidator) { s.MaxTokenLifetimeMs = 10 })); len(vs) != 1 || vs[0].GetPath() != "jwt.max_token_lifetime" {
		t.Fatalf("CheckSpec(max_token_lifetime 10ms) = %v, want one violation at jwt.max_token_lifetime", vs)
	}
}

// TestRevocationsUnknownFailClosed: a set marked unknown refuses every
// valid token with 503 (cached or not) until Confirm, then revocation
// applies as usual.
func TestRevocationsUnknownFailClosed(t *testing.T) {
	t.Parallel()
	a := rsaKey(t, "key-a")
	srv := newJWKSServer(t, a)
	k := newTestKeys(t, KeysConfig{})
	rev := NewRevocations(RevocationsConfig{RebuildPeriod: -1})
	v := newTestValidator(t, k, rev, spec(srv.url(), "RS256"))
	good := authzToken(t, a, map[string]any{"jti": "good"})
	revoked := authzToken(t, a, map[string]any{"jti": "bad"})
	if _, r := v.Verify(good); r != ReasonOK { // now cached
		t.Fatalf("before: %v", r)
	}
	rev.MarkUnknown()
	if rev.Known() {
		t.Fatal("Known after MarkUnknown")
	}
	for _, tok := range [][]byte{good, revoked} {
		if _, r := v.Verify(tok); r != ReasonRevocationsUnknown || r.Status() != 503 {
			t.Fatalf("unknown set: %v (status %d), want revocations_unknown 503", r, r.Status())
		}
	}
	if _, r := v.Verify([]byte("garbage")); r != ReasonMalformed {
		t.Fatalf("garbage with unknown set: %v, want malformed (401)", r)
	}
	if err := rev.ApplyDelta([]*gatewayv1.RevocationEntry{{Claim: "jti", Value: "bad"}}, 0, 1); err != nil {
		t.Fatal(err)
	}
	rev.Confirm()
	if _, r := v.Verify(good); r != ReasonOK {
		t.Fatalf("confirmed, good token: %v", r)
	}
	if _, r := v.Verify(revoked); r != ReasonRevoked {
		t.Fatalf("confirmed, revoked token: %v", r)
	}
}
