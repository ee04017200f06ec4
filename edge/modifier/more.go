package modifier

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/textproto"
	"regexp"
	"slices"
	"sort"

	"github.com/valyala/fasthttp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// More modifiers, with martian's semantics (google/martian v2 as KrakenD CE
// 2.12 links it; header.Id is krakend-martian's):
//
//   - header.Append adds a value to a header (header.Modifier replaces).
//   - header.Copy sets header to to the first value of from, or to "" when
//     from is absent (martian's Set(to, Get(from))). On a request, "Host"
//     on either side is the Host sent.
//   - header.Id sets a random UUID (version 4) in the header (X-Krakend-Id
//     by default) of a request that has none (request scope only).
//   - header.Filter runs its modifier when a value of the header is exactly
//     the given value (on a request, its headers; on a response, the
//     response's), else its else modifier.
//   - header.RegexFilter runs its modifier when the first value of the
//     backend request's header matches the regular expression, in both
//     phases (martian reads res.Request on responses); an absent or empty
//     header never matches.
//   - querystring.Filter runs its modifier when the request's query has
//     the parameter (with the value, when one is given), in both phases,
//     else its else modifier.
//   - url.Modifier replaces the scheme, host, path and query of the backend
//     request by its non-empty parts (request scope only). A new host or
//     scheme sends the request there, with the Host header it had (Go's
//     client sends req.Host, which martian leaves alone).
//   - stash.Modifier puts the backend request's full URL in a header of the
//     request and, with both scopes, copies it to the response.
//   - priority.Group runs its modifiers by descending priority; among equal
//     priorities the later one runs first (martian inserts it before). It
//     stops at the first error.

