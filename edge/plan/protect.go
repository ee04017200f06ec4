package plan

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"google.golang.org/protobuf/proto"

	"github.com/apigw/gateway/edge/aggregate"
	"github.com/apigw/gateway/edge/auth"
	"github.com/apigw/gateway/edge/cel"
	"github.com/apigw/gateway/edge/qos/breaker"
	"github.com/apigw/gateway/edge/qos/httpcache"
	"github.com/apigw/gateway/edge/qos/ratelimit"
	"github.com/apigw/gateway/proto/duration"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/proto/violation"
)

// This file holds the endpoint protection layers, in request order after
// routing: JWT validation (auth/validator, 401/403), the router rate limit
// (qos/ratelimit/router, 429 client then 503 global), the request body's
// JSON schema (validation/json-schema, 400). CORS and security/http run
// before routing (Plan.Serve); the per-backend layers (circuit breaker,
// backend rate limit, martian modifiers, HTTP cache) live in edge/proxy
// and run around each backend call.

var (
	bodyUnauthorized       = []byte(`{"error":"unauthorized"}`)
	bodyForbidden          = []byte(`{"error":"forbidden"}`)
	bodyTooManyRequests    = []byte(`{"error":"too_many_requests"}`)
	bodyServiceUnavailable = []byte(`{"error":"service_unavailable"}`)

	hdrRetryAfter = []byte(ratelimit.HeaderRetryAfter)
	hdrRLLimit    = []byte(ratelimit.HeaderLimit)
	hdrRLRemain   = []byte(ratelimit.HeaderRemaining)
	hdrRLReset    = []byte(ratelimit.HeaderReset)
)

// clientKeyKind says where the router rate limit finds the client identity.
type clientKeyKind uint8

const (
	keyNone     clientKeyKind = iota // no per-client limit
	keyIP                            // the trusted-proxy-aware client IP
	keyIPHeader                      // the first address in a header, else the client IP
	keyHeader                        // a request header (after claim propagation)
	keyParam                         // an endpoint path parameter
)

// endpointAuth builds the endpoint's JWT validator.
func (b *builder) endpointAuth(path string, e *gatewayv1.Endpoint, ep *endpoint) {
	spec := e.GetJwt()
	if spec == nil {
		return
	}
	vpath := path + ".extra_config.auth/validator"
	if vs := auth.CheckSpec(vpath, spec); len(vs) > 0 {
		b.violations = append(b.violations, vs...)
		return
	}
	keys, err := b.keysRegistry()
	if err != nil {
		b.violate(vpath, violation.Invalid, err.Error())
		return
	}
	spec = revocableSpec(spec, b.snap.GetService().GetRevoker())
	v, err := auth.New(b.jwksContext(), auth.Config{Spec: spec, Keys: keys, Revocations: b.deps.Revocations, Name: e.GetName()})
	if err != nil {
		b.violate(vpath, violation.Invalid, err.Error())
		return
	}
	b.validators = append(b.validators, v)
	ep.jwt = v
}

// endpointSigner builds the endpoint's auth/signer.
func (b *builder) endpointSigner(path string, e *gatewayv1.Endpoint, ep *endpoint) {
	spec := e.GetSigner()
	if spec == nil {
		return
	}
	spath := path + ".extra_config.auth/signer"
	if vs := auth.CheckSignerSpec(spath, spec); len(vs) > 0 {
		b.violations = append(b.violations, vs...)
		return
	}
	if e.GetOutputEncoding() == "no-op" {
		b.violate(path+".output_encoding", violation.Invalid, "auth/signer signs fields of the decoded response; output_encoding no-op never decodes it")
		return
	}
	keys, err := b.keysRegistry()
	if err != nil {
		b.violate(spath, violation.Invalid, err.Error())
		return
	}
	s, err := auth.NewSigner(b.jwksContext(), auth.SignerConfig{Spec: spec, Keys: keys, Name: e.GetName()})
	if err != nil {
		b.violate(spath, violation.Invalid, err.Error())
		return
	}
	b.signers = append(b.signers, s)
	ep.signer = s
}

