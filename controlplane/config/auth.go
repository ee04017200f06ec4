package config

import (
	"math"
	"net/url"
	"strings"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// JWT validation and revocation: the `auth/validator` (endpoint and
// service level) and `auth/revoker` namespaces (krakend-jose, bloomfilter).

var (
	// jwtAlgorithms are the algorithms krakend-jose accepts. "none" is not
	// one of them and is refused with its own detail.
	jwtAlgorithms         = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512"}
	keyIdentifyStrategies = []string{"kid", "x5t", "x5t#S256", "kid_x5t"}
	scopesMatchers        = []string{"any", "all"}
	revokerHashNames      = []string{"optimal"}
)

// MaxRevokerFilterBytes bounds the revocation bloom filter that auth/revoker's
// N and P ask every edge to allocate (m = -N·ln P / (ln 2)² bits). 1 GiB holds
// N = 10^8 at P = 10^-9 (about 0.54 GB) with room to spare.
const MaxRevokerFilterBytes = 1 << 30

// MaxJWTLeeway bounds auth/validator's leeway: the clock skew tolerated on
// exp, nbf and iat. The edge refuses a larger one too.
const MaxJWTLeeway = 5 * time.Minute

func (d *decoder) jwtValidator(n *node, p path) *JWTValidator {
	j := &JWTValidator{}
	d.object(n, p, objectSpec{
		fields: d.jwksTLSFields(&j.TLS, map[string]handler{
			"alg":                             d.str(&j.Alg),
			"jwk_url":                         d.str(&j.JWKURL),
			"jwk_local_path":                  d.str(&j.JWKLocalPath),
			"cache":                           d.boolean(&j.Cache),
			"cache_duration":                  d.optInteger(&j.CacheDuration),
			"disable_jwk_security":            d.boolean(&j.DisableJWKSecurity),
			"failed_jwk_key_cooldown":         d.duration(&j.FailedJWKKeyCooldown),
			"audience":                        d.strings(&j.Audience),
			"issuer":                          d.str(&j.Issuer),
			"leeway":                          d.optDuration(&j.Leeway),
			"roles":                           d.strings(&j.Roles),
			"roles_key":                       d.str(&j.RolesKey),
			"roles_key_is_nested":             d.boolean(&j.RolesKeyIsNested),
			"scopes":                          d.strings(&j.Scopes),
			"scopes_key":                      d.str(&j.ScopesKey),
			"scopes_matcher":                  d.str(&j.ScopesMatcher),
			"propagate_claims":                d.claimHeaders(&j.PropagateClaims),
			"propagate_claims_preserve_array": d.boolean(&j.PropagateClaimsPreserveArray),
			"auth_header_name":                d.str(&j.AuthHeaderName),
			"cookie_key":                      d.str(&j.CookieKey),
			"key_identify_strategy":           d.str(&j.KeyIdentifyStrategy),
			"operation_debug":                 d.boolean(&j.OperationDebug),
		}),
	})
	return j
}

// jwtLimits decodes our `apigw/jwt` namespace.
func (d *decoder) jwtLimits(n *node, p path) *JWTLimits {
	l := &JWTLimits{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"require_exp": func(n *node, p path) {
			if d.want(n, p, typeBool) {
				b := n.boolean
				l.RequireExp = &b
			}
		},
		"max_token_lifetime": d.optDuration(&l.MaxTokenLifetime),
	}})
	return l
}

// claimHeaders decodes propagate_claims: a list of [claim, header] pairs.
// The result stays aligned with the list; a malformed entry is empty.
func (d *decoder) claimHeaders(dst *[]ClaimHeader) handler {
	return func(n *node, p path) {
		out := make([]ClaimHeader, 0, len(n.items))
		d.list(n, p, func(_ int, item *node, ip path) {
			var pair [2]string
			switch {
			case !d.want(item, ip, typeArray):
			case len(item.items) != 2:
				d.vs.add(ip, KindInvalid, "want a [claim, header] pair, got %d elements", len(item.items))
			default:
				for k, v := range item.items {
					kp := ip.index(k)
					d.record(kp, v)
					if d.want(v, kp, typeString) {
						pair[k] = v.text
					}
				}
			}
			out = append(out, ClaimHeader{Claim: pair[0], Header: pair[1]})
		})
		if n.kind == typeArray {
			*dst = out
		}
	}
}

