package auth

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
	"google.golang.org/protobuf/proto"

	"github.com/apigw/gateway/edge/lease"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/proto/violation"
)

// Defaults applied when the snapshot leaves a field empty (zero). They are
// KrakenD's defaults; a snapshot from the config compiler already carries
// them.
const (
	DefaultAuthHeader = "Authorization"
	DefaultCookieKey  = "access_token"
	DefaultRolesKey   = "roles"
	DefaultLeeway     = time.Second
	// MaxLeeway is the largest leeway accepted (the config compiler's
	// bound too): beyond clock skew, a leeway only keeps expired tokens
	// valid.
	MaxLeeway = 5 * time.Minute
)

// SupportedAlgorithms lists the values accepted for alg.
var SupportedAlgorithms = []string{
	"EdDSA", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512",
	"PS256", "PS384", "PS512", "RS256", "RS384", "RS512",
}

// Config configures one endpoint's Validator.
type Config struct {
	// Spec is the endpoint's `auth/validator` (required).
	Spec *gatewayv1.JWTValidator
	// Keys is the process-wide registry (required).
	Keys *Keys
	// Revocations is checked on every request; nil disables revocation.
	Revocations *Revocations
	// Name is the endpoint name ("GET /users/{id}") for logs and errors.
	Name string
}

// Validate reports the settings New would refuse, in one error.
func (c Config) Validate() error {
	var errs []error
	if c.Keys == nil {
		errs = append(errs, errors.New("validator config: keys is nil"))
	}
	for _, v := range CheckSpec("jwt", c.Spec) {
		errs = append(errs, fmt.Errorf("validator config: %s: %s: %s", v.GetPath(), v.GetKind(), v.GetDetail()))
	}
	return errors.Join(errs...)
}