// revocableSpec is the validator settings under which a revocation never
// lapses before the tokens it matches: with an `auth/revoker`, a token must
// carry exp and iat, and exp - iat must not exceed RevocableLifetime (a
// smaller max_token_lifetime stays). Without a revoker the settings are the
// endpoint's own.
func revocableSpec(spec *gatewayv1.JWTValidator, rv *gatewayv1.Revoker) *gatewayv1.JWTValidator {
	if rv == nil {
		return spec
	}
	bound := RevocableLifetime(rv.GetTtlMs(), spec.GetLeewayMs())
	if spec.GetRequireExp() && spec.GetMaxTokenLifetimeMs() > 0 && spec.GetMaxTokenLifetimeMs() <= bound {
		return spec
	}
	out := proto.CloneOf(spec)
	out.RequireExp = true
	if l := out.GetMaxTokenLifetimeMs(); l <= 0 || l > bound {
		out.MaxTokenLifetimeMs = bound
	}
	return out
}

// RevocableLifetime is the longest token lifetime (exp - iat, ms) whose
// revocation cannot lapse first, for a revoker ttl and a validator leeway
// (both ms; zero means the defaults). A revocation made at time r lasts
// until r + ttl (the control plane's expiry for a revocation given without
// one). A token that existed at r was issued by then, give or take the
// leeway on iat, and is accepted until exp plus the leeway: so exp - iat
// <= ttl - 2·leeway keeps it refused to the end. At least 1 s.
func RevocableLifetime(ttlMs, leewayMs int64) int64 {
	if ttlMs <= 0 {
		ttlMs = auth.DefaultRevocationTTL.Milliseconds()
	}
	if leewayMs <= 0 {
		leewayMs = auth.DefaultLeeway.Milliseconds()
	}
	return max(ttlMs-2*leewayMs, time.Second.Milliseconds())
}

// jwksContext bounds the waits for first JWKS fetches of the whole build
// by one JWKSWait, however many unreachable key sets it names.
func (b *builder) jwksContext() context.Context {
	if b.jwksCtx == nil {
		wait := b.deps.JWKSWait
		if wait <= 0 {
			wait = DefaultJWKSWait
		}
		b.jwksCtx, b.jwksCancel = context.WithTimeout(context.Background(), wait)
	}
	return b.jwksCtx
}

// endpointRateLimit takes the endpoint's router limiter from the QoS
// registry and compiles how its client key is read.
func (b *builder) endpointRateLimit(path string, e *gatewayv1.Endpoint, ep *endpoint, params []string) {
	rl := e.GetRateLimit()
	if rl == nil {
		return
	}
	rpath := path + ".extra_config.qos/ratelimit/router"
	lease, err := b.qosLease()
	if err != nil {
		b.violate(rpath, violation.Invalid, err.Error())
		return
	}
	lim, err := lease.RouterLimiter(e.GetName(), rl, b.snap.GetService().GetClusterRateLimit())
	if err != nil {
		b.violate(rpath, violation.Invalid, err.Error())
		return
	}
	if lim == nil {
		return // no rate set: KrakenD installs nothing either
	}
	ep.limiter = lim
	key := lim.Key()
	switch lim.Strategy() {
	case "":
		ep.keyKind = keyNone
	case ratelimit.StrategyIP:
		ep.keyKind = keyIP
		if key != "" {
			if !b.clientIPTrusts() {
				b.violate(rpath+".key", violation.Invalid, "strategy ip with key "+strconv.Quote(key)+
					" reads the client address from a header, which any client can set: list the proxies that set it in router.trusted_proxies")
				return
			}
			ep.keyKind, ep.keyName = keyIPHeader, []byte(key)
		}
	case ratelimit.StrategyHeader:
		ep.keyKind, ep.keyName = keyHeader, []byte(key)
	case ratelimit.StrategyParam:
		slot := paramIndex(params, key)
		if slot < 0 {
			b.violate(rpath+".key", violation.NotFound, "strategy param: "+strconv.Quote(key)+" is not a parameter of "+strconv.Quote(e.GetPath()))
			return
		}
		ep.keyKind, ep.keySlot = keyParam, slot
	}
}