func (d *decoder) serviceJWT(n *node, p path) *ServiceJWT {
	j := &ServiceJWT{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"shared_cache_duration": d.noEffect(d.optInteger(&j.SharedCacheDuration), "the edge does not share one JWK cache between validators; each uses its own cache_duration"),
	}})
	return j
}

func (d *decoder) revoker(n *node, p path) *Revoker {
	r := &Revoker{}
	const enterprise = "the Revoke Server integration (revoke_server_*) is a KrakenD Enterprise feature; revocations reach every edge through the control plane (gwctl revoke)"
	d.object(n, p, objectSpec{
		fields: map[string]handler{
			"N":          d.optInteger(&r.N),
			"P":          d.optNumber(&r.P),
			"TTL":        d.optInteger(&r.TTL),
			"token_keys": d.strings(&r.TokenKeys),
			"hash_name":  d.str(&r.HashName),
			"port":       d.noEffect(d.integer(&r.Port), "revocations reach every edge over the control plane's sync stream (gwctl revoke), not a per-node RPC port"),
		},
		notSupported: map[string]string{
			"revoke_server_ping_url":      enterprise,
			"revoke_server_ping_interval": enterprise,
			"revoke_server_api_key":       enterprise,
			"revoke_server_max_workers":   enterprise,
			"revoke_server_max_retries":   enterprise,
			"headers":                     "headers is not wired in KrakenD CE; revocation checks the token_keys claims",
		},
	})
	return r
}

func (v *validator) serviceJWT(p path, j *ServiceJWT) {
	if j.SharedCacheDuration != nil {
		v.seconds(p.field("shared_cache_duration"), *j.SharedCacheDuration, 1)
	}
}

func (v *validator) jwt(p path, j *JWTValidator) {
	switch {
	case j.Alg == "":
		v.vs.add(p.field("alg"), KindRequired, "alg is required (KrakenD has no default; the token's alg must match it); allowed: %s",
			strings.Join(jwtAlgorithms, ", "))
	case strings.EqualFold(j.Alg, "none"):
		v.vs.add(p.field("alg"), KindUnsupported, "unsigned tokens (alg none) are never accepted; allowed: %s", strings.Join(jwtAlgorithms, ", "))
	default:
		v.oneOf(p.field("alg"), j.Alg, jwtAlgorithms)
	}

	switch {
	case j.JWKURL == "" && j.JWKLocalPath == "":
		v.vs.add(p.field("jwk_url"), KindRequired, "set jwk_url (a JWKS URL) or jwk_local_path (a JWKS file)")
	case j.JWKURL != "" && j.JWKLocalPath != "":
		v.vs.add(p.field("jwk_url"), KindInvalid, "jwk_url and jwk_local_path are exclusive (KrakenD silently ignores jwk_url when both are set)")
	case j.JWKURL != "":
		v.jwkURL(p.field("jwk_url"), j.JWKURL, j.DisableJWKSecurity)
	}
	v.jwksTLS(p, &j.TLS, j.JWKURL, j.JWKLocalPath)
	if j.JWKLocalPath != "" && j.Cache {
		v.vs.add(p.field("cache"), KindInvalid, "cache applies to jwk_url; KrakenD refuses it with jwk_local_path")
	}
	if j.CacheDuration != nil {
		v.seconds(p.field("cache_duration"), *j.CacheDuration, 1)
	}
	if c := j.FailedJWKKeyCooldown; c < 0 || (c > 0 && c < time.Second) {
		v.vs.add(p.field("failed_jwk_key_cooldown"), KindInvalid, "%s: must be at least 1s (or absent to disable the cool-down)", c)
	}
	if j.Leeway != nil && *j.Leeway < time.Second {
		v.vs.add(p.field("leeway"), KindInvalid, "%s: must be at least 1s (KrakenD raises smaller values to 1s)", *j.Leeway)
	}
	if j.Leeway != nil && *j.Leeway > MaxJWTLeeway {
		v.vs.add(p.field("leeway"), KindInvalid, "%s: at most %s (leeway is for clock skew; a larger one keeps expired tokens valid, KrakenD has no bound)", *j.Leeway, MaxJWTLeeway)
	}
	v.nonEmpty(p.field("audience"), j.Audience, "audience")
	v.nonEmpty(p.field("roles"), j.Roles, "role")
	v.nonEmpty(p.field("scopes"), j.Scopes, "scope")
	if len(j.Scopes) > 0 && j.ScopesKey == "" {
		// KrakenD skips the scope check silently without scopes_key, which
		// leaves the endpoint open to tokens of any scope.
		v.vs.add(p.field("scopes_key"), KindRequired, "scopes are only checked with scopes_key (the claim holding them); KrakenD silently skips the check without it")
	}
	v.oneOf(p.field("scopes_matcher"), j.ScopesMatcher, scopesMatchers)
	v.oneOf(p.field("key_identify_strategy"), j.KeyIdentifyStrategy, keyIdentifyStrategies)
	if !isToken(j.AuthHeaderName) {
		v.vs.add(p.field("auth_header_name"), KindInvalid, "%q is not a valid header name", j.AuthHeaderName)
	}
	if !isToken(j.CookieKey) {
		v.vs.add(p.field("cookie_key"), KindInvalid, "%q is not a valid cookie name", j.CookieKey)
	}

	pc := p.field("propagate_claims")
	first := make(map[string]int, len(j.PropagateClaims))
	for i, c := range j.PropagateClaims {
		ip := pc.index(i)
		if c.Claim == "" {
			v.vs.add(ip.index(0), KindInvalid, "empty claim name")
		}
		switch prev, dup := first[c.Header]; {
		case c.Header == "":
			v.vs.add(ip.index(1), KindInvalid, "empty header name")
		case !isToken(c.Header):
			v.vs.add(ip.index(1), KindInvalid, "%q is not a valid header name", c.Header)
		case dup:
			v.vs.add(ip.index(1), KindDuplicate, "header %s is also set from propagate_claims[%d]", c.Header, prev)
		default:
			first[c.Header] = i
		}
	}
}

