package plan

import (
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/router"
)

// KrakenD's error answers, observed on KrakenD CE 2.12.1: the router's 404
// and 405 are gin's plain texts; every other gateway error (JWT 401/403,
// JSON-schema 400, rate limits, a failed backend, a timeout) is the status
// alone, with an empty body and no Content-Type. The apigw/errors namespace
// (Plan.jsonErrors) swaps them for our fixed {"error":"<code>"} bodies.
var (
	text404         = []byte("404 page not found")
	text405         = []byte("405 method not allowed")
	contentTypeText = []byte("text/plain")
	// contentTypeTextUTF8 is what Go sniffs for a text body.
	contentTypeTextUTF8 = []byte("text/plain; charset=utf-8")
)

// writeError answers status with KrakenD's empty body, or with jsonBody
// when the plan asks for JSON error bodies.
func (p *Plan) writeError(ctx *fasthttp.RequestCtx, status int, jsonBody []byte) {
	if p.jsonErrors {
		writeFixed(ctx, status, jsonBody)
		return
	}
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetNoDefaultContentType(true)
	ctx.Response.Header.SetContentTypeBytes(nil)
	ctx.Response.ResetBody()
}

// notFound answers a request no route matches: gin's text, or the JSON
// body (a router.error_body["404"] document wins in both modes).
func (p *Plan) notFound(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.SetCanonical(hdrXKrakenD, p.versionValue)
	ctx.Response.Header.SetCanonical(hdrCompleted, valFalse)
	if p.jsonErrors || p.body404 != nil {
		writeFixed(ctx, fasthttp.StatusNotFound, orDefault(p.body404, bodyNotFound))
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNotFound)
	ctx.SetContentTypeBytes(contentTypeText)
	ctx.SetBody(text404)
}

// methodNotAllowed answers a path that exists for other methods. KrakenD
// sends no Allow header; with JSON error bodies we send one.
func (p *Plan) methodNotAllowed(ctx *fasthttp.RequestCtx, st *reqState, allowed router.MethodSet) {
	if p.jsonErrors || p.body405 != nil {
		st.buf = p.table.AppendAllow(st.buf[:0], allowed)
	}
	p.writeMethodNotAllowed(ctx, st.buf)
}

var allowGet = []byte("GET")

// writeMethodNotAllowed writes the 405; allow is the Allow header, sent
// with JSON error bodies only.
func (p *Plan) writeMethodNotAllowed(ctx *fasthttp.RequestCtx, allow []byte) {
	ctx.Response.Header.SetCanonical(hdrXKrakenD, p.versionValue)
	ctx.Response.Header.SetCanonical(hdrCompleted, valFalse)
	if p.jsonErrors || p.body405 != nil {
		ctx.Response.Header.SetCanonical(hdrAllow, allow)
		writeFixed(ctx, fasthttp.StatusMethodNotAllowed, orDefault(p.body405, bodyMethodNotAllowed))
		return
	}
	ctx.SetStatusCode(fasthttp.StatusMethodNotAllowed)
	ctx.SetContentTypeBytes(contentTypeText)
	ctx.SetBody(text405)
}

func orDefault(b, def []byte) []byte {
	if b != nil {
		return b
	}
	return def
}

var contentTypeHTML = []byte("text/html; charset=utf-8")

// appendRedirectBody appends Go's http.Redirect body for location loc
// (which may alias dst's old contents: it is copied first).
func appendRedirectBody(dst, loc []byte, code int) []byte {
	var tmp [256]byte
	l := append(tmp[:0], loc...)
	dst = append(dst[:0], `<a href="`...)
	dst = appendHTMLEscaped(dst, l)
	dst = append(dst, `">`...)
	if code == fasthttp.StatusMovedPermanently {
		dst = append(dst, "Moved Permanently"...)
	} else {
		dst = append(dst, "Temporary Redirect"...)
	}
	return append(dst, "</a>.\n\n"...)
}

// appendHTMLEscaped escapes as Go's html.EscapeString (&, <, >, ", ').
func appendHTMLEscaped(dst, s []byte) []byte {
	for _, c := range s {
		switch c {
		case '&':
			dst = append(dst, "&amp;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '"':
			dst = append(dst, "&#34;"...)
		case '\'':
			dst = append(dst, "&#39;"...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// krakendPattern writes a url_pattern as KrakenD holds it internally (and
// prints it in return_error_msg texts): every {name} placeholder as
// {{.Name}}, first letter upper-cased.
func krakendPattern(p string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(p[i:], '}')
		if j < 0 {
			break
		}
		name := p[i+1 : i+j]
		b.WriteString(p[:i])
		b.WriteString("{{.")
		if name != "" {
			b.WriteString(strings.ToUpper(name[:1]) + name[1:])
		}
		b.WriteString("}}")
		p = p[i+j+1:]
	}
	b.WriteString(p)
	return b.String()
}
