package server

import (
	"bytes"
	"encoding/json"
	"net/url"

	"github.com/apigw/gateway/edge/plan"
	"github.com/valyala/fasthttp"
)

// KrakenD's test handlers, served before routing when enabled (inside the
// plan's Guard: CORS, security/http and the bot detector, as in KrakenD):
// /__debug/* (root debug_endpoint, or `gw-edge run -d`) answers every
// method with {"message":"pong"}, and /__echo/* (echo_endpoint) describes
// the request it received. Both bodies are what KrakenD CE 2.12.1's gin
// handlers write, byte for byte (encoding/json, field order as declared).
var (
	prefixDebug = []byte("/__debug/")
	prefixEcho  = []byte("/__echo/")
	bodyPong    = []byte(`{"message":"pong"}`)
	hdrLocation = []byte("Location")
	bodyMoved   = []byte("Moved Permanently")
)

// serveTestHandlers answers /__debug/* and /__echo/* when st enables them
// and reports whether it did.
// Only verbatim paths are answered here (plan.Verbatim); the plan routes the
// others to its builtin routes.
func serveTestHandlers(ctx *fasthttp.RequestCtx, st *state) bool {
	if !st.debug && !st.echo {
		return false
	}
	path := ctx.Path()
	if len(path) < len(prefixEcho)-1 || path[1] != '_' || st.plan != nil && (!plan.Verbatim(ctx) || !plan.AnyMethod(ctx.Method())) {
		return false
	}
	switch {
	case st.debug && bytes.HasPrefix(path, prefixDebug):
		if st.plan != nil && st.plan.Guard(ctx, true) {
			return true
		}
		writePong(ctx)
		return true
	case st.echo && bytes.HasPrefix(path, prefixEcho):
		if st.plan != nil && st.plan.Guard(ctx, true) {
			return true
		}
		writeEcho(ctx)
		return true
	case st.plan != nil && !st.plan.RedirectsTrailingSlash():
		// No trailing-slash redirects: the plan's router answers (404).
	case st.debug && len(path) == len(prefixDebug)-1 && bytes.HasPrefix(prefixDebug, path),
		st.echo && len(path) == len(prefixEcho)-1 && bytes.HasPrefix(prefixEcho, path):
		// gin's trailing-slash redirect to the catch-all, answered before
		// gin's middleware: only CORS (around the whole router) runs.
		if st.plan != nil && st.plan.GuardCORS(ctx) {
			return true
		}
		redirectSlash(ctx, path)
		return true
	}
	return false
}

func writePong(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentTypeBytes(contentTypeJSONUTF8)
	ctx.SetBody(bodyPong)
}

// redirectSlash answers as gin's trailing-slash redirect does: 301 for GET
// (with its tiny HTML body), 307 for other methods.
func redirectSlash(ctx *fasthttp.RequestCtx, path []byte) {
	loc := append(append([]byte(nil), path...), '/')
	ctx.Response.Header.SetCanonical(hdrLocation, loc)
	if !ctx.IsGet() {
		ctx.SetStatusCode(fasthttp.StatusTemporaryRedirect)
		if ctx.IsHead() {
			ctx.SetContentType("text/html; charset=utf-8") // Go's http.Redirect
		}
		return
	}
	ctx.SetStatusCode(fasthttp.StatusMovedPermanently)
	ctx.SetContentType("text/html; charset=utf-8")
	b := append([]byte(`<a href="`), loc...)
	b = append(b, `">`...)
	b = append(b, bodyMoved...)
	b = append(b, "</a>.\n\n"...)
	ctx.SetBody(b)
}

// echoResponse is the /__echo/ body, fields in KrakenD's order.
type echoResponse struct {
	URI         string              `json:"req_uri"`
	URIDetails  map[string]string   `json:"req_uri_details"`
	Method      string              `json:"req_method"`
	Querystring map[string][]string `json:"req_querystring"`
	Body        string              `json:"req_body"`
	Headers     map[string][]string `json:"req_headers"`
}

func writeEcho(ctx *fasthttp.RequestCtx) {
	query, _ := url.ParseQuery(string(ctx.URI().QueryString()))
	headers := map[string][]string{}
	for k, v := range ctx.Request.Header.All() {
		name := string(k)
		if name == "Host" {
			continue // Go's server keeps Host out of the header map
		}
		headers[name] = append(headers[name], string(v))
	}
	uri := string(ctx.Request.Header.RequestURI())
	path := string(ctx.Path())
	if u, err := url.ParseRequestURI(uri); err == nil {
		path = u.Path // Go's r.URL.Path: decoded, not normalized (/__echo//x)
	}
	resp := echoResponse{
		URI: uri,
		URIDetails: map[string]string{
			"user":     "",
			"host":     string(ctx.Host()),
			"path":     path,
			"query":    query.Encode(),
			"fragment": "",
		},
		Method:      string(ctx.Method()),
		Querystring: query,
		Body:        string(ctx.Request.Body()),
		Headers:     headers,
	}
	b, err := json.Marshal(resp)
	if err != nil {
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentTypeBytes(contentTypeJSONUTF8)
	ctx.SetBody(b)
}
