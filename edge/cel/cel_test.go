package cel_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/apigw/gateway/edge/cel"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func request(uri string, headers ...string) *fasthttp.Request {
	var r fasthttp.Request
	r.SetRequestURI(uri)
	r.Header.SetMethod("GET")
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return &r
}

func inbound(r *fasthttp.Request) *cel.Inbound {
	return &cel.Inbound{
		Req: r, ParamNames: []string{"Id"}, ParamValues: [][]byte{[]byte("30")},
		HeaderNames: []string{"X-Header"}, QueryNames: []string{"a"},
		ClientIP: []byte("10.0.0.1"), UserAgent: "KrakenD Version t",
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	if c, err := cel.New(nil); c != nil || err != nil {
		t.Fatalf("New(nil) = %v, %v", c, err)
	}
	if c, err := cel.New(&gatewayv1.CelChecks{}); c != nil || err != nil {
		t.Fatalf("New(empty) = %v, %v", c, err)
	}
	var nilChecks *cel.Checks
	if nilChecks.HasRequest() || nilChecks.HasResponse() || nilChecks.HasJWT() {
		t.Fatal("a nil Checks has checks")
	}
	if _, ok := nilChecks.CheckRequest(nil, time.Now()); !ok {
		t.Fatal("a nil Checks rejected")
	}
	_, err := cel.New(&gatewayv1.CelChecks{Request: []string{"req_method == 'GET'"}, Response: []string{"resp_nope"}})
	var ce *cel.CompileError
	if !errors.As(err, &ce) || ce.Stage != "response" || ce.Index != 0 || !strings.Contains(err.Error(), "undeclared reference to 'resp_nope'") {
		t.Fatalf("New(bad) error = %v", err)
	}
}

func TestCheckRequest(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		exprs []string
		req   *fasthttp.Request
		want  int // -1: accepted
	}{
		{"header and param", []string{"'something' in req_headers['X-Header']", "int(req_params.Id) % 2 == 0"},
			request("http://gw/cel/30?a=1&b=2", "X-Header", "something"), -1},
		{"second rejects", []string{"req_method == 'GET'", "req_params.Id == '31'"}, request("http://gw/cel/30"), 1},
		{"missing header key fails evaluation", []string{"req_headers['X-Header'][0] == 'a'"}, request("http://gw/cel/30"), 0},
		{"non-bool result", []string{"req_method"}, request("http://gw/cel/30"), 0},
		{"path", []string{"req_path == '/cel/30'"}, request("http://gw/cel/30"), -1},
		{"only input_query_strings", []string{"req_querystring.a == ['1'] && !('b' in req_querystring)"}, request("http://gw/x?a=1&b=2"), -1},
		{"headers lura adds", []string{"req_headers['X-Forwarded-For'] == ['10.0.0.1'] && req_headers['X-Forwarded-Host'] == ['gw'] && req_headers['User-Agent'] == ['KrakenD Version t']"},
			request("http://gw/x"), -1},
		{"a forwarded User-Agent is X-Forwarded-Via", []string{"req_headers['X-Forwarded-Via'] == ['KrakenD Version t']"},
			func() *fasthttp.Request { r := request("http://gw/x"); return r }(), 0},
		{"now", []string{"now == '2026-12-07T10:00:00Z' && req_method == 'GET'"}, request("http://gw/x"), -1},
		{"response variable missing in the request stage", []string{"req_method == 'GET' && resp_completed"}, request("http://gw/x"), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := cel.New(&gatewayv1.CelChecks{Request: tc.exprs})
			if err != nil {
				t.Fatal(err)
			}
			n, ok := c.CheckRequest(inbound(tc.req), now)
			got := -1
			if !ok {
				got = int(n)
			}
			if got != tc.want {
				t.Fatalf("rejected by %d, want %d", got, tc.want)
			}
		})
	}
}

func TestForwardedUserAgent(t *testing.T) {
	t.Parallel()
	c, err := cel.New(&gatewayv1.CelChecks{Request: []string{"req_headers['X-Forwarded-Via'] == ['KrakenD Version t'] && req_headers['User-Agent'] == ['curl']"}})
	if err != nil {
		t.Fatal(err)
	}
	in := inbound(request("http://gw/x", "User-Agent", "curl"))
	in.HeaderNames = []string{"User-Agent"}
	if _, ok := c.CheckRequest(in, time.Now()); !ok {
		t.Fatal("rejected")
	}
	in = inbound(request("http://gw/x", "User-Agent", "curl", "X-Other", "1"))
	in.HeaderNames, in.AllHeaders = nil, true
	if _, ok := c.CheckRequest(in, time.Now()); !ok {
		t.Fatal("rejected with input_headers *")
	}
}

