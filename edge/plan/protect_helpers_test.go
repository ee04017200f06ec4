package plan_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/rs/zerolog"

	"github.com/apigw/gateway/edge/auth"
	"github.com/apigw/gateway/edge/plan"
	"github.com/apigw/gateway/edge/qos"
	"github.com/apigw/gateway/edge/qos/clock"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// RSA key generation is slow: one test key for the whole run.
var (
	rsaOnce sync.Once
	rsaPriv *rsa.PrivateKey
)

// idp is a token issuer for the tests: a real JWKS server on 127.0.0.1:0
// serving the public half of a test RSA key, and a minter for tokens
// signed with its private half (jwx v3).
type idp struct {
	url  string
	priv *rsa.PrivateKey
	kid  string
}

const testIssuer = "https://idp.test"

func startIDP(t testing.TB) *idp {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		if rsaPriv, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	i := &idp{priv: rsaPriv, kid: "test-key-1"}
	pub, err := jwk.Import(&rsaPriv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Set(jwk.KeyIDKey, i.kid); err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}))
	t.Cleanup(srv.Close)
	i.url = srv.URL + "/jwks.json"
	return i
}

// token signs claims (RS256, kid header). Standard claims valid for an
// hour are added unless claims sets them (a nil value deletes one).
func (i *idp) token(t testing.TB, claims map[string]any) string {
	t.Helper()
	now := time.Now()
	c := map[string]any{
		"iss": testIssuer, "aud": "api", "sub": "alice", "jti": "token-alice",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, i.kid); err != nil {
		t.Fatal(err)
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), i.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// spec is the endpoints' auth/validator for this issuer.
func (i *idp) spec(mut ...func(*gatewayv1.JWTValidator)) *gatewayv1.JWTValidator {
	s := &gatewayv1.JWTValidator{
		Alg:                "RS256",
		JwkUrl:             i.url,
		DisableJwkSecurity: true,
		Cache:              true,
		Issuer:             testIssuer,
		Audience:           []string{"api"},
	}
	for _, f := range mut {
		f(s)
	}
	return s
}

// protectDeps returns Deps with the process-wide registries an edge would
// create once, cleaned up with the test. clk (nil: the system clock) drives
// the QoS components.
func protectDeps(t testing.TB, clk clock.Clock) plan.Deps {
	t.Helper()
	keys, err := auth.NewKeys(auth.KeysConfig{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(keys.Close)
	reg, err := qos.New(qos.Config{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	ups := plan.NewUpstreams()
	t.Cleanup(ups.Close)
	return plan.Deps{Keys: keys, QoS: reg, Upstreams: ups}
}

// ctlBackend is a real backend whose answers the test switches: 200 with a
// JSON object (and Cache-Control when cacheable), or 500 while failing. It
// counts the calls it receives.
type ctlBackend struct {
	host      string
	hits      atomic.Int64
	fail      atomic.Bool
	cacheable atomic.Bool
	lastPath  atomic.Pointer[string]
	lastHdr   atomic.Pointer[http.Header]
}

func startCtlBackend(t testing.TB) *ctlBackend {
	t.Helper()
	b := &ctlBackend{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := b.hits.Add(1)
		p := r.URL.RequestURI()
		h := r.Header.Clone()
		b.lastPath.Store(&p)
		b.lastHdr.Store(&h)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if b.cacheable.Load() {
			w.Header().Set("Cache-Control", "public, max-age=60")
		}
		if b.fail.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"error":"boom"}`)
			return
		}
		_, _ = io.WriteString(w, `{"n":`+strconv.FormatInt(n, 10)+`,"ok":true}`)
	}))
	t.Cleanup(srv.Close)
	b.host = srv.Listener.Addr().String()
	return b
}
