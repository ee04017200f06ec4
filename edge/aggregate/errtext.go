package aggregate

import (
	"bytes"
	"encoding/json"
	"strconv"

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
