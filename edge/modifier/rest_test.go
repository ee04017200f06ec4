package modifier_test

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/modifier"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// setHdr is a header.Modifier setting name to value.
func setHdr(scope []string, name, value string) *gatewayv1.MartianModifier {
	return &gatewayv1.MartianModifier{Scope: scope, Kind: &gatewayv1.MartianModifier_HeaderModifier{
		HeaderModifier: &gatewayv1.MartianHeader{Name: name, Value: value}}}
}

func TestCookieModifier(t *testing.T) {
	t.Parallel()
	m := &gatewayv1.MartianModifier{Kind: &gatewayv1.MartianModifier_CookieModifier{CookieModifier: &gatewayv1.MartianCookie{
		Name: "session", Value: "a b", Path: "/api", Domain: "example.com", Expires: "2030-01-02T03:04:05Z",
		Secure: true, HttpOnly: true, MaxAge: 60,
	}}}
	// Request: appended to the cookies already there, as Go's AddCookie
	// (Go quotes a value with a space; fasthttp's cookie list drops the
	// quotes).
	rq := backendReq("http://b:1/x", "Cookie", "a=1")
	rs := &fasthttp.Response{}
	apply(t, m, rq, rs)
	if got := string(rq.Header.Peek("Cookie")); got != `a=1; session=a b` {
		t.Errorf("Cookie = %q", got)
	}
	// Response: a Set-Cookie as Go's Cookie.String writes it.
	want := `session="a b"; Path=/api; Domain=example.com; Expires=Wed, 02 Jan 2030 03:04:05 GMT; Max-Age=60; HttpOnly; Secure`
	if got := values(&rs.Header, "Set-Cookie"); got != want {
		t.Errorf("Set-Cookie = %q\nwant          %q", got, want)
	}
	// No cookie yet: the header holds only the new one.
	rq2 := backendReq("http://b:1/x")
	apply(t, m, rq2, nil)
	if got := string(rq2.Header.Peek("Cookie")); got != `session=a b` {
		t.Errorf("Cookie on a request without cookies = %q", got)
	}
	if _, err := modifier.New(&gatewayv1.MartianModifier{Kind: &gatewayv1.MartianModifier_CookieModifier{
		CookieModifier: &gatewayv1.MartianCookie{Name: "a b"}}}); err == nil {
		t.Error("a cookie name that is not a token compiled")
	}
}

func TestCookieFilter(t *testing.T) {
	t.Parallel()
	filter := func(name, value string) *gatewayv1.MartianModifier {
		return &gatewayv1.MartianModifier{Kind: &gatewayv1.MartianModifier_CookieFilter{CookieFilter: &gatewayv1.MartianFilter{
			Name: name, Value: value, Modifier: setHdr(nil, "X-Match", "yes"), Else: setHdr(nil, "X-Match", "no"),
		}}}
	}
	for _, tc := range []struct {
		name, value, cookie, setCookie string
		reqWant, respWant              string
	}{
		{"user", "", "a=1; user=bob", "", "yes", "no"},
		{"user", "bob", "user=bob", "user=bob; Path=/", "yes", "yes"},
		{"user", "alice", "user=bob", "user=alice; HttpOnly", "no", "yes"},
		{"user", "", "", "other=1", "no", "no"},
	} {
		rq := backendReq("http://b:1/x")
		if tc.cookie != "" {
			rq.Header.Set("Cookie", tc.cookie)
		}
		rs := &fasthttp.Response{}
		if tc.setCookie != "" {
			rs.Header.Set("Set-Cookie", tc.setCookie)
		}
		apply(t, filter(tc.name, tc.value), rq, rs)
		if got := string(rq.Header.Peek("X-Match")); got != tc.reqWant {
			t.Errorf("%s=%q on Cookie %q: request %q, want %q", tc.name, tc.value, tc.cookie, got, tc.reqWant)
		}
		if got := string(rs.Header.Peek("X-Match")); got != tc.respWant {
			t.Errorf("%s=%q on Set-Cookie %q: response %q, want %q", tc.name, tc.value, tc.setCookie, got, tc.respWant)
		}
	}
}

func TestStatusModifier(t *testing.T) {
	t.Parallel()
	m := &gatewayv1.MartianModifier{Kind: &gatewayv1.MartianModifier_StatusModifier{StatusModifier: &gatewayv1.MartianStatus{StatusCode: 418}}}
	rq, rs := backendReq("http://b:1/x"), &fasthttp.Response{}
	apply(t, m, rq, rs)
	if rs.StatusCode() != 418 {
		t.Errorf("status = %d, want 418", rs.StatusCode())
	}
	m.Scope = req
	if _, err := modifier.New(m); err == nil {
		t.Error("status.Modifier with a request scope compiled (martian refuses it)")
	}
}

