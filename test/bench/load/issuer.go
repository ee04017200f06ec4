package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net"
	"net/http"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// issuer serves a JWKS on loopback and holds one RS256 token signed with
// its key, valid for the whole benchmark, for the JWT scenario.
type issuer struct {
	url   string
	token string
	srv   *http.Server
}

func newIssuer() (*issuer, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	pub, err := jwk.Import(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := pub.Set(jwk.KeyIDKey, "bench"); err != nil {
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
	claims, err := json.Marshal(map[string]any{
		"iss": "https://idp.bench", "aud": []string{"bench"}, "sub": "bench-user", "jti": "bench-1",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	})
	if err != nil {
		return nil, err
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, "bench"); err != nil {
		return nil, err
	}
	tok, err := jws.Sign(claims, jws.WithKey(jwa.RS256(), priv, jws.WithProtectedHeaders(hdr)))
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
	return &issuer{url: "http://" + ln.Addr().String() + "/jwks.json", token: string(tok), srv: srv}, nil
}

func (i *issuer) close() { i.srv.Close() }