// CheckSpec validates an `auth/validator` message the way New will, as field
// violations under path (for plan.Build's BuildError): alg, jwk_url (https
// unless disable_jwk_security), one of jwk_url / jwk_local_path, matchers,
// strategies, durations and header names. It does not read jwk_local_path.
func CheckSpec(path string, s *gatewayv1.JWTValidator) []*gatewayv1.FieldViolation {
	var out []*gatewayv1.FieldViolation
	add := func(field string, kind violation.Kind, detail string) {
		out = append(out, &gatewayv1.FieldViolation{Path: path + "." + field, Kind: kind.String(), Detail: detail})
	}
	if s == nil {
		return []*gatewayv1.FieldViolation{{Path: path, Kind: violation.Required.String(), Detail: "auth/validator settings missing"}}
	}
	if s.GetAlg() == "" {
		add("alg", violation.Required, "the signature algorithm must be set")
	} else if !slices.Contains(SupportedAlgorithms, s.GetAlg()) {
		add("alg", violation.Unsupported, fmt.Sprintf("%q: allowed: %s", s.GetAlg(), strings.Join(SupportedAlgorithms, ", ")))
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
	if _, ok := parseStrategy(s.GetKeyIdentifyStrategy()); !ok {
		add("key_identify_strategy", violation.Unsupported, fmt.Sprintf("%q: allowed: kid, x5t, x5t#S256, kid_x5t", s.GetKeyIdentifyStrategy()))
	}
	switch s.GetScopesMatcher() {
	case "", "any", "all":
	default:
		add("scopes_matcher", violation.Unsupported, fmt.Sprintf("%q: allowed: any, all", s.GetScopesMatcher()))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"cache_duration", s.GetCacheDurationMs()}, {"failed_jwk_key_cooldown", s.GetFailedJwkKeyCooldownMs()}, {"leeway", s.GetLeewayMs()}} {
		if f.v < 0 {
			add(f.name, violation.Invalid, fmt.Sprintf("%d ms: must not be negative", f.v))
		}
	}
	if l := s.GetMaxTokenLifetimeMs(); l < 0 || (l > 0 && l < time.Second.Milliseconds()) {
		add("max_token_lifetime", violation.Invalid, fmt.Sprintf("%d ms: must be at least 1s (or 0 for no bound)", l))
	}
	if l := s.GetLeewayMs(); l > MaxLeeway.Milliseconds() {
		add("leeway", violation.Invalid, fmt.Sprintf("%d ms: at most %s (clock skew only)", l, MaxLeeway))
	}
	if n := s.GetAuthHeaderName(); n != "" && !validHeaderName(n) {
		add("auth_header_name", violation.Invalid, fmt.Sprintf("%q: not a header name", n))
	}
	for i, p := range s.GetPropagateClaims() {
		if p.GetClaim() == "" {
			add(fmt.Sprintf("propagate_claims[%d].claim", i), violation.Required, "claim name missing")
		}
		if !validHeaderName(p.GetHeader()) {
			add(fmt.Sprintf("propagate_claims[%d].header", i), violation.Invalid, fmt.Sprintf("%q: not a header name", p.GetHeader()))
		}
	}
	return out
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// Validator checks the tokens of one endpoint. Build one per endpoint with
// New when the plan is built, call VerifyRequest (or Verify) per request,
// and Close it when the plan is released. Validators with identical
// settings share their compiled form, keys and verified-token cache, which
// survive config pushes as long as one validator holds them. Safe for
// concurrent use.
type Validator struct {
	c      *core
	rev    *Revocations
	name   string
	closed atomic.Bool
}

// core is the compiled form of one JWTValidator message, shared by every
// Validator with the same settings.
type core struct {
	k   *Keys
	key string // in Keys.cores
	src *source

	alg         jwa.SignatureAlgorithm
	algName     string
	strategy    keyStrategy
	issuer      string
	audience    []string
	leeway      int64 // nanos
	roles       []string
	rolesKey    string
	rolesNested bool
	scopes      []string
	scopesKey   string
	scopesAll   bool
	prop        *propagation
	header      []byte
	cookie      []byte
	debug       bool
	requireExp  bool
	maxLifetime int64 // nanos; 0: unbounded
	cache       *tokenCache
	log         zerolog.Logger
}

// New builds the Validator of one endpoint. It validates the settings
// (CheckSpec), reads jwk_local_path, and for a jwk_url it shares or starts
// the key source; when the source is new it waits for its first fetch
// until ctx is done (a failed or slow first fetch is not an error: requests
// get 401 ReasonNoKeys until a background retry succeeds). The caller owns
// the Validator and must Close it, also when the plan that needed it fails
// to build.
func New(ctx context.Context, cfg Config) (*Validator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new validator %q: %w", cfg.Name, err)
	}
	c, err := cfg.Keys.acquireCore(cfg.Spec)
	if err != nil {
		return nil, fmt.Errorf("new validator %q: %w", cfg.Name, err)
	}
	select {
	case <-c.src.ready:
	case <-ctx.Done():
	}
	if c.src.keys() == nil {
		c.log.Warn().Str("endpoint", cfg.Name).Str("jwks", c.src.name).Msg("no jwks keys yet; requests get 401 until a fetch succeeds")
	}
	return &Validator{c: c, rev: cfg.Revocations, name: cfg.Name}, nil
}

// Close releases the shared validator state and key source (stopping its
// background fetches when no other Validator uses them). Idempotent.
func (v *Validator) Close() {
	if v.closed.Swap(true) {
		return
	}
	v.c.k.releaseCore(v.c)
}

// Ready reports whether the key source holds a key set.
func (v *Validator) Ready() bool { return v.c.src.keys() != nil }

