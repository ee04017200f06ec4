package modifier_test

import (
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/modifier"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Example shows where the calls go for one backend: New once per backend
// in plan.Build; per call, ModifyRequest after the backend request is
// built and ModifyResponse right after the round trip, before the status
// check and the decoder.
func Example() {
	// plan.Build, per backend (Backend.martian).
	spec := &gatewayv1.MartianModifier{Kind: &gatewayv1.MartianModifier_FifoGroup{FifoGroup: &gatewayv1.MartianGroup{
		Modifiers: []*gatewayv1.MartianModifier{
			{Scope: []string{"request"}, Kind: &gatewayv1.MartianModifier_HeaderModifier{
				HeaderModifier: &gatewayv1.MartianHeader{Name: "X-Tenant", Value: "acme"}}},
			{Scope: []string{"request"}, Kind: &gatewayv1.MartianModifier_QuerystringModifier{
				QuerystringModifier: &gatewayv1.MartianQueryString{Name: "version", Value: "2"}}},
			{Scope: []string{"response"}, Kind: &gatewayv1.MartianModifier_BodyModifier{
				BodyModifier: &gatewayv1.MartianBody{ContentType: "application/json", Body: []byte(`{"mocked":true}`)}}},
		},
	}}}
	mod, err := modifier.New(spec) // nil when the backend has no modifiers
	if err != nil {
		fmt.Println("violation at endpoints[i].backend[j].extra_config.modifier/martian:", err)
		return
	}

	// Per backend call (the plan's backend stack).
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://10.0.0.1:8080/users/1?version=1") // proxy.Backend.BuildRequest
	if err := mod.ModifyRequest(req); err != nil {
		return // the backend call fails
	}
	fmt.Printf("sent: %s X-Tenant=%s\n", req.URI().RequestURI(), req.Header.Peek("X-Tenant"))

	resp.SetBodyString(`{"id":1}`) // proxy.Host.Do
	if err := mod.ModifyResponse(resp, nil); err != nil {
		return // the backend call fails
	}
	// status check, then decode (or proxy.CopyNoOp on a no-op endpoint)
	fmt.Printf("decoded: %s\n", resp.Body())
	// Output:
	// sent: /users/1?version=2 X-Tenant=acme
	// decoded: {"mocked":true}
}
