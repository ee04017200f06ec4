package plan_test

import (
	"bytes"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
)

// fastBackend is a real fasthttp server on 127.0.0.1:0 answering every path
// with a small JSON object (or bodies[path] when set), cacheable for a
// minute under /cached/, gzip-encoded under /gz/ (bodies[path] must then
// hold gzip bytes); it allocates nothing per request, so allocation
// guards measure the edge alone.
// cachedCalls counts the /cached/ calls of every fastBackend.
var cachedCalls atomic.Int64

func fastBackend(t testing.TB, bodies map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	def := []byte(`{"id":1,"name":"alice","email":"a@example.com","tags":["x","y"],"address":{"city":"Paris","zip":"75001"}}`)
	pre := map[string][]byte{}
	for k, v := range bodies {
		pre[k] = []byte(v)
	}
	ct := []byte("application/json")
	cachedPrefix, cc, ccValue := []byte("/cached/"), []byte("Cache-Control"), []byte("public, max-age=60")
	gzPrefix, ce, gz := []byte("/gz/"), []byte("Content-Encoding"), []byte("gzip")
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentTypeBytes(ct)
			if bytes.HasPrefix(ctx.Path(), cachedPrefix) {
				cachedCalls.Add(1)
				ctx.Response.Header.SetCanonical(cc, ccValue)
			}
			if bytes.HasPrefix(ctx.Path(), gzPrefix) {
				ctx.Response.Header.SetCanonical(ce, gz) // bodies[path] holds gzip bytes
			}
			if b, ok := pre[string(ctx.Path())]; ok {
				ctx.SetBody(b)
				return
			}
			ctx.SetBody(def)
		},
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return ln.Addr().String()
}

// newCtx returns a RequestCtx as the fasthttp server would hand it to Serve.
func newCtx(method, uri, body string) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetHost("edge.test")
	if body != "" {
		req.SetBodyString(body)
		req.Header.SetContentType("application/json")
	}
	ctx := new(fasthttp.RequestCtx)
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	return ctx
}

// serveOnce resets the response and serves; it returns the status.
func serveOnce(serve func(*fasthttp.RequestCtx), ctx *fasthttp.RequestCtx) int {
	ctx.Response.Reset()
	serve(ctx)
	return ctx.Response.StatusCode()
}

func bodyOf(ctx *fasthttp.RequestCtx) string { return strings.Clone(string(ctx.Response.Body())) }
