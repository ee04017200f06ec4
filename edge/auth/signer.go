package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/proto/violation"
)

// ErrNoSigningKey is returned by Signer.Sign when the key set holds no
// private key named kid that can sign with alg (the key set is not loaded
// yet, or lacks it). KrakenD answers every request of such an endpoint
// with an empty 401.
var ErrNoSigningKey = errors.New("auth: no signing key")

// SignerConfig configures one endpoint's Signer.
type SignerConfig struct {
	// Spec is the endpoint's `auth/signer` (required).
	Spec *gatewayv1.JWTSigner
	// Keys is the process-wide registry (required).
	Keys *Keys
	// Name is the endpoint name for logs and errors.
	Name string
}

// CheckSignerSpec validates an `auth/signer` message the way NewSigner
// will, as field violations under path. It does not read jwk_local_path.
func CheckSignerSpec(path string, s *gatewayv1.JWTSigner) []*gatewayv1.FieldViolation {
	var out []*gatewayv1.FieldViolation
	add := func(field string, kind violation.Kind, detail string) {
		out = append(out, &gatewayv1.FieldViolation{Path: path + "." + field, Kind: kind.String(), Detail: detail})
	}
	if s == nil {
		return []*gatewayv1.FieldViolation{{Path: path, Kind: violation.Required.String(), Detail: "auth/signer settings missing"}}
	}
	if !slices.Contains(SupportedAlgorithms, s.GetAlg()) {
		add("alg", violation.Unsupported, fmt.Sprintf("%q: allowed: %s", s.GetAlg(), strings.Join(SupportedAlgorithms, ", ")))
	}
	if s.GetKid() == "" {
		add("kid", violation.Required, "the signing key's kid must be set")
	}
	if len(s.GetKeysToSign()) == 0 {
		add("keys_to_sign", violation.Required, "no response field to sign")
	}
	switch {
	case s.GetJwkLocalPath() != "":
	case s.GetJwkUrl() == "":
		add("jwk_url", violation.Required, "jwk_url or jwk_local_path must be set")
	default:
		if err := checkJWKURL(s.GetJwkUrl(), s.GetDisableJwkSecurity()); err != nil {
			add("jwk_url", violation.Invalid, fmt.Sprintf("%q: %v", s.GetJwkUrl(), err))
		}
	}
	for _, e := range checkJWKSTLS(s.GetJwksTls()) {
		add(e.field, violation.Invalid, e.detail)
	}
	return out
}

// Signer turns response objects into signed JWS tokens for one endpoint,
// as krakend-jose's signer does: the protected header is
// {"alg":…,"kid":…,"typ":…} (typ "JWT" unless set), the payload the
// object's JSON as KrakenD marshals it, and the output the compact
// serialization, or the JSON serialization
// {"payload":…,"protected":…,"signature":…} with full. The private key is
// the key set's entry kid, looked up per call in the shared, refreshed key
// source, so a rotated key is used as soon as it is fetched. Build one per
// endpoint with NewSigner when the plan is built and Close it with the
// plan. Safe for concurrent use.
type Signer struct {
	k      *Keys
	src    *source
	name   string
	alg    string
	kid    string
	keys   []string
	full   bool
	prefix []byte // base64url(protected header) + "."
	closed atomic.Bool
}