// paramIndex finds a path parameter by name, or ignoring the case of its
// first letter (gin's c.Param is exact; KrakenD configs often differ in
// the first letter only, as url_pattern placeholders may).
func paramIndex(params []string, name string) int {
	for i, p := range params {
		if p == name {
			return i
		}
	}
	for i, p := range params {
		if name != "" && len(p) == len(name) && p[1:] == name[1:] && strings.EqualFold(p[:1], name[:1]) {
			return i
		}
	}
	return -1
}

// backendGuard is the protection of one backend call.
type backendGuard struct {
	breaker *breaker.Breaker
	limiter *ratelimit.Bucket
	cache   *httpcache.Cache
}

// backendQoS takes a backend's breaker, rate limiter and HTTP cache from the
// QoS registry; ok is false after a violation.
func (b *builder) backendQoS(path string, e *gatewayv1.Endpoint, be *gatewayv1.Backend) (g backendGuard, ok bool) {
	if be.GetCircuitBreaker() == nil && be.GetRateLimit() == nil && be.GetHttpCache() == nil {
		return g, true
	}
	lease, err := b.qosLease()
	if err != nil {
		b.violate(path, violation.Invalid, err.Error())
		return g, false
	}
	ok = true
	timeout := duration.Join(e.GetTimeoutMs(), e.GetTimeoutNs())
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if g.breaker, err = lease.Breaker(be.GetName(), be.GetCircuitBreaker(), timeout); err != nil {
		b.violate(path+".extra_config.qos/circuit-breaker", violation.Invalid, err.Error())
		ok = false
	}
	if g.limiter, err = lease.BackendLimiter(be.GetName(), be.GetRateLimit()); err != nil {
		b.violate(path+".extra_config.qos/ratelimit/proxy", violation.Invalid, err.Error())
		ok = false
	}
	if g.cache, err = lease.Cache(be.GetName(), be.GetHttpCache()); err != nil {
		b.violate(path+".extra_config.qos/http-cache", violation.Invalid, err.Error())
		ok = false
	}
	return g, ok
}

// tokenClaims resolves url_pattern {JWT.<claim>} placeholders from the
// request's verified token: a top-level claim by its literal name (KrakenD,
// no allocation), else a dotted path into nested objects (our extension;
// formatting a nested value may allocate). It lives in the pooled reqState,
// so handing it to proxy.Inbound as an interface does not allocate.
type tokenClaims struct{ tok *auth.Token }

func (c *tokenClaims) Value(name string) (string, bool) {
	if v, ok := c.tok.Value(name); ok {
		return v, true
	}
	if strings.IndexByte(name, '.') < 0 {
		return "", false
	}
	v, ok := c.tok.Claims().Lookup(name)
	if !ok || v == nil {
		return "", false
	}
	return auth.FormatClaim(v)
}

// authenticate runs the endpoint's JWT validator. On success it propagates
// the configured claims into the incoming request headers (where
// input_headers and the header rate-limit strategy see them) and exposes
// the token to url_pattern placeholders; otherwise it writes the fixed 401
// or 403 answer and reports false.
func (p *Plan) authenticate(ctx *fasthttp.RequestCtx, ep *endpoint, st *reqState) bool {
	stage := st.trace.StartStage(ep.trace, "jwt")
	tok, reason := ep.jwt.VerifyRequest(&ctx.Request.Header)
	// validation/cel's JWT expressions are a krakend-jose rejecter: they
	// see every verified token, before the roles and scopes check (a
	// rejected token is a 401 even when its roles would have been refused).
	if tok != nil && ep.cel.HasJWT() && !ep.cel.CheckJWT(celClaims(tok), time.Now()) {
		reason = auth.ReasonRejected
	}
	stage.End(reason != auth.ReasonOK, reason.String())
	if reason != auth.ReasonOK {
		p.rejections.auth(reason)
		// KrakenD's JWT middleware answers before its endpoint handler
		// sets X-KrakenD: a 401/403 carries neither header nor text.
		ctx.Response.Header.DelBytes(hdrXKrakenD)
		switch reason.Status() {
		case fasthttp.StatusForbidden:
			p.writeError(ctx, fasthttp.StatusForbidden, bodyForbidden)
		case fasthttp.StatusServiceUnavailable:
			p.writeError(ctx, fasthttp.StatusServiceUnavailable, bodyServiceUnavailable)
		default:
			p.writeError(ctx, fasthttp.StatusUnauthorized, bodyUnauthorized)
		}
		return false
	}
	tok.SetHeaders(&ctx.Request.Header)
	st.claims.tok = tok
	st.in.Claims = &st.claims
	return true
}

