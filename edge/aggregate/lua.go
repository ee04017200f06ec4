package aggregate

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fastjson"

	"github.com/apigw/gateway/edge/lua"
	"github.com/apigw/gateway/edge/proxy"
)

// Lua stages (krakend-lua): modifier/lua-backend runs in the backend call,
// after the circuit breaker and rate limit admitted it (as KrakenD stacks
// them) and before the round trip; modifier/lua-proxy's post runs on the
// merged result. Their cost is paid only by pipes that have them: every
// conversion below is off the path of a pipe without Lua.

// Propagated is one `sequential_propagated_params` entry as a backend's
// Lua sees it: request param Key holds field Path of backend Backend's
// response (the whole body when Full).
type Propagated struct {
	Backend int
	Path    []string
	Key     string // "Resp0_first.foo", as lura names it
	Full    bool
}

var propagatedRE = regexp.MustCompile(`[Rr]esp(\d+)_?([\w-.]+)?`)

// ParsePropagated compiles the sequential_propagated_params of an endpoint
// with n backends, as lura reads them: every `[Rr]esp(\d+)_?([\w-.]+)?`
// match of each entry names a backend and, optionally, a dotted field.
func ParsePropagated(params []string, n int) []Propagated {
	var out []Propagated
	for _, p := range params {
		for _, m := range propagatedRE.FindAllStringSubmatch(p, -1) {
			var idx int
			if _, err := fmt.Sscan(m[1], &idx); err != nil || idx >= n {
				continue
			}
			key := "Resp" + m[1]
			if m[2] != "" {
				key += "_" + m[2]
			}
			out = append(out, Propagated{Backend: idx, Path: strings.Split(m[2], "."), Key: key, Full: m[2] == ""})
		}
	}
	return out
}

// luaParams fills call k's Lua params on the handler goroutine: the
// endpoint parameters under lura's names (first letter upper-cased) and,
// for a backend after the first of a sequential chain, the propagated
// values of the earlier responses.
func (ex *Exchange) luaParams(k, i int, in *proxy.Inbound) {
	c := &ex.calls[k]
	if c.params == nil {
		c.params = make(map[string]string)
	}
	clear(c.params)
	for slot, name := range ex.pipe.paramNames {
		if name == "" || name == "*" {
			continue
		}
		if v := in.Params.Value(slot); v != nil {
			c.params[luraParamName(name)] = string(v)
		}
	}
	if i == 0 || !ex.pipe.sequential {
		return
	}
	for _, pp := range ex.pipe.propagated {
		if pp.Backend >= i {
			continue
		}
		if pp.Full {
			// lura reads the earlier response's body stream, which only a
			// no-op backend has.
			if kk := ex.won[pp.Backend]; kk >= 0 && ex.pipe.backends[pp.Backend].Format.NoOp() {
				body, err := proxy.Body(&ex.calls[kk].resp, ex.pipe.backends[pp.Backend].MaxBodySize)
				if err == nil {
					c.params[pp.Key] = string(body)
				}
			}
			continue
		}
		if v, ok := propagatedValue(ex.parts[pp.Backend], pp.Path); ok {
			c.params[pp.Key] = v
		}
	}
}

// luraParamName is lura's parameter key: the first letter canonicalised.
func luraParamName(name string) string {
	return textproto.CanonicalMIMEHeaderKey(name[:1]) + name[1:]
}

// propagatedValue formats field path of v as lura's sequential merger
// does: strings as they are, numbers as written, lists joined by commas,
// anything else in Go's %v form.
func propagatedValue(v *fastjson.Value, path []string) (string, bool) {
	if v == nil {
		return "", false
	}
	for _, k := range path[:len(path)-1] {
		v = v.Get(k)
		if v == nil || v.Type() != fastjson.TypeObject {
			return "", false
		}
	}
	v = v.Get(path[len(path)-1])
	if v == nil {
		return "", false
	}
	g, err := toGoValue(v)
	if err != nil {
		return "", false
	}
	switch t := g.(type) {
	case []any:
		parts := make([]string, len(t))
		for i := range t {
			parts[i] = fmt.Sprintf("%v", t[i])
		}
		return strings.Join(parts, ","), true
	case string:
		return t, true
	default:
		return fmt.Sprintf("%v", t), true
	}
}

// toGoValue decodes v the way lura holds response data: encoding/json with
// json.Number.
func toGoValue(v *fastjson.Value) (any, error) {
	d := json.NewDecoder(bytes.NewReader(v.MarshalTo(nil)))
	d.UseNumber()
	var out any
	err := d.Decode(&out)
	return out, err
}