func TestCheckResponse(t *testing.T) {
	t.Parallel()
	data := fastjson.MustParse(`{"message":"pong","n":42,"f":1.5,"list":[1,"a"],"o":{"t":true,"z":null}}`)
	tests := []struct {
		name string
		expr string
		res  cel.Result
		ok   bool
	}{
		{"string", "resp_data.message == 'pong'", cel.Result{Complete: true, Value: data}, true},
		// lura decodes with UseNumber: a json.Number, which CEL sees as a string.
		{"numbers are strings", "resp_data.n == '42' && resp_data.f == '1.5' && resp_data.list[0] == '1'", cel.Result{Value: data}, true},
		{"number against an int fails", "resp_data.n == 42", cel.Result{Value: data}, false},
		{"nested", "resp_data.o.t && resp_data.o.z == null", cel.Result{Value: data}, true},
		{"raw body", "resp_data.message == 'pong'", cel.Result{Raw: []byte(`{"message":"pong"}`)}, true},
		{"no data", "size(resp_data) == 0", cel.Result{}, true},
		{"metadata is empty", "resp_metadata_status == 0 && size(resp_metadata_headers) == 0", cel.Result{Value: data}, true},
		{"error details status", "resp_metadata_status == 500 && !resp_completed", cel.Result{Code: 500, Value: data}, true},
		{"completed", "resp_completed", cel.Result{Value: data}, false},
		{"request variable missing", "resp_completed || req_method == 'GET'", cel.Result{Value: data}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := cel.New(&gatewayv1.CelChecks{Response: []string{tc.expr}})
			if err != nil {
				t.Fatal(err)
			}
			res := tc.res
			if _, ok := c.CheckResponse(&res, time.Now()); ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
		})
	}
}

func TestCheckJWT(t *testing.T) {
	t.Parallel()
	c, err := cel.New(&gatewayv1.CelChecks{Jwt: []string{"size(JWT.roles) > 1", "JWT.exp > 100.0"}})
	if err != nil {
		t.Fatal(err)
	}
	if !c.CheckJWT(map[string]any{"roles": []any{"a", "b"}, "exp": float64(2e9)}, time.Now()) {
		t.Fatal("two roles rejected")
	}
	if c.CheckJWT(map[string]any{"roles": []any{"a"}, "exp": float64(2e9)}, time.Now()) {
		t.Fatal("one role accepted")
	}
	if c.CheckJWT(map[string]any{"exp": float64(2e9)}, time.Now()) {
		t.Fatal("no roles accepted")
	}
}

func TestOutbound(t *testing.T) {
	t.Parallel()
	c, err := cel.New(&gatewayv1.CelChecks{Request: []string{
		"req_path == '/b/30' && req_querystring.x == ['1'] && req_params.Id == '30' && req_method == 'POST'",
		"req_headers['X-A'] == ['a'] && !('Accept-Encoding' in req_headers) && !('Host' in req_headers)",
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := request("http://backend:8080/b/30?x=1", "X-A", "a", "Accept-Encoding", "gzip")
	r.Header.SetMethod("POST")
	o := &cel.Outbound{Req: r, ParamNames: []string{"Id"}, ParamValues: [][]byte{[]byte("30")}, SkipAcceptEncoding: true}
	if n, ok := c.CheckRequest(o, time.Now()); !ok {
		t.Fatalf("rejected by %d", n)
	}
	// url_pattern "/b/30?z=1": lura keeps its query in req_path.
	c, err = cel.New(&gatewayv1.CelChecks{Request: []string{"req_path == '/b/30?z=1' && req_querystring == {'x': ['1']}"}})
	if err != nil {
		t.Fatal(err)
	}
	o = &cel.Outbound{Req: request("http://backend:8080/b/30?z=1&x=1"), TemplateQuery: []byte("z=1")}
	if _, ok := c.CheckRequest(o, time.Now()); !ok {
		t.Fatal("url_pattern query: rejected")
	}
}

func TestRejectionText(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 12} {
		r := cel.Rejection(n)
		if got := string(r.AppendText(nil)); got != r.Error() || !strings.HasPrefix(got, "request aborted by evaluator #") {
			t.Fatalf("%d: %q vs %q", n, got, r.Error())
		}
	}
	if cel.Rejection(1).Error() != "request aborted by evaluator #1" {
		t.Fatal(cel.Rejection(1).Error())
	}
}
