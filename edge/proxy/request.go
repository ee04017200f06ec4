package proxy

import (
	"errors"
	"fmt"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/apigw/gateway/edge/cel"
	"github.com/apigw/gateway/edge/internal/zerocopy"
	"github.com/apigw/gateway/edge/modifier"
	"github.com/apigw/gateway/edge/qos/breaker"
	"github.com/apigw/gateway/edge/qos/httpcache"
	"github.com/apigw/gateway/edge/qos/ratelimit"
	"github.com/apigw/gateway/edge/response"
	"github.com/apigw/gateway/edge/router"
	"github.com/apigw/gateway/edge/stats"
	"github.com/apigw/gateway/edge/tracing"
)

// BackendConfig describes the request side of one backend call.
type BackendConfig struct {
	Name string
	// CEL is the backend's validation/cel (nil: none); CELParams the
	// endpoint parameters under lura's names ("Id"), in slot order.
	CEL       *cel.Checks
	CELParams []string
	Client    *Client
	// Method is the upstream method.
	Method string
	// URLPattern is the backend path with optional fixed query
	// ("/users/{id}?full=1"), placeholders as in KrakenD.
	URLPattern string
	// ParamNames are the endpoint parameters in router slot order
	// (router.Table.ParamNames); the catch-all slot is named router.CatchAllParam.
	ParamNames []string
	// CatchAll appends the rest of the request path (the catch-all slot) to
	// the backend path.
	CatchAll bool
	// Sequential resolves {respN_field} placeholders from earlier responses.
	Sequential bool
	// EndpointHeaders is the endpoint input_headers allow-list (canonical
	// names); ["*"] forwards all; empty means only Content-Type.
	EndpointHeaders []string
	// BackendHeaders is the backend-level subset; empty means all the
	// endpoint forwards.
	BackendHeaders []string
	// EndpointQuery / BackendQuery: input_query_strings at both levels;
	// the endpoint's empty list forwards none, ["*"] all.
	EndpointQuery []string
	BackendQuery  []string
	// UserAgent is sent when the client's User-Agent is not forwarded; it is
	// also the X-Forwarded-Via value when it is ("KrakenD Version x").
	UserAgent string

	// Breaker is the backend's qos/circuit-breaker; nil admits every call.
	Breaker *breaker.Breaker
	// Limiter is the backend's qos/ratelimit/proxy bucket; nil: no limit.
	Limiter *ratelimit.Bucket
	// Cache is the backend's qos/http-cache; nil: no caching.
	Cache *httpcache.Cache
	// Modifier holds the backend's modifier/martian chains; nil: none.
	Modifier *modifier.Modifier
	// Reroutes: a call may leave the backend's hosts before RoundTrip
	// (a modifier/lua-backend pre that sets url() to another host). The
	// Modifier's url.Modifier counts without it.
	Reroutes bool
	// SendBodyOnRedirect re-sends the body on 307/308 redirects
	// (backend/http/client).
	SendBodyOnRedirect bool
	// Trace is the backend's tracing layer; nil records no span for its
	// calls (trace context is still propagated).
	Trace *tracing.Layer
	// Stats is the backend's telemetry/metrics series (layer "backend");
	// nil: not counted.
	Stats *stats.Layer
	// GraphQL is the backend's backend/graphql; nil: a plain call.
	GraphQL *GraphQLConfig
}

// Backend is a compiled backend call: the request template, the header and
// query policies and its upstream Client. Immutable and safe for concurrent use.
type Backend struct {
	name      string
	cel       *cel.Checks
	celParams []string
	client    *Client
	method    []byte

	path      []tmplPart // url_pattern before '?'
	query     []tmplPart // url_pattern after '?'
	catchSlot int        // -1 unless CatchAll
	catchAll  bool

	hdrAll     bool
	hdrNames   []string // explicit client headers to copy (canonical)
	hdrKeys    [][]byte // same names as bytes
	uaFromUser bool     // the client's User-Agent may be forwarded
	sendXFF    bool
	sendXFH    bool
	sendUA     bool // our User-Agent, when the client's is not forwarded
	sendVia    bool
	userAgent  []byte

	qAll   bool
	qNames []string // nil: none

	breaker *breaker.Breaker
	limiter *ratelimit.Bucket
	cache   *httpcache.Cache
	mod     *modifier.Modifier
	// reroutes: the request's scheme and host may differ from the picked
	// host's when it is sent (Modifier.Reroutes, BackendConfig.Reroutes).
	reroutes bool

	bodyOnRedirect bool
	// sizedBody: a request body goes out with Content-Length, not chunked
	// (see BuildRequest).
	sizedBody bool
	trace     *tracing.Layer
	stats     *stats.Layer
	gql       *graphQL // backend/graphql; nil: none
}

