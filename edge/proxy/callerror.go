package proxy

import (
	"bytes"
	"errors"
	"net"
	"strconv"

	"github.com/apigw/gateway/edge/qos/ratelimit"
	"github.com/valyala/fasthttp"
)

// CallError is a backend call that failed before an answer came back (a
// transport or modifier error), with what KrakenD's return_error_msg text
// names: the method and URL.
type CallError struct {
	Method []byte
	URL    []byte
	Err    error
}

func (e *CallError) Error() string { return string(AppendCallError(nil, e.Method, e.URL, e.Err)) }

func (e *CallError) Unwrap() error { return e.Err }

// AppendCallError appends the text KrakenD (Go's http.Client) gives a
// failed call: "context deadline exceeded" for a timeout, else Go's
// *url.Error wording, `Get "http://host/path": dial tcp host: connect:
// connection refused`.
func AppendCallError(dst, method, url []byte, err error) []byte {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) {
		return append(dst, "context deadline exceeded"...)
	}
	if errors.Is(err, ErrBodyTooLarge) {
		return append(dst, err.Error()...)
	}
	if errors.Is(err, ratelimit.ErrLimited) {
		// KrakenD's backend rate limiter's text, spelling included.
		return append(dst, "rate limit exceded"...)
	}
	if len(method) > 0 {
		dst = append(dst, method[0])
		dst = append(dst, bytes.ToLower(method[1:])...)
	}
	dst = append(dst, ' ')
	dst = strconv.AppendQuote(dst, string(url))
	dst = append(dst, ": "...)
	// Go's dialer error, as net/http reports it (fasthttp wraps it and
	// dials "tcp4").
	var op *net.OpError
	if errors.As(err, &op) {
		e := *op
		if e.Net == "tcp4" || e.Net == "tcp6" {
			e.Net = "tcp"
		}
		return append(dst, e.Error()...)
	}
	return append(dst, err.Error()...)
}
