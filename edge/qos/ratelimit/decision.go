package ratelimit

import (
	"errors"
	"time"
)

// ErrLimited is the error a backend call fails with when its backend
// limiter rejects it. It is not a backend failure: do not report it to a
// circuit breaker.
var ErrLimited = errors.New("rate limit: exceeded")

// Header names the caller sets from a Decision (see Decision).
const (
	HeaderLimit      = "X-RateLimit-Limit"
	HeaderRemaining  = "X-RateLimit-Remaining"
	HeaderReset      = "X-RateLimit-Reset"
	HeaderRetryAfter = "Retry-After"
)

// Scope says which limit produced a rejection.
type Scope uint8

const (
	// ScopeNone: the request was allowed.
	ScopeNone Scope = iota
	// ScopeClient: the per-client bucket (or an empty client key) rejected
	// the request; answer 429.
	ScopeClient
	// ScopeGlobal: the endpoint-wide bucket rejected the request; answer 503.
	ScopeGlobal
)

// String returns "none", "client" or "global".
func (s Scope) String() string {
	switch s {
	case ScopeClient:
		return "client"
	case ScopeGlobal:
		return "global"
	default:
		return "none"
	}
}

// Decision is the outcome of one Allow. It is a plain value: copy it freely.
//
// Headers (Envoy's local rate limit convention, adapted to token buckets):
//
//	X-RateLimit-Limit:     Limit (the bucket capacity, i.e. the burst)
//	X-RateLimit-Remaining: Remaining (whole tokens left after this request)
//	X-RateLimit-Reset:     ResetSeconds() (seconds until the bucket is full)
//	Retry-After:           RetryAfterSeconds(), on rejections only
type Decision struct {
	// Allowed is true when the request may proceed.
	Allowed bool
	// RejectedBy is ScopeNone when Allowed, otherwise the limit that said no.
	RejectedBy Scope
	// Limit is the capacity (burst) of the reported bucket; 0 when no bucket
	// was consulted (an empty client key).
	Limit uint64
	// Remaining is the number of whole tokens left after this request.
	Remaining uint64
	// RetryAfter is how long until one token is available (rejections only;
	// 0 when retrying cannot help, as with an empty client key).
	RetryAfter time.Duration
	// Reset is how long until the reported bucket is full again.
	Reset time.Duration
}

// Status returns the HTTP status for a rejection: 429 for ScopeClient, 503
// for ScopeGlobal, and 0 when the request was allowed.
func (d Decision) Status() int {
	switch {
	case d.Allowed:
		return 0
	case d.RejectedBy == ScopeGlobal:
		return 503
	default:
		return 429
	}
}

// RetryAfterSeconds returns RetryAfter rounded up to whole seconds, at least
// 1 for a rejection (Retry-After has one-second resolution and 0 would invite
// an immediate retry) and 0 when the request was allowed.
func (d Decision) RetryAfterSeconds() int64 {
	if d.Allowed {
		return 0
	}
	return max(ceilSeconds(d.RetryAfter), 1)
}

// ResetSeconds returns Reset rounded up to whole seconds.
func (d Decision) ResetSeconds() int64 { return ceilSeconds(d.Reset) }

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