func TestPortModifier(t *testing.T) {
	t.Parallel()
	port := func(pm *gatewayv1.MartianPort) *gatewayv1.MartianModifier {
		return &gatewayv1.MartianModifier{Kind: &gatewayv1.MartianModifier_PortModifier{PortModifier: pm}}
	}
	for _, tc := range []struct {
		uri  string
		pm   *gatewayv1.MartianPort
		want string
	}{
		{"http://b:1/x", &gatewayv1.MartianPort{Port: 8080}, "http://b:8080/x"},
		{"http://b/x", &gatewayv1.MartianPort{Port: 8080}, "http://b:8080/x"},
		{"http://b:1/x", &gatewayv1.MartianPort{DefaultForScheme: true}, "http://b:80/x"},
		{"https://b:1/x", &gatewayv1.MartianPort{DefaultForScheme: true}, "https://b:443/x"},
		{"http://b:1/x?q=1", &gatewayv1.MartianPort{Remove: true}, "http://b/x?q=1"},
		{"http://[::1]:1/x", &gatewayv1.MartianPort{Port: 9}, "http://[::1]:9/x"},
	} {
		mod, err := modifier.New(port(tc.pm))
		if err != nil {
			t.Fatal(err)
		}
		if !mod.Reroutes() {
			t.Error("port.Modifier does not report a reroute")
		}
		rq := backendReq(tc.uri)
		if err := mod.ModifyRequest(rq); err != nil {
			t.Fatalf("%s %v: %v", tc.uri, tc.pm, err)
		}
		if got := string(rq.URI().FullURI()); got != tc.want {
			t.Errorf("%s with %v = %s, want %s", tc.uri, tc.pm, got, tc.want)
		}
		// The Host header is the original (Go's client sends req.Host).
		if want := string(backendReq(tc.uri).URI().Host()); !rq.UseHostHeader || string(rq.Header.Host()) != want {
			t.Errorf("%s: Host header %q (use %v), want %q", tc.uri, rq.Header.Host(), rq.UseHostHeader, want)
		}
	}
	for _, bad := range []*gatewayv1.MartianPort{{}, {Port: 1, Remove: true}, {DefaultForScheme: true, Remove: true}, {Port: 70000}} {
		if _, err := modifier.New(port(bad)); err == nil {
			t.Errorf("port.Modifier %v compiled: martian wants exactly one of port, defaultForScheme, remove", bad)
		}
	}
}

func TestPortFilter(t *testing.T) {
	t.Parallel()
	filter := func(port int32) *gatewayv1.MartianModifier {
		return &gatewayv1.MartianModifier{Kind: &gatewayv1.MartianModifier_PortFilter{PortFilter: &gatewayv1.MartianPortFilter{
			Port: port, Modifier: setHdr(nil, "X-Match", "yes")}}}
	}
	for _, tc := range []struct {
		uri      string
		port     int32
		match    bool
		respFail bool
	}{
		{"http://b:8080/x", 8080, true, false},
		{"http://b:8081/x", 8080, false, false},
		{"http://b/x", 80, true, false},
		{"https://b/x", 443, true, false},
		{"https://b/x", 80, false, true}, // martian: "missing port in address" on the response
	} {
		mod, err := modifier.New(filter(tc.port))
		if err != nil {
			t.Fatal(err)
		}
		rq, rs := backendReq(tc.uri), &fasthttp.Response{}
		if err := mod.ModifyRequest(rq); err != nil {
			t.Fatalf("%s: %v", tc.uri, err)
		}
		if got := rq.Header.Peek("X-Match") != nil; got != tc.match {
			t.Errorf("port %d on %s: request matched %v, want %v", tc.port, tc.uri, got, tc.match)
		}
		err = mod.ModifyResponse(rs, rq)
		if (err != nil) != tc.respFail {
			t.Errorf("port %d on %s: response error %v, want failure %v", tc.port, tc.uri, err, tc.respFail)
		}
		if got := rs.Header.Peek("X-Match") != nil; got != (tc.match && !tc.respFail) {
			t.Errorf("port %d on %s: response matched %v", tc.port, tc.uri, got)
		}
	}
}