// rateLimit checks the endpoint's router limit for this client: 429 when
// the client's bucket is empty, 503 when the endpoint's is, both with
// Retry-After and X-RateLimit-*. An allowed decision is kept in st so the
// answer carries the X-RateLimit-* headers too.
func (p *Plan) rateLimit(ctx *fasthttp.RequestCtx, ep *endpoint, st *reqState) bool {
	stage := st.trace.StartStage(ep.trace, "rate-limit")
	d := ep.limiter.Allow(context.Background(), p.clientKey(ctx, ep, st))
	stage.End(!d.Allowed, "")
	st.limit = d
	if d.Allowed {
		return true
	}
	p.rejections.limited(d.RejectedBy)
	st.buf = strconv.AppendInt(st.buf[:0], d.RetryAfterSeconds(), 10)
	ctx.Response.Header.SetCanonical(hdrRetryAfter, st.buf)
	setRateHeaders(ctx, st)
	if d.Status() == fasthttp.StatusServiceUnavailable {
		p.writeError(ctx, fasthttp.StatusServiceUnavailable, bodyServiceUnavailable)
	} else {
		p.writeError(ctx, fasthttp.StatusTooManyRequests, bodyTooManyRequests)
	}
	return false
}

// setRateHeaders writes X-RateLimit-Limit/Remaining/Reset from st.limit
// (nothing when no bucket was consulted: an empty client key).
func setRateHeaders(ctx *fasthttp.RequestCtx, st *reqState) {
	d := &st.limit
	if d.Limit == 0 {
		return
	}
	h := &ctx.Response.Header
	st.buf = strconv.AppendUint(st.buf[:0], d.Limit, 10)
	h.SetCanonical(hdrRLLimit, st.buf)
	st.buf = strconv.AppendUint(st.buf[:0], d.Remaining, 10)
	h.SetCanonical(hdrRLRemain, st.buf)
	st.buf = strconv.AppendInt(st.buf[:0], d.ResetSeconds(), 10)
	h.SetCanonical(hdrRLReset, st.buf)
}

// clientKey extracts the client identity of the router rate limit. The
// result aliases the request and is used before the handler returns.
func (p *Plan) clientKey(ctx *fasthttp.RequestCtx, ep *endpoint, st *reqState) []byte {
	switch ep.keyKind {
	case keyIP:
		return st.in.ClientIP
	case keyIPHeader:
		// KrakenD takes the header's first address from anyone, so a
		// client rotating X-Forwarded-For gets a fresh bucket per request.
		// We believe the header only from router.trusted_proxies, and
		// take the rightmost address that is not a trusted proxy (plan
		// building refuses the strategy without trusted proxies);
		// otherwise the client IP.
		var ok bool
		st.ipKey, ok = p.clientIP.AppendForwarded(st.ipKey[:0], ctx.RemoteIP(), ctx.Request.Header.PeekBytes(ep.keyName))
		if ok {
			return st.ipKey
		}
		return st.in.ClientIP
	case keyHeader:
		return ctx.Request.Header.PeekBytes(ep.keyName)
	case keyParam:
		return st.params.Value(ep.keySlot)
	}
	return nil
}

// serviceUnavailable answers a single backend whose circuit is open: 503,
// Retry-After in seconds (at least 1).
func (p *Plan) serviceUnavailable(ctx *fasthttp.RequestCtx, st *reqState, retryAfter int64) {
	st.buf = strconv.AppendInt(st.buf[:0], max(retryAfter, 1), 10)
	ctx.Response.Header.SetCanonical(hdrRetryAfter, st.buf)
	p.writeError(ctx, fasthttp.StatusServiceUnavailable, bodyServiceUnavailable)
}

