package proxy

import (
	"bytes"
	"errors"
	"time"

	"github.com/valyala/fasthttp"
)

// Backend redirects are followed as Go's http.Client (KrakenD's) follows
// them: 301, 302 and 303 turn every method but GET and HEAD into GET and
// drop the body and its headers; 307 and 308 keep the method and the body,
// and a call with a body is only re-sent when the backend has
// backend/http/client send_body_on_redirect (otherwise the 3xx itself is
// the backend's answer); a 3xx without Location is an answer too. Each hop
// carries the original headers (minus credentials when the host changes)
// and a Referer naming the previous URL; after 10 hops the call fails.
// The hops share the call's deadline.

const maxRedirects = 10

// errTooManyRedirects fails a call that is still redirected after
// maxRedirects hops.
var errTooManyRedirects = errors.New("stopped after 10 redirects")

var (
	hdrLocation       = "Location"
	hdrReferer        = []byte("Referer")
	hdrAcceptEncoding = "Accept-Encoding"
	valGzip           = []byte("gzip")
	methodGet         = []byte(fasthttp.MethodGet)
	schemeHTTPS       = []byte("https")
)

func isRedirect(status int) bool {
	switch status {
	case fasthttp.StatusMovedPermanently, fasthttp.StatusFound, fasthttp.StatusSeeOther,
		fasthttp.StatusTemporaryRedirect, fasthttp.StatusPermanentRedirect:
		return true
	}
	return false
}

// do sends req to h and follows the backend's redirects into resp.
func (b *Backend) do(h *Host, req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) error {
	if b.reroutes && b.client.redirects != nil && (!bytes.Equal(req.URI().Host(), h.host) || !bytes.Equal(req.URI().Scheme(), h.scheme)) {
		// A url.Modifier or a Lua pre sent the call elsewhere: the pool
		// of h dials its own host only.
		if err := b.client.redirects.DoDeadline(req, resp, deadline); err != nil {
			return err
		}
	} else if err := h.Do(req, resp, deadline); err != nil {
		return err
	}
	if !isRedirect(resp.StatusCode()) {
		return nil
	}
	return b.follow(h, req, resp, deadline)
}

// follow runs the redirect hops of req, whose answer resp is a redirect.
// It is off the fast path: it allocates a request copy and URL strings.
func (b *Backend) follow(h *Host, req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) error {
	hop := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(hop)
	req.CopyTo(hop)
	// A chunked body (BuildRequest) is gone once written; its header says
	// there was one. 307 and 308 then answer with the 3xx, as Go's client
	// does with a body it cannot rewind.
	hasBody := len(req.Body()) > 0 || req.Header.ContentLength() == -1
	origHost := string(req.URI().Host())
	stripped := false
	for n := 1; ; n++ {
		method := hop.Header.Method()
		switch resp.StatusCode() {
		case fasthttp.StatusMovedPermanently, fasthttp.StatusFound, fasthttp.StatusSeeOther:
			if !bytes.Equal(method, methodGet) && !hop.Header.IsHead() {
				hop.Header.SetMethodBytes(methodGet)
			}
			if hasBody || len(hop.Header.ContentType()) > 0 {
				hop.ResetBody()
				hop.Header.SetContentLength(0)
				for _, k := range [...]string{"Content-Type", "Content-Encoding", "Content-Language", "Content-Location"} {
					hop.Header.Del(k)
				}
				hasBody = false
			}
		case fasthttp.StatusTemporaryRedirect, fasthttp.StatusPermanentRedirect:
			if hasBody && !b.bodyOnRedirect {
				return nil
			}
		default:
			return nil
		}
		loc := resp.Header.Peek(hdrLocation)
		if len(loc) == 0 {
			return nil
		}
		if n > maxRedirects {
			return errTooManyRedirects
		}
		prev := hop.URI()
		prevURL := append([]byte(nil), prev.FullURI()...)
		prevHTTPS := bytes.Equal(prev.Scheme(), schemeHTTPS)
		prev.UpdateBytes(loc)
		next := hop.URI()
		if host := string(next.Host()); !stripped && host != origHost && !sameDomain(origHost, host) {
			for _, k := range [...]string{"Authorization", "Www-Authenticate", "Cookie", "Cookie2", "Proxy-Authorization", "Proxy-Authenticate"} {
				hop.Header.Del(k)
			}
			stripped = true
		}
		hop.Header.SetHostBytes(next.Host())
		if prevHTTPS && !bytes.Equal(next.Scheme(), schemeHTTPS) {
			hop.Header.DelBytes(hdrReferer)
		} else {
			hop.Header.SetCanonical(hdrReferer, prevURL)
		}
		resp.Reset()
		var err error
		if bytes.Equal(next.Host(), h.host) && bytes.Equal(next.Scheme(), h.scheme) {
			err = h.Do(hop, resp, deadline)
		} else {
			err = b.client.redirects.DoDeadline(hop, resp, deadline)
		}
		if err != nil {
			return err
		}
		if !isRedirect(resp.StatusCode()) {
			return nil
		}
	}
}

// sameDomain reports whether dest is origin or one of its subdomains
// (Go's shouldCopyHeaderOnRedirect, ports ignored).
func sameDomain(origin, dest string) bool {
	origin, dest = stripPort(origin), stripPort(dest)
	if origin == dest {
		return true
	}
	return len(dest) > len(origin) && dest[len(dest)-len(origin)-1] == '.' && dest[len(dest)-len(origin):] == origin
}

func stripPort(h string) string {
	if i := bytes.LastIndexByte([]byte(h), ':'); i >= 0 && !bytes.Contains([]byte(h[i:]), []byte("]")) {
		return h[:i]
	}
	return h
}

// askGzip adds Accept-Encoding: gzip to a call that has none, as Go's
// transport does, and reports whether it did: the answer is then decoded
// transparently.
func (b *Backend) askGzip(req *fasthttp.Request) bool {
	if !b.client.gzip || len(req.Header.Peek(hdrAcceptEncoding)) > 0 {
		return false
	}
	req.Header.Set(hdrAcceptEncoding, "gzip")
	return true
}
