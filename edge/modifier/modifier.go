// Package modifier applies a backend's `modifier/martian` modifiers (the
// google/martian JSON DSL KrakenD CE links) to the request the edge sends
// to that backend and to the response it gets back.
//
// New compiles one MartianModifier tree from the snapshot once per plan:
// header names and values, query parameter names and values and bodies
// become ready-made []byte, and the tree is split into a request chain and
// a response chain by each node's scope (a node applies to a phase when
// its own scope and every enclosing fifo.Group's scope include it; an
// empty scope means both, as in martian). Per request the Modifier only
// walks its prebuilt chains; it does not allocate once the fasthttp
// request and response are warm.
//
// Supported modifiers (martian semantics):
//
//   - header.Modifier sets a header (replacing every value). On a request,
//     "Host" sets the Host header sent to the backend (the connection still
//     goes to the backend's host), as martian sets req.Host.
//   - header.Blacklist removes every value of the named headers.
//   - querystring.Modifier sets a query parameter of the backend request,
//     replacing every existing value (request scope only, as in martian).
//     Setting it makes fasthttp re-encode the whole query string from the
//     parsed arguments, as martian re-encodes it with url.Values.Encode
//     (martian also sorts it by key; fasthttp keeps the order).
//   - body.Modifier replaces the body and sets Content-Type and
//     Content-Length, and removes Content-Encoding (the new body is not
//     encoded). martian's Range support (206 multipart answers built from
//     the replacement body) is not implemented.
//   - header.Append, header.Copy, header.Id, header.Filter,
//     header.RegexFilter, querystring.Filter, url.Modifier, stash.Modifier
//     and priority.Group: see more.go.
//   - cookie.Modifier, cookie.Filter, status.Modifier, port.Modifier,
//     port.Filter, url.Filter, url.RegexFilter and the verifiers: see
//     rest.go.
//   - static.Modifier serves files of the edge's disk: see static.go.
//   - fifo.Group runs its modifiers in order. With aggregateErrors it runs
//     all of them and returns their errors joined; otherwise it stops at
//     the first error.
//
// Where the calls go (KrakenD wraps the backend's HTTP executor with
// martian): ModifyRequest right after the backend request is built
// (headers, query, body), before the round trip; ModifyResponse right
// after the round trip, before the status check and the decoder. So a
// response body.Modifier replaces what the gateway decodes for every
// encoding, but response header changes reach the client only on no-op
// endpoints: other endpoints render their own response and drop backend
// headers, as KrakenD does.
//
// Import rule: modifier depends only on fasthttp and the generated protos;
// it must not import edge/plan, edge/server, edge/watch, edge/aggregate,
// edge/proxy or anything under controlplane.
package modifier