// validate checks the request body against the endpoint's JSON schema:
// 400 for a missing or invalid body, with KrakenD's text under
// router.return_error_msg (the validator's words) and otherwise the status
// alone. A rate-limited answer keeps its X-RateLimit-* headers.
func (p *Plan) validate(ctx *fasthttp.RequestCtx, ep *endpoint, st *reqState) bool {
	body := ctx.Request.Body()
	if err := ep.schema.Validate(body); err != nil {
		if ep.limiter != nil {
			setRateHeaders(ctx, st)
		}
		ctx.Response.Header.SetCanonical(hdrCompleted, valFalse)
		if p.returnErrorMsg && !p.jsonErrors {
			ctx.SetStatusCode(fasthttp.StatusBadRequest)
			ctx.SetContentTypeBytes(contentTypeTextUTF8)
			st.buf = ep.schema.AppendErrorText(st.buf[:0], body)
			ctx.SetBody(st.buf)
			return false
		}
		p.writeError(ctx, fasthttp.StatusBadRequest, bodyBadRequest)
		return false
	}
	return true
}

// celClaims is the JWT variable of validation/cel: the claims with numbers
// as float64, as krakend-jose decodes them (ours keep json.Number).
func celClaims(tok *auth.Token) map[string]any {
	m, _ := celNumbers(tok.Claims().Map()).(map[string]any)
	return m
}

func celNumbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = celNumbers(x)
		}
		return m
	case []any:
		a := make([]any, len(t))
		for i, x := range t {
			a[i] = celNumbers(x)
		}
		return a
	case json.Number:
		f, err := t.Float64()
		if err != nil {
			return t.String()
		}
		return f
	}
	return v
}

// celRequest runs the endpoint's validation/cel request expressions (in
// KrakenD's proxy stack, after the JWT and the router rate limit, before
// the JSON schema).
func (p *Plan) celRequest(ctx *fasthttp.RequestCtx, ep *endpoint, st *reqState) bool {
	if !ep.cel.HasRequest() {
		return true
	}
	in := &st.celIn
	pv := in.ParamValues[:0]
	for i := 0; i < st.params.Len(); i++ {
		pv = append(pv, st.params.Value(i))
	}
	*in = ep.celIn
	in.Req, in.ClientIP, in.ParamValues = &ctx.Request, st.in.ClientIP, pv
	st.celAt = time.Now()
	n, ok := ep.cel.CheckRequest(in, st.celAt)
	clear(pv)
	*in = cel.Inbound{ParamValues: pv[:0]}
	if ok {
		return true
	}
	p.celReject(ctx, st, n)
	return false
}

// celResponse runs the response expressions on a pipe result that had no
// backend error (krakend-cel skips them when its next proxy failed).
func (p *Plan) celResponse(ctx *fasthttp.RequestCtx, ep *endpoint, st *reqState, r *aggregate.Result) bool {
	if !r.HasData() {
		return true
	}
	if st.celAt.IsZero() {
		st.celAt = time.Now()
	}
	res := cel.Result{Complete: r.Complete, Code: r.MetaStatus, Value: r.Value, Raw: r.Raw}
	n, ok := ep.cel.CheckResponse(&res, st.celAt)
	if ok {
		return true
	}
	p.celReject(ctx, st, n)
	return false
}

// celReject answers as lura's endpoint handler does for a proxy error: 500,
// X-KrakenD-Completed false, and with router.return_error_msg the text.
func (p *Plan) celReject(ctx *fasthttp.RequestCtx, st *reqState, n cel.Rejection) {
	p.rejections.cel()
	ctx.Response.Header.SetCanonical(hdrCompleted, valFalse)
	if p.returnErrorMsg && !p.jsonErrors {
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		ctx.SetContentTypeBytes(contentTypeTextUTF8)
		st.buf = n.AppendText(st.buf[:0])
		ctx.SetBody(st.buf)
		return
	}
	p.writeError(ctx, fasthttp.StatusInternalServerError, bodyInternal)
}
