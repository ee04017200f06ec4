package modifier_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/modifier"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Builders for the modifier DSL.

func header(name, value string, scope ...string) *gatewayv1.MartianModifier {
	return &gatewayv1.MartianModifier{Scope: scope, Kind: &gatewayv1.MartianModifier_HeaderModifier{
		HeaderModifier: &gatewayv1.MartianHeader{Name: name, Value: value}}}
}

func blacklist(names []string, scope ...string) *gatewayv1.MartianModifier {
	return &gatewayv1.MartianModifier{Scope: scope, Kind: &gatewayv1.MartianModifier_HeaderBlacklist{
		HeaderBlacklist: &gatewayv1.MartianHeaderList{Names: names}}}
}

func query(name, value string, scope ...string) *gatewayv1.MartianModifier {
	return &gatewayv1.MartianModifier{Scope: scope, Kind: &gatewayv1.MartianModifier_QuerystringModifier{
		QuerystringModifier: &gatewayv1.MartianQueryString{Name: name, Value: value}}}
}

func body(contentType, b string, scope ...string) *gatewayv1.MartianModifier {
	return &gatewayv1.MartianModifier{Scope: scope, Kind: &gatewayv1.MartianModifier_BodyModifier{
		BodyModifier: &gatewayv1.MartianBody{ContentType: contentType, Body: []byte(b)}}}
}

func fifo(aggregate bool, scope []string, mods ...*gatewayv1.MartianModifier) *gatewayv1.MartianModifier {
	return &gatewayv1.MartianModifier{Scope: scope, Kind: &gatewayv1.MartianModifier_FifoGroup{
		FifoGroup: &gatewayv1.MartianGroup{Modifiers: mods, AggregateErrors: aggregate}}}
}

var (
	req  = []string{modifier.ScopeRequest}
	resp = []string{modifier.ScopeResponse}
)

// echo is what the test backend saw.
type echo struct {
	URI     string
	Host    string              // "" when it is the backend's address
	Headers map[string][]string // X-* and Content-* request headers
	Body    string
}

// backendBody is the body the test backend answers on /gzip.
const backendBody = `{"from":"backend"}`

// startBackend runs a real fasthttp backend on 127.0.0.1:0 that echoes the
// request as JSON (or, on /gzip, answers a gzip-encoded JSON body) and
// sets two response headers.
func startBackend(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("X-Backend", "1")
		ctx.Response.Header.Set("X-Remove-Me", "x")
		ctx.SetContentType("application/json")
		if string(ctx.Path()) == "/gzip" {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write([]byte(backendBody))
			_ = zw.Close()
			ctx.Response.Header.Set("Content-Encoding", "gzip")
			ctx.SetBody(buf.Bytes())
			return
		}
		e := echo{
			URI:     string(ctx.RequestURI()),
			Host:    string(ctx.Request.Header.Host()),
			Headers: map[string][]string{},
			Body:    string(ctx.PostBody()),
		}
		for k, v := range ctx.Request.Header.All() {
			if ks := string(k); strings.HasPrefix(ks, "X-") || strings.HasPrefix(ks, "Content-") {
				e.Headers[ks] = append(e.Headers[ks], string(v))
			}
		}
		b, _ := json.Marshal(e)
		ctx.SetBody(b)
	}}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// result is what a table test compares: what the backend saw and what the
// gateway gets back after ModifyResponse.
type result struct {
	Backend       echo
	RespHeaders   map[string]string // X-* and Content-* response headers but Content-Length
	RespBody      string            // when the body is not the echo
	RespBodyBytes int               // the response's Content-Length, when the body is not the echo
}