type partKind uint8

const (
	partLit   partKind = iota // lit is sent as is
	partParam                 // endpoint parameter slot
	partResp                  // value from an earlier sequential response
	partJWT                   // claim of the request's verified token ({JWT.sub})
)

type tmplPart struct {
	kind  partKind
	lit   []byte   // partLit; for the others, the placeholder text used when unresolved
	slot  int      // partParam
	resp  int      // partResp: the response index N of {respN_...}
	path  []string // partResp: the dotted path inside it
	claim string   // partJWT: the claim name after "JWT."
}

var (
	placeholderRE = regexp.MustCompile(`\{([\w\-\.:/]+)\}`)
	respRE        = regexp.MustCompile(`^resp(\d+)_(.+)$`)
)

// NewBackend compiles cfg.
func NewBackend(cfg BackendConfig) (*Backend, error) {
	if cfg.Client == nil {
		return nil, errors.New("backend: nil client")
	}
	if cfg.Method == "" {
		return nil, errors.New("backend: empty method")
	}
	b := &Backend{
		name:      cfg.Name,
		cel:       cfg.CEL,
		celParams: cfg.CELParams,
		client:    cfg.Client,
		method:    []byte(cfg.Method),
		catchSlot: -1,
		catchAll:  cfg.CatchAll,
		userAgent: []byte(cfg.UserAgent),
		breaker:   cfg.Breaker,
		limiter:   cfg.Limiter,
		cache:     cfg.Cache,
		mod:       cfg.Modifier,
		reroutes:  cfg.Reroutes || cfg.Modifier.Reroutes(),

		bodyOnRedirect: cfg.SendBodyOnRedirect,
		trace:          cfg.Trace,
		stats:          cfg.Stats,
	}
	pattern := cfg.URLPattern
	if !strings.HasPrefix(pattern, "/") {
		pattern = "/" + pattern
	}
	pathPart, queryPart, _ := strings.Cut(pattern, "?")
	if cfg.CatchAll {
		b.catchSlot = indexOf(cfg.ParamNames, router.CatchAllParam)
		if b.catchSlot < 0 {
			return nil, errors.New("backend: catch-all endpoint without a catch-all slot")
		}
		// The rest of the path starts with '/': avoid "//".
		pathPart = strings.TrimSuffix(pathPart, "/")
	}
	b.path = compileTemplate(pathPart, cfg.ParamNames, cfg.Sequential)
	b.query = compileTemplate(queryPart, cfg.ParamNames, cfg.Sequential)
	b.compileHeaders(cfg.EndpointHeaders, cfg.BackendHeaders)
	b.sizedBody = b.sizedBody || cfg.SendBodyOnRedirect
	b.qAll, b.qNames = intersect(cfg.EndpointQuery, cfg.BackendQuery, false)
	if cfg.GraphQL != nil {
		g, err := compileGraphQL(cfg.GraphQL, cfg.ParamNames)
		if err != nil {
			return nil, fmt.Errorf("backend: %w", err)
		}
		b.gql = g
	}
	return b, nil
}

// Name returns the backend name.
func (b *Backend) Name() string { return b.name }