// Extract returns the token of a request: the configured header
// (auth_header_name, default Authorization) with a case-insensitive
// "Bearer " prefix removed (a bare token is accepted too), else the cookie
// cookie_key (default access_token). The result aliases h: use it before the
// handler returns. It does not allocate.
func (v *Validator) Extract(h *fasthttp.RequestHeader) []byte {
	if tok := bytes.TrimSpace(h.PeekBytes(v.c.header)); len(tok) > 0 {
		if len(tok) > 7 && bytes.EqualFold(tok[:7], bearer) {
			tok = bytes.TrimLeft(tok[7:], " \t")
		}
		return tok
	}
	return h.CookieBytes(v.c.cookie)
}

var bearer = []byte("bearer ")

// VerifyRequest is Extract followed by Verify.
func (v *Validator) VerifyRequest(h *fasthttp.RequestHeader) (*Token, Reason) {
	return v.Verify(v.Extract(h))
}

// Verify checks one token: signature with the pinned alg and a typed key,
// exp/nbf/iat with the leeway, iss, aud, then revocation (401), roles and
// scopes (403). It returns the Token for ReasonOK and for the 403 reasons
// (the identity is proven, the access is not), nil otherwise. A token seen
// before is answered from the cache without allocating, until it expires or
// the key set changes; the revocation check runs every time. tok is not
// retained.
func (v *Validator) Verify(tok []byte) (*Token, Reason) {
	c := v.c
	if len(tok) == 0 {
		return nil, ReasonMissing
	}
	now := c.k.now().UnixNano()
	if e := c.cache.get(tok); e != nil && e.gen == c.src.gen() && (e.until == 0 || now <= e.until) {
		e.touch()
		if v.rev != nil {
			if r := v.rev.Verdict(e.tok); r != ReasonOK {
				return nil, v.reject(r)
			}
		}
		if e.reason != ReasonOK {
			return e.tok, v.reject(e.reason)
		}
		return e.tok, ReasonOK
	}
	t, reason := c.verify(tok, now)
	if t == nil {
		return nil, v.reject(reason)
	}
	if v.rev != nil {
		if r := v.rev.Verdict(t); r != ReasonOK {
			return nil, v.reject(r)
		}
	}
	if reason != ReasonOK {
		return t, v.reject(reason)
	}
	return t, ReasonOK
}

// reject logs the reason when operation_debug is on (KrakenD logs every
// rejection then) and returns it.
func (v *Validator) reject(r Reason) Reason {
	if v.c.debug {
		v.c.log.Warn().Str("endpoint", v.name).Str("reason", r.String()).Msg("jwt rejected (operation_debug)")
	}
	return r
}