// jwtLimits checks `apigw/jwt` (p is its path) against the endpoint's
// validator and the service's revoker. With auth/revoker every validator
// requires exp and bounds exp - iat by the revoker TTL (the edge enforces
// it so no accepted token outlives its revocation), so an explicit
// require_exp: false or a longer max_token_lifetime would be inert, and is
// refused.
func (v *validator) jwtLimits(p path, l *JWTLimits, j *JWTValidator) {
	if j == nil {
		v.vs.add(p, KindInvalid, "apigw/jwt sets token lifetime rules for the endpoint's auth/validator, which is not configured")
		return
	}
	rv := v.s.ExtraConfig.Revoker
	if l.RequireExp != nil && !*l.RequireExp && rv != nil {
		v.vs.add(p.field("require_exp"), KindInvalid, "with auth/revoker every token must carry exp: a revocation lapses after its TTL, so a token without exp would be accepted again")
	}
	if m := l.MaxTokenLifetime; m != nil {
		switch {
		case *m < time.Second:
			v.vs.add(p.field("max_token_lifetime"), KindInvalid, "%s: must be at least 1s", *m)
		case rv != nil && rv.TTL != nil && *rv.TTL > 0:
			leeway := time.Second
			if j.Leeway != nil && *j.Leeway > 0 {
				leeway = *j.Leeway
			}
			if bound := time.Duration(*rv.TTL)*time.Second - 2*leeway; *m > bound {
				v.vs.add(p.field("max_token_lifetime"), KindInvalid,
					"%s: longer than auth/revoker's TTL (%ds) minus twice the leeway (%s), %s; a revocation would lapse while the token is still valid",
					*m, *rv.TTL, leeway, bound)
			}
		}
	}
}

// jwkURL checks a JWKS URL: absolute http(s), and https unless
// disable_jwk_security allows plain http.
func (v *validator) jwkURL(p path, raw string, insecureOK bool) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil:
		v.vs.add(p, KindInvalid, "%q: want an absolute https URL without user info", raw)
	case u.Scheme == "http" && !insecureOK:
		v.vs.add(p, KindInvalid, "%q: keys must be fetched over https (disable_jwk_security: true allows http, for development only)", raw)
	}
}

