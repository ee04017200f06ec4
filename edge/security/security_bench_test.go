package security_test

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/security"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func benchCtx(method, uri, host string, kv ...string) *fasthttp.RequestCtx {
	ctx := new(fasthttp.RequestCtx)
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	ctx.Request.Header.SetHost(host)
	for i := 0; i < len(kv); i += 2 {
		ctx.Request.Header.Set(kv[i], kv[i+1])
	}
	return ctx
}

func BenchmarkCORS(b *testing.B) {
	c, err := security.NewCORS(listed())
	if err != nil {
		b.Fatal(err)
	}
	benches := []struct {
		name string
		kv   []string
		meth string
	}{
		{"actual", []string{"Origin", "https://app.example.com"}, "GET"},
		{"actual_wildcard", []string{"Origin", "https://eu.example.org"}, "GET"},
		{"actual_no_origin", nil, "GET"},
		{"preflight", []string{"Origin", "https://app.example.com",
			"Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "content-type,x-token"}, "OPTIONS"},
	}
	for _, bc := range benches {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx := benchCtx(bc.meth, "/users/1", "api.test", bc.kv...)
				for pb.Next() {
					ctx.Response.Reset()
					c.Handle(ctx)
				}
			})
		})
	}
}

func BenchmarkSecure(b *testing.B) {
	exactCfg := allHeaders()
	exactCfg.AllowedHosts = []string{"a.test", "b.test", "api.test"}
	exact, err := security.NewSecure(exactCfg)
	if err != nil {
		b.Fatal(err)
	}
	reCfg := allHeaders()
	reCfg.AllowedHosts = []string{`(.+\.)?api\.test`}
	reCfg.AllowedHostsAreRegex = true
	re, err := security.NewSecure(reCfg)
	if err != nil {
		b.Fatal(err)
	}
	redirCfg := &gatewayv1.SecurityHTTP{SslRedirect: true}
	redir, err := security.NewSecure(redirCfg)
	if err != nil {
		b.Fatal(err)
	}
	benches := []struct {
		name string
		s    *security.Secure
		host string
	}{
		{"exact_host", exact, "api.test"},
		{"regex_host", re, "eu.api.test"},
		{"redirect", redir, "api.test"},
	}
	for _, bc := range benches {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx := benchCtx("GET", "/users/1?x=1", bc.host)
				for pb.Next() {
					ctx.Response.Reset()
					bc.s.Handle(ctx)
				}
			})
		})
	}
}