// Client returns the upstream client.
func (b *Backend) Client() *Client { return b.client }

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// compileTemplate splits a url_pattern piece into literal and placeholder
// parts. Endpoint parameters match by name, or like KrakenD (which
// upper-cases the first letter of both sides) ignoring the case of the
// first letter. {JWT.<claim>} takes the claim from the request's verified
// token (Inbound.Claims). Placeholders that resolve to nothing (a missing
// claim, unknown names) stay literally in the URL, as in KrakenD.
func compileTemplate(s string, params []string, sequential bool) []tmplPart {
	var parts []tmplPart
	last := 0
	for _, m := range placeholderRE.FindAllStringSubmatchIndex(s, -1) {
		if m[0] > last {
			parts = append(parts, tmplPart{kind: partLit, lit: []byte(s[last:m[0]])})
		}
		name := s[m[2]:m[3]]
		raw := []byte(s[m[0]:m[1]])
		last = m[1]
		if slot := paramSlot(params, name); slot >= 0 {
			parts = append(parts, tmplPart{kind: partParam, slot: slot, lit: raw})
			continue
		}
		if claim, ok := strings.CutPrefix(name, jwtPrefix); ok && claim != "" {
			parts = append(parts, tmplPart{kind: partJWT, claim: claim, lit: raw})
			continue
		}
		if sm := respRE.FindStringSubmatch(name); sequential && sm != nil {
			n, err := strconv.Atoi(sm[1])
			if err == nil {
				parts = append(parts, tmplPart{kind: partResp, resp: n, path: response.SplitPath(sm[2]), lit: raw})
				continue
			}
		}
		parts = append(parts, tmplPart{kind: partLit, lit: raw})
	}
	if last < len(s) {
		parts = append(parts, tmplPart{kind: partLit, lit: []byte(s[last:])})
	}
	return mergeLiterals(parts)
}

func mergeLiterals(parts []tmplPart) []tmplPart {
	var out []tmplPart
	for _, p := range parts {
		if n := len(out); n > 0 && p.kind == partLit && out[n-1].kind == partLit {
			out[n-1].lit = append(out[n-1].lit, p.lit...)
			continue
		}
		out = append(out, p)
	}
	return out
}

func paramSlot(params []string, name string) int {
	if name == router.CatchAllParam {
		return -1
	}
	if i := indexOf(params, name); i >= 0 {
		return i
	}
	for i, p := range params {
		if p != router.CatchAllParam && len(p) == len(name) && p[1:] == name[1:] &&
			strings.EqualFold(p[:1], name[:1]) {
			return i
		}
	}
	return -1
}

// compileHeaders resolves the two allow-list levels into what one request
// copies: lura applies the endpoint list (plus X-Forwarded-For,
// X-Forwarded-Host and User-Agent handling), then the backend list filters
// the result, dropping even the headers the gateway added.
func (b *Backend) compileHeaders(endpoint, backend []string) {
	if len(endpoint) == 0 {
		endpoint = []string{"Content-Type"}
	}
	all, names := intersect(endpoint, backend, true)
	b.hdrAll = all
	passes := func(name string) bool { // does the backend-level filter keep name?
		if len(backend) == 0 || backend[0] == "*" {
			return true
		}
		return indexOf(canonicalList(backend), name) >= 0
	}
	b.sendXFF = passes("X-Forwarded-For")
	b.sendXFH = passes("X-Forwarded-Host")
	b.uaFromUser = all || indexOf(names, "User-Agent") >= 0
	b.sendUA = passes("User-Agent")
	b.sendVia = passes("X-Forwarded-Via")
	b.sizedBody = all || indexOf(names, "Content-Length") >= 0
	for _, n := range names {
		switch n {
		case "Host", "Content-Length", "X-Forwarded-For", "X-Forwarded-Host", "User-Agent":
			continue
		}
		if isHopByHop([]byte(n)) {
			continue
		}
		b.hdrNames = append(b.hdrNames, n)
		b.hdrKeys = append(b.hdrKeys, []byte(n))
	}
}

func canonicalList(list []string) []string {
	out := make([]string, len(list))
	for i, n := range list {
		out[i] = textproto.CanonicalMIMEHeaderKey(n)
	}
	return out
}

// intersect combines an endpoint allow-list with a backend subset.
// all=true means everything passes; otherwise names lists what passes.
func intersect(endpoint, backend []string, canonical bool) (all bool, names []string) {
	if canonical {
		endpoint, backend = canonicalList(endpoint), canonicalList(backend)
	}
	epAll := len(endpoint) > 0 && indexOf(endpoint, "*") >= 0
	beAll := len(backend) == 0 || indexOf(backend, "*") >= 0
	switch {
	case epAll && beAll:
		return true, nil
	case epAll:
		return false, dedupe(backend)
	case beAll:
		return false, dedupe(endpoint)
	}
	for _, n := range endpoint {
		if indexOf(backend, n) >= 0 {
			names = append(names, n)
		}
	}
	return false, dedupe(names)
}

