package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"slices"
	"testing"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// fuzzNow is the fixed clock of FuzzVerifyClaims (unix seconds).
const fuzzNow = 1_700_000_000

// refReason is a plain model of the claim checks of Verify over the
// payload of a correctly signed token: RFC 7519 types of the registered
// claims, then exp, nbf/iat with the leeway, require_exp, the lifetime
// bound, iss and aud, in exact arithmetic. near reports a time value within
// a millisecond of a boundary, where float rounding may decide.
func refReason(payload []byte, requireExp bool, maxLife *big.Rat) (r Reason, near bool) {
	if !json.Valid(payload) { // one JSON value, nothing after it
		return ReasonMalformed, false
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var top any
	if dec.Decode(&top) != nil {
		return ReasonMalformed, false
	}
	m, ok := top.(map[string]any)
	if !ok {
		return ReasonMalformed, false
	}
	times := map[string]*big.Rat{}
	for _, k := range []string{"exp", "nbf", "iat"} {
		v, ok := m[k]
		if !ok {
			continue
		}
		n, ok := v.(json.Number)
		if !ok {
			return ReasonMalformed, false
		}
		if _, err := n.Float64(); err != nil {
			return ReasonMalformed, false // out of float64 range
		}
		x, ok := new(big.Rat).SetString(string(n))
		if !ok {
			return ReasonMalformed, false
		}
		times[k] = x
	}
	if v, ok := m["iss"]; ok {
		if _, ok := v.(string); !ok {
			return ReasonMalformed, false
		}
	}
	var aud []string
	switch a := m["aud"].(type) {
	case nil:
		if _, present := m["aud"]; present {
			return ReasonMalformed, false
		}
	case string:
		aud = []string{a}
	case []any:
		for _, e := range a {
			s, ok := e.(string)
			if !ok {
				return ReasonMalformed, false
			}
			aud = append(aud, s)
		}
	default:
		return ReasonMalformed, false
	}
	ms := big.NewRat(1, 1000)
	within := func(a, b *big.Rat) bool { // |a - b| < 1 ms
		d := new(big.Rat).Sub(a, b)
		return d.Abs(d).Cmp(ms) < 0
	}
	now, leeway := big.NewRat(fuzzNow, 1), big.NewRat(1, 1)
	if exp, ok := times["exp"]; ok {
		edge := new(big.Rat).Sub(now, leeway)
		near = near || within(exp, edge)
		if exp.Cmp(edge) < 0 {
			return ReasonExpired, near
		}
	}
	for _, k := range []string{"nbf", "iat"} {
		if x, ok := times[k]; ok {
			edge := new(big.Rat).Add(now, leeway)
			near = near || within(x, edge)
			if x.Cmp(edge) > 0 {
				return ReasonNotYetValid, near
			}
		}
	}
	exp, hasExp := times["exp"]
	if !hasExp && (requireExp || maxLife != nil) {
		return ReasonNoExpiry, near
	}
	if maxLife != nil {
		iat, ok := times["iat"]
		if !ok {
			return ReasonLifetime, near
		}
		life := new(big.Rat).Sub(exp, iat)
		near = near || within(life, maxLife)
		if life.Cmp(maxLife) > 0 {
			return ReasonLifetime, near
		}
	}
	if iss, _ := m["iss"].(string); iss != "https://idp.test" {
		return ReasonIssuer, near
	}
	if !slices.Contains(aud, "api") {
		return ReasonAudience, near
	}
	return ReasonOK, near
}

// FuzzVerifyClaims signs arbitrary payloads with a real key and checks the
// validator's verdict against refReason, for a plain validator and for one
// with require_exp and a 1 h lifetime bound. Tokens that verify must also
// answer claim look-ups without panicking.
func FuzzVerifyClaims(f *testing.F) {
	hs := hmacKey(f, "hs-1")
	secret := hs.priv.([]byte)
	path := writeJWKS(f, hs)
	k, err := NewKeys(KeysConfig{TokenCacheSize: -1, UnknownKeyWait: -1, Clock: func() time.Time { return time.Unix(fuzzNow, 0) }})
	if err != nil {
		f.Fatal(err)
	}
	defer k.Close()
	newV := func(mut func(*gatewayv1.JWTValidator)) *Validator {
		s := &gatewayv1.JWTValidator{Alg: "HS256", JwkLocalPath: path, Issuer: "https://idp.test", Audience: []string{"api"},
			PropagateClaims: []*gatewayv1.ClaimHeader{{Claim: "sub", Header: "X-Sub"}, {Claim: "a.b", Header: "X-Ab"}}}
		mut(s)
		v, err := New(context.Background(), Config{Spec: s, Keys: k, Name: "fuzz"})
		if err != nil {
			f.Fatal(err)
		}
		return v
	}
	plain := newV(func(*gatewayv1.JWTValidator) {})
	defer plain.Close()
	bounded := newV(func(s *gatewayv1.JWTValidator) { s.RequireExp = true; s.MaxTokenLifetimeMs = time.Hour.Milliseconds() })
	defer bounded.Close()
	hour := big.NewRat(3600, 1)

	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256","kid":"hs-1","typ":"JWT"}`))
	for _, seed := range []string{
		`{"iss":"https://idp.test","aud":"api","sub":"alice","iat":1699999990,"exp":1700003000}`,
		`{"iss":"https://idp.test","aud":["web","api"],"iat":1699990000,"exp":1700003601,"a":{"b":[1,"x"]}}`,
		`{"iss":"https://idp.test","aud":"api","exp":1699999998.5}`,
		`{"iss":"https://idp.test","aud":"api","nbf":1700000001.0000001,"exp":1e300}`,
		`{"iss":"https://idp.test","aud":"api","iat":-1e300,"exp":1700000100}`,
		`{"iss":1,"aud":[1]}`, `{"exp":"soon"}`, `{"exp":1e400}`, `[]`, `null`, `{} {}`, `{"aud":null}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		signing := header + "." + enc.EncodeToString(payload)
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(signing))
		tok := []byte(signing + "." + enc.EncodeToString(mac.Sum(nil)))
		if len(tok) > MaxTokenBytes {
			return
		}
		for _, c := range []struct {
			name       string
			v          *Validator
			requireExp bool
			life       *big.Rat
		}{{"plain", plain, false, nil}, {"bounded", bounded, true, hour}} {
			got, r := c.v.Verify(tok)
			want, near := refReason(payload, c.requireExp, c.life)
			if near && (r == ReasonOK || r == ReasonExpired || r == ReasonNotYetValid || r == ReasonLifetime) {
				continue // float rounding at a time boundary decides
			}
			if r != want {
				t.Fatalf("%s validator, payload %q: reason %v, reference %v", c.name, payload, r, want)
			}
			if (got != nil) != (r == ReasonOK) {
				t.Fatalf("%s validator, payload %q: token %v with reason %v", c.name, payload, got != nil, r)
			}
			if got != nil {
				got.Value("sub")
				got.Claims().Lookup("a.b")
				got.Headers()
			}
		}
	})
}