// toGoMap is toGoValue for response data: an object, or an empty map.
func toGoMap(v *fastjson.Value) map[string]any {
	if v == nil || v.Type() != fastjson.TypeObject {
		return map[string]any{}
	}
	g, err := toGoValue(v)
	if m, ok := g.(map[string]any); ok && err == nil {
		return m
	}
	return map[string]any{}
}

// luaWork is work for a backend with modifier/lua-backend: pre on the
// built request, the call unless skip_next, post on the decoded response.
// A script error fails the call (KrakenD returns it instead of a response).
func (ex *Exchange) luaWork(k int, s *lua.Script) {
	c := &ex.calls[k]
	b := &ex.pipe.backends[c.backend]
	call := b.Call
	t, err := call.Admit()
	if err != nil {
		c.refused, c.err = err == proxy.ErrOpen, err
		c.reason = proxy.ReasonRefused
		c.span.End(0, c.reason.String(), nil)
		return
	}
	st := s.Acquire()
	defer s.Release(st)
	if s.HasPre() {
		fillLuaRequest(&st.Req, c)
		if err := st.Pre(c.deadline); err != nil {
			ex.luaFailed(k, err)
			call.Finish(t, false, false)
			c.span.End(0, c.reason.String(), nil)
			return
		}
		if err := applyLuaRequest(&st.Req, c); err != nil {
			c.ok, c.complete, c.value, c.raw = false, false, nil, nil
			c.err, c.reason = err, proxy.ReasonConnect
			call.Finish(t, false, false)
			c.span.End(0, c.reason.String(), nil)
			return
		}
	}
	reached := false
	if s.SkipNext() {
		// krakend-lua answers an empty, incomplete response.
		c.ok, c.complete = true, false
		c.value = nil
	} else {
		reached, err = call.RoundTrip(c.host, &c.req, &c.resp, c.deadline)
		c.err = err
		if err == nil {
			ex.decode(k)
		} else {
			c.reason = proxy.ReasonOf(err)
		}
	}
	if c.ok && c.status == 0 && s.HasPost() {
		if err := ex.luaPost(k, st, b.Format.NoOp()); err != nil {
			ex.luaFailed(k, err)
		}
	}
	call.Finish(t, reached, c.complete)
	status := 0
	if reached {
		status = c.resp.StatusCode()
	}
	reason := ""
	if !c.ok || c.status != 0 {
		reason = c.reason.String()
	}
	c.span.End(status, reason, &c.resp)
}

func (ex *Exchange) luaFailed(k int, err error) {
	c := &ex.calls[k]
	c.ok, c.complete, c.value, c.raw = false, false, nil, nil
	c.status = 0
	c.err = err
	c.reason = proxy.ReasonInternal
}

// fillLuaRequest copies call c's built request into r, as lura's backend
// request looks to krakend-lua: the full URL, the generated path, the
// query, the headers (Host is the URL's) and the body.
func fillLuaRequest(r *lua.Request, c *call) {
	r.Method = string(c.req.Header.Method())
	uri := c.req.URI()
	r.URL = string(uri.FullURI())
	r.Path = string(uri.Path())
	if q := uri.QueryString(); len(q) > 0 {
		r.Query, _ = url.ParseQuery(string(q))
	}
	for k, v := range c.params {
		r.Params[k] = v
	}
	for k, v := range c.req.Header.All() {
		if string(k) == "Host" {
			continue
		}
		name := textproto.CanonicalMIMEHeaderKey(string(k))
		r.Headers[name] = append(r.Headers[name], string(v))
	}
	if body := c.req.Body(); len(body) > 0 {
		r.Body = append([]byte(nil), body...)
	}
	r.Changed = lua.Changes{}
}

// applyLuaRequest writes what the script changed back into the call. As in
// KrakenD, the URL is already built: path, query and params changes do not
// reach the backend; url() does, whole: lura's HTTP executor sends the
// request to the URL the script set, another host included (see
// setLuaURL). The error is a URL Go's client would refuse to send.
func applyLuaRequest(r *lua.Request, c *call) error {
	ch := r.Changed
	if ch.Method {
		c.req.Header.SetMethod(r.Method)
	}
	var urlErr error
	switch {
	case ch.NilURL:
		urlErr = errLuaNilURL
	case ch.URL:
		urlErr = setLuaURL(c, r.URL)
	}
	if ch.Headers {
		var drop [][]byte
		for k := range c.req.Header.All() {
			if string(k) != "Host" && r.Headers[textproto.CanonicalMIMEHeaderKey(string(k))] == nil {
				drop = append(drop, append([]byte(nil), k...))
			}
		}
		for _, k := range drop {
			c.req.Header.DelBytes(k)
		}
		for k, vs := range r.Headers {
			c.req.Header.Del(k)
			for _, v := range vs {
				c.req.Header.Add(k, v)
			}
		}
	}
	if ch.Body {
		c.req.SetBody(r.Body)
	}
	return urlErr
}

