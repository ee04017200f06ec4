package aggregate

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/apigw/gateway/edge/cel"
	"github.com/apigw/gateway/edge/proxy"
)

// AppendErrorText appends the error text KrakenD writes with
// router.return_error_msg for a run without data: one line per failed
// backend, as lura words them: "invalid status code 404 [GET
// /users/{{.Id}}]: http://host/users/1" for a failing status, "context
// deadline exceeded" for a call the deadline cut, Go's client wording for a
// transport error, encoding/json's for an undecodable body.
//
// The lines come in order of arrival, as lura's merge collects them: the
// backends whose calls ended first, then those the merge deadline cut (in
// declaration order: in KrakenD they all end at that deadline). Off the
// fast path: it runs only for failed requests on routers that ask for the
// text.
func (ex *Exchange) AppendErrorText(dst []byte) []byte {
	n := 0
	// Selection by arrival: a handful of backends, no allocation.
	for after := uint64(0); ; {
		next, at := -1, uint64(0)
		for i := range ex.pipe.backends {
			if k := ex.lastFail[i]; ex.won[i] == stateFailed && k >= 0 {
				if a := ex.calls[k].arrival; a > after && (next < 0 || a < at) {
					next, at = i, a
				}
			}
		}
		if next < 0 {
			break
		}
		dst = ex.appendLine(dst, n, &ex.calls[ex.lastFail[next]])
		n++
		after = at
	}
	for i := range ex.pipe.backends {
		if ex.won[i] == stateFailed && ex.lastFail[i] < 0 {
			dst = ex.appendLine(dst, n, nil)
			n++
		}
	}
	return dst
}

// appendLine appends the n-th error line (0 first): call c's error, or the
// deadline's when c is nil.
func (ex *Exchange) appendLine(dst []byte, n int, c *call) []byte {
	if n > 0 {
		dst = append(dst, '\n')
	}
	if c == nil {
		return append(dst, "context deadline exceeded"...)
	}
	return ex.appendCallError(dst, c)
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
	case c.reason == proxy.ReasonRejected:
		// krakend-cel's error, unwrapped by lura's backend stack.
		if r, ok := c.err.(cel.Rejection); ok {
			return r.AppendText(dst)
		}
	case c.err != nil && isLuaError(c.err):
		return append(dst, c.err.Error()...)
	case c.err != nil && isLuaURLError(c.err):
		return append(dst, c.err.Error()...)
	case c.err != nil:
		return proxy.AppendCallError(dst, c.req.Header.Method(), c.req.URI().FullURI(), c.err)
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
