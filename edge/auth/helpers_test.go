package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// testKey is a signing key made by a test and its public JWK.
type testKey struct {
	kid  string
	alg  jwa.SignatureAlgorithm
	priv any     // what jws.Sign signs with
	pub  jwk.Key // what the JWKS serves
}

// Key generation is slow (RSA); keep one key per kind for the whole run.
var (
	keyOnce sync.Once
	rsaPriv *rsa.PrivateKey
	rsaAlt  *rsa.PrivateKey
	ecPriv  *ecdsa.PrivateKey
	ec384   *ecdsa.PrivateKey
	edPriv  ed25519.PrivateKey
)

func genKeys(t testing.TB) {
	keyOnce.Do(func() {
		var err error
		if rsaPriv, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if rsaAlt, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecPriv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			panic(err)
		}
		if _, edPriv, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
}

func mkKey(t testing.TB, kid string, alg jwa.SignatureAlgorithm, priv, pubRaw any) testKey {
	t.Helper()
	pub, err := jwk.Import(pubRaw)
	if err != nil {
		t.Fatalf("import key: %v", err)
	}
	if err := pub.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: alg, priv: priv, pub: pub}
}

func rsaKey(t testing.TB, kid string) testKey {
	genKeys(t)
	return mkKey(t, kid, jwa.RS256(), rsaPriv, &rsaPriv.PublicKey)
}

func rsaAltKey(t testing.TB, kid string) testKey {
	genKeys(t)
	return mkKey(t, kid, jwa.RS256(), rsaAlt, &rsaAlt.PublicKey)
}

func ecKey(t testing.TB, kid string) testKey {
	genKeys(t)
	return mkKey(t, kid, jwa.ES256(), ecPriv, &ecPriv.PublicKey)
}

func edKey(t testing.TB, kid string) testKey {
	genKeys(t)
	return mkKey(t, kid, jwa.EdDSA(), edPriv, edPriv.Public())
}

func hmacKey(t testing.TB, kid string) testKey {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	return mkKey(t, kid, jwa.HS256(), secret, secret)
}

// sign makes a compact JWS of claims with k, header kid = k.kid (omitted when
// empty) plus extra header fields.
func sign(t testing.TB, k testKey, alg jwa.SignatureAlgorithm, claims map[string]any, extra map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	if k.kid != "" {
		if err := hdr.Set(jws.KeyIDKey, k.kid); err != nil {
			t.Fatal(err)
		}
	}
	for name, v := range extra {
		if err := hdr.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	out, err := jws.Sign(payload, jws.WithKey(alg, k.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return string(out)
}

// claimsAt returns standard claims valid around now.
func claimsAt(now time.Time, extra map[string]any) map[string]any {
	c := map[string]any{
		"iss": "https://idp.test",
		"aud": []string{"api", "web"},
		"sub": "alice",
		"jti": "token-1",
		"iat": now.Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// jwksServer is a real JWKS endpoint on loopback whose key set the test can
// replace.
type jwksServer struct {
	srv     *httptest.Server
	body    atomic.Pointer[[]byte]
	fetches atomic.Int64
	fail    atomic.Bool
}

func newJWKSServer(t testing.TB, keys ...testKey) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(t, keys...)
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func newTLSJWKSServer(t testing.TB, keys ...testKey) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(t, keys...)
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // untrusted-client handshakes are expected
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *jwksServer) serve(w http.ResponseWriter, _ *http.Request) {
	s.fetches.Add(1)
	if s.fail.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(*s.body.Load())
}

func (s *jwksServer) set(t testing.TB, keys ...testKey) {
	t.Helper()
	b := jwksDoc(t, keys...)
	s.body.Store(&b)
}

func (s *jwksServer) url() string { return s.srv.URL + "/jwks.json" }

func jwksDoc(t testing.TB, keys ...testKey) []byte {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		if err := set.AddKey(k.pub); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeJWKS(t testing.TB, keys ...testKey) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(p, jwksDoc(t, keys...), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newTestKeys(t testing.TB, cfg KeysConfig) *Keys {
	t.Helper()
	k, err := NewKeys(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

func newTestValidator(t testing.TB, k *Keys, rev *Revocations, spec *gatewayv1.JWTValidator) *Validator {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := New(ctx, Config{Spec: spec, Keys: k, Revocations: rev, Name: "GET /test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// spec returns an RS256-style validator for url with the test issuer and
// audience; mutate the result for other cases.
func spec(url, alg string) *gatewayv1.JWTValidator {
	return &gatewayv1.JWTValidator{
		Alg:                alg,
		JwkUrl:             url,
		DisableJwkSecurity: true,
		Cache:              true,
		Issuer:             "https://idp.test",
		Audience:           []string{"api"},
	}
}

// eventually polls f until it returns true or d passes.
func eventually(t testing.TB, d time.Duration, f func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if f() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return f()
}

// parseUnverified splits and decodes a compact JWT without checking its
// signature: the protected header's alg and kid and the claims. Only the
// fuzz target uses it (the parsing path on its own).
func parseUnverified(tok []byte) (alg, kid string, claims *Claims, err error) {
	c, ok := splitCompact(tok)
	if !ok {
		return "", "", nil, fmt.Errorf("parse token: %w", errMalformed)
	}
	h, err := parseHeader(c.header)
	if err != nil {
		return "", "", nil, fmt.Errorf("parse token: %w", err)
	}
	if _, err := decodeSegment(c.sig); err != nil {
		return "", "", nil, fmt.Errorf("parse token: signature: %w", err)
	}
	raw, err := decodeSegment(c.payload)
	if err != nil {
		return "", "", nil, fmt.Errorf("parse token: payload: %w", err)
	}
	m, err := parseClaims(raw)
	if err != nil {
		return "", "", nil, fmt.Errorf("parse token: %w", err)
	}
	return h.Alg, h.Kid, &Claims{m: m}, nil
}
