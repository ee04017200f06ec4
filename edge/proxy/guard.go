package proxy

import (
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/internal/ascii"
	"github.com/apigw/gateway/edge/modifier"
	"github.com/apigw/gateway/edge/qos/breaker"
	"github.com/apigw/gateway/edge/qos/httpcache"
	"github.com/apigw/gateway/edge/qos/ratelimit"
)

// The protection and rewriting of one backend call, in KrakenD's nesting
// order (lura's backend factory: circuit breaker → backend rate limit →
// HTTP executor wrapped by martian, with the cache inside the executor):
//
//	t, err := b.Admit()          // breaker, then qos/ratelimit/proxy
//	if err != nil { ... }        // ErrOpen or ratelimit.ErrLimited: not called
//	reached, err := b.RoundTrip(h, req, resp, deadline)
//	b.Finish(t, reached, success) // the real backend outcome, if it was asked
//
// Two KrakenD quirks are fixed here: a backend rate-limit rejection is
// released, never reported to the breaker as a failure, and the breaker is
// asked first, so calls refused by an open circuit spend no rate-limit
// token. A cache hit is not an outcome either. Every step is skipped when
// the backend has no such component, and none allocates on the hot path.

// ErrOpen is the error of a call refused by the backend's open circuit
// breaker (breaker.ErrOpen).
var ErrOpen = breaker.ErrOpen

// Admit asks the circuit breaker, then the backend rate limiter, for one
// call. On success the caller must end the call with exactly one of Done or
// Release on the ticket. err is ErrOpen (answer 503 on a single-backend
// endpoint) or ratelimit.ErrLimited (a backend error; the breaker is not
// told).
func (b *Backend) Admit() (breaker.Ticket, error) {
	t, ok := b.breaker.Allow()
	if !ok {
		return 0, ErrOpen
	}
	if b.limiter != nil && !b.limiter.Allow().Allowed {
		b.breaker.Release(t)
		return 0, ratelimit.ErrLimited
	}
	return t, nil
}

// Finish ends the call admitted with t: when the backend was reached its
// outcome goes to the circuit breaker, otherwise (a cache hit) the ticket
// is released, neither success nor failure.
func (b *Backend) Finish(t breaker.Ticket, reached, success bool) {
	if reached {
		b.breaker.Done(t, success)
		return
	}
	b.breaker.Release(t)
}

// RoundTrip performs a call admitted by Admit, in KrakenD's executor
// order: martian request modifiers on req, the HTTP cache (a fresh hit
// fills resp and skips the round trip), the round trip to h (a storable
// answer is cached as the backend sent it), then martian response
// modifiers on resp (on hits too: the cache sits inside martian). A
// static.Modifier skips the cache and the round trip. reached
// reports whether the backend was called; err is the transport error (or
// a modifier's). req must have been built for h (BuildRequest).
func (b *Backend) RoundTrip(h *Host, req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) (reached bool, err error) {
	skip := false
	if b.mod.ModifiesRequest() {
		if err := b.mod.ModifyRequest(req); err != nil {
			if err != modifier.ErrSkipRoundTrip {
				return false, err
			}
			// A static.Modifier answers: an empty 200 without headers,
			// as krakend-martian makes one, for the response modifiers.
			skip = true
			resp.Reset()
			resp.Header.SetNoDefaultContentType(true)
		}
	}
	if skip {
		// Neither the cache nor the backend: they sit inside martian.
	} else if b.cache == nil || !b.CacheGet(req, resp) {
		if err := b.do(h, req, resp, deadline); err != nil {
			return true, err
		}
		reached = true
		b.CachePut(req, resp)
	}
	if b.mod.ModifiesResponse() {
		if err := b.mod.ModifyResponse(resp, req); err != nil {
			return reached, err
		}
	}
	return reached, nil
}

// RetryAfter returns how long the backend's circuit stays open, 0 when it
// is not open.
func (b *Backend) RetryAfter() int64 {
	d := b.breaker.RetryAfter()
	if d <= 0 {
		return 0
	}
	return int64((d + 999_999_999) / 1_000_000_000)
}

// Breaker returns the backend's circuit breaker (nil: none).
func (b *Backend) Breaker() *breaker.Breaker { return b.breaker }

var hdrAge = []byte("Age")

// CacheGet fills resp from the backend's HTTP cache when it holds a fresh
// response to req (GET or HEAD, same final URL, matching Vary values) and
// reports whether it did. The body is copied into resp, the stored headers
// added (minus Content-Length and Date) with Age set. It does not allocate
// once resp's buffers have grown.
func (b *Backend) CacheGet(req *fasthttp.Request, resp *fasthttp.Response) bool {
	if b.cache == nil {
		return false
	}
	e, age := b.cache.Get(req.Header.Method(), req.URI().FullURI(), &req.Header)
	if e == nil {
		return false
	}
	resp.SetStatusCode(e.Status)
	resp.Header.SetNoDefaultContentType(true)
	for i := range e.Header {
		h := &e.Header[i]
		if skipResponseHeader(h.Key) || ascii.EqualFold(h.Key, "Age") {
			continue
		}
		resp.Header.AddBytesKV(h.Key, h.Value)
	}
	var num [20]byte
	resp.Header.SetCanonical(hdrAge, strconv.AppendInt(num[:0], int64(age/1_000_000_000), 10))
	resp.SetBody(e.Body)
	return true
}

// cacheHeaders is the scratch header list handed to httpcache.Cache.Put.
type cacheHeaders struct{ h []httpcache.Header }

var cacheHeadersPool = sync.Pool{New: func() any { return new(cacheHeaders) }}

// CachePut offers a backend response to the backend's HTTP cache, which
// stores it when the storage rules allow (GET/HEAD, cacheable status,
// explicit freshness from the backend's Cache-Control or Expires; see
// edge/qos/httpcache). A response without either header is skipped
// without looking further. Call it before the response body is moved
// (CopyNoOp) or decompressed.
func (b *Backend) CachePut(req *fasthttp.Request, resp *fasthttp.Response) {
	if b.cache == nil {
		return
	}
	if len(resp.Header.Peek("Cache-Control")) == 0 && len(resp.Header.Peek("Expires")) == 0 {
		return
	}
	// A missing Content-Type is stored as missing, not as fasthttp's default.
	resp.Header.SetNoDefaultContentType(true)
	ch := cacheHeadersPool.Get().(*cacheHeaders)
	hs := ch.h[:0]
	for k, v := range resp.Header.All() {
		hs = append(hs, httpcache.Header{Key: k, Value: v})
	}
	b.cache.Put(req.Header.Method(), req.URI().FullURI(), &req.Header, httpcache.Response{
		Status: resp.StatusCode(),
		Header: hs,
		Body:   resp.Body(),
	})
	clear(hs)
	ch.h = hs[:0]
	cacheHeadersPool.Put(ch)
}
