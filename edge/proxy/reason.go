package proxy

import (
	"errors"
	"net"
	"os"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/qos/ratelimit"
)

// Reason says why a backend call failed. The proxy classifies the failure
// where it happens and the reason travels with the call up to the pipe,
// which counts it (gw_edge_backend_errors_total{backend,reason}).
type Reason uint8

// The reasons, in the order of the call's steps.
const (
	ReasonNone     Reason = iota // the call succeeded
	ReasonRefused                // refused before sending: open circuit, backend rate limit
	ReasonConnect                // no answer: dial failed, connection broke, a modifier refused
	ReasonTimeout                // no answer before the call deadline
	ReasonStatus                 // the backend answered with a failing status
	ReasonTooLarge               // the (decompressed) body is over the limit
	ReasonDecode                 // the body did not decode in the backend's encoding
	ReasonInternal               // a bug: the call's handling panicked
	ReasonRejected               // a validation/cel expression of the backend rejected it

	// NumReasons bounds the values, for arrays indexed by Reason.
	NumReasons
)

var reasonNames = [NumReasons]string{"none", "refused", "connect", "timeout", "status", "too_large", "decode", "internal", "cel_rejected"}

// String is the reason's metric label.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons returns every failure reason (ReasonNone excluded), for
// precreating metric children.
func Reasons() []Reason {
	out := make([]Reason, 0, NumReasons-1)
	for r := ReasonRefused; r < NumReasons; r++ {
		out = append(out, r)
	}
	return out
}

// ReasonOf classifies an error of Admit or RoundTrip (see BodyReason for
// Body's). It runs on the error path only.
func ReasonOf(err error) Reason {
	var nerr net.Error
	switch {
	case err == nil:
		return ReasonNone
	case errors.Is(err, ErrOpen), errors.Is(err, ratelimit.ErrLimited):
		return ReasonRefused
	case errors.Is(err, ErrBodyTooLarge), errors.Is(err, fasthttp.ErrBodyTooLarge):
		return ReasonTooLarge
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return ReasonTimeout
	}
	return ReasonConnect
}

// BodyReason classifies an error of Body: too large, or a body that does
// not decode from its Content-Encoding.
func BodyReason(err error) Reason {
	switch {
	case err == nil:
		return ReasonNone
	case errors.Is(err, ErrBodyTooLarge), errors.Is(err, fasthttp.ErrBodyTooLarge):
		return ReasonTooLarge
	}
	return ReasonDecode
}
