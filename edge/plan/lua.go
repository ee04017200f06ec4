package plan

import (
	"errors"
	"net/textproto"
	"net/url"
	"slices"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/lua"
	"github.com/apigw/gateway/edge/router"
)

// luaEndpoint runs the endpoint's modifier/lua-endpoint pre (krakend-lua's
// gin handler, inside the JWT check and outside the router rate limit) on
// the client's request and applies its changes there, so the rest of the
// pipeline sees them as KrakenD's handler does. A script error answers the
// status custom_error gave (500 otherwise), with its content type and no
// body, before X-KrakenD is set, as gin's AbortWithError does.
func (p *Plan) luaEndpoint(ctx *fasthttp.RequestCtx, ep *endpoint, st *reqState) bool {
	return runLuaCtx(ctx, ep.luaEP, ep.timeout, ep.paramNames, st, false)
}

// luaService runs the service-level modifier/lua-endpoint pre (krakend-lua's
// gin middleware, registered with engine.Use): for every request that
// reaches a handler, the matched route's (paramNames its slot names, nil
// for the 404 and 405 handlers) and the 404/405 ones alike. Any script
// error, custom_error's included, is an empty 500: the middleware ignores
// custom_error's status and content type (observed on KrakenD 2.12.1).
func (p *Plan) luaService(ctx *fasthttp.RequestCtx, paramNames []string, timeout time.Duration, st *reqState) bool {
	return runLuaCtx(ctx, p.luaSvc, timeout, paramNames, st, true)
}

// serviceLua runs the service script for a routed request: the route's
// parameters and timeout when one matched, none and the longest endpoint
// timeout for the 404, 405 and OPTIONS handlers.
func (p *Plan) serviceLua(ctx *fasthttp.RequestCtx, res router.Result, st *reqState) bool {
	if res.Kind == router.Found {
		ep := p.endpoints[res.Route]
		return p.luaService(ctx, ep.paramNames, ep.timeout, st)
	}
	return p.luaService(ctx, nil, p.luaSvcTimeout, st)
}

// runLuaCtx runs s's pre on krakend-lua's ctx object over the client's
// request and applies its changes there. plain500 answers every error as
// the service middleware does (an empty 500).
func runLuaCtx(ctx *fasthttp.RequestCtx, s *lua.Script, timeout time.Duration, paramNames []string, st *reqState, plain500 bool) bool {
	ls := s.Acquire()
	defer s.Release(ls)
	r := &ls.Req
	r.Method = string(ctx.Method())
	r.URL = string(ctx.Request.RequestURI())
	r.Host = string(ctx.Request.Header.Host())
	r.Query, _ = url.ParseQuery(string(ctx.URI().QueryString()))
	for i, name := range paramNames {
		if name != "" && name != "*" && i < st.params.Len() {
			r.Params[name] = string(st.params.Value(i))
		}
	}
	orig := make(map[string][]string)
	for k, v := range ctx.Request.Header.All() {
		if string(k) == "Host" {
			continue
		}
		name := textproto.CanonicalMIMEHeaderKey(string(k))
		orig[name] = append(orig[name], string(v))
		r.Headers[name] = append(r.Headers[name], string(v))
	}
	if b := ctx.Request.Body(); len(b) > 0 {
		r.Body = append([]byte(nil), b...)
	}
	if err := ls.Pre(time.Now().Add(timeout)); err != nil {
		status := fasthttp.StatusInternalServerError
		var le *lua.Error
		if !errors.As(err, &le) || plain500 {
			le = nil
		} else if le.Status > 0 {
			status = le.Status
		}
		ctx.Response.Header.DelBytes(hdrXKrakenD)
		ctx.Response.Header.SetNoDefaultContentType(true)
		if le != nil && le.ContentType != "" {
			ctx.Response.Header.SetContentType(le.ContentType)
		}
		ctx.SetStatusCode(status)
		ctx.Response.ResetBody()
		return false
	}
	ch := r.Changed
	if ch == (lua.Changes{}) {
		return true
	}
	// The parameters alias the request's path, which the changes below may
	// rewrite: own them first.
	for i := 0; i < st.params.Len(); i++ {
		st.params.Set(i, append([]byte(nil), st.params.Value(i)...))
	}
	if ch.Method {
		ctx.Request.Header.SetMethod(r.Method)
	}
	if ch.URL {
		ctx.Request.SetRequestURI(r.URL)
	}
	if ch.Query {
		ctx.URI().SetQueryString(r.Query.Encode())
	}
	if ch.Host {
		ctx.Request.Header.SetHost(r.Host)
	}
	if ch.Params {
		for i, name := range paramNames {
			if v, ok := r.Params[name]; ok && i < st.params.Len() && v != string(st.params.Value(i)) {
				st.params.Set(i, []byte(v))
			}
		}
	}
	if ch.Headers {
		for k := range orig {
			if _, ok := r.Headers[k]; !ok {
				ctx.Request.Header.Del(k)
			}
		}
		for k, vs := range r.Headers {
			if slices.Equal(orig[k], vs) {
				continue
			}
			ctx.Request.Header.Del(k)
			for _, v := range vs {
				ctx.Request.Header.Add(k, v)
			}
		}
	}
	if ch.Body {
		ctx.Request.SetBody(r.Body)
	}
	return true
}
