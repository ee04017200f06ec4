package testenv

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Issuer is a token issuer for tests and benchmarks: it signs RS256 tokens
// with its own key and serves the public half as a JWKS on loopback.
type Issuer struct {
	// JWKSURL is where the key set is served.
	JWKSURL string
	priv    *rsa.PrivateKey
	srv     *http.Server
}

// IssuerName and IssuerAudience are the iss and aud of every token.
const (
	IssuerName     = "https://idp.test"
	IssuerAudience = "api"
	issuerKeyID    = "k1"
)

// NewIssuer generates a key and starts the JWKS server; Close stops it.
func NewIssuer() (*Issuer, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	pub, err := jwk.Import(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := pub.Set(jwk.KeyIDKey, issuerKeyID); err != nil {
		return nil, err
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, err
	}
	doc, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	})}
	go srv.Serve(ln)
	return &Issuer{JWKSURL: "http://" + ln.Addr().String() + "/jwks.json", priv: priv, srv: srv}, nil
}

// Token signs a token for sub with id jti, valid from a minute ago until
// exp.
func (is *Issuer) Token(sub, jti string, exp time.Time) (string, error) {
	return is.Sign(map[string]any{
		"iss": IssuerName, "aud": []string{IssuerAudience}, "sub": sub, "jti": jti,
		"iat": time.Now().Add(-time.Minute).Unix(), "exp": exp.Unix(),
	})
}

// Sign signs any claim set as they are (no iss, aud or exp added): for
// tokens with numeric ids, without exp and the like.
func (is *Issuer) Sign(claimSet map[string]any) (string, error) {
	claims, err := json.Marshal(claimSet)
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, issuerKeyID); err != nil {
		return "", err
	}
	out, err := jws.Sign(claims, jws.WithKey(jwa.RS256(), is.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return string(out), nil
}

// Close stops the JWKS server.
func (is *Issuer) Close() { is.srv.Close() }

// ValidatorConfig is the auth/validator block that trusts this issuer.
func (is *Issuer) ValidatorConfig() string {
	return fmt.Sprintf(`{"alg": "RS256", "jwk_url": %q, "disable_jwk_security": true, "cache": true, "issuer": %q, "audience": [%q]}`,
		is.JWKSURL, IssuerName, IssuerAudience)
}