// errLuaNilURL is a Lua pre's url() that url.Parse refused. lura keeps
// the nil URL and its HTTP executor panics on it: a single backend is gin's
// recovered bare 500 (Result.Recovered); in an aggregate the panic is in a
// merge goroutine nothing recovers, and KrakenD CE 2.12.1 exits, which we
// do not copy: the backend fails, the response is partial.
var errLuaNilURL = errors.New("lua: url() was set to an unparsable URL")

// luaURLError is a URL set by a Lua pre that cannot be sent; its text is
// what KrakenD answers (Go's client error, or url.Parse's).
type luaURLError struct{ text string }

func (e *luaURLError) Error() string { return e.text }

// setLuaURL points call c at raw, the URL a Lua pre set, as lura's HTTP
// executor sends a request: to its scheme and host (the Host header is the
// URL's, whatever the script set), path and query; its user info becomes
// basic auth unless the request has an Authorization header, as Go's
// client does. What Go's client refuses to send (not http or https, no
// host) is an error with its text. edge/lua keeps an unparsable URL as ""
// (lura keeps url.Parse's nil): it is refused as the empty URL, where
// KrakenD's executor panics on the nil URL.
func setLuaURL(c *call, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return &luaURLError{err.Error()}
	}
	refuse := func(msg string) error {
		return &luaURLError{string(proxy.AppendCallError(nil, c.req.Header.Method(), []byte(u.String()), errors.New(msg)))}
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return refuse(fmt.Sprintf("unsupported protocol scheme %q", u.Scheme))
	}
	if u.Host == "" {
		return refuse("http: no Host in request URL")
	}
	uri := c.req.URI()
	uri.SetScheme(u.Scheme)
	uri.SetHost(u.Host)
	uri.SetPath(u.Path)
	if u.RawPath != "" {
		uri.SetPathBytes([]byte(u.EscapedPath()))
	}
	uri.SetQueryString(u.RawQuery)
	if u.User != nil && len(c.req.Header.Peek("Authorization")) == 0 {
		pw, _ := u.User.Password()
		c.req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw)))
	}
	return nil
}

// luaPost runs post on call k's response and takes back what changed.
func (ex *Exchange) luaPost(k int, st *lua.State, noop bool) error {
	c := &ex.calls[k]
	r := &st.Resp
	r.IsComplete = c.complete
	if noop {
		// lura's no-op response parser: status, headers and body stream.
		r.StatusCode = c.resp.StatusCode()
		for key, v := range c.resp.Header.All() {
			name := http.CanonicalHeaderKey(string(key))
			r.Headers[name] = append(r.Headers[name], string(v))
		}
		body, _ := proxy.Body(&c.resp, ex.pipe.backends[c.backend].MaxBodySize)
		r.Body, r.HasBody = append([]byte(nil), body...), true
	} else {
		r.Data = toGoMap(c.value)
	}
	if err := st.Post(c.deadline); err != nil {
		return err
	}
	c.complete = r.IsComplete
	if noop {
		if r.Changed.Body {
			c.resp.SetBody(r.Body)
		}
		return nil
	}
	if r.DataUsed {
		body, err := json.Marshal(r.Data)
		if err != nil {
			return &lua.Error{Msg: err.Error()}
		}
		v, err := ex.scratch.ParseSlot(k, body)
		if err != nil {
			return &lua.Error{Msg: err.Error()}
		}
		c.value = v
	}
	if len(r.Headers) > 0 {
		if c.headers == nil {
			c.headers = make(map[string][]string, len(r.Headers))
		}
		for key, vs := range r.Headers {
			c.headers[key] = vs
		}
	}
	return nil
}