// verify is the uncached path: full signature and claim checks, then the
// result (valid tokens, including 403 ones) goes into the cache. It returns
// a nil Token for the 401 reasons.
func (c *core) verify(tok []byte, now int64) (*Token, Reason) {
	parts, ok := splitCompact(tok)
	if !ok {
		return nil, ReasonMalformed
	}
	h, err := parseHeader(parts.header)
	if err != nil {
		return nil, ReasonMalformed
	}
	if h.Alg != c.algName {
		return nil, ReasonAlgorithm
	}
	if _, err := decodeSegment(parts.sig); err != nil {
		return nil, ReasonMalformed
	}
	ks := c.src.keys()
	if ks == nil {
		c.src.refetch(c.k.cfg.UnknownKeyWait)
		if ks = c.src.keys(); ks == nil {
			return nil, ReasonNoKeys
		}
	}
	id := c.strategy.tokenID(&h)
	key := ks.find(c.strategy, id, c.algName)
	if key == nil {
		if c.src.refetch(c.k.cfg.UnknownKeyWait) {
			ks = c.src.keys()
			key = ks.find(c.strategy, id, c.algName)
		}
		if key == nil {
			return nil, ReasonUnknownKey
		}
	}
	payload, err := jws.VerifyCompactFast(key.key, tok, c.alg)
	if err != nil {
		return nil, ReasonSignature
	}
	m, err := parseClaims(payload)
	if err != nil {
		return nil, ReasonMalformed
	}
	cl := Claims{m: m}
	var exp int64
	expN, hasExp := m["exp"].(json.Number)
	if hasExp {
		exp = secondsToNanos(expN)
		if now-c.leeway > exp {
			return nil, ReasonExpired
		}
	}
	for _, name := range [...]string{"nbf", "iat"} {
		if n, ok := m[name].(json.Number); ok && now+c.leeway < secondsToNanos(n) {
			return nil, ReasonNotYetValid
		}
	}
	if !hasExp && c.requireExp {
		return nil, ReasonNoExpiry
	}
	if c.maxLifetime > 0 {
		// exp - iat, not exp - now: a token refused now for a long
		// remaining life must not become acceptable later, when a
		// revocation made meanwhile may already have lapsed.
		iat, hasIat := m["iat"].(json.Number)
		if !hasExp || !hasIat || exp > satAdd(secondsToNanos(iat), c.maxLifetime) {
			return nil, ReasonLifetime
		}
	}
	if c.issuer != "" {
		if iss, _ := m["iss"].(string); iss != c.issuer {
			return nil, ReasonIssuer
		}
	}
	if !c.audienceOK(m["aud"]) {
		return nil, ReasonAudience
	}
	t := &Token{claims: cl, prop: c.prop}
	t.values = make(map[string]string, len(m))
	for name, val := range m {
		if s, ok := FormatClaim(val); ok {
			t.values[name] = s
		}
	}
	if c.prop != nil {
		t.headers = c.prop.values(&cl)
	}
	e := &cacheEntry{key: string(tok), tok: t, reason: c.authorize(&cl), gen: ks.gen}
	if _, ok := m["exp"]; ok {
		t.expires = time.Unix(0, exp)
		e.until = max(1, satAdd(exp, c.leeway))
	}
	c.cache.put(e)
	return t, e.reason
}

// authorize runs the roles then the scopes check.
func (c *core) authorize(cl *Claims) Reason {
	if len(c.roles) > 0 {
		var v any
		var ok bool
		if c.rolesNested {
			v, ok = cl.Lookup(c.rolesKey)
		} else {
			v, ok = cl.Get(c.rolesKey)
		}
		have, isList := claimStrings(v)
		if !ok || !isList || !slices.ContainsFunc(c.roles, func(r string) bool { return slices.Contains(have, r) }) {
			return ReasonRoles
		}
	}
	if len(c.scopes) > 0 && c.scopesKey != "" {
		v, ok := cl.Lookup(c.scopesKey)
		have, isList := claimStrings(v)
		if !ok || !isList {
			return ReasonScopes
		}
		in := func(s string) bool { return slices.Contains(have, s) }
		if c.scopesAll {
			if !allOf(c.scopes, in) {
				return ReasonScopes
			}
		} else if !slices.ContainsFunc(c.scopes, in) {
			return ReasonScopes
		}
	}
	return ReasonOK
}

func allOf(xs []string, f func(string) bool) bool {
	for _, x := range xs {
		if !f(x) {
			return false
		}
	}
	return true
}

// audienceOK reports whether aud (string or array) holds every configured
// audience.
func (c *core) audienceOK(aud any) bool {
	if len(c.audience) == 0 {
		return true
	}
	var have []string
	switch a := aud.(type) {
	case string:
		have = []string{a}
	case []any:
		for _, e := range a {
			if s, ok := e.(string); ok {
				have = append(have, s)
			}
		}
	}
	for _, want := range c.audience {
		if !slices.Contains(have, want) {
			return false
		}
	}
	return true
}

// secondsToNanos converts a NumericDate to unix nanos, saturating far
// outside the int64 range.
func secondsToNanos(n json.Number) int64 {
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) {
		return 0
	}
	const limit = math.MaxInt64 / 1e9
	switch {
	case f >= limit:
		return math.MaxInt64
	case f <= -limit:
		return math.MinInt64
	}
	return int64(f * 1e9)
}

