package plan

import (
	"bytes"

	"github.com/apigw/gateway/edge/router"
	"github.com/valyala/fasthttp"
)

// Builtin names one of KrakenD's own routes. They are routes of the plan's
// router, as they are of KrakenD's gin engine, so their odd spellings get
// gin's answers: /__health/ and /__HEALTH a 301 (307) to /__health,
// //__debug/x one to /__debug/x, POST /__health a 405, and a 404 where the
// router options turn the redirects off. The edge's server answers the
// exact spellings itself, before the plan; the plan hands it the requests
// that reach a builtin route only through the router (a percent-encoded
// spelling, or a repeated slash inside the catch-all: /__debug//x).
type Builtin uint8

// The builtin routes.
const (
	BuiltinNone   Builtin = iota
	BuiltinHealth         // GET health_path (/__health)
	BuiltinDebug          // any method /__debug/* (debug_endpoint or gw-edge run -d)
	BuiltinEcho           // any method /__echo/* (echo_endpoint)
)

// BuiltinFunc answers a request that reached builtin route b through the
// plan's router. The plan has run the layers KrakenD puts around that
// route (CORS, security/http, and for debug and echo the bot detector).
type BuiltinFunc func(ctx *fasthttp.RequestCtx, b Builtin)

// ginAnyMethods are the methods gin's Any registers, as KrakenD does for
// /__debug/* and /__echo/*.
var ginAnyMethods = []string{"GET", "POST", "PUT", "PATCH", "HEAD", "OPTIONS", "DELETE", "CONNECT", "TRACE"}

// builtinRoutes returns the router routes of the builtins this plan
// serves, and which builtin each is (aligned).
func builtinRoutes(healthPath string, debug, echo bool) ([]router.Route, []Builtin) {
	var routes []router.Route
	var kinds []Builtin
	if healthPath != "" {
		routes = append(routes, router.Route{Method: "GET", Pattern: healthPath})
		kinds = append(kinds, BuiltinHealth)
	}
	add := func(prefix string, b Builtin) {
		for _, m := range ginAnyMethods {
			routes = append(routes, router.Route{Method: m, Pattern: prefix + "*", SlashCatchAll: true})
			kinds = append(kinds, b)
		}
	}
	if debug {
		add("/__debug/", BuiltinDebug)
	}
	if echo {
		add("/__echo/", BuiltinEcho)
	}
	return routes, kinds
}

// builtinAt is the builtin of router route r, BuiltinNone for an endpoint.
func (p *Plan) builtinAt(r int) Builtin {
	if i := r - len(p.endpoints); i >= 0 && i < len(p.builtins) {
		return p.builtins[i]
	}
	return BuiltinNone
}

// Verbatim reports whether the path KrakenD's router matches for ctx (the
// request's path, percent-decoded, not normalized) is ctx.Path(): it has no
// escape, repeated slash or dot element, which fasthttp's Path() decodes,
// collapses or resolves. The edge's server answers builtin routes before
// the plan only for such paths; the plan routes the others.
func Verbatim(ctx *fasthttp.RequestCtx) bool {
	raw := ctx.URI().PathOriginal()
	return len(raw) > 0 && raw[0] == '/' &&
		bytes.IndexByte(raw, '%') < 0 && !bytes.Contains(raw, doubleSlash) && !bytes.Contains(raw, slashDot)
}

// RedirectsTrailingSlash reports whether the plan's router answers a path
// that only matches with its trailing slash toggled with a redirect
// (router.disable_redirect_trailing_slash unset): /__debug → /__debug/.
func (p *Plan) RedirectsTrailingSlash() bool {
	return p.table != nil && p.table.RedirectsTrailingSlash()
}

// AnyMethod reports whether m is one of the methods gin's Any registers
// (the /__debug/* and /__echo/* routes answer those; the router gives the
// others its 405).
func AnyMethod(m []byte) bool {
	for _, a := range ginAnyMethods {
		if string(m) == a {
			return true
		}
	}
	return false
}