func TestURLFilters(t *testing.T) {
	t.Parallel()
	urlFilter := func(f *gatewayv1.MartianURLFilter) *gatewayv1.MartianModifier {
		f.Modifier, f.Else = setHdr(nil, "X-Match", "yes"), setHdr(nil, "X-Match", "no")
		return &gatewayv1.MartianModifier{Kind: &gatewayv1.MartianModifier_UrlFilter{UrlFilter: f}}
	}
	regexFilter := func(re string) *gatewayv1.MartianModifier {
		return &gatewayv1.MartianModifier{Kind: &gatewayv1.MartianModifier_UrlRegexFilter{UrlRegexFilter: &gatewayv1.MartianURLRegexFilter{
			Regex: re, Modifier: setHdr(nil, "X-Match", "yes"), Else: setHdr(nil, "X-Match", "no")}}}
	}
	const uri = "http://api.example.com:8080/v1/users?id=7&x=y"
	for _, tc := range []struct {
		name string
		m    *gatewayv1.MartianModifier
		want string
	}{
		{"empty matches all", urlFilter(&gatewayv1.MartianURLFilter{}), "yes"},
		{"scheme", urlFilter(&gatewayv1.MartianURLFilter{Scheme: "https"}), "no"},
		{"host with port", urlFilter(&gatewayv1.MartianURLFilter{Host: "api.example.com:8080"}), "yes"},
		{"host without the port", urlFilter(&gatewayv1.MartianURLFilter{Host: "api.example.com"}), "no"},
		{"wildcard label", urlFilter(&gatewayv1.MartianURLFilter{Host: "*.example.com:8080"}), "yes"},
		{"path", urlFilter(&gatewayv1.MartianURLFilter{Path: "/v1/users"}), "yes"},
		{"path prefix only", urlFilter(&gatewayv1.MartianURLFilter{Path: "/v1"}), "no"},
		{"query exact", urlFilter(&gatewayv1.MartianURLFilter{Query: "id=7&x=y"}), "yes"},
		{"query part", urlFilter(&gatewayv1.MartianURLFilter{Query: "id=7"}), "no"},
		{"all parts", urlFilter(&gatewayv1.MartianURLFilter{Scheme: "http", Host: "api.example.com:8080", Path: "/v1/users", Query: "id=7&x=y"}), "yes"},
		{"regex", regexFilter(`^http://api\.example\.com:8080/v1/.*id=7`), "yes"},
		{"regex miss", regexFilter(`/v2/`), "no"},
	} {
		rq, rs := backendReq(uri), &fasthttp.Response{}
		apply(t, tc.m, rq, rs)
		if got := string(rq.Header.Peek("X-Match")); got != tc.want {
			t.Errorf("%s: request %q, want %q", tc.name, got, tc.want)
		}
		// The response phase reads the request's URL.
		if got := string(rs.Header.Peek("X-Match")); got != tc.want {
			t.Errorf("%s: response %q, want %q", tc.name, got, tc.want)
		}
	}
	// The query as modified by an earlier querystring.Modifier is read.
	rq := backendReq("http://b:1/x?a=1")
	apply(t, fifo(false, nil,
		&gatewayv1.MartianModifier{Kind: &gatewayv1.MartianModifier_QuerystringModifier{QuerystringModifier: &gatewayv1.MartianQueryString{Name: "b", Value: "2"}}},
		urlFilter(&gatewayv1.MartianURLFilter{Query: "a=1&b=2"}),
	), rq, nil)
	if got := string(rq.Header.Peek("X-Match")); got != "yes" {
		t.Errorf("url.Filter after querystring.Modifier: %q", got)
	}
}

func TestMatchHostWildcards(t *testing.T) {
	t.Parallel()
	// martian's MatchHost cases.
	m := &gatewayv1.MartianModifier{Kind: &gatewayv1.MartianModifier_UrlFilter{UrlFilter: &gatewayv1.MartianURLFilter{Modifier: setHdr(req, "X-Match", "yes")}}}
	for _, tc := range []struct {
		host, match string
		want        bool
	}{
		{"example.com", "example.com", true},
		{"www.example.com", "*.example.com", true},
		{"example.com", "*.example.com", false},
		{"a.b.example.com", "*.example.com", false},
		{"api.example.com", "api.*.com", true},
		{"example.com", "*", false}, // martian: "*" stands for one label only
		{"example.org", "example.com", false},
	} {
		m.GetUrlFilter().Host = tc.match
		rq := backendReq("http://" + tc.host + "/x")
		apply(t, m, rq, nil)
		if got := rq.Header.Peek("X-Match") != nil; got != tc.want {
			t.Errorf("MatchHost(%q, %q) = %v, want %v", tc.host, tc.match, got, tc.want)
		}
	}
}

func TestVerifierDoesNothing(t *testing.T) {
	t.Parallel()
	m := fifo(false, nil,
		&gatewayv1.MartianModifier{Kind: &gatewayv1.MartianModifier_Verifier{Verifier: &gatewayv1.MartianVerifier{Type: "header.Verifier"}}},
		setHdr(nil, "X-After", "1"))
	rq, rs := backendReq("http://b:1/x"), &fasthttp.Response{}
	before := rq.Header.String()
	apply(t, m, rq, rs)
	if got := strings.Replace(rq.Header.String(), "X-After: 1\r\n", "", 1); got != before {
		t.Errorf("a verifier changed the request:\n%s", got)
	}
	only, err := modifier.New(&gatewayv1.MartianModifier{Kind: &gatewayv1.MartianModifier_Verifier{Verifier: &gatewayv1.MartianVerifier{Type: "status.Verifier"}}})
	if err != nil || only.ModifiesRequest() || only.ModifiesResponse() {
		t.Errorf("a lone verifier: %v, modifies request %v, response %v", err, only.ModifiesRequest(), only.ModifiesResponse())
	}
}