func dedupe(list []string) []string {
	var out []string
	for _, n := range list {
		if indexOf(out, n) < 0 {
			out = append(out, n)
		}
	}
	return out
}

// jwtPrefix starts a url_pattern placeholder naming a token claim.
const jwtPrefix = "JWT."

// Claims gives the url_pattern {JWT.<claim>} values of the request's
// verified token (an *auth.Token satisfies it). Value must not allocate on
// the hot path and the result is only read during BuildRequest.
type Claims interface {
	Value(name string) (string, bool)
}

// Inbound is the client side of one request, as the backend builders need
// it. It is filled by the handler and read only on the handler goroutine;
// it aliases the fasthttp request and must not be retained after the
// handler returns. The zero value is ready for Reset.
type Inbound struct {
	Req      *fasthttp.Request
	Params   *router.Params
	ClientIP []byte // the X-Forwarded-For value (ClientIP.Append)
	// Claims is the verified token of a JWT endpoint, nil otherwise.
	Claims Claims
	// Gzip is set by BuildRequest when it asked the backend for gzip
	// itself: the answer is then decoded transparently (no-op too).
	Gzip bool
	// Trace is the request's tracing state, nil when it is not traced.
	Trace *tracing.Request
	// Lua holds what a modifier/lua-proxy pre script changed in the
	// request; nil (the rule) leaves every backend request as built from
	// the client's.
	Lua *LuaOverride
	buf []byte // path and query building
	tmp []byte // sequential placeholder values
	gql []byte // a backend/graphql query body
}

// LuaOverride is what a modifier/lua-proxy pre script changed, applied to
// every backend request as lura applies its changed proxy.Request.
type LuaOverride struct {
	// Params replace endpoint parameters by slot (nil entries: unchanged).
	Params [][]byte
	// SetHeaders are headers the script set (canonical name → values),
	// DelHeaders those it removed.
	SetHeaders map[string][]string
	DelHeaders []string
	// Query, when QuerySet, replaces the forwarded client query (encoded).
	Query    string
	QuerySet bool
	// Body, when BodySet, replaces the client's body.
	Body    []byte
	BodySet bool
}

// Reset empties o for reuse.
func (o *LuaOverride) Reset() {
	clear(o.Params)
	o.Params = o.Params[:0]
	clear(o.SetHeaders)
	o.DelHeaders = o.DelHeaders[:0]
	o.Query, o.QuerySet = "", false
	o.Body, o.BodySet = nil, false
}

func (in *Inbound) param(slot int) []byte {
	if o := in.Lua; o != nil && slot < len(o.Params) && o.Params[slot] != nil {
		return o.Params[slot]
	}
	return in.Params.Value(slot)
}

// Reset prepares in for a request.
func (in *Inbound) Reset(req *fasthttp.Request, ps *router.Params) {
	in.Req = req
	in.Params = ps
	in.ClientIP = in.ClientIP[:0]
	in.Claims = nil
	in.Trace = nil
	in.Lua = nil
}

// Clear drops the references to the request (before pooling).
func (in *Inbound) Clear() {
	in.Req = nil
	in.Params = nil
	in.ClientIP = in.ClientIP[:0]
	in.Claims = nil
	in.Trace = nil
	in.Lua = nil
	if cap(in.buf) > 64<<10 {
		in.buf = nil
	}
	if cap(in.tmp) > 64<<10 {
		in.tmp = nil
	}
	if cap(in.gql) > 64<<10 {
		in.gql = nil
	}
}

// CEL returns the backend's validation/cel checks (nil: none) and the
// parameter names its req_params uses.
func (b *Backend) CEL() (*cel.Checks, []string) { return b.cel, b.celParams }

