package schema_test

import (
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/schema"
)

// Example shows the wiring: New once per endpoint in plan.Build (an error
// is a build violation), Validate per request before the endpoint's
// backends are called, answering 400 with the fixed body on any error.
func Example() {
	// plan.Build, per endpoint (Endpoint.json_schema).
	v, err := schema.New([]byte(`{"type":"object","required":["name"]}`)) // nil without a schema
	if err != nil {
		fmt.Println("violation at endpoints[i].extra_config.validation/json-schema:", err)
		return
	}

	// The endpoint handler, after routing, JWT and rate limiting.
	serveEndpoint := func(ctx *fasthttp.RequestCtx) {
		if err := v.Validate(ctx.PostBody()); err != nil {
			// err goes to the (debug) log only.
			ctx.SetStatusCode(fasthttp.StatusBadRequest)
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"error":"bad_request"}`)
			return
		}
		ctx.SetStatusCode(fasthttp.StatusOK) // the proxy
	}

	for _, body := range []string{`{"name":"Ada"}`, `{}`, ``} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetBodyString(body)
		serveEndpoint(&ctx)
		fmt.Printf("%q: %d\n", body, ctx.Response.StatusCode())
	}
	// Output:
	// "{\"name\":\"Ada\"}": 200
	// "{}": 400
	// "": 400
}
