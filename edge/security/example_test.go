package security_test

import (
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/security"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Example shows the wiring: NewCORS and NewSecure once per snapshot (in
// plan.Build, errors become build violations), then CORS.Handle and
// Secure.Handle first thing in the request handler, before routing.
func Example() {
	// plan.Build, per snapshot.
	svc := &gatewayv1.Service{
		Cors: &gatewayv1.CORS{
			AllowOrigins: []string{"https://app.example.com"},
			AllowMethods: []string{"GET", "POST"},
			MaxAgeMs:     3_600_000,
		},
		Security: &gatewayv1.SecurityHTTP{
			AllowedHosts:       []string{"api.example.com"},
			FrameDeny:          true,
			ContentTypeNosniff: true,
		},
	}
	cors, err := security.NewCORS(svc.GetCors()) // nil when not configured
	if err != nil {
		fmt.Println("violation at service.extra_config.security/cors:", err)
		return
	}
	secure, err := security.NewSecure(svc.GetSecurity()) // nil when not configured
	if err != nil {
		fmt.Println("violation at service.extra_config.security/http:", err)
		return
	}

	// Plan.Serve, per request.
	serve := func(ctx *fasthttp.RequestCtx) {
		if cors.Handle(ctx) || secure.Handle(ctx) {
			return // answered: preflight, bad host or HTTPS redirect
		}
		// route, JWT, rate limit, json-schema, endpoint pipe...
		ctx.SetStatusCode(fasthttp.StatusOK)
	}

	for _, r := range []struct{ method, host, origin, acrm string }{
		{"OPTIONS", "anything", "https://app.example.com", "POST"}, // preflight, any path and host
		{"GET", "api.example.com", "https://app.example.com", ""},  // actual request
		{"GET", "evil.test", "", ""},                               // host not allowed
	} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(r.method)
		ctx.Request.SetRequestURI("/users/1")
		ctx.Request.Header.SetHost(r.host)
		if r.origin != "" {
			ctx.Request.Header.Set("Origin", r.origin)
		}
		if r.acrm != "" {
			ctx.Request.Header.Set("Access-Control-Request-Method", r.acrm)
		}
		serve(&ctx)
		fmt.Printf("%s %s: %d allow-origin=%q max-age=%q frame=%q body=%s\n", r.method, r.host,
			ctx.Response.StatusCode(),
			ctx.Response.Header.Peek("Access-Control-Allow-Origin"),
			ctx.Response.Header.Peek("Access-Control-Max-Age"),
			ctx.Response.Header.Peek("X-Frame-Options"),
			ctx.Response.Body())
	}
	// Output:
	// OPTIONS anything: 204 allow-origin="https://app.example.com" max-age="3600" frame="" body=
	// GET api.example.com: 200 allow-origin="https://app.example.com" max-age="" frame="DENY" body=
	// GET evil.test: 400 allow-origin="" max-age="" frame="" body={"error":"bad_request"}
}