// NewSigner builds the Signer of one endpoint: it validates the settings,
// reads jwk_local_path or shares (starting if needed) the jwk_url source,
// and waits for a new source's first fetch until ctx is done. A key set
// that is not loaded yet, or lacks kid, is not an error: Sign reports
// ErrNoSigningKey until a fetch brings the key. The caller must Close the
// Signer.
func NewSigner(ctx context.Context, cfg SignerConfig) (*Signer, error) {
	if cfg.Keys == nil {
		return nil, fmt.Errorf("new signer %q: keys is nil", cfg.Name)
	}
	if vs := CheckSignerSpec("signer", cfg.Spec); len(vs) > 0 {
		return nil, fmt.Errorf("new signer %q: %s: %s", cfg.Name, vs[0].GetPath(), vs[0].GetDetail())
	}
	s := cfg.Spec
	spec := sourceSpec{
		url:       s.GetJwkUrl(),
		path:      s.GetJwkLocalPath(),
		cooldown:  MinKeyCooldown,
		allowHTTP: s.GetDisableJwkSecurity(),
		tls:       tlsKey(s.GetJwksTls()),
	}
	if spec.path != "" {
		spec.url, spec.tls, spec.enc = "", "", encKey(s.GetJwksEncryption())
	} else {
		spec.refresh = DefaultCacheDuration
	}
	src, err := cfg.Keys.acquireSource(spec)
	if err != nil {
		return nil, fmt.Errorf("new signer %q: %w", cfg.Name, err)
	}
	select {
	case <-src.ready:
	case <-ctx.Done():
	}
	typ := s.GetTyp()
	if typ == "" {
		typ = "JWT"
	}
	// go-jose marshals the header map with encoding/json: keys sorted,
	// strings HTML-escaped.
	hdr, err := json.Marshal(map[string]string{"alg": s.GetAlg(), "kid": s.GetKid(), "typ": typ})
	if err != nil {
		cfg.Keys.releaseSource(src)
		return nil, fmt.Errorf("new signer %q: header: %w", cfg.Name, err)
	}
	sg := &Signer{
		k: cfg.Keys, src: src, name: cfg.Name, alg: s.GetAlg(), kid: s.GetKid(),
		keys: slices.Clone(s.GetKeysToSign()), full: s.GetFull(),
	}
	sg.prefix = append(base64.RawURLEncoding.AppendEncode(nil, hdr), '.')
	if sg.key() == nil {
		cfg.Keys.log.Warn().Str("endpoint", cfg.Name).Str("jwks", src.name).Str("kid", sg.kid).
			Msg("no private key kid for auth/signer yet; the endpoint answers 401 until a fetch brings it")
	}
	return sg, nil
}

// Close releases the key source (stopping its fetches when nothing else
// uses it). Idempotent.
func (s *Signer) Close() {
	if s.closed.Swap(true) {
		return
	}
	s.k.releaseSource(s.src)
}

// Fields returns keys_to_sign: the response fields Sign is applied to
// (those holding a JSON object; KrakenD leaves the others as they are).
func (s *Signer) Fields() []string { return s.keys }

// Ready reports whether the key set holds a private key kid usable with alg.
func (s *Signer) Ready() bool { return s.key() != nil }

// key returns the signing key, nil when there is none.
func (s *Signer) key() any {
	ks := s.src.keys()
	if ks == nil {
		return nil
	}
	for _, k := range ks.by[strategyKid][s.kid] {
		if k.sign != nil && signsWith(k.sign, s.alg) {
			return k.sign
		}
	}
	return nil
}

// signsWith reports whether a private key can sign with alg. Unlike
// verification, the JWK's own alg parameter is not consulted: go-jose, and
// so KrakenD, signs with whatever algorithm the signer names.
func signsWith(key any, alg string) bool {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PrivateKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PrivateKey:
		return alg == "EdDSA"
	case []byte:
		return strings.HasPrefix(alg, "HS") && len(k) > 0
	}
	return false
}

// Sign appends to dst the JWS of payload (the JSON text of one object, as
// the caller rendered it): compact, or the JSON serialization with full.
// It returns ErrNoSigningKey (with dst unchanged) when kid is missing from
// the key set, and kicks a re-fetch then, at most once per second.
func (s *Signer) Sign(dst, payload []byte) ([]byte, error) {
	key := s.key()
	if key == nil {
		s.src.refetch(0)
		return dst, ErrNoSigningKey
	}
	start := len(dst)
	dst = append(dst, s.prefix...) // the signing input H.P is built in dst
	pay := len(dst)
	dst = base64.RawURLEncoding.AppendEncode(dst, payload)
	sig, err := jwsbb.Sign(key, s.alg, dst[start:], nil)
	if err != nil {
		return dst[:start], fmt.Errorf("auth: sign %s: %w", s.alg, err)
	}
	if !s.full {
		dst = append(dst, '.')
		return base64.RawURLEncoding.AppendEncode(dst, sig), nil
	}
	// go-jose's FullSerialize: {"payload":"P","protected":"H","signature":"S"}.
	h, p := dst[start:pay-1], dst[pay:]
	out := make([]byte, 0, len(h)+len(p)+base64.RawURLEncoding.EncodedLen(len(sig))+44)
	out = append(append(append(out, `{"payload":"`...), p...), `","protected":"`...)
	out = append(append(out, h...), `","signature":"`...)
	out = append(base64.RawURLEncoding.AppendEncode(out, sig), `"}`...)
	return append(dst[:start], out...), nil
}
