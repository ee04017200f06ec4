package auth

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// FuzzVerifyCompact feeds arbitrary bytes to the compact-token parser and to
// a real validator's uncached path. Neither may panic, and no input other
// than the genuinely signed seeds may ever verify.
func FuzzVerifyCompact(f *testing.F) {
	hs := hmacKey(f, "hs-1")
	path := writeJWKS(f, hs)
	k, err := NewKeys(KeysConfig{TokenCacheSize: -1, UnknownKeyWait: -1})
	if err != nil {
		f.Fatal(err)
	}
	defer k.Close()
	v, err := New(context.Background(), Config{Spec: &gatewayv1.JWTValidator{Alg: "HS256", JwkLocalPath: path, Roles: []string{"a"}, PropagateClaims: []*gatewayv1.ClaimHeader{{Claim: "x.y", Header: "X-Y"}}}, Keys: k})
	if err != nil {
		f.Fatal(err)
	}
	defer v.Close()
	valid := map[string]bool{}
	now := time.Now()
	for _, c := range []map[string]any{
		claimsAt(now, map[string]any{"roles": []string{"a"}}),
		claimsAt(now, map[string]any{"x": map[string]any{"y": []any{1, "b"}}, "aud": "api"}),
	} {
		tok := sign(f, hs, jwa.HS256(), c, nil)
		valid[tok] = true
		f.Add([]byte(tok))
	}
	enc := base64.RawURLEncoding.EncodeToString
	f.Add([]byte(enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(`{}`)) + "."))
	f.Add([]byte(enc([]byte(`{"alg":"HS256","crit":["x"]}`)) + "." + enc([]byte(`{"exp":1e400}`)) + ".AAAA"))
	f.Add([]byte(enc([]byte(`{"alg":"HS256"}`)) + "." + enc([]byte(`{"exp":"x","aud":[1]}`)) + ".AAAA"))
	f.Add([]byte("a.b.c"))
	f.Add([]byte(".."))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _, _ = parseUnverified(data)
		tok, reason := v.Verify(data)
		if reason == ReasonOK || reason == ReasonRoles || reason == ReasonScopes {
			if !valid[string(data)] {
				t.Fatalf("forged input verified (%v): %q", reason, data)
			}
			if tok == nil {
				t.Fatal("verified without a token")
			}
			tok.Headers()
		}
	})
}
