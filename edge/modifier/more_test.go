package modifier_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/modifier"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func mm(scope []string, kind any) *gatewayv1.MartianModifier {
	m := &gatewayv1.MartianModifier{Scope: scope}
	switch k := kind.(type) {
	case *gatewayv1.MartianModifier_HeaderAppend:
		m.Kind = k
	case *gatewayv1.MartianModifier_HeaderCopy:
		m.Kind = k
	case *gatewayv1.MartianModifier_HeaderId:
		m.Kind = k
	case *gatewayv1.MartianModifier_HeaderFilter:
		m.Kind = k
	case *gatewayv1.MartianModifier_HeaderRegexFilter:
		m.Kind = k
	case *gatewayv1.MartianModifier_QuerystringFilter:
		m.Kind = k
	case *gatewayv1.MartianModifier_UrlModifier:
		m.Kind = k
	case *gatewayv1.MartianModifier_StashModifier:
		m.Kind = k
	case *gatewayv1.MartianModifier_PriorityGroup:
		m.Kind = k
	default:
		panic(kind)
	}
	return m
}

// backendReq is a backend request as the edge builds it.
func backendReq(uri string, headers ...string) *fasthttp.Request {
	r := &fasthttp.Request{}
	r.SetRequestURI(uri)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

func apply(t *testing.T, m *gatewayv1.MartianModifier, rq *fasthttp.Request, rs *fasthttp.Response) {
	t.Helper()
	mod, err := modifier.New(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := mod.ModifyRequest(rq); err != nil {
		t.Fatal(err)
	}
	if rs != nil {
		if err := mod.ModifyResponse(rs, rq); err != nil {
			t.Fatal(err)
		}
	}
}

func values(h interface{ PeekAll(string) [][]byte }, name string) string {
	var out []string
	for _, v := range h.PeekAll(name) {
		out = append(out, string(v))
	}
	return strings.Join(out, ",")
}

func TestHeaderAppendAndCopy(t *testing.T) {
	t.Parallel()
	rq := backendReq("http://b:1/x", "X-A", "1")
	rs := &fasthttp.Response{}
	rs.Header.Set("X-Up", "u")
	apply(t, fifo(false, nil,
		mm(nil, &gatewayv1.MartianModifier_HeaderAppend{HeaderAppend: &gatewayv1.MartianHeader{Name: "x-a", Value: "2"}}),
		mm(nil, &gatewayv1.MartianModifier_HeaderCopy{HeaderCopy: &gatewayv1.MartianCopy{From: "X-A", To: "X-Copy"}}),
		mm(req, &gatewayv1.MartianModifier_HeaderCopy{HeaderCopy: &gatewayv1.MartianCopy{From: "X-Absent", To: "X-Empty"}}),
		mm(req, &gatewayv1.MartianModifier_HeaderCopy{HeaderCopy: &gatewayv1.MartianCopy{From: "Host", To: "X-Host"}}),
		mm(resp, &gatewayv1.MartianModifier_HeaderCopy{HeaderCopy: &gatewayv1.MartianCopy{From: "X-Up", To: "X-Up-Copy"}}),
	), rq, rs)
	if got := values(&rq.Header, "X-A"); got != "1,2" {
		t.Errorf("header.Append: X-A = %q, want 1,2", got)
	}
	if got := values(&rq.Header, "X-Copy"); got != "1" {
		t.Errorf("header.Copy takes the first value: %q", got)
	}
	if !strings.Contains(rq.Header.String(), "\r\nX-Empty: \r\n") {
		t.Errorf("header.Copy of an absent header sets it empty (martian's Set(to, \"\")):\n%s", rq.Header.String())
	}
	if got := string(rq.Header.Peek("X-Host")); got != "b:1" {
		t.Errorf("header.Copy from Host: %q", got)
	}
	if got := values(&rs.Header, "X-A"); got != "2" {
		t.Errorf("response header.Append: %q", got)
	}
	if got := string(rs.Header.Peek("X-Up-Copy")); got != "u" {
		t.Errorf("response header.Copy: %q", got)
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestHeaderID(t *testing.T) {
	t.Parallel()
	rq := backendReq("http://b:1/x")
	apply(t, mm(nil, &gatewayv1.MartianModifier_HeaderId{HeaderId: &gatewayv1.MartianID{}}), rq, nil)
	first := string(rq.Header.Peek("X-Krakend-Id"))
	if !uuidV4.MatchString(first) {
		t.Fatalf("X-Krakend-Id = %q, want a version 4 UUID", first)
	}
	rq2 := backendReq("http://b:1/x")
	apply(t, mm(nil, &gatewayv1.MartianModifier_HeaderId{HeaderId: &gatewayv1.MartianID{}}), rq2, nil)
	if string(rq2.Header.Peek("X-Krakend-Id")) == first {
		t.Error("two requests got the same id")
	}
	kept := backendReq("http://b:1/x", "X-Req-Id", "given")
	apply(t, mm(nil, &gatewayv1.MartianModifier_HeaderId{HeaderId: &gatewayv1.MartianID{Header: "x-req-id"}}), kept, nil)
	if got := string(kept.Header.Peek("X-Req-Id")); got != "given" {
		t.Errorf("an id already there is kept: %q", got)
	}
	if _, err := modifier.New(mm(resp, &gatewayv1.MartianModifier_HeaderId{HeaderId: &gatewayv1.MartianID{}})); err == nil {
		t.Error("header.Id with a response scope compiled")
	}
}

func TestFilters(t *testing.T) {
	t.Parallel()
	mark := func(v string) *gatewayv1.MartianModifier { return header("X-Mark", v) }
	hdrFilter := mm(nil, &gatewayv1.MartianModifier_HeaderFilter{HeaderFilter: &gatewayv1.MartianFilter{
		Name: "x-env", Value: "beta", Modifier: mark("then"), Else: mark("else")}})
	qsFilter := mm(nil, &gatewayv1.MartianModifier_QuerystringFilter{QuerystringFilter: &gatewayv1.MartianFilter{
		Name: "debug", Modifier: mark("then"), Else: mark("else")}})
	qsValue := mm(nil, &gatewayv1.MartianModifier_QuerystringFilter{QuerystringFilter: &gatewayv1.MartianFilter{
		Name: "v", Value: "2", Modifier: mark("then")}})
	regex := mm(nil, &gatewayv1.MartianModifier_HeaderRegexFilter{HeaderRegexFilter: &gatewayv1.MartianRegexFilter{
		Header: "user-agent", Regex: "^curl/", Modifier: mark("then")}})
	tests := []struct {
		name             string
		m                *gatewayv1.MartianModifier
		rq               *fasthttp.Request
		respHeader       string // a response header set before the response phase
		wantReq, wantRes string
	}{
		{"header.Filter match", hdrFilter, backendReq("http://b/x", "X-Env", "alpha", "X-Env", "beta"), "", "then", "else"},
		{"header.Filter no match", hdrFilter, backendReq("http://b/x", "X-Env", "betamax"), "", "else", "else"},
		{"header.Filter on the response's headers", hdrFilter, backendReq("http://b/x"), "beta", "else", "then"},
		{"querystring.Filter present", qsFilter, backendReq("http://b/x?debug"), "", "then", "then"},
		{"querystring.Filter absent", qsFilter, backendReq("http://b/x?other=1"), "", "else", "else"},
		{"querystring.Filter value", qsValue, backendReq("http://b/x?v=1&v=2"), "", "then", "then"},
		{"querystring.Filter wrong value, no else", qsValue, backendReq("http://b/x?v=1"), "", "", ""},
		{"header.RegexFilter match (response reads the request)", regex, backendReq("http://b/x", "User-Agent", "curl/8.0"), "", "then", "then"},
		{"header.RegexFilter no match", regex, backendReq("http://b/x", "User-Agent", "Mozilla"), "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := &fasthttp.Response{}
			if tt.respHeader != "" {
				rs.Header.Set("X-Env", tt.respHeader)
			}
			apply(t, tt.m, tt.rq, rs)
			if got := string(tt.rq.Header.Peek("X-Mark")); got != tt.wantReq {
				t.Errorf("request X-Mark = %q, want %q", got, tt.wantReq)
			}
			if got := string(rs.Header.Peek("X-Mark")); got != tt.wantRes {
				t.Errorf("response X-Mark = %q, want %q", got, tt.wantRes)
			}
		})
	}
	// The filter's scope gates its modifiers.
	rs := &fasthttp.Response{}
	rq := backendReq("http://b/x?debug")
	apply(t, mm(req, &gatewayv1.MartianModifier_QuerystringFilter{QuerystringFilter: &gatewayv1.MartianFilter{Name: "debug", Modifier: mark("then")}}), rq, rs)
	if rs.Header.Peek("X-Mark") != nil || string(rq.Header.Peek("X-Mark")) != "then" {
		t.Error("a request-scoped filter touched the response, or missed the request")
	}
	if _, err := modifier.New(mm(nil, &gatewayv1.MartianModifier_HeaderRegexFilter{HeaderRegexFilter: &gatewayv1.MartianRegexFilter{Header: "X", Regex: "(", Modifier: mark("x")}})); err == nil {
		t.Error("a bad regular expression compiled")
	}
	if _, err := modifier.New(mm(nil, &gatewayv1.MartianModifier_HeaderFilter{HeaderFilter: &gatewayv1.MartianFilter{Name: "X", Value: "y"}})); err == nil {
		t.Error("a filter without a modifier compiled")
	}
}

func TestURLAndStash(t *testing.T) {
	t.Parallel()
	rq := backendReq("http://b:1/old?a=1", "X-Keep", "k")
	rs := &fasthttp.Response{}
	apply(t, fifo(false, nil,
		mm(nil, &gatewayv1.MartianModifier_StashModifier{StashModifier: &gatewayv1.MartianStash{HeaderName: "x-before"}}),
		mm(nil, &gatewayv1.MartianModifier_UrlModifier{UrlModifier: &gatewayv1.MartianURL{Path: "/new path", Query: "b=2"}}),
		mm(req, &gatewayv1.MartianModifier_StashModifier{StashModifier: &gatewayv1.MartianStash{HeaderName: "x-after"}}),
	), rq, rs)
	if got := string(rq.URI().FullURI()); got != "http://b:1/new%20path?b=2" {
		t.Errorf("url.Modifier: %s", got)
	}
	if got := string(rq.Header.Peek("X-Before")); got != "http://b:1/old?a=1" {
		t.Errorf("stash.Modifier before: %q", got)
	}
	if got := string(rq.Header.Peek("X-After")); got != "http://b:1/new%20path?b=2" {
		t.Errorf("stash.Modifier after: %q", got)
	}
	if got := string(rs.Header.Peek("X-Before")); got != "http://b:1/old?a=1" {
		t.Errorf("stash.Modifier copies the request's value to the response: %q", got)
	}
	if rs.Header.Peek("X-After") != nil {
		t.Error("a request-scoped stash wrote the response")
	}

	moved := backendReq("http://b:1/x")
	mod, err := modifier.New(mm(nil, &gatewayv1.MartianModifier_UrlModifier{UrlModifier: &gatewayv1.MartianURL{Scheme: "https", Host: "other:2"}}))
	if err != nil {
		t.Fatal(err)
	}
	if !mod.Reroutes() {
		t.Error("a url.Modifier with a host does not report a reroute")
	}
	if err := mod.ModifyRequest(moved); err != nil {
		t.Fatal(err)
	}
	if got := string(moved.URI().FullURI()); got != "https://other:2/x" || !moved.UseHostHeader || string(moved.Header.Host()) != "b:1" {
		t.Errorf("rerouted: %s, Host %q (UseHostHeader %v); want https://other:2/x with Host b:1", got, moved.Header.Host(), moved.UseHostHeader)
	}
	if _, err := modifier.New(mm(resp, &gatewayv1.MartianModifier_UrlModifier{UrlModifier: &gatewayv1.MartianURL{Path: "/x"}})); err == nil {
		t.Error("url.Modifier with a response scope compiled")
	}
	if _, err := modifier.New(mm(resp, &gatewayv1.MartianModifier_StashModifier{StashModifier: &gatewayv1.MartianStash{HeaderName: "X"}})); err == nil {
		t.Error("a response-only stash.Modifier compiled (martian refuses it)")
	}
}

func TestPriorityGroup(t *testing.T) {
	t.Parallel()
	add := func(v string) *gatewayv1.MartianModifier {
		return mm(nil, &gatewayv1.MartianModifier_HeaderAppend{HeaderAppend: &gatewayv1.MartianHeader{Name: "X-Order", Value: v}})
	}
	rq := backendReq("http://b/x")
	apply(t, mm(nil, &gatewayv1.MartianModifier_PriorityGroup{PriorityGroup: &gatewayv1.MartianPriorityGroup{Modifiers: []*gatewayv1.MartianPrioritized{
		{Priority: 1, Modifier: add("low")},
		{Priority: 10, Modifier: add("high-first")},
		{Priority: 10, Modifier: add("high-second")},
		{Priority: 5, Modifier: add("mid")},
	}}}), rq, nil)
	// Equal priorities: the one declared later runs first (martian).
	if got := values(&rq.Header, "X-Order"); got != "high-second,high-first,mid,low" {
		t.Errorf("order = %s", got)
	}
}