// luaProxyPost runs the endpoint's modifier/lua-proxy post on the result,
// as krakend-lua does when the merged proxy returned without error (every
// backend answered).
func (ex *Exchange) luaProxyPost(s *lua.Script, deadline time.Time) {
	r := &ex.result
	st := s.Acquire()
	defer s.Release(st)
	resp := &st.Resp
	resp.IsComplete = r.Complete
	switch {
	case r.Raw != nil:
		v, err := ex.scratch.ParseShared(r.Raw)
		if err == nil {
			resp.Data = toGoMap(v)
		}
	case r.Value != nil:
		resp.Data = toGoMap(r.Value)
	}
	for k, vs := range r.Headers {
		resp.Headers[k] = vs
	}
	if err := st.Post(deadline); err != nil {
		ex.proxyFailed(err)
		return
	}
	r.Complete = resp.IsComplete
	if resp.DataUsed {
		body, err := json.Marshal(resp.Data)
		if err != nil {
			ex.proxyFailed(&lua.Error{Msg: err.Error()})
			return
		}
		v, err := ex.scratch.ParseShared(body)
		if err != nil {
			ex.proxyFailed(&lua.Error{Msg: err.Error()})
			return
		}
		r.Value, r.Raw = v, nil
	}
	if len(resp.Headers) > 0 {
		if ex.headers == nil {
			ex.headers = make(map[string][]string, len(resp.Headers))
		}
		clear(ex.headers)
		for k, vs := range resp.Headers {
			ex.headers[k] = vs
		}
		r.Headers = ex.headers
	}
}

// proxyFailed turns the result into a Lua stage's error answer: the
// status custom_error gave (500 otherwise), the message as the body for
// router.return_error_msg, with custom_error's content type or the one Go
// would sniff (KrakenD writes the message through net/http).
func (ex *Exchange) proxyFailed(err error) {
	r := &ex.result
	*r = Result{Failed: 1, Reason: proxy.ReasonInternal}
	setLuaError(r, err)
}

func setLuaError(r *Result, err error) {
	var le *lua.Error
	if !errors.As(err, &le) {
		le = &lua.Error{Msg: err.Error()}
	}
	r.Status = le.Status
	if r.Status <= 0 {
		r.Status = http.StatusInternalServerError
	}
	r.ErrBody = []byte(le.Msg)
	ct := le.ContentType
	if ct == "" {
		ct = http.DetectContentType(r.ErrBody)
	}
	r.ErrContentType = []byte(ct)
}

// isLuaError reports whether err is a script's.
func isLuaError(err error) bool {
	var le *lua.Error
	return errors.As(err, &le)
}

func isLuaURLError(err error) bool {
	var ue *luaURLError
	return errors.As(err, &ue)
}

// luaProxyPre runs the endpoint's modifier/lua-proxy pre on the client's
// request, as lura's proxy.Request shows it, and records the changes in
// in.Lua so that every backend request is built with them. It reports
// false when the script failed (the result is then its error answer).
func (ex *Exchange) luaProxyPre(s *lua.Script, in *proxy.Inbound, deadline time.Time) bool {
	st := s.Acquire()
	defer s.Release(st)
	r := &st.Req
	r.Method = string(in.Req.Header.Method())
	r.Path = string(in.Req.URI().Path())
	for k, v := range in.Req.URI().QueryArgs().All() {
		r.Query.Add(string(k), string(v))
	}
	for slot, name := range ex.pipe.paramNames {
		if name != "" && name != "*" {
			if v := in.Params.Value(slot); v != nil {
				r.Params[luraParamName(name)] = string(v)
			}
		}
	}
	orig := make(map[string][]string)
	for k, v := range in.Req.Header.All() {
		if string(k) == "Host" {
			continue
		}
		name := textproto.CanonicalMIMEHeaderKey(string(k))
		orig[name] = append(orig[name], string(v))
		r.Headers[name] = append(r.Headers[name], string(v))
	}
	if body := in.Req.Body(); len(body) > 0 {
		r.Body = append([]byte(nil), body...)
	}
	if err := st.Pre(deadline); err != nil {
		ex.proxyFailed(err)
		return false
	}
	ch := r.Changed
	if ch == (lua.Changes{}) {
		return true
	}
	o := &ex.override
	o.Reset()
	if ch.Params {
		for slot, name := range ex.pipe.paramNames {
			if name == "" || name == "*" {
				continue
			}
			if v, ok := r.Params[luraParamName(name)]; ok && v != string(in.Params.Value(slot)) {
				for len(o.Params) <= slot {
					o.Params = append(o.Params, nil)
				}
				o.Params[slot] = []byte(v)
			}
		}
	}
	if ch.Headers {
		if o.SetHeaders == nil {
			o.SetHeaders = make(map[string][]string)
		}
		for k := range orig {
			if _, ok := r.Headers[k]; !ok {
				o.DelHeaders = append(o.DelHeaders, k)
			}
		}
		for k, vs := range r.Headers {
			if !slices.Equal(orig[k], vs) {
				o.SetHeaders[k] = vs
			}
		}
	}
	if ch.Query {
		o.Query, o.QuerySet = r.Query.Encode(), true
	}
	if ch.Body {
		o.Body, o.BodySet = r.Body, true
	}
	in.Lua = o
	return true
}
