package auth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"golang.org/x/crypto/nacl/secretbox"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// signerJWKS is a private JWKS made for these tests (rsa1 RS256, ec1 P-256,
// ed1 Ed25519, oct1 HS256).
const signerJWKS = "testdata/signer-jwks.json"

// Tokens KrakenD CE 2.12.1 (krakend-jose, go-jose) issued with
// signerJWKS for the object {"sub":"a<b>&c","n":1.0,"e":1e3,
// "big":12345678901234567890,"u":"\u00e9\u2028","z":null,"arr":[1,{"b":2,"a":1}]}
// (recorded on loopback; its payload is that object as KrakenD marshals it).
const (
	krakendHS256     = "eyJhbGciOiJIUzI1NiIsImtpZCI6Im9jdDEiLCJ0eXAiOiJKV1QifQ.eyJhcnIiOlsxLHsiYSI6MSwiYiI6Mn1dLCJiaWciOjEyMzQ1Njc4OTAxMjM0NTY3ODkwLCJlIjoxZTMsIm4iOjEuMCwic3ViIjoiYVx1MDAzY2JcdTAwM2VcdTAwMjZjIiwidSI6IsOpXHUyMDI4IiwieiI6bnVsbH0.Hi1-J0o2J734bosQ7L1ex4yeKDmuzXILEnWPuh8cvh8"
	krakendHS256Full = "{\"payload\":\"eyJhcnIiOlsxLHsiYSI6MSwiYiI6Mn1dLCJiaWciOjEyMzQ1Njc4OTAxMjM0NTY3ODkwLCJlIjoxZTMsIm4iOjEuMCwic3ViIjoiYVx1MDAzY2JcdTAwM2VcdTAwMjZjIiwidSI6IsOpXHUyMDI4IiwieiI6bnVsbH0\",\"protected\":\"eyJhbGciOiJIUzI1NiIsImtpZCI6Im9jdDEiLCJ0eXAiOiJKV1QifQ\",\"signature\":\"Hi1-J0o2J734bosQ7L1ex4yeKDmuzXILEnWPuh8cvh8\"}"
	krakendRS256     = "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYTEiLCJ0eXAiOiJKV1QifQ.eyJhcnIiOlsxLHsiYSI6MSwiYiI6Mn1dLCJiaWciOjEyMzQ1Njc4OTAxMjM0NTY3ODkwLCJlIjoxZTMsIm4iOjEuMCwic3ViIjoiYVx1MDAzY2JcdTAwM2VcdTAwMjZjIiwidSI6IsOpXHUyMDI4IiwieiI6bnVsbH0.h2QIpFJPYtF5hO1rIkSCGJWhG59UcYjRNHNyewEit4YLZ7frrOq90FxFCkr-iviKV1hLo553wRpZv1msoNsqOCfbHx0N39figZh6TiGM8bLBhM5KqVc-GVl8Lo4dC7TlI_280cG7qpTlwlRBltb8darOiWifykd9hPz70DFicW7eUSdlZg6pX2ShxNHz27JU4uFKkGNej3ndO0_9T8_3IVY3Wio8mmsISJC4eQXuxznD4slcQC9G5fR4n18mCpHtDFp8N7ZPfrFICba9Sc6mKIl5eVg48dLeK7cXylSilWYUx2ppliCjSw0iMcM7aTJLHNvkr8j0MdZtx_lJZqawVA"
)

func newTestSigner(t testing.TB, k *Keys, s *gatewayv1.JWTSigner) *Signer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sg, err := NewSigner(ctx, SignerConfig{Spec: s, Keys: k, Name: "GET /token"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sg.Close)
	return sg
}

func localSigner(alg, kid string) *gatewayv1.JWTSigner {
	return &gatewayv1.JWTSigner{Alg: alg, Kid: kid, KeysToSign: []string{"access_token"}, JwkLocalPath: signerJWKS}
}