import (
	"errors"
	"fmt"
	"net/textproto"
	"slices"

	"github.com/valyala/fasthttp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Scope values of a MartianModifier.
const (
	ScopeRequest  = "request"
	ScopeResponse = "response"
)

var (
	hdrContentType     = []byte("Content-Type")
	hdrContentEncoding = []byte("Content-Encoding")
)

// requestModifier and responseModifier are the compiled nodes of each
// chain (martian's RequestModifier and ResponseModifier).
type requestModifier interface {
	modifyRequest(req *fasthttp.Request) error
}

// modifyResponse gets the backend request too: martian's response
// modifiers read res.Request (filters, stash).
type responseModifier interface {
	modifyResponse(resp *fasthttp.Response, req *fasthttp.Request) error
}

// Modifier is one compiled modifier tree. It is immutable and safe for
// concurrent use. A nil *Modifier is valid and modifies nothing.
type Modifier struct {
	req      requestModifier  // nil: nothing applies to requests
	resp     responseModifier // nil: nothing applies to responses
	reroutes bool
}

// Option tunes New.
type Option func(*compiler)

// WithMaxBodyBytes bounds the files a static.Modifier reads into a
// response (the service's max_body_bytes, as for backend bodies); 0 or
// less means unlimited.
func WithMaxBodyBytes(n int) Option {
	return func(c *compiler) { c.maxBody = max(n, 0) }
}

// New compiles m. It returns nil (and no error) when m is nil: the backend
// has no modifiers. Errors name the offending node by its path in the tree
// (for example "fifo_group.modifiers[1].header_modifier.name"); the caller
// reports them as a build violation.
func New(m *gatewayv1.MartianModifier, opts ...Option) (*Modifier, error) {
	if m == nil {
		return nil, nil
	}
	var c compiler
	for _, o := range opts {
		o(&c)
	}
	req, resp := c.node(m, "", true, true)
	if err := errors.Join(c.errs...); err != nil {
		return nil, fmt.Errorf("modifier/martian: %w", err)
	}
	return &Modifier{req: req, resp: resp, reroutes: c.reroutes}, nil
}

// ModifiesRequest reports whether ModifyRequest can change anything; a
// caller may skip the call when it is false.
func (m *Modifier) ModifiesRequest() bool { return m != nil && m.req != nil }

// ModifiesResponse reports whether ModifyResponse can change anything; a
// caller may skip the call when it is false.
func (m *Modifier) ModifiesResponse() bool { return m != nil && m.resp != nil }

// ModifyRequest applies the request-scoped modifiers, in order, to the
// backend request req. Call it after the request is fully built and before
// sending it; an error means the backend call fails (KrakenD returns the
// modifier error from the backend proxy), except ErrSkipRoundTrip: a
// static.Modifier answers the call, which must not be sent. req is not
// retained.
func (m *Modifier) ModifyRequest(req *fasthttp.Request) error {
	if m == nil || m.req == nil {
		return nil
	}
	return m.req.modifyRequest(req)
}

// ModifyResponse applies the response-scoped modifiers, in order, to the
// backend response resp to req (the request as sent, which filters and
// stash.Modifier read). Call it right after the round trip, before the
// status check and decoding. Neither is retained.
func (m *Modifier) ModifyResponse(resp *fasthttp.Response, req *fasthttp.Request) error {
	if m == nil || m.resp == nil {
		return nil
	}
	return m.resp.modifyResponse(resp, req)
}

// Reroutes reports whether ModifyRequest may send the request to another
// host or scheme than the one it was built for (url.Modifier with a host
// or a scheme): the caller then compares the URI with its host.
func (m *Modifier) Reroutes() bool { return m != nil && m.reroutes }

// compiler collects every violation of a tree.
type compiler struct {
	errs     []error
	reroutes bool // a url.Modifier changes the host or the scheme
	maxBody  int  // WithMaxBodyBytes
}

func (c *compiler) fail(path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	c.errs = append(c.errs, errors.New(msg))
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// node compiles m for the phases its ancestors allow; it returns nil for a
// phase the node does not apply to.
func (c *compiler) node(m *gatewayv1.MartianModifier, path string, inReq, inResp bool) (requestModifier, responseModifier) {
	onReq, onResp := c.scope(m.GetScope(), join(path, "scope"))
	onReq = onReq && inReq
	onResp = onResp && inResp
	switch k := m.GetKind().(type) {
	case *gatewayv1.MartianModifier_HeaderModifier:
		p := join(path, "header_modifier")
		h := k.HeaderModifier
		if !isToken(h.GetName()) {
			c.fail(join(p, "name"), "%q is not a header name", h.GetName())
			return nil, nil
		}
		if hasCtl(h.GetValue()) {
			c.fail(join(p, "value"), "%q: control characters in a header value", h.GetValue())
			return nil, nil
		}
		name := textproto.CanonicalMIMEHeaderKey(h.GetName())
		mod := &headerModifier{name: []byte(name), value: []byte(h.GetValue()), host: name == "Host"}
		return reqOrNil(mod, onReq), respOrNil(mod, onResp)
	case *gatewayv1.MartianModifier_HeaderBlacklist:
		p := join(path, "header_blacklist")
		names := k.HeaderBlacklist.GetNames()
		if len(names) == 0 {
			c.fail(join(p, "names"), "no header to remove")
			return nil, nil
		}
		mod := &blacklist{}
		for i, n := range names {
			if !isToken(n) {
				c.fail(fmt.Sprintf("%s.names[%d]", p, i), "%q is not a header name", n)
				continue
			}
			cn := textproto.CanonicalMIMEHeaderKey(n)
			mod.names = append(mod.names, []byte(cn))
			if cn == "Host" {
				mod.host = true
			}
		}
		return reqOrNil(mod, onReq), respOrNil(mod, onResp)
	case *gatewayv1.MartianModifier_QuerystringModifier:
		p := join(path, "querystring_modifier")
		q := k.QuerystringModifier
		if q.GetName() == "" {
			c.fail(join(p, "name"), "the query parameter name is required")
			return nil, nil
		}
		if slices.Contains(m.GetScope(), ScopeResponse) {
			c.fail(join(path, "scope"), "querystring.Modifier only modifies requests")
			return nil, nil
		}
		mod := &queryModifier{name: []byte(q.GetName()), value: []byte(q.GetValue())}
		return reqOrNil(mod, onReq), nil
	case *gatewayv1.MartianModifier_BodyModifier:
		p := join(path, "body_modifier")
		b := k.BodyModifier
		if hasCtl(b.GetContentType()) {
			c.fail(join(p, "content_type"), "%q: control characters in a header value", b.GetContentType())
			return nil, nil
		}
		mod := &bodyModifier{contentType: []byte(b.GetContentType()), body: slices.Clone(b.GetBody())}
		return reqOrNil(mod, onReq), respOrNil(mod, onResp)
	case *gatewayv1.MartianModifier_FifoGroup:
		p := join(path, "fifo_group")
		g := k.FifoGroup
		rg := &requestGroup{aggregate: g.GetAggregateErrors()}
		sg := &responseGroup{aggregate: g.GetAggregateErrors()}
		for i, child := range g.GetModifiers() {
			cp := fmt.Sprintf("%s.modifiers[%d]", p, i)
			if child == nil {
				c.fail(cp, "empty modifier")
				continue
			}
			r, s := c.node(child, cp, onReq, onResp)
			if r != nil {
				rg.mods = append(rg.mods, r)
			}
			if s != nil {
				sg.mods = append(sg.mods, s)
			}
		}
		var r requestModifier
		var s responseModifier
		if len(rg.mods) > 0 {
			r = rg
		}
		if len(sg.mods) > 0 {
			s = sg
		}
		return r, s
	case nil:
		c.fail(path, "no modifier set")
	default:
		return c.more(m, path, onReq, onResp)
	}
	return nil, nil
}

// scope reports the phases a scope list selects; empty means both.
func (c *compiler) scope(scope []string, path string) (req, resp bool) {
	if len(scope) == 0 {
		return true, true
	}
	for i, s := range scope {
		switch s {
		case ScopeRequest:
			req = true
		case ScopeResponse:
			resp = true
		default:
			c.fail(fmt.Sprintf("%s[%d]", path, i), "unsupported scope %q (want %q or %q)", s, ScopeRequest, ScopeResponse)
		}
	}
	return req, resp
}

func reqOrNil(m requestModifier, on bool) requestModifier {
	if !on {
		return nil
	}
	return m
}

func respOrNil(m responseModifier, on bool) responseModifier {
	if !on {
		return nil
	}
	return m
}

// headerModifier is header.Modifier.
type headerModifier struct {
	name, value []byte
	host        bool // name is Host
}

func (m *headerModifier) modifyRequest(req *fasthttp.Request) error {
	if m.host {
		// fasthttp replaces the Host header with the URI's host unless told
		// otherwise; martian sets req.Host, which Go's client sends as is.
		req.Header.SetHostBytes(m.value)
		req.UseHostHeader = true
		return nil
	}
	req.Header.SetCanonical(m.name, m.value)
	return nil
}

func (m *headerModifier) modifyResponse(resp *fasthttp.Response, _ *fasthttp.Request) error {
	resp.Header.SetCanonical(m.name, m.value)
	return nil
}

// blacklist is header.Blacklist.
type blacklist struct {
	names [][]byte
	host  bool // Host is listed
}

func (m *blacklist) modifyRequest(req *fasthttp.Request) error {
	for _, n := range m.names {
		req.Header.DelBytes(n)
	}
	if m.host {
		// An empty Host makes fasthttp send the URI's host, as Go's client
		// does for an empty req.Host.
		req.UseHostHeader = false
	}
	return nil
}

func (m *blacklist) modifyResponse(resp *fasthttp.Response, _ *fasthttp.Request) error {
	for _, n := range m.names {
		resp.Header.DelBytes(n)
	}
	return nil
}

// queryModifier is querystring.Modifier.
type queryModifier struct {
	name, value []byte
}

func (m *queryModifier) modifyRequest(req *fasthttp.Request) error {
	args := req.URI().QueryArgs()
	args.DelBytes(m.name)
	args.AddBytesKV(m.name, m.value)
	return nil
}

// bodyModifier is body.Modifier. body is never written to: fasthttp copies
// it into the message's own buffer (SetBodyRaw would alias it, and
// SwapBody on a raw body would silently drop it).
type bodyModifier struct {
	contentType []byte
	body        []byte
}

func (m *bodyModifier) modifyRequest(req *fasthttp.Request) error {
	req.SetBody(m.body)
	req.Header.SetContentLength(len(m.body))
	req.Header.SetCanonical(hdrContentType, m.contentType)
	req.Header.DelBytes(hdrContentEncoding)
	return nil
}

func (m *bodyModifier) modifyResponse(resp *fasthttp.Response, _ *fasthttp.Request) error {
	resp.SetBody(m.body)
	resp.Header.SetContentLength(len(m.body))
	resp.Header.SetCanonical(hdrContentType, m.contentType)
	resp.Header.DelBytes(hdrContentEncoding)
	return nil
}

// requestGroup and responseGroup are fifo.Group, one per phase.
type requestGroup struct {
	mods      []requestModifier
	aggregate bool
}

// modifyRequest runs every modifier; a static.Modifier's ErrSkipRoundTrip
// is no failure (the next modifiers run) and is returned at the end when
// nothing failed.
func (g *requestGroup) modifyRequest(req *fasthttp.Request) error {
	var errs []error
	skip := false
	for _, m := range g.mods {
		if err := m.modifyRequest(req); err != nil {
			if err == ErrSkipRoundTrip {
				skip = true
				continue
			}
			if !g.aggregate {
				return err
			}
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 && skip {
		return ErrSkipRoundTrip
	}
	return errors.Join(errs...)
}

type responseGroup struct {
	mods      []responseModifier
	aggregate bool
}

func (g *responseGroup) modifyResponse(resp *fasthttp.Response, req *fasthttp.Request) error {
	var errs []error
	for _, m := range g.mods {
		if err := m.modifyResponse(resp, req); err != nil {
			if !g.aggregate {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			continue
		}
		switch c {
		case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
			continue
		}
		return false
	}
	return true
}

// hasCtl reports whether s holds a control character other than tab.
func hasCtl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}
