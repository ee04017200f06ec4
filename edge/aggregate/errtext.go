package aggregate

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/proxy"
)

// AppendErrorText appends the error text KrakenD writes with
// router.return_error_msg for a run without data: one line per failed
// backend, in declaration order (KrakenD: in order of arrival), as lura
// words them: "invalid status code 404 [GET /users/{{.Id}}]:
// http://host/users/1" for a failing status, "context deadline exceeded"
// for a call the deadline cut, Go's client wording for a transport error,
// encoding/json's for an undecodable body. Off the fast path: it runs only
// for failed requests on routers that ask for the text.
func (ex *Exchange) AppendErrorText(dst []byte) []byte {
	first := true
	for i := range ex.pipe.backends {
		if ex.won[i] >= 0 || ex.won[i] == stateNotRun {
			continue
		}
		if !first {
			dst = append(dst, '\n')
		}
		first = false
		k := ex.lastFail[i]
		if k < 0 {
			dst = append(dst, "context deadline exceeded"...)
			continue
		}
		dst = ex.appendCallError(dst, &ex.calls[k])
	}
	return dst
}

func (ex *Exchange) appendCallError(dst []byte, c *call) []byte {
	b := &ex.pipe.backends[c.backend]
	switch {
	case c.refused:
		return append(dst, "circuit breaker is open"...)
	case c.status != 0:
		dst = append(dst, "invalid status code "...)
		dst = strconv.AppendInt(dst, int64(c.status), 10)
		dst = append(dst, ' ')
		dst = append(dst, b.ErrPrefix...)
		dst = append(dst, ' ')
		return append(dst, c.req.URI().FullURI()...)
	case c.err != nil:
		if errors.Is(c.err, fasthttp.ErrTimeout) || errors.Is(c.err, fasthttp.ErrDialTimeout) {
			return append(dst, "context deadline exceeded"...)
		}
		if errors.Is(c.err, proxy.ErrBodyTooLarge) {
			return append(dst, c.err.Error()...)
		}
		// Go's *url.Error: `Get "http://host/path": <cause>`.
		m := c.req.Header.Method()
		if len(m) > 0 {
			dst = append(dst, m[0])
			dst = append(dst, bytes.ToLower(m[1:])...)
		}
		dst = append(dst, ' ')
		dst = strconv.AppendQuote(dst, string(c.req.URI().FullURI()))
		dst = append(dst, ": "...)
		// Go's dialer error, as net/http reports it (fasthttp wraps it
		// and dials "tcp4").
		var op *net.OpError
		if errors.As(c.err, &op) {
			e := *op
			if e.Net == "tcp4" || e.Net == "tcp6" {
				e.Net = "tcp"
			}
			return append(dst, e.Error()...)
		}
		return append(dst, c.err.Error()...)
	}
	// The body did not decode: encoding/json's own message, as lura's
	// decoder reports it.
	body, _ := proxy.Body(&c.resp, b.MaxBodySize)
	var v map[string]any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return append(dst, err.Error()...)
	}
	return append(dst, "invalid response"...)
}