func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// acquireCore returns the shared compiled validator for spec.
func (k *Keys) acquireCore(spec *gatewayv1.JWTValidator) (*core, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("hash validator settings: %w", err)
	}
	key := string(b)
	c, created, err := k.cores.Acquire(key, func() (*core, error) {
		src, err := k.acquireSource(sourceSpecOf(spec))
		if err != nil {
			return nil, err
		}
		return compile(k, spec, key, src), nil
	})
	if errors.Is(err, lease.ErrClosed) {
		return nil, ErrClosed
	}
	if err != nil {
		return nil, err
	}
	if !created && spec.GetJwkLocalPath() != "" {
		// Re-read the file so a push picks up an edited JWKS.
		if err := c.src.loadFile(); err != nil {
			k.releaseCore(c)
			return nil, err
		}
	}
	return c, nil
}

func (k *Keys) releaseCore(c *core) { k.cores.Release([]string{c.key}, nil) }

func sourceSpecOf(s *gatewayv1.JWTValidator) sourceSpec {
	spec := sourceSpec{
		url:       s.GetJwkUrl(),
		path:      s.GetJwkLocalPath(),
		cooldown:  max(MinKeyCooldown, time.Duration(s.GetFailedJwkKeyCooldownMs())*time.Millisecond),
		allowHTTP: s.GetDisableJwkSecurity(),
		tls:       tlsKey(s.GetJwksTls()),
	}
	if spec.path != "" {
		spec.enc = encKey(s.GetJwksEncryption())
		spec.url = "" // jwk_local_path takes precedence, as in KrakenD
		return spec
	}
	switch {
	case !s.GetCache():
		spec.refresh = UncachedRefresh
	case s.GetCacheDurationMs() > 0:
		spec.refresh = max(time.Second, time.Duration(s.GetCacheDurationMs())*time.Millisecond)
	default:
		spec.refresh = DefaultCacheDuration
	}
	return spec
}

func compile(k *Keys, s *gatewayv1.JWTValidator, key string, src *source) *core {
	alg, _ := jwa.LookupSignatureAlgorithm(s.GetAlg())
	st, _ := parseStrategy(s.GetKeyIdentifyStrategy())
	c := &core{
		k:           k,
		key:         key,
		src:         src,
		alg:         alg,
		algName:     s.GetAlg(),
		strategy:    st,
		issuer:      s.GetIssuer(),
		audience:    slices.Clone(s.GetAudience()),
		leeway:      int64(DefaultLeeway),
		roles:       slices.Clone(s.GetRoles()),
		rolesKey:    cmp.Or(s.GetRolesKey(), DefaultRolesKey),
		rolesNested: s.GetRolesKeyIsNested(),
		scopes:      slices.Clone(s.GetScopes()),
		scopesKey:   s.GetScopesKey(),
		scopesAll:   s.GetScopesMatcher() == "all",
		header:      []byte(cmp.Or(s.GetAuthHeaderName(), DefaultAuthHeader)),
		cookie:      []byte(cmp.Or(s.GetCookieKey(), DefaultCookieKey)),
		debug:       s.GetOperationDebug(),
		requireExp:  s.GetRequireExp() || s.GetMaxTokenLifetimeMs() > 0,
		maxLifetime: s.GetMaxTokenLifetimeMs() * int64(time.Millisecond),
		cache:       newTokenCache(k.cfg.TokenCacheSize),
		log:         k.log,
	}
	if s.GetLeewayMs() > 0 {
		c.leeway = s.GetLeewayMs() * int64(time.Millisecond)
	}
	if pc := s.GetPropagateClaims(); len(pc) > 0 {
		p := &propagation{preserveArray: s.GetPropagateClaimsPreserveArray()}
		for _, h := range pc {
			p.claims = append(p.claims, h.GetClaim())
			p.names = append(p.names, h.GetHeader())
			p.keys = append(p.keys, []byte(h.GetHeader()))
		}
		c.prop = p
	}
	return c
}
