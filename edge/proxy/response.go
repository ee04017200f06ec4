package proxy

import (
	"bytes"
	"errors"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/tracing"
)

// IsSuccess reports whether a backend status counts as success: KrakenD
// accepts only 200 and 201 (anything else, 204 included, is an error)
// unless the backend is no-op.
func IsSuccess(status int) bool {
	return status == fasthttp.StatusOK || status == fasthttp.StatusCreated
}

// ErrBodyTooLarge is returned (wrapped) when a backend body, once
// decompressed, exceeds the limit.
var ErrBodyTooLarge = errors.New("backend body too large")

// Body returns resp's body decoded from its Content-Encoding (gzip,
// deflate, br, zstd), bounded by maxSize (0: unbounded). An uncompressed
// body is returned without copying.
func Body(resp *fasthttp.Response, maxSize int) ([]byte, error) {
	if len(resp.Header.ContentEncoding()) == 0 {
		return resp.Body(), nil
	}
	b, err := resp.BodyUncompressedWithLimit(maxSize)
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		return nil, ErrBodyTooLarge
	}
	return b, err
}

// CopyNoOp passes a backend response to the client response dst as a
// no-op pipe does: status, headers minus hop-by-hop ones (and those named
// in Connection), Content-Length and Date (fasthttp writes its own), and
// the body, which is moved, not copied: src's body is empty afterwards.
func CopyNoOp(dst, src *fasthttp.Response) {
	dst.SetStatusCode(src.StatusCode())
	// The backend's absence of Content-Type is passed through too.
	src.Header.SetNoDefaultContentType(true)
	dst.Header.SetNoDefaultContentType(true)
	conn := src.Header.Peek(hdrConnection)
	for k, v := range src.Header.All() {
		if skipResponseHeader(k) || (len(conn) > 0 && namedInConnection(conn, k)) {
			continue
		}
		dst.Header.AddBytesKV(k, v)
	}
	// Swap the body buffers: no copy whatever the body size.
	body := src.SwapBody(nil)
	old := dst.SwapBody(body)
	src.SwapBody(old[:0])
}

func skipResponseHeader(k []byte) bool {
	switch string(k) {
	case "Content-Length", "Date":
		return true
	}
	return isHopByHop(k)
}

// ServeNoOp runs a single no-op backend for the client request of ctx and
// writes the backend response to ctx.Response. It returns the call error
// (nothing was written then): ErrOpen when the circuit breaker refused the
// call, ratelimit.ErrLimited when the backend rate limit did, or a
// *CallError wrapping the transport error. The call goes through RoundTrip (martian modifiers, the
// HTTP cache). A no-op backend passes every status through, so the breaker
// counts transport errors and 5xx answers as failures (KrakenD counts only
// transport errors there). It does not allocate once the pools are warm.
func (b *Backend) ServeNoOp(ctx *fasthttp.RequestCtx, in *Inbound, deadline time.Time) error {
	t, err := b.Admit()
	if err != nil {
		return err
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	h := b.client.Pick()
	if err := b.BuildRequest(req, h, in, nil); err != nil {
		b.Finish(t, false, false)
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
		return &CallError{Method: []byte(b.method), URL: []byte(b.name), Err: err}
	}
	span := b.StartTrace(req, in)
	reached, err := b.RoundTrip(h, req, resp, deadline)
	endCall(span, reached, resp, err)
	if err != nil {
		// Off the fast path: keep what an error text names.
		err = &CallError{Method: append([]byte(nil), req.Header.Method()...), URL: append([]byte(nil), req.URI().FullURI()...), Err: err}
	}
	if err == nil && in.Gzip {
		err = gunzipInPlace(resp)
	}
	if err == nil {
		CopyNoOp(&ctx.Response, resp)
	}
	b.Finish(t, reached, err == nil && resp.StatusCode() < fasthttp.StatusInternalServerError)
	fasthttp.ReleaseRequest(req)
	fasthttp.ReleaseResponse(resp)
	return err
}

var hdrContentEncoding = "Content-Encoding"

// gunzipInPlace decodes a gzip answer to a call that asked for gzip on its
// own and drops Content-Encoding, as Go's transport does for KrakenD's
// no-op pass-through. Other encodings are left as they are.
func gunzipInPlace(resp *fasthttp.Response) error {
	if !bytes.EqualFold(resp.Header.ContentEncoding(), valGzip) {
		return nil
	}
	b, err := resp.BodyUncompressed()
	if err != nil {
		return err
	}
	resp.Header.Del(hdrContentEncoding)
	resp.SetBody(b)
	return nil
}

// endCall ends a call's span with the backend's status (when it answered)
// and the failure reason.
func endCall(span tracing.Call, reached bool, resp *fasthttp.Response, err error) {
	status := 0
	if reached {
		status = resp.StatusCode()
	}
	reason := ""
	if err != nil {
		reason = ReasonOf(err).String()
	}
	span.End(status, reason)
}