// roundTrip does what the edge does for one backend call: build the
// request, ModifyRequest, round trip, ModifyResponse.
func roundTrip(t *testing.T, hc *fasthttp.HostClient, m *modifier.Modifier, path string) result {
	t.Helper()
	rq := fasthttp.AcquireRequest()
	rs := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(rq)
	defer fasthttp.ReleaseResponse(rs)
	rq.SetRequestURI("http://" + hc.Addr + path)
	rq.Header.SetMethod(fasthttp.MethodPost)
	rq.Header.Set("X-Secret", "s")
	rq.Header.Set("X-Keep", "k")
	rq.Header.SetContentType("application/json")
	rq.SetBodyString(`{"orig":true}`)
	if err := m.ModifyRequest(rq); err != nil {
		t.Fatalf("ModifyRequest: %v", err)
	}
	if err := hc.DoTimeout(rq, rs, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := m.ModifyResponse(rs, nil); err != nil {
		t.Fatalf("ModifyResponse: %v", err)
	}
	var r result
	r.RespHeaders = map[string]string{}
	for k, v := range rs.Header.All() {
		if ks := string(k); ks != "Content-Length" && (strings.HasPrefix(ks, "X-") || strings.HasPrefix(ks, "Content-")) {
			r.RespHeaders[ks] = string(v)
		}
	}
	if err := json.Unmarshal(rs.Body(), &r.Backend); err != nil || r.Backend.URI == "" {
		r.RespBody = string(rs.Body())
		r.RespBodyBytes = rs.Header.ContentLength()
		r.Backend = echo{}
	}
	if r.Backend.Host == hc.Addr {
		r.Backend.Host = "" // the default: the backend's address
	}
	return r
}

// sent is the backend's view of the unmodified request.
func sent(f func(*echo)) echo {
	e := echo{
		URI: "/echo?b=old&a=1&b=old2",
		Headers: map[string][]string{
			"X-Secret":       {"s"},
			"X-Keep":         {"k"},
			"Content-Type":   {"application/json"},
			"Content-Length": {"13"},
		},
		Body: `{"orig":true}`,
	}
	if f != nil {
		f(&e)
	}
	return e
}

// received is the gateway's view of the unmodified echo response.
func received(f func(map[string]string)) map[string]string {
	m := map[string]string{"X-Backend": "1", "X-Remove-Me": "x", "Content-Type": "application/json"}
	if f != nil {
		f(m)
	}
	return m
}

func TestModifier(t *testing.T) {
	t.Parallel()
	hc := &fasthttp.HostClient{Addr: startBackend(t)}
	tests := []struct {
		name     string
		mod      *gatewayv1.MartianModifier
		path     string
		want     result
		wantReq  bool
		wantResp bool
	}{
		{
			name:    "header on requests",
			mod:     header("x-added", "v", req...),
			want:    result{Backend: sent(func(e *echo) { e.Headers["X-Added"] = []string{"v"} }), RespHeaders: received(nil)},
			wantReq: true,
		},
		{
			name:     "header on responses",
			mod:      header("X-Added", "v", resp...),
			want:     result{Backend: sent(nil), RespHeaders: received(func(m map[string]string) { m["X-Added"] = "v" })},
			wantResp: true,
		},
		{
			name: "header with an empty scope applies to both",
			mod:  header("X-Added", "v"),
			want: result{
				Backend:     sent(func(e *echo) { e.Headers["X-Added"] = []string{"v"} }),
				RespHeaders: received(func(m map[string]string) { m["X-Added"] = "v" }),
			},
			wantReq: true, wantResp: true,
		},
		{
			name:    "header replaces every value",
			mod:     header("X-Secret", "replaced", req...),
			want:    result{Backend: sent(func(e *echo) { e.Headers["X-Secret"] = []string{"replaced"} }), RespHeaders: received(nil)},
			wantReq: true,
		},
		{
			name:    "Host header is sent to the backend's address",
			mod:     header("Host", "api.internal", req...),
			want:    result{Backend: sent(func(e *echo) { e.Host = "api.internal" }), RespHeaders: received(nil)},
			wantReq: true,
		},
		{
			name: "blacklist on both",
			mod:  blacklist([]string{"x-secret", "X-Remove-Me"}),
			want: result{
				Backend:     sent(func(e *echo) { delete(e.Headers, "X-Secret") }),
				RespHeaders: received(func(m map[string]string) { delete(m, "X-Remove-Me") }),
			},
			wantReq: true, wantResp: true,
		},
		{
			name:    "query string parameter replaces every value",
			mod:     query("b", "new"),
			want:    result{Backend: sent(func(e *echo) { e.URI = "/echo?a=1&b=new" }), RespHeaders: received(nil)},
			wantReq: true,
		},
		{
			name:    "query string parameter is added and encoded",
			mod:     query("c d", "x y&z", req...),
			want:    result{Backend: sent(func(e *echo) { e.URI = "/echo?b=old&a=1&b=old2&c+d=x+y%26z" }), RespHeaders: received(nil)},
			wantReq: true,
		},
		{
			name: "body on requests",
			mod:  body("text/plain", "hello", req...),
			want: result{Backend: sent(func(e *echo) {
				e.Body = "hello"
				e.Headers["Content-Type"] = []string{"text/plain"}
				e.Headers["Content-Length"] = []string{"5"}
			}), RespHeaders: received(nil)},
			wantReq: true,
		},
		{
			name: "body on responses replaces what the gateway decodes",
			mod:  body("application/json", `{"replaced":1}`, resp...),
			path: "/gzip",
			want: result{
				RespBody:      `{"replaced":1}`,
				RespBodyBytes: 14,
				RespHeaders: received(func(m map[string]string) {
					m["Content-Type"] = "application/json"
				}),
			},
			wantResp: true,
		},
		{
			name: "fifo group runs in order",
			mod: fifo(false, nil,
				header("X-A", "1"),
				header("X-A", "2"),
				header("X-B", "1", req...),
				blacklist([]string{"X-B"}, req...),
			),
			want: result{
				Backend:     sent(func(e *echo) { e.Headers["X-A"] = []string{"2"} }),
				RespHeaders: received(func(m map[string]string) { m["X-A"] = "2" }),
			},
			wantReq: true, wantResp: true,
		},
		{
			name:    "a group's scope bounds its children",
			mod:     fifo(true, req, header("X-A", "1"), header("X-B", "1", resp...)),
			want:    result{Backend: sent(func(e *echo) { e.Headers["X-A"] = []string{"1"} }), RespHeaders: received(nil)},
			wantReq: true,
		},
		{
			name: "nested groups",
			mod: fifo(false, nil,
				query("a", "2"),
				fifo(false, resp, header("X-Resp", "1"), blacklist([]string{"X-Backend"})),
				fifo(false, req, body("text/plain", "x")),
			),
			want: result{
				Backend: sent(func(e *echo) {
					e.URI = "/echo?b=old&b=old2&a=2"
					e.Body = "x"
					e.Headers["Content-Type"] = []string{"text/plain"}
					e.Headers["Content-Length"] = []string{"1"}
				}),
				RespHeaders: received(func(m map[string]string) { m["X-Resp"] = "1"; delete(m, "X-Backend") }),
			},
			wantReq: true, wantResp: true,
		},
		{
			name: "a group with nothing left for either phase",
			mod:  fifo(false, req, header("X-A", "1", resp...)),
			want: result{Backend: sent(nil), RespHeaders: received(nil)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := modifier.New(tc.mod)
			if err != nil {
				t.Fatal(err)
			}
			if m.ModifiesRequest() != tc.wantReq || m.ModifiesResponse() != tc.wantResp {
				t.Errorf("ModifiesRequest, ModifiesResponse = %v, %v; want %v, %v",
					m.ModifiesRequest(), m.ModifiesResponse(), tc.wantReq, tc.wantResp)
			}
			path := tc.path
			if path == "" {
				path = "/echo?b=old&a=1&b=old2"
			}
			got := roundTrip(t, hc, m, path)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestModifierNil(t *testing.T) {
	t.Parallel()
	m, err := modifier.New(nil)
	if err != nil || m != nil {
		t.Fatalf("New(nil) = %v, %v; want nil, nil", m, err)
	}
	if m.ModifiesRequest() || m.ModifiesResponse() {
		t.Error("a nil Modifier modifies")
	}
	if err := m.ModifyRequest(&fasthttp.Request{}); err != nil {
		t.Error(err)
	}
	if err := m.ModifyResponse(&fasthttp.Response{}, nil); err != nil {
		t.Error(err)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mod  *gatewayv1.MartianModifier
		want []string // paths named in the error
	}{
		{"no kind", &gatewayv1.MartianModifier{}, []string{"modifier/martian: no modifier set"}},
		{"bad header name", header("Bad Name", "v"), []string{"header_modifier.name"}},
		{"control character in a value", header("X-A", "a\r\nX-Injected: 1"), []string{"header_modifier.value"}},
		{"empty blacklist", blacklist(nil), []string{"header_blacklist.names"}},
		{"bad blacklisted name", blacklist([]string{"ok", "no good"}), []string{"header_blacklist.names[1]"}},
		{"query without name", query("", "v"), []string{"querystring_modifier.name"}},
		{"query on responses", query("a", "v", modifier.ScopeRequest, modifier.ScopeResponse), []string{"martian: scope"}},
		{"unknown scope", header("X-A", "v", "both"), []string{"scope[0]"}},
		{"bad body content type", body("text/plain\n", "x"), []string{"body_modifier.content_type"}},
		{
			"every violation in a tree",
			fifo(true, nil, header("X-A", "v"), fifo(false, nil, query("", "v")), &gatewayv1.MartianModifier{}),
			[]string{
				"fifo_group.modifiers[1].fifo_group.modifiers[0].querystring_modifier.name",
				"fifo_group.modifiers[2]: no modifier set",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := modifier.New(tc.mod)
			if err == nil {
				t.Fatalf("New = %v, nil; want an error", m)
			}
			for _, p := range tc.want {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error %q does not name %s", err, p)
				}
			}
		})
	}
}