func (v *validator) revoker(p path, r *Revoker) {
	nOK, pOK := false, false
	switch {
	case r.N == nil:
		v.vs.add(p.field("N"), KindRequired, "N (the expected number of revoked tokens) is required")
	case *r.N < 1:
		v.vs.add(p.field("N"), KindInvalid, "%d: must be at least 1", *r.N)
	default:
		nOK = true
	}
	switch {
	case r.P == nil:
		v.vs.add(p.field("P"), KindRequired, "P (the bloom filter's false-positive rate) is required")
	case !(*r.P > 0 && *r.P < 1):
		v.vs.add(p.field("P"), KindInvalid, "%g: must be strictly between 0 and 1", *r.P)
	default:
		pOK = true
	}
	if nOK && pOK {
		if bytes := bloomBytes(*r.N, *r.P); bytes > MaxRevokerFilterBytes {
			v.vs.add(p.field("N"), KindTooMany, "N=%d with P=%g needs a %.0f MiB bloom filter on every edge; the limit is %d MiB",
				*r.N, *r.P, bytes/(1<<20), MaxRevokerFilterBytes>>20)
		}
	}
	if r.TTL == nil {
		v.vs.add(p.field("TTL"), KindRequired, "TTL (seconds a revocation stays in force without an explicit expiry; set it to the token lifetime) is required")
	} else {
		v.seconds(p.field("TTL"), *r.TTL, 1)
	}
	if len(r.TokenKeys) == 0 {
		v.vs.add(p.field("token_keys"), KindRequired, "token_keys (the claims checked against the revocation set, e.g. [\"jti\"]) is required")
	}
	v.nonEmpty(p.field("token_keys"), r.TokenKeys, "claim name")
	v.noRepeats(p.field("token_keys"), r.TokenKeys)
	switch r.HashName {
	case "", "optimal":
		// Our filter's hashing is fixed; "optimal" is what it matches.
	case "default":
		v.vs.add(p.field("hash_name"), KindUnsupported,
			"the legacy \"default\" hasher sets at most 8 bits per entry whatever P asks, so its real false-positive rate is far worse than P; allowed: %s",
			strings.Join(revokerHashNames, ", "))
	default:
		v.vs.unsupportedValue(p.field("hash_name"), r.HashName, revokerHashNames)
	}
}

// bloomBytes is the size of an optimal bloom filter for n entries at
// false-positive rate p.
func bloomBytes(n int64, p float64) float64 {
	bits := math.Ceil(-float64(n) * math.Log(p) / (math.Ln2 * math.Ln2))
	return bits / 8
}

func compileJWT(j *JWTValidator, l *JWTLimits) *gatewayv1.JWTValidator {
	out := &gatewayv1.JWTValidator{
		Alg:                          j.Alg,
		JwkUrl:                       j.JWKURL,
		JwkLocalPath:                 j.JWKLocalPath,
		Cache:                        j.Cache,
		CacheDurationMs:              deref(j.CacheDuration) * 1000,
		DisableJwkSecurity:           j.DisableJWKSecurity,
		FailedJwkKeyCooldownMs:       ms(j.FailedJWKKeyCooldown),
		Audience:                     j.Audience,
		Issuer:                       j.Issuer,
		LeewayMs:                     ms(deref(j.Leeway)),
		Roles:                        j.Roles,
		RolesKey:                     j.RolesKey,
		RolesKeyIsNested:             j.RolesKeyIsNested,
		Scopes:                       j.Scopes,
		ScopesKey:                    j.ScopesKey,
		ScopesMatcher:                j.ScopesMatcher,
		AuthHeaderName:               j.AuthHeaderName,
		CookieKey:                    j.CookieKey,
		KeyIdentifyStrategy:          j.KeyIdentifyStrategy,
		OperationDebug:               j.OperationDebug,
		PropagateClaimsPreserveArray: j.PropagateClaimsPreserveArray,
		JwksTls:                      compileJWKSTLS(&j.TLS),
		JwksEncryption:               compileJWKSEncryption(&j.TLS),
	}
	for _, c := range j.PropagateClaims {
		out.PropagateClaims = append(out.PropagateClaims, &gatewayv1.ClaimHeader{Claim: c.Claim, Header: c.Header})
	}
	if l != nil {
		out.RequireExp = deref(l.RequireExp)
		out.MaxTokenLifetimeMs = ms(deref(l.MaxTokenLifetime))
	}
	return out
}

func compileRevoker(r *Revoker) *gatewayv1.Revoker {
	return &gatewayv1.Revoker{
		N:         uint64(deref(r.N)),
		P:         deref(r.P),
		TtlMs:     deref(r.TTL) * 1000,
		TokenKeys: r.TokenKeys,
	}
}
