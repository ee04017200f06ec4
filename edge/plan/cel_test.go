package plan_test

import (
	"testing"

	"github.com/apigw/gateway/edge/plan"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// celPlan is KrakenD's harness endpoint /cel/req-resp/{id} (endpoint checks
// on a header and the parameter, one backend check each) plus response
// and backend-response checks, over a backend answering the default body.
func celPlan(t *testing.T, returnErrorMsg bool) *plan.Plan {
	t.Helper()
	addr := fastBackend(t, map[string]string{"/b2/7": `{"fail":true}`})
	withCEL := func(b *gatewayv1.Backend, c *gatewayv1.CelChecks) *gatewayv1.Backend { b.Cel = c; return b }
	rr := endpoint("GET", "/cel/{id}",
		withCEL(backend(addr, "/b1/{id}"), &gatewayv1.CelChecks{Request: []string{"int(req_params.Id) % 3 == 0"}}),
		withCEL(backend(addr, "/b2/{id}"), &gatewayv1.CelChecks{Request: []string{"int(req_params.Id) % 5 == 0"}}))
	rr.Backends[0].Group, rr.Backends[1].Group = "backend1", "backend2"
	rr.InputHeaders = []string{"X-Header"}
	rr.Cel = &gatewayv1.CelChecks{Request: []string{"'something' in req_headers['X-Header']", "int(req_params.Id) % 2 == 0"}}

	resp := endpoint("GET", "/resp/{id}", withCEL(backend(addr, "/b2/{id}"), &gatewayv1.CelChecks{Response: []string{"!has(resp_data.fail)"}}))
	resp.Cel = &gatewayv1.CelChecks{Response: []string{"resp_data.id == '1' && resp_completed && resp_metadata_status == 0"}}
	num := endpoint("GET", "/num", backend(addr, "/x"))
	num.Cel = &gatewayv1.CelChecks{Response: []string{"resp_data.id == 1"}}
	snap := snapshot(rr, resp, num, endpoint("GET", "/plain", backend(addr, "/x")))
	snap.Service.Router = &gatewayv1.Router{ReturnErrorMsg: returnErrorMsg}
	return mustBuild(t, snap, plan.Deps{})
}

func TestCEL(t *testing.T) {
	t.Parallel()
	const text = "text/plain; charset=utf-8"
	tests := []struct {
		name, uri, header string
		errMsg            bool
		status            int
		contentType       string
		completed         string
		body              string
	}{
		// KrakenD's cel-1..cel-4 (tests/fixtures/specs), observed on 2.12.1.
		{"cel-1 second endpoint check", "/cel/1", "something", true, 500, text, "false", "request aborted by evaluator #1"},
		{"cel-2 first endpoint check", "/cel/30", "", true, 500, text, "false", "request aborted by evaluator #0"},
		{"cel-3 first backend rejected", "/cel/10", "something", true, 200, "application/json; charset=utf-8", "false", `{"backend2":{"address":{"city":"Paris","zip":"75001"},"email":"a@example.com","id":1,"name":"alice","tags":["x","y"]}}`},
		{"cel-4 second backend rejected", "/cel/6", "something", true, 200, "application/json; charset=utf-8", "false", `{"backend1":{"address":{"city":"Paris","zip":"75001"},"email":"a@example.com","id":1,"name":"alice","tags":["x","y"]}}`},
		{"both backends rejected", "/cel/2", "something", true, 500, text, "false", "request aborted by evaluator #0\nrequest aborted by evaluator #0"},
		{"every check passes", "/cel/30", "something", true, 200, "application/json; charset=utf-8", "true", ""},
		{"without return_error_msg: empty 500", "/cel/1", "something", false, 500, "", "false", ""},
		{"response checks pass", "/resp/1", "", true, 200, "application/json; charset=utf-8", "true", ""},
		{"backend response check rejects", "/resp/7", "", true, 500, text, "false", "request aborted by evaluator #0"},
		// lura decodes numbers as json.Number: a string for CEL.
		{"a number is not an int", "/num", "", true, 500, text, "false", "request aborted by evaluator #0"},
		{"a route without cel", "/plain", "", true, 200, "application/json; charset=utf-8", "true", ""},
	}
	plans := map[bool]*plan.Plan{true: celPlan(t, true), false: celPlan(t, false)}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := newCtx("GET", tc.uri, "")
			if tc.header != "" {
				ctx.Request.Header.Set("X-Header", tc.header)
			}
			if st := serveOnce(plans[tc.errMsg].Serve, ctx); st != tc.status {
				t.Fatalf("status %d, want %d: %s", st, tc.status, bodyOf(ctx))
			}
			h := &ctx.Response.Header
			if got := string(h.ContentType()); got != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got, tc.contentType)
			}
			if got := string(h.Peek("X-Krakend-Completed")); got != tc.completed {
				t.Errorf("X-Krakend-Completed %q, want %q", got, tc.completed)
			}
			if tc.body != "" || tc.status != 200 {
				if got := bodyOf(ctx); got != tc.body {
					t.Errorf("body %q, want %q", got, tc.body)
				}
			}
		})
	}
}

func TestCELBadSnapshot(t *testing.T) {
	t.Parallel()
	ep := endpoint("GET", "/a", backend("127.0.0.1:1", "/x"))
	ep.Cel = &gatewayv1.CelChecks{Request: []string{"req_nope"}}
	if _, err := plan.Build(snapshot(ep), plan.Deps{}); err == nil {
		t.Fatal("a snapshot with an undeclared CEL variable built")
	}
	noop := endpoint("GET", "/b", backend("127.0.0.1:1", "/x"))
	noop.OutputEncoding = "no-op"
	noop.Cel = &gatewayv1.CelChecks{Response: []string{"resp_completed"}}
	if _, err := plan.Build(snapshot(noop), plan.Deps{}); err == nil {
		t.Fatal("a no-op endpoint with a response check built")
	}
}