// more compiles the modifiers of this file.
func (c *compiler) more(m *gatewayv1.MartianModifier, path string, onReq, onResp bool) (requestModifier, responseModifier) {
	requestOnly := func(what string) bool {
		if slices.Contains(m.GetScope(), ScopeResponse) {
			c.fail(join(path, "scope"), "%s only modifies requests", what)
			return false
		}
		return true
	}
	switch k := m.GetKind().(type) {
	case *gatewayv1.MartianModifier_HeaderAppend:
		p := join(path, "header_append")
		name, ok := c.headerName(join(p, "name"), k.HeaderAppend.GetName())
		if !ok || !c.headerValue(join(p, "value"), k.HeaderAppend.GetValue()) {
			return nil, nil
		}
		mod := &appendModifier{name: []byte(name), value: []byte(k.HeaderAppend.GetValue()), host: name == "Host"}
		return reqOrNil(mod, onReq), respOrNil(mod, onResp)
	case *gatewayv1.MartianModifier_HeaderCopy:
		p := join(path, "header_copy")
		from, ok1 := c.headerName(join(p, "from"), k.HeaderCopy.GetFrom())
		to, ok2 := c.headerName(join(p, "to"), k.HeaderCopy.GetTo())
		if !ok1 || !ok2 {
			return nil, nil
		}
		mod := &copyModifier{from: []byte(from), to: []byte(to), fromHost: from == "Host", toHost: to == "Host"}
		return reqOrNil(mod, onReq), respOrNil(mod, onResp)
	case *gatewayv1.MartianModifier_HeaderId:
		p := join(path, "header_id")
		name := k.HeaderId.GetHeader()
		if name == "" {
			name = "X-Krakend-Id"
		}
		cn, ok := c.headerName(join(p, "header"), name)
		if !ok || !requestOnly("header.Id") {
			return nil, nil
		}
		return reqOrNil(&idModifier{name: []byte(cn)}, onReq), nil
	case *gatewayv1.MartianModifier_HeaderFilter:
		p := join(path, "header_filter")
		f := k.HeaderFilter
		name, ok := c.headerName(join(p, "name"), f.GetName())
		if !ok {
			return nil, nil
		}
		cond := &headerCond{name: name, value: []byte(f.GetValue()), host: name == "Host"}
		return c.filter(p, f.GetModifier(), f.GetElse(), cond, onReq, onResp)
	case *gatewayv1.MartianModifier_QuerystringFilter:
		p := join(path, "querystring_filter")
		f := k.QuerystringFilter
		if f.GetName() == "" {
			c.fail(join(p, "name"), "the query parameter name is required")
			return nil, nil
		}
		cond := &queryCond{name: []byte(f.GetName()), value: []byte(f.GetValue())}
		return c.filter(p, f.GetModifier(), f.GetElse(), cond, onReq, onResp)
	case *gatewayv1.MartianModifier_HeaderRegexFilter:
		p := join(path, "header_regex_filter")
		f := k.HeaderRegexFilter
		re, err := regexp.Compile(f.GetRegex())
		if err != nil {
			c.fail(join(p, "regex"), "%v", err)
			return nil, nil
		}
		// martian reads it with Header.Get, which canonicalises the name.
		cond := &regexCond{name: []byte(textproto.CanonicalMIMEHeaderKey(f.GetHeader())), re: re}
		return c.filter(p, f.GetModifier(), nil, cond, onReq, onResp)
	case *gatewayv1.MartianModifier_UrlModifier:
		p := join(path, "url_modifier")
		u := k.UrlModifier
		if !requestOnly("url.Modifier") {
			return nil, nil
		}
		switch u.GetScheme() {
		case "", "http", "https":
		default:
			c.fail(join(p, "scheme"), "%q: the edge calls http and https backends only", u.GetScheme())
			return nil, nil
		}
		if u.GetHost() != "" || u.GetScheme() != "" {
			c.reroutes = true
		}
		return reqOrNil(&urlModifier{scheme: []byte(u.GetScheme()), host: []byte(u.GetHost()), path: []byte(u.GetPath()), query: []byte(u.GetQuery())}, onReq), nil
	case *gatewayv1.MartianModifier_StashModifier:
		p := join(path, "stash_modifier")
		name, ok := c.headerName(join(p, "header_name"), k.StashModifier.GetHeaderName())
		if !ok {
			return nil, nil
		}
		if sc := m.GetScope(); len(sc) > 0 && !slices.Contains(sc, ScopeRequest) {
			c.fail(join(path, "scope"), "to write the header on a response, give stash.Modifier both scopes (as martian requires)")
			return nil, nil
		}
		mod := &stashModifier{name: []byte(name)}
		return reqOrNil(mod, onReq), respOrNil(mod, onResp)
	case *gatewayv1.MartianModifier_PriorityGroup:
		p := join(path, "priority_group")
		type entry struct {
			prio int64
			req  requestModifier
			resp responseModifier
		}
		var es []entry
		for i, child := range k.PriorityGroup.GetModifiers() {
			cp := fmt.Sprintf("%s.modifiers[%d]", p, i)
			if child.GetModifier() == nil {
				c.fail(join(cp, "modifier"), "empty modifier")
				continue
			}
			r, s := c.node(child.GetModifier(), join(cp, "modifier"), onReq, onResp)
			es = append(es, entry{child.GetPriority(), r, s})
		}
		// Descending priority; equal priorities in reverse order of
		// declaration (martian inserts before the first one not higher).
		slices.Reverse(es)
		sort.SliceStable(es, func(i, j int) bool { return es[i].prio > es[j].prio })
		rg, sg := &requestGroup{}, &responseGroup{}
		for _, e := range es {
			if e.req != nil {
				rg.mods = append(rg.mods, e.req)
			}
			if e.resp != nil {
				sg.mods = append(sg.mods, e.resp)
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
	}
	return c.rest(m, path, onReq, onResp)
}

func (c *compiler) headerName(path, name string) (string, bool) {
	if !isToken(name) {
		c.fail(path, "%q is not a header name", name)
		return "", false
	}
	return textproto.CanonicalMIMEHeaderKey(name), true
}

func (c *compiler) headerValue(path, v string) bool {
	if hasCtl(v) {
		c.fail(path, "%q: control characters in a header value", v)
		return false
	}
	return true
}

// condition is a filter's test, in each phase.
type condition interface {
	matchRequest(req *fasthttp.Request) bool
	matchResponse(resp *fasthttp.Response, req *fasthttp.Request) bool
}

// filter compiles a filter node: then and otherwise run in the phases the
// filter applies to (and their own scopes allow).
func (c *compiler) filter(path string, then, otherwise *gatewayv1.MartianModifier, cond condition, onReq, onResp bool) (requestModifier, responseModifier) {
	if then == nil {
		c.fail(join(path, "modifier"), "a filter needs a modifier")
		return nil, nil
	}
	tr, ts := c.node(then, join(path, "modifier"), onReq, onResp)
	var er requestModifier
	var es responseModifier
	if otherwise != nil {
		er, es = c.node(otherwise, join(path, "else"), onReq, onResp)
	}
	var r requestModifier
	var s responseModifier
	if onReq && (tr != nil || er != nil) {
		r = &requestFilter{cond: cond, then: tr, otherwise: er}
	}
	if onResp && (ts != nil || es != nil) {
		s = &responseFilter{cond: cond, then: ts, otherwise: es}
	}
	return r, s
}

type requestFilter struct {
	cond            condition
	then, otherwise requestModifier // nil: nothing
}

func (f *requestFilter) modifyRequest(req *fasthttp.Request) error {
	m := f.otherwise
	if f.cond.matchRequest(req) {
		m = f.then
	}
	if m == nil {
		return nil
	}
	return m.modifyRequest(req)
}

type responseFilter struct {
	cond            condition
	then, otherwise responseModifier
}

func (f *responseFilter) modifyResponse(resp *fasthttp.Response, req *fasthttp.Request) error {
	m := f.otherwise
	if f.cond.matchResponse(resp, req) {
		m = f.then
	}
	if m == nil {
		return nil
	}
	return m.modifyResponse(resp, req)
}

// headerCond is header.Filter's matcher: some value is exactly value.
type headerCond struct {
	name  string
	value []byte
	host  bool
}

func (h *headerCond) matchRequest(req *fasthttp.Request) bool {
	if h.host {
		return bytes.Equal(requestHost(req), h.value)
	}
	for _, v := range req.Header.PeekAll(h.name) {
		if bytes.Equal(v, h.value) {
			return true
		}
	}
	return false
}

func (h *headerCond) matchResponse(resp *fasthttp.Response, _ *fasthttp.Request) bool {
	for _, v := range resp.Header.PeekAll(h.name) {
		if bytes.Equal(v, h.value) {
			return true
		}
	}
	return false
}

// regexCond is header.RegexFilter's test, on the request in both phases.
type regexCond struct {
	name []byte
	re   *regexp.Regexp
}

func (r *regexCond) matchRequest(req *fasthttp.Request) bool {
	if req == nil {
		return false
	}
	// Go's Header.Get("Host") of an outgoing request is "" (the host is
	// req.Host): fasthttp's Peek would return it, so Host never matches.
	if string(r.name) == "Host" {
		return false
	}
	v := req.Header.PeekBytes(r.name)
	return len(v) > 0 && r.re.Match(v)
}

func (r *regexCond) matchResponse(_ *fasthttp.Response, req *fasthttp.Request) bool {
	return r.matchRequest(req)
}

// queryCond is querystring.Filter's matcher.
type queryCond struct {
	name, value []byte
}

func (q *queryCond) matchRequest(req *fasthttp.Request) bool {
	if req == nil {
		return false
	}
	for k, v := range req.URI().QueryArgs().All() {
		if bytes.Equal(k, q.name) && (len(q.value) == 0 || bytes.Equal(v, q.value)) {
			return true
		}
	}
	return false
}

func (q *queryCond) matchResponse(_ *fasthttp.Response, req *fasthttp.Request) bool {
	return q.matchRequest(req)
}

// requestHost is the Host a request is sent with.
func requestHost(req *fasthttp.Request) []byte {
	if req.UseHostHeader {
		return req.Header.Host()
	}
	return req.URI().Host()
}

// appendModifier is header.Append.
type appendModifier struct {
	name, value []byte
	host        bool
}

func (m *appendModifier) modifyRequest(req *fasthttp.Request) error {
	if m.host {
		// martian's proxyutil sets req.Host for Host, whatever the verb.
		req.Header.SetHostBytes(m.value)
		req.UseHostHeader = true
		return nil
	}
	req.Header.AddBytesKV(m.name, m.value)
	return nil
}

func (m *appendModifier) modifyResponse(resp *fasthttp.Response, _ *fasthttp.Request) error {
	resp.Header.AddBytesKV(m.name, m.value)
	return nil
}

// copyModifier is header.Copy.
type copyModifier struct {
	from, to         []byte
	fromHost, toHost bool
}

func (m *copyModifier) modifyRequest(req *fasthttp.Request) error {
	var v []byte
	if m.fromHost {
		v = requestHost(req)
	} else {
		v = req.Header.PeekBytes(m.from)
	}
	if m.toHost {
		req.Header.SetHostBytes(v)
		req.UseHostHeader = true
		return nil
	}
	// v is the value buffer of another header (or the URI's host):
	// setting m.to copies it and leaves that buffer alone.
	req.Header.SetCanonical(m.to, v)
	return nil
}

func (m *copyModifier) modifyResponse(resp *fasthttp.Response, _ *fasthttp.Request) error {
	resp.Header.SetCanonical(m.to, resp.Header.PeekBytes(m.from))
	return nil
}

// idModifier is krakend-martian's header.Id.
type idModifier struct{ name []byte }

func (m *idModifier) modifyRequest(req *fasthttp.Request) error {
	if len(req.Header.PeekBytes(m.name)) > 0 {
		return nil
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return err
	}
	raw[6] = raw[6]&0x0f | 0x40 // version 4
	raw[8] = raw[8]&0x3f | 0x80 // RFC 4122 variant
	var out [36]byte
	hex.Encode(out[0:8], raw[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], raw[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], raw[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], raw[8:10])
	out[23] = '-'
	hex.Encode(out[24:], raw[10:])
	req.Header.SetCanonical(m.name, out[:])
	return nil
}

// urlModifier is url.Modifier.
type urlModifier struct {
	scheme, host, path, query []byte
}

func (m *urlModifier) modifyRequest(req *fasthttp.Request) error {
	u := req.URI()
	if len(m.scheme) > 0 {
		u.SetSchemeBytes(m.scheme)
	}
	if len(m.host) > 0 {
		if !req.UseHostHeader {
			// Go's client keeps sending req.Host, the original host.
			req.Header.SetHostBytes(u.Host())
			req.UseHostHeader = true
		}
		u.SetHostBytes(m.host)
	}
	if len(m.path) > 0 {
		u.SetPathBytes(m.path)
	}
	if len(m.query) > 0 {
		u.SetQueryStringBytes(m.query)
	}
	return nil
}

// stashModifier is stash.Modifier.
type stashModifier struct{ name []byte }

func (m *stashModifier) modifyRequest(req *fasthttp.Request) error {
	req.Header.SetCanonical(m.name, req.URI().FullURI())
	return nil
}

func (m *stashModifier) modifyResponse(resp *fasthttp.Response, req *fasthttp.Request) error {
	var v []byte
	if req != nil {
		v = req.Header.PeekBytes(m.name)
	}
	resp.Header.SetCanonical(m.name, v)
	return nil
}