// BuildRequest fills req (reset or fresh) with the call of b to host h for
// the inbound request. prev holds the decoded responses of the earlier
// backends of a sequential endpoint (nil entries for failed ones); it is
// ignored otherwise. BuildRequest runs on the handler goroutine; req owns
// copies of everything it needs afterwards.
//
// A request body goes out chunked, as KrakenD's does (lura hands Go's
// client the client's body of unknown length), unless the endpoint forwards
// the client's Content-Length header or the backend has
// send_body_on_redirect (lura then buffers the body, and Go sends it sized).
//
// A backend/graphql call carries its GraphQL request instead of the
// client's body; the error is a mutation whose client body is not a JSON
// object (the call must then fail without being sent, as in lura).
func (b *Backend) BuildRequest(req *fasthttp.Request, h *Host, in *Inbound, prev []*fastjson.Value) error {
	req.Header.SetMethodBytes(b.method)
	req.Header.SetNoDefaultContentType(true)
	uri := req.URI()
	uri.SetSchemeBytes(h.scheme)
	uri.SetHostBytes(h.host)

	buf := b.appendPath(in.buf[:0], in, prev)
	uri.SetPathBytes(buf)
	buf = b.appendQuery(buf[:0], in, prev)
	b.copyHeaders(req, in)
	body := in.Req.Body()
	if o := in.Lua; o != nil {
		for _, k := range o.DelHeaders {
			req.Header.Del(k)
		}
		for k, vs := range o.SetHeaders {
			req.Header.Del(k)
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		if o.BodySet {
			body = o.Body
		}
	}
	in.Gzip = b.askGzip(req)
	if b.gql != nil {
		var err error
		buf, err = b.gql.build(req, in, buf)
		uri.SetQueryStringBytes(buf)
		in.buf = buf
		if !b.client.keepAlive {
			req.SetConnectionClose()
		}
		return err
	}
	uri.SetQueryStringBytes(buf)
	in.buf = buf
	if len(body) > 0 {
		if b.sizedBody {
			req.SetBody(body)
		} else {
			req.SetBodyStream(acquireChunkedBody(body), -1)
		}
	}
	if !b.client.keepAlive {
		req.SetConnectionClose()
	}
	return nil
}

// StartTrace starts the span of the call built in req (BuildRequest) for
// in's request and writes the trace context into req's headers; the zero
// Call when the request is not traced. It runs on the handler goroutine;
// the Call may be ended on another.
// Stats is the backend's telemetry/metrics series, nil when not counted.
func (b *Backend) Stats() *stats.Layer { return b.stats }

func (b *Backend) StartTrace(req *fasthttp.Request, in *Inbound) tracing.Call {
	if in.Trace == nil {
		return tracing.Call{}
	}
	return in.Trace.StartCall(b.trace, b.name, req)
}

func (b *Backend) appendPath(dst []byte, in *Inbound, prev []*fastjson.Value) []byte {
	for i := range b.path {
		dst = appendPart(dst, &b.path[i], in, prev, false)
	}
	if b.catchAll {
		dst = appendEscaped(dst, in.param(b.catchSlot), pathEscape)
	}
	if len(dst) == 0 {
		dst = append(dst, '/')
	}
	return dst
}

// AppendTemplateQuery appends the query part of url_pattern, placeholders
// filled: the first part of the call's query string (BuildRequest appends
// the forwarded client query after it). lura keeps it in the request path,
// apart from the forwarded query (validation/cel's req_path and
// req_querystring at backend level).
func (b *Backend) AppendTemplateQuery(dst []byte, in *Inbound, prev []*fastjson.Value) []byte {
	for i := range b.query {
		dst = appendPart(dst, &b.query[i], in, prev, true)
	}
	return dst
}

func (b *Backend) appendQuery(dst []byte, in *Inbound, prev []*fastjson.Value) []byte {
	for i := range b.query {
		dst = appendPart(dst, &b.query[i], in, prev, true)
	}
	if o := in.Lua; o != nil && o.QuerySet {
		if o.Query != "" {
			if len(dst) > 0 {
				dst = append(dst, '&')
			}
			dst = append(dst, o.Query...)
		}
		return dst
	}
	if b.qAll {
		if qs := in.Req.URI().QueryString(); len(qs) > 0 {
			if len(dst) > 0 {
				dst = append(dst, '&')
			}
			dst = append(dst, qs...)
		}
		return dst
	}
	if len(b.qNames) == 0 {
		return dst
	}
	for k, v := range in.Req.URI().QueryArgs().All() {
		if indexOf(b.qNames, b2s(k)) < 0 {
			continue
		}
		if len(dst) > 0 {
			dst = append(dst, '&')
		}
		dst = fasthttp.AppendQuotedArg(dst, k)
		dst = append(dst, '=')
		dst = fasthttp.AppendQuotedArg(dst, v)
	}
	return dst
}

func appendPart(dst []byte, p *tmplPart, in *Inbound, prev []*fastjson.Value, query bool) []byte {
	esc := pathEscape
	if query {
		esc = queryEscape
	}
	switch p.kind {
	case partParam:
		if v := in.param(p.slot); v != nil {
			return appendEscaped(dst, v, esc)
		}
	case partResp:
		if p.resp < len(prev) && prev[p.resp] != nil {
			if v, ok := response.Lookup(in.tmp[:0], prev[p.resp], p.path); ok {
				in.tmp = v
				return appendEscaped(dst, v, esc)
			}
		}
	case partJWT:
		if in.Claims != nil {
			if v, ok := in.Claims.Value(p.claim); ok {
				// A claim fills one segment: its '/' must not add path levels.
				if !query {
					esc = segmentEscape
				}
				return appendEscaped(dst, v, esc)
			}
		}
	default:
		return append(dst, p.lit...)
	}
	// Unresolved placeholder: literal text, braces escaped so the URL stays valid.
	return appendEscaped(dst, p.lit, esc)
}

type escapeMode uint8

const (
	pathEscape escapeMode = iota
	queryEscape
	segmentEscape // pathEscape that also encodes '/'
)

// appendEscaped percent-encodes what may not appear raw in a path segment
// (or a query value), keeping '/' in paths: the catch-all rest is a path.
func appendEscaped[S string | []byte](dst []byte, src S, mode escapeMode) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(src); i++ {
		c := src[i]
		if shouldEscape(c, mode) {
			dst = append(dst, '%', hex[c>>4], hex[c&0xf])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

func shouldEscape(c byte, mode escapeMode) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return false
	}
	switch c {
	case '-', '_', '.', '~':
		return false
	case '/':
		return mode == segmentEscape
	case ':', '@', '!', '$', '\'', '(', ')', '*', ',', ';':
		return false
	case '=':
		return mode == queryEscape
	case '&', '+':
		return mode == queryEscape
	}
	return true
}

func (b *Backend) copyHeaders(req *fasthttp.Request, in *Inbound) {
	src := &in.Req.Header
	conn := src.Peek(hdrConnection)
	if b.hdrAll {
		for k, v := range src.All() {
			if skipRequestHeader(k) || (len(conn) > 0 && namedInConnection(conn, k)) {
				continue
			}
			req.Header.AddBytesKV(k, v)
		}
	} else {
		for i, name := range b.hdrNames {
			if len(conn) > 0 && namedInConnection(conn, b.hdrKeys[i]) {
				continue
			}
			for _, v := range src.PeekAll(name) {
				req.Header.AddBytesKV(b.hdrKeys[i], v)
			}
		}
	}
	if b.sendXFF && len(in.ClientIP) > 0 {
		req.Header.SetCanonical(hdrXForwardedFor, in.ClientIP)
	}
	if host := src.Host(); b.sendXFH && len(host) > 0 {
		req.Header.SetCanonical(hdrXForwardedHost, host)
	}
	ua := src.UserAgent()
	if b.uaFromUser && len(ua) > 0 {
		if b.sendUA {
			req.Header.SetUserAgentBytes(ua)
		}
		if b.sendVia {
			req.Header.SetCanonical(hdrXForwardedVia, b.userAgent)
		}
	} else if b.sendUA {
		req.Header.SetUserAgentBytes(b.userAgent)
	}
}

// skipRequestHeader filters the forward-everything mode: hop-by-hop
// headers, and what the gateway sets itself.
func skipRequestHeader(k []byte) bool {
	switch string(k) {
	case "Host", "Content-Length", "User-Agent", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Via":
		return true
	}
	return isHopByHop(k)
}

// b2s converts without copying; the string must not outlive b.
func b2s(b []byte) string { return zerocopy.String(b) }
