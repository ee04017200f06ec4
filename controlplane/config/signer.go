package config

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Token signing, `auth/signer` (krakend-jose's signer), and the TLS
// settings of the JWKS client it shares with `auth/validator`.

// Signer is the `auth/signer` namespace.
type Signer struct {
	Alg                string
	KID                string
	Typ                string
	KeysToSign         []string
	Full               bool
	JWKURL             string
	JWKLocalPath       string
	DisableJWKSecurity bool
	TLS                JWKSTLS
}

// JWKSTLS is how a JWKS client connects: cipher_suites, jwk_fingerprints
// (base64url SHA-256 digests of a certificate's public key) and
// jwk_local_ca (a PEM file on the edge's host).
type JWKSTLS struct {
	CipherSuites []uint16
	Fingerprints []string
	LocalCA      string
	// SecretURL and CypherKey decrypt a jwk_local_path file (krakend-jose's
	// secrets: a gocloud.dev keeper URL and the key it encrypted, base64).
	SecretURL string
	CypherKey string
}

func (t *JWKSTLS) set() bool {
	return len(t.CipherSuites) > 0 || len(t.Fingerprints) > 0 || t.LocalCA != ""
}

// jwksTLSFields are the decoder fields of JWKSTLS, shared by the validator
// and the signer.
func (d *decoder) jwksTLSFields(t *JWKSTLS, fields map[string]handler) map[string]handler {
	fields["cipher_suites"] = d.uint16List(&t.CipherSuites)
	fields["jwk_fingerprints"] = d.strings(&t.Fingerprints)
	fields["jwk_local_ca"] = d.str(&t.LocalCA)
	fields["secret_url"] = d.str(&t.SecretURL)
	fields["cypher_key"] = d.str(&t.CypherKey)
	return fields
}

func (d *decoder) signer(n *node, p path) *Signer {
	s := &Signer{}
	d.object(n, p, objectSpec{
		fields: d.jwksTLSFields(&s.TLS, map[string]handler{
			"alg":                  d.str(&s.Alg),
			"kid":                  d.str(&s.KID),
			"typ":                  d.str(&s.Typ),
			"keys_to_sign":         d.strings(&s.KeysToSign),
			"full":                 d.boolean(&s.Full),
			"jwk_url":              d.str(&s.JWKURL),
			"jwk_local_path":       d.str(&s.JWKLocalPath),
			"disable_jwk_security": d.boolean(&s.DisableJWKSecurity),
		}),
	})
	return s
}

func (v *validator) signer(ep path, e *Endpoint, s *Signer) {
	p := ep.field("extra_config").key("auth/signer")
	switch {
	case s.Alg == "":
		v.vs.add(p.field("alg"), KindRequired, "alg (the signature algorithm) is required; allowed: %s", strings.Join(jwtAlgorithms, ", "))
	case strings.EqualFold(s.Alg, "none"):
		v.vs.add(p.field("alg"), KindUnsupported, "unsigned tokens (alg none) are never issued; allowed: %s", strings.Join(jwtAlgorithms, ", "))
	default:
		v.oneOf(p.field("alg"), s.Alg, jwtAlgorithms)
	}
	if s.KID == "" {
		// KrakenD looks up the key "" then, which only a JWKS entry
		// without kid matches; every token would carry kid "".
		v.vs.add(p.field("kid"), KindRequired, "kid (the id of the signing key in the JWKS) is required")
	}
	if len(s.KeysToSign) == 0 {
		v.vs.add(p.field("keys_to_sign"), KindRequired, "keys_to_sign (the response fields to sign) is required; without it nothing is signed")
	}
	v.nonEmpty(p.field("keys_to_sign"), s.KeysToSign, "key")
	v.noRepeats(p.field("keys_to_sign"), s.KeysToSign)

	switch {
	case s.JWKURL == "" && s.JWKLocalPath == "":
		v.vs.add(p.field("jwk_url"), KindRequired, "set jwk_url (a JWKS URL) or jwk_local_path (a JWKS file) holding the private key kid")
	case s.JWKURL != "" && s.JWKLocalPath != "":
		v.vs.add(p.field("jwk_url"), KindInvalid, "jwk_url and jwk_local_path are exclusive (KrakenD silently ignores jwk_url when both are set)")
	case s.JWKURL != "":
		v.jwkURL(p.field("jwk_url"), s.JWKURL, s.DisableJWKSecurity)
	}
	v.jwksTLS(p, &s.TLS, s.JWKURL, s.JWKLocalPath)

	switch e.OutputEncoding {
	case "", "json":
	case encodingNoOp:
		v.vs.add(ep.field("output_encoding"), KindInvalid,
			"auth/signer signs fields of the decoded response; output_encoding no-op never decodes it")
	default:
		v.s.warnings.add(p, KindNoEffect, "the endpoint answers JSON: auth/signer renders the signed response as JSON whatever output_encoding (%s) says, as KrakenD does", e.OutputEncoding)
	}
}

// jwksTLS checks cipher_suites, jwk_fingerprints and jwk_local_ca (p is
// the namespace's path).
func (v *validator) jwksTLS(p path, t *JWKSTLS, jwkURL, localPath string) {
	v.jwksEncryption(p, t, localPath)
	if !t.set() {
		return
	}
	if localPath != "" || strings.HasPrefix(jwkURL, "http://") {
		for _, k := range []struct {
			name string
			set  bool
		}{{"cipher_suites", len(t.CipherSuites) > 0}, {"jwk_fingerprints", len(t.Fingerprints) > 0}, {"jwk_local_ca", t.LocalCA != ""}} {
			if k.set {
				v.vs.add(p.field(k.name), KindInvalid, "applies to an https jwk_url; the keys come from %s", map[bool]string{true: "jwk_local_path", false: "plain http"}[localPath != ""])
			}
		}
		return
	}
	secure := map[uint16]bool{}
	for _, c := range tls.CipherSuites() {
		secure[c.ID] = true
	}
	insecure := map[uint16]string{}
	for _, c := range tls.InsecureCipherSuites() {
		insecure[c.ID] = c.Name
	}
	for i, id := range t.CipherSuites {
		ip := p.field("cipher_suites").index(i)
		switch {
		case insecure[id] != "":
			v.vs.add(ip, KindUnsupported, "%d is %s, which Go lists as insecure; the keys must not travel over it", id, insecure[id])
		case !secure[id]:
			v.vs.add(ip, KindInvalid, "%d (0x%04x) is not a cipher suite Go's TLS implements", id, id)
		}
	}
	for i, f := range t.Fingerprints {
		ip := p.field("jwk_fingerprints").index(i)
		b, err := base64.URLEncoding.DecodeString(f)
		switch {
		case err != nil:
			v.vs.add(ip, KindInvalid, "%q: not base64url (with padding, as KrakenD decodes it): %v", f, err)
		case len(b) != 32:
			v.vs.add(ip, KindInvalid, "%q: %d bytes; a fingerprint is the 32-byte SHA-256 of the certificate's public key", f, len(b))
		}
	}
}

// cloudKeepers are the gocloud.dev secrets schemes KrakenD CE registers
// besides base64key://.
var cloudKeepers = []string{"awskms", "gcpkms", "azurekeyvault", "hashivault"}

// jwksEncryption checks secret_url and cypher_key: both or neither, with
// jwk_local_path, a base64key:// keeper (the cloud KMS keepers are not
// supported) and a base64 cypher_key.
func (v *validator) jwksEncryption(p path, t *JWKSTLS, localPath string) {
	if t.SecretURL == "" && t.CypherKey == "" {
		return
	}
	switch {
	case t.SecretURL == "":
		v.vs.add(p.field("secret_url"), KindRequired, "cypher_key needs secret_url (the keeper that encrypted it)")
	case t.CypherKey == "":
		v.vs.add(p.field("cypher_key"), KindRequired, "secret_url needs cypher_key (the file's key, encrypted by the keeper)")
	}
	if localPath == "" {
		v.vs.add(p.field("secret_url"), KindInvalid, "secret_url and cypher_key decrypt a jwk_local_path file; KrakenD ignores them otherwise")
	}
	if t.SecretURL != "" {
		if _, err := keeperKey(t.SecretURL); err != nil {
			v.vs.add(p.field("secret_url"), KindUnsupported, "%v", err)
		}
	}
	if t.CypherKey != "" {
		if _, err := base64.StdEncoding.DecodeString(t.CypherKey); err != nil {
			v.vs.add(p.field("cypher_key"), KindInvalid, "not base64 (KrakenD reads it as JSON bytes): %v", err)
		}
	}
}

// keeperKey is the key of a base64key:// keeper URL (gocloud.dev
// localsecrets: base64url of 32 bytes). Its errors never quote a
// base64key:// URL: the URL is the key.
func keeperKey(raw string) ([]byte, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	switch {
	case !ok:
		return nil, errors.New("want a base64key://KEY keeper URL")
	case slices.Contains(cloudKeepers, scheme):
		return nil, fmt.Errorf("%s:// is a cloud KMS keeper: only base64key:// is supported. The edge opens cypher_key when it builds "+
			"a plan, so a cloud keeper would need that cloud's credentials and network on every edge; this build links none of "+
			"them (none was reachable to test against). Decrypt the key ahead of time into a base64key:// URL, or serve the "+
			"keys from jwk_url", scheme)
	case scheme != "base64key":
		return nil, fmt.Errorf("%q is not a gocloud.dev keeper scheme this edge knows: only base64key:// is supported", scheme)
	case rest == "" || strings.ContainsAny(rest, "/?"):
		return nil, errors.New("want base64key://KEY with the 32-byte key in base64url (an empty key is a random one, which can decrypt nothing)")
	}
	k, err := base64.URLEncoding.DecodeString(rest)
	if err != nil || len(k) != 32 {
		return nil, errors.New("base64key://KEY: the key must be 32 bytes in base64url")
	}
	return k, nil
}

func compileJWKSEncryption(t *JWKSTLS) *gatewayv1.JWKSEncryption {
	if t.SecretURL == "" {
		return nil
	}
	k, _ := keeperKey(t.SecretURL)
	c, _ := base64.StdEncoding.DecodeString(t.CypherKey)
	return &gatewayv1.JWKSEncryption{KeeperKey: k, CypherKey: c}
}

func compileJWKSTLS(t *JWKSTLS) *gatewayv1.JWKSClientTLS {
	if !t.set() {
		return nil
	}
	out := &gatewayv1.JWKSClientTLS{LocalCa: t.LocalCA}
	for _, c := range t.CipherSuites {
		out.CipherSuites = append(out.CipherSuites, uint32(c))
	}
	for _, f := range t.Fingerprints {
		b, _ := base64.URLEncoding.DecodeString(f)
		out.Fingerprints = append(out.Fingerprints, b)
	}
	return out
}

func compileSigner(s *Signer) *gatewayv1.JWTSigner {
	return &gatewayv1.JWTSigner{
		Alg:                s.Alg,
		Kid:                s.KID,
		Typ:                s.Typ,
		KeysToSign:         s.KeysToSign,
		Full:               s.Full,
		JwkUrl:             s.JWKURL,
		JwkLocalPath:       s.JWKLocalPath,
		DisableJwkSecurity: s.DisableJWKSecurity,
		JwksTls:            compileJWKSTLS(&s.TLS),
		JwksEncryption:     compileJWKSEncryption(&s.TLS),
	}
}