// payloadOf is the decoded payload segment of a compact token.
func payloadOf(t *testing.T, tok string) []byte {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("%q: not a compact JWS", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSignerMatchesKrakenD(t *testing.T) {
	t.Parallel()
	k := newTestKeys(t, KeysConfig{})
	payload := payloadOf(t, krakendHS256)
	for _, tc := range []struct {
		name string
		spec *gatewayv1.JWTSigner
		want string
	}{
		{"HS256 compact", localSigner("HS256", "oct1"), krakendHS256},
		{"HS256 full", func() *gatewayv1.JWTSigner { s := localSigner("HS256", "oct1"); s.Full = true; return s }(), krakendHS256Full},
		{"RS256 compact", localSigner("RS256", "rsa1"), krakendRS256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sg := newTestSigner(t, k, tc.spec)
			got, err := sg.Sign([]byte("keep:"), payload)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "keep:"+tc.want {
				t.Errorf("token\n got %s\nwant keep:%s", got, tc.want)
			}
		})
	}
}

// TestSignerRoundTrip signs with every key type and checks the token with
// the public key and the header KrakenD writes.
func TestSignerRoundTrip(t *testing.T) {
	t.Parallel()
	k := newTestKeys(t, KeysConfig{})
	raw, err := os.ReadFile(signerJWKS)
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"sub":"x"}`)
	for _, tc := range []struct{ alg, kid, typ, header string }{
		{"ES256", "ec1", "", `{"alg":"ES256","kid":"ec1","typ":"JWT"}`},
		{"EdDSA", "ed1", "", `{"alg":"EdDSA","kid":"ed1","typ":"JWT"}`},
		{"PS256", "rsa1", "", `{"alg":"PS256","kid":"rsa1","typ":"JWT"}`},
		{"RS512", "rsa1", "at+jwt", `{"alg":"RS512","kid":"rsa1","typ":"at+jwt"}`},
		// The JWK says HS256; go-jose (so KrakenD) signs with the
		// signer's alg regardless.
		{"HS512", "oct1", "<&>", `{"alg":"HS512","kid":"oct1","typ":"\u003c\u0026\u003e"}`},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			s := localSigner(tc.alg, tc.kid)
			s.Typ = tc.typ
			tok, err := newTestSigner(t, k, s).Sign(nil, payload)
			if err != nil {
				t.Fatal(err)
			}
			hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(string(tok), ".")[0])
			if string(hdr) != tc.header {
				t.Errorf("header %s, want %s", hdr, tc.header)
			}
			key, _ := set.LookupKeyID(tc.kid)
			pub, err := key.PublicKey()
			if err != nil {
				t.Fatal(err)
			}
			alg, _ := jwa.LookupSignatureAlgorithm(tc.alg)
			got, err := jws.Verify(tok, jws.WithKey(alg, pub))
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if string(got) != string(payload) {
				t.Errorf("payload %s, want %s", got, payload)
			}
		})
	}
}

func TestSignerWithoutKey(t *testing.T) {
	t.Parallel()
	k := newTestKeys(t, KeysConfig{})
	pubOnly := writeJWKS(t, rsaKey(t, "rsa1")) // public keys only
	for _, tc := range []struct {
		name string
		spec *gatewayv1.JWTSigner
	}{
		{"unknown kid", localSigner("HS256", "nope")},
		{"alg of another key type", localSigner("RS256", "oct1")},
		{"curve of another alg", localSigner("ES384", "ec1")},
		{"public key only", &gatewayv1.JWTSigner{Alg: "RS256", Kid: "rsa1", KeysToSign: []string{"t"}, JwkLocalPath: pubOnly}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sg := newTestSigner(t, k, tc.spec)
			if sg.Ready() {
				t.Error("Ready with no usable key")
			}
			out, err := sg.Sign([]byte("x"), []byte(`{}`))
			if !errors.Is(err, ErrNoSigningKey) || string(out) != "x" {
				t.Errorf("Sign = %q, %v; want x, ErrNoSigningKey", out, err)
			}
		})
	}
}

func TestCheckSignerSpec(t *testing.T) {
	t.Parallel()
	vs := CheckSignerSpec("s", &gatewayv1.JWTSigner{Alg: "none", JwkUrl: "http://idp/k",
		JwksTls: &gatewayv1.JWKSClientTLS{CipherSuites: []uint32{5}, Fingerprints: [][]byte{{1}}}})
	var got []string
	for _, v := range vs {
		got = append(got, v.GetPath()+" "+v.GetKind())
	}
	want := []string{"s.alg unsupported", "s.kid required", "s.keys_to_sign required", "s.jwk_url invalid",
		"s.cipher_suites[0] invalid", "s.jwk_fingerprints[0] invalid"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// privateJWKS is a JWKS document holding the private keys given.
func privateJWKS(t testing.TB, keys map[string]any) []byte {
	t.Helper()
	set := jwk.NewSet()
	for kid, raw := range keys {
		key, err := jwk.Import(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := key.Set(jwk.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
		if err := set.AddKey(key); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSignerKeyRotation: a kid the key set lacks is a 401 and asks for a
// re-fetch; once the JWKS server publishes it, tokens are signed with it.
func TestSignerKeyRotation(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t)
	old := privateJWKS(t, map[string]any{"old": []byte("0123456789abcdef0123456789abcdef")})
	srv.body.Store(&old)
	k := newTestKeys(t, KeysConfig{})
	sg := newTestSigner(t, k, &gatewayv1.JWTSigner{Alg: "HS256", Kid: "new", KeysToSign: []string{"t"}, JwkUrl: srv.url(), DisableJwkSecurity: true})
	if _, err := sg.Sign(nil, []byte(`{}`)); !errors.Is(err, ErrNoSigningKey) {
		t.Fatalf("before rotation: %v, want ErrNoSigningKey", err)
	}
	secret := []byte("fedcba9876543210fedcba9876543210")
	rotated := privateJWKS(t, map[string]any{"old": []byte("0123456789abcdef0123456789abcdef"), "new": secret})
	srv.body.Store(&rotated)
	var tok []byte
	if !eventually(t, 5*time.Second, func() bool {
		var err error
		tok, err = sg.Sign(nil, []byte(`{"a":1}`))
		return err == nil
	}) {
		t.Fatal("the rotated key was never used")
	}
	if _, err := jws.Verify(tok, jws.WithKey(jwa.HS256(), secret)); err != nil {
		t.Errorf("token not signed with the new key: %v", err)
	}
}

// TestJWKSClientTLS: jwk_fingerprints pins the JWKS server's key and
// jwk_local_ca adds a trusted CA, for validators and signers alike.
func TestJWKSClientTLS(t *testing.T) {
	t.Parallel()
	srv := newTLSJWKSServer(t, rsaKey(t, "k1"))
	cert := srv.srv.Certificate()
	der, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pin := sha256.Sum256(der)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		roots *x509.CertPool
		tls   *gatewayv1.JWKSClientTLS
		ready bool
	}{
		{"pinned key", roots, &gatewayv1.JWKSClientTLS{Fingerprints: [][]byte{pin[:]}}, true},
		{"other pin", roots, &gatewayv1.JWKSClientTLS{Fingerprints: [][]byte{make([]byte, 32)}}, false},
		{"local CA", nil, &gatewayv1.JWKSClientTLS{LocalCa: caFile}, true},
		{"no local CA", nil, nil, false},
		{"cipher suites", roots, &gatewayv1.JWKSClientTLS{CipherSuites: []uint32{uint32(tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256), uint32(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := newTestKeys(t, KeysConfig{RootCAs: tc.roots, FetchTimeout: 2 * time.Second})
			s := spec(srv.url(), "RS256")
			s.DisableJwkSecurity = false
			s.JwksTls = tc.tls
			if v := newTestValidator(t, k, nil, s); v.Ready() != tc.ready {
				t.Errorf("validator Ready = %v, want %v", v.Ready(), tc.ready)
			}
		})
	}
	t.Run("missing local CA", func(t *testing.T) {
		t.Parallel()
		k := newTestKeys(t, KeysConfig{})
		s := spec(srv.url(), "RS256")
		s.JwksTls = &gatewayv1.JWKSClientTLS{LocalCa: filepath.Join(t.TempDir(), "none.pem")}
		if _, err := New(context.Background(), Config{Spec: s, Keys: k, Name: "x"}); err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Errorf("New = %v, want a missing-file error", err)
		}
	})
}

// encryptJWKS encrypts a JWKS file as krakend-jose's secrets package does
// with a base64key:// keeper, and returns the snapshot's JWKSEncryption.
func encryptJWKS(t *testing.T, plain []byte, keeper [32]byte) ([]byte, *gatewayv1.JWKSEncryption) {
	t.Helper()
	var nonce [24]byte
	copy(nonce[:], "nonce-nonce-nonce-nonce!")
	passphrase := []byte("file passphrase")
	sealed := secretbox.Seal(nonce[:], passphrase, &nonce, &keeper)
	sum := md5.Sum(passphrase)
	block, err := aes.NewCipher([]byte(hex.EncodeToString(sum[:])))
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	gn := []byte("gcm-nonce-12")
	return gcm.Seal(append([]byte(nil), gn...), gn, plain, nil), &gatewayv1.JWKSEncryption{KeeperKey: keeper[:], CypherKey: sealed}
}

// TestEncryptedLocalJWKS: secret_url (base64key://) and cypher_key open
// an encrypted jwk_local_path, for the signer as for the validator
// (KrakenD signed the same token with the same encrypted file).
func TestEncryptedLocalJWKS(t *testing.T) {
	t.Parallel()
	plain, err := os.ReadFile(signerJWKS)
	if err != nil {
		t.Fatal(err)
	}
	var keeper [32]byte
	copy(keeper[:], "keeper-key-0123456789abcdefghijk")
	data, enc := encryptJWKS(t, plain, keeper)
	file := filepath.Join(t.TempDir(), "jwks.enc")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	k := newTestKeys(t, KeysConfig{})
	s := &gatewayv1.JWTSigner{Alg: "HS256", Kid: "oct1", KeysToSign: []string{"t"}, JwkLocalPath: file, JwksEncryption: enc}
	tok, err := newTestSigner(t, k, s).Sign(nil, payloadOf(t, krakendHS256))
	if err != nil || string(tok) != krakendHS256 {
		t.Errorf("Sign = %s, %v; want KrakenD's token", tok, err)
	}
	v := newTestValidator(t, k, nil, &gatewayv1.JWTValidator{Alg: "HS256", JwkLocalPath: file, JwksEncryption: enc})
	if _, r := v.Verify([]byte(krakendHS256)); r != ReasonOK {
		t.Errorf("validator: %s", r)
	}

	wrong := &gatewayv1.JWKSEncryption{KeeperKey: make([]byte, 32), CypherKey: enc.GetCypherKey()}
	s.JwksEncryption = wrong
	if _, err := NewSigner(context.Background(), SignerConfig{Spec: s, Keys: k, Name: "x"}); err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Errorf("wrong keeper key: %v", err)
	}
}

// BenchmarkSign is auth/signer's per-token cost (only endpoints with a
// signer pay it): HS256 and RS256 (2048-bit) over a small claim set.
func BenchmarkSign(b *testing.B) {
	k, err := NewKeys(KeysConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	payload := []byte(`{"aud":"http://api.example.com","exp":1735689600,"iss":"https://krakend.io","roles":["role_y"],"sub":"1234567890"}`)
	for _, tc := range []struct{ alg, kid string }{{"HS256", "oct1"}, {"RS256", "rsa1"}} {
		b.Run(tc.alg, func(b *testing.B) {
			sg, err := NewSigner(context.Background(), SignerConfig{Spec: localSigner(tc.alg, tc.kid), Keys: k, Name: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			defer sg.Close()
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				if buf, err = sg.Sign(buf[:0], payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
