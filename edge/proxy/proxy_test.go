package proxy

import (
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/apigw/gateway/edge/router"
)

func mustClient(t testing.TB, hosts ...string) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// inbound routes uri through a one-route table to fill the params, the
// way plan.Serve does.
func inbound(t *testing.T, pattern, method, uri string, hdr map[string]string, body string) (*Inbound, []string) {
	t.Helper()
	tbl, err := router.New(router.Config{Routes: []router.Route{{Method: method, Pattern: pattern, AllowMixed: true}}})
	if err != nil {
		t.Fatal(err)
	}
	req := new(fasthttp.Request)
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetHost("edge.example")
	for k, v := range hdr {
		req.Header.Add(k, v)
	}
	req.SetBodyString(body)
	ps := new(router.Params)
	if r := tbl.Lookup(req.Header.Method(), req.URI().Path(), ps); r.Kind != router.Found {
		t.Fatalf("%s does not match %s", uri, pattern)
	}
	in := new(Inbound)
	in.Reset(req, ps)
	in.ClientIP = append(in.ClientIP, "10.1.2.3"...)
	return in, tbl.ParamNames(0)
}

func TestBuildRequest(t *testing.T) {
	type out struct {
		Method  string
		URI     string
		Headers map[string]string
		Body    string
	}
	tests := []struct {
		name    string
		pattern string
		uri     string
		hdr     map[string]string
		cfg     BackendConfig
		prev    string // JSON of response 0 for sequential placeholders
		want    out
	}{
		{
			name:    "params, fixed query, default headers",
			pattern: "/users/{id}", uri: "/users/42?x=1",
			hdr: map[string]string{"Content-Type": "application/json", "X-Other": "o", "User-Agent": "ua"},
			cfg: BackendConfig{Method: "GET", URLPattern: "/v1/u/{id}?full=1"},
			want: out{Method: "GET", URI: "http://b.internal:8080/v1/u/42?full=1", Headers: map[string]string{
				"Content-Type": "application/json", "User-Agent": "KrakenD Version t",
				"X-Forwarded-For": "10.1.2.3", "X-Forwarded-Host": "edge.example",
			}},
		},
		{
			name:    "KrakenD-style first-letter-insensitive placeholder, escaping",
			pattern: "/f/{Name}", uri: "/f/a%20b",
			cfg:  BackendConfig{Method: "POST", URLPattern: "/files/{name}/{unknown}"},
			want: out{Method: "POST", URI: "http://b.internal:8080/files/a%20b/%7Bunknown%7D"},
		},
		{
			name:    "query allow-list and backend subset",
			pattern: "/q", uri: "/q?a=1&b=2&c=3&a=4",
			cfg:  BackendConfig{Method: "GET", URLPattern: "/q", EndpointQuery: []string{"a", "b"}, BackendQuery: []string{"a", "c"}},
			want: out{Method: "GET", URI: "http://b.internal:8080/q?a=1&a=4"},
		},
		{
			name:    "query * keeps the raw query",
			pattern: "/q", uri: "/q?z=%2F&y",
			cfg:  BackendConfig{Method: "GET", URLPattern: "/q?k=v", EndpointQuery: []string{"*"}},
			want: out{Method: "GET", URI: "http://b.internal:8080/q?k=v&z=%2F&y"},
		},
		{
			name:    "catch-all rest appended without a double slash",
			pattern: "/svc/*", uri: "/svc/a/b.txt",
			cfg:  BackendConfig{Method: "GET", URLPattern: "/base/", CatchAll: true},
			want: out{Method: "GET", URI: "http://b.internal:8080/base/a/b.txt"},
		},
		{
			name:    "catch-all with an empty rest",
			pattern: "/svc/*", uri: "/svc",
			cfg:  BackendConfig{Method: "GET", URLPattern: "/", CatchAll: true},
			want: out{Method: "GET", URI: "http://b.internal:8080/"},
		},
		{
			name:    "headers * minus hop-by-hop and Connection-named, client UA with Via",
			pattern: "/h", uri: "/h",
			hdr: map[string]string{"X-A": "a", "X-Drop": "d", "Connection": "X-Drop", "Upgrade": "h2c",
				"Te": "trailers", "User-Agent": "ua", "X-Forwarded-For": "1.1.1.1"},
			cfg: BackendConfig{Method: "GET", URLPattern: "/h", EndpointHeaders: []string{"*"}},
			want: out{Method: "GET", URI: "http://b.internal:8080/h", Headers: map[string]string{
				"X-A": "a", "User-Agent": "ua", "X-Forwarded-Via": "KrakenD Version t",
				"X-Forwarded-For": "10.1.2.3", "X-Forwarded-Host": "edge.example",
			}},
		},
		{
			name:    "backend subset drops even gateway headers",
			pattern: "/h", uri: "/h",
			hdr:  map[string]string{"X-A": "a", "X-B": "b", "User-Agent": "ua"},
			cfg:  BackendConfig{Method: "GET", URLPattern: "/h", EndpointHeaders: []string{"x-a", "X-B", "User-Agent"}, BackendHeaders: []string{"X-B"}},
			want: out{Method: "GET", URI: "http://b.internal:8080/h", Headers: map[string]string{"X-B": "b"}},
		},
		{
			name:    "allow-listed header named in Connection is dropped",
			pattern: "/h", uri: "/h",
			hdr:  map[string]string{"X-A": "a", "Connection": "x-a"},
			cfg:  BackendConfig{Method: "GET", URLPattern: "/h", EndpointHeaders: []string{"X-A"}, BackendHeaders: []string{"X-A"}},
			want: out{Method: "GET", URI: "http://b.internal:8080/h"},
		},
		{
			name:    "sequential placeholders from response 0",
			pattern: "/s/{id}", uri: "/s/9",
			cfg:  BackendConfig{Method: "GET", URLPattern: "/t/{resp0_user.team}/{id}?tags={resp0_tags}&m={resp0_missing}", Sequential: true},
			prev: `{"user":{"team":"core x"},"tags":["a","b&c"]}`,
			want: out{Method: "GET", URI: "http://b.internal:8080/t/core%20x/9?tags=a,b%26c&m=%7Bresp0_missing%7D"},
		},
		{
			name:    "body is copied",
			pattern: "/b", uri: "/b",
			cfg: BackendConfig{Method: "PUT", URLPattern: "/b"},
			want: out{Method: "PUT", URI: "http://b.internal:8080/b", Body: "payload",
				Headers: map[string]string{"Transfer-Encoding": "chunked", "User-Agent": "KrakenD Version t",
					"X-Forwarded-For": "10.1.2.3", "X-Forwarded-Host": "edge.example"}},
		},
		{
			// lura sends the body sized only when it forwards the client's
			// Content-Length, or buffers it for send_body_on_redirect.
			name:    "body sized when Content-Length is forwarded",
			pattern: "/b", uri: "/b",
			cfg:  BackendConfig{Method: "PUT", URLPattern: "/b", EndpointHeaders: []string{"Content-Length"}},
			want: out{Method: "PUT", URI: "http://b.internal:8080/b", Body: "payload"},
		},
		{
			name:    "body sized with every header forwarded",
			pattern: "/b", uri: "/b",
			cfg:  BackendConfig{Method: "PUT", URLPattern: "/b", EndpointHeaders: []string{"*"}},
			want: out{Method: "PUT", URI: "http://b.internal:8080/b", Body: "payload"},
		},
		{
			name:    "body sized with send_body_on_redirect",
			pattern: "/b", uri: "/b",
			cfg:  BackendConfig{Method: "PUT", URLPattern: "/b", SendBodyOnRedirect: true},
			want: out{Method: "PUT", URI: "http://b.internal:8080/b", Body: "payload"},
		},
	}
	client := mustClient(t, "http://b.internal:8080")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.cfg.Method
			in, params := inbound(t, tc.pattern, "GET", tc.uri, tc.hdr, tc.want.Body)
			cfg := tc.cfg
			cfg.Name, cfg.Client, cfg.ParamNames, cfg.UserAgent = "b", client, params, "KrakenD Version t"
			cfg.Method = method
			b, err := NewBackend(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var prev []*fastjson.Value
			if tc.prev != "" {
				prev = []*fastjson.Value{fastjson.MustParse(tc.prev)}
			}
			req := new(fasthttp.Request)
			b.BuildRequest(req, client.Pick(), in, prev)
			got := out{Method: string(req.Header.Method()), URI: string(req.URI().FullURI()), Body: string(req.Body())}
			got.Headers = map[string]string{}
			for k, v := range req.Header.All() {
				if string(k) == "Host" {
					continue
				}
				got.Headers[string(k)] = string(v)
			}
			want := tc.want
			if want.Headers == nil {
				want.Headers = map[string]string{"User-Agent": "KrakenD Version t", "X-Forwarded-For": "10.1.2.3", "X-Forwarded-Host": "edge.example"}
				if len(tc.cfg.BackendHeaders) > 0 {
					want.Headers = map[string]string{}
				}
			}
			// Go's transport (KrakenD's) asks for gzip when the call names
			// no Accept-Encoding.
			if _, ok := want.Headers["Accept-Encoding"]; !ok {
				want.Headers = maps.Clone(want.Headers)
				want.Headers["Accept-Encoding"] = "gzip"
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			if h := string(req.URI().Host()); h != "b.internal:8080" { // the Host header is written from the URI
				t.Errorf("Host = %q", h)
			}
		})
	}
}

// TestJWTPlaceholders: {JWT.claim} fills one path segment ('/' encoded:
// a claim cannot add path levels) or a query value; a missing claim keeps
// the placeholder, as KrakenD does; without a token nothing resolves.
func TestJWTPlaceholders(t *testing.T) {
	client := mustClient(t, "http://b.internal:8080")
	tests := []struct {
		name      string
		claims    Claims
		wantPath  string // as sent on the wire (the client does not normalise)
		wantQuery string
	}{
		{"claims", claimMap{"sub": "a/b c", "tenant": "acme"}, "/t/acme/u/a%2Fb%20c/%7BJWT.missing%7D", "who=a/b%20c"},
		{"no token", nil, "/t/%7BJWT.tenant%7D/u/%7BJWT.sub%7D/%7BJWT.missing%7D", "who=%7BJWT.sub%7D"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, params := inbound(t, "/me", "GET", "/me", nil, "")
			in.Claims = tc.claims
			b, err := NewBackend(BackendConfig{Name: "b", Client: client, Method: "GET", ParamNames: params,
				URLPattern: "/t/{JWT.tenant}/u/{JWT.sub}/{JWT.missing}?who={JWT.sub}"})
			if err != nil {
				t.Fatal(err)
			}
			req := new(fasthttp.Request)
			b.BuildRequest(req, client.Pick(), in, nil)
			if got := string(req.URI().PathOriginal()); got != tc.wantPath {
				t.Errorf("path %q, want %q", got, tc.wantPath)
			}
			if got := string(req.URI().QueryString()); got != tc.wantQuery {
				t.Errorf("query %q, want %q", got, tc.wantQuery)
			}
		})
	}
}

// claimMap is a token's placeholder values (auth.Token in production).
type claimMap map[string]string

func (m claimMap) Value(name string) (string, bool) {
	v, ok := m[name]
	return v, ok
}

func TestNamedInConnection(t *testing.T) {
	tests := []struct {
		conn, name string
		want       bool
	}{
		{"keep-alive, X-Foo", "X-Foo", true},
		{"keep-alive,x-foo ", "X-Foo", true},
		{"X-Foobar", "X-Foo", false},
		{"", "X-Foo", false},
		{"close", "Close", true},
	}
	for _, tc := range tests {
		if got := namedInConnection([]byte(tc.conn), []byte(tc.name)); got != tc.want {
			t.Errorf("namedInConnection(%q, %q) = %v", tc.conn, tc.name, got)
		}
	}
	for _, h := range []string{"connection", "Keep-Alive", "TE", "transfer-encoding", "Proxy-Authorization"} {
		if !isHopByHop([]byte(h)) {
			t.Errorf("%s is hop-by-hop", h)
		}
	}
	if isHopByHop([]byte("X-Te")) {
		t.Error("X-Te is not hop-by-hop")
	}
}

func TestClientIP(t *testing.T) {
	tests := []struct {
		name   string
		cfg    ClientIPConfig
		remote string
		hdr    map[string]string
		want   string
	}{
		{"socket address by default", ClientIPConfig{}, "10.0.0.9", map[string]string{"X-Forwarded-For": "1.1.1.1"}, "10.0.0.9"},
		{"no trusted proxies: headers ignored", ClientIPConfig{ForwardedByClientIP: true}, "10.0.0.9", map[string]string{"X-Forwarded-For": "1.1.1.1"}, "10.0.0.9"},
		{"trusted remote", ClientIPConfig{ForwardedByClientIP: true, TrustedProxies: []string{"10.0.0.0/8"}}, "10.0.0.9", map[string]string{"X-Forwarded-For": "1.1.1.1, 2.2.2.2"}, "2.2.2.2"},
		{"untrusted remote", ClientIPConfig{ForwardedByClientIP: true, TrustedProxies: []string{"10.0.0.0/8"}}, "192.168.1.1", map[string]string{"X-Forwarded-For": "1.1.1.1"}, "192.168.1.1"},
		{"X-Real-IP fallback", ClientIPConfig{ForwardedByClientIP: true, TrustedProxies: []string{"10.0.0.9"}}, "10.0.0.9", map[string]string{"X-Real-Ip": "3.3.3.3"}, "3.3.3.3"},
		{"garbage header", ClientIPConfig{ForwardedByClientIP: true, TrustedProxies: []string{"10.0.0.9"}}, "10.0.0.9", map[string]string{"X-Forwarded-For": "nope"}, "10.0.0.9"},
		{"custom header", ClientIPConfig{ForwardedByClientIP: true, TrustedProxies: []string{"::1"}, RemoteIPHeaders: []string{"cf-connecting-ip"}}, "::1", map[string]string{"Cf-Connecting-Ip": "2001:db8::1"}, "2001:db8::1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClientIP(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var h fasthttp.RequestHeader
			for k, v := range tc.hdr {
				h.Set(k, v)
			}
			if got := string(c.Append(nil, net.ParseIP(tc.remote), &h)); got != tc.want {
				t.Errorf("client IP = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCopyNoOp(t *testing.T) {
	src, dst := new(fasthttp.Response), new(fasthttp.Response)
	src.SetStatusCode(206)
	src.Header.Set("X-Keep", "1")
	src.Header.Set("Keep-Alive", "timeout=5")
	src.Header.Set("Connection", "X-Secret")
	src.Header.Set("X-Secret", "s")
	src.Header.Set("Date", "Mon, 01 Jan 2001 00:00:00 GMT")
	src.SetBodyString("body bytes")
	dst.SetBodyString("old")
	CopyNoOp(dst, src)
	if dst.StatusCode() != 206 || string(dst.Body()) != "body bytes" {
		t.Fatalf("got %d %q", dst.StatusCode(), dst.Body())
	}
	for _, h := range []string{"Keep-Alive", "X-Secret", "Date", "Connection"} {
		if v := dst.Header.Peek(h); v != nil {
			t.Errorf("%s copied: %q", h, v)
		}
	}
	if string(dst.Header.Peek("X-Keep")) != "1" {
		t.Error("X-Keep not copied")
	}
	if len(dst.Header.ContentType()) != 0 {
		t.Errorf("Content-Type invented: %q", dst.Header.ContentType())
	}
}

func TestBalancer(t *testing.T) {
	var hits [2]atomic.Int64
	var urls []string
	for i := range hits {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits[i].Add(1) }))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	for _, rr := range []bool{false, true} {
		c, err := NewClient(ClientConfig{Hosts: urls, RoundRobin: rr})
		if err != nil {
			t.Fatal(err)
		}
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		for i := 0; i < 200; i++ {
			h := c.Pick()
			req.Reset()
			req.URI().SetSchemeBytes(h.scheme)
			req.URI().SetHostBytes(h.host)
			req.URI().SetPath("/")
			if err := h.Do(req, resp, time.Now().Add(2*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
		c.Close()
	}
	for i := range hits {
		if n := hits[i].Load(); n < 120 {
			t.Errorf("host %d got %d of 400 calls", i, n)
		}
	}
}

func TestShadow(t *testing.T) {
	release := make(chan struct{})
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		<-release
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(ClientConfig{Hosts: []string{srv.URL}, MaxShadowCalls: 2})
	if err != nil {
		t.Fatal(err)
	}
	in, params := inbound(t, "/s", "GET", "/s", nil, "")
	b, err := NewBackend(BackendConfig{Name: "s", Client: c, Method: "GET", URLPattern: "/shadow", ParamNames: params})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range 2 {
		if !b.Shadow(in, 5*time.Second) {
			t.Fatalf("shadow copy %d refused below the limit", i+1)
		}
	}
	if b.Shadow(in, 5*time.Second) {
		t.Fatal("a third shadow copy was accepted with MaxShadowCalls 2")
	}
	if time.Since(start) > 100*time.Millisecond {
		t.Fatal("Shadow blocked the caller")
	}
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while shadow calls were in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the shadow calls ended")
	}
	if n := got.Load(); n != 2 {
		t.Errorf("backend saw %d shadow calls, want 2", n)
	}
	if b.Shadow(in, time.Second) {
		t.Error("shadow accepted after Close")
	}
}

func TestNewClientErrors(t *testing.T) {
	for _, hosts := range [][]string{nil, {"ftp://x"}, {"http://x/path"}, {"http://"}} {
		if _, err := NewClient(ClientConfig{Hosts: hosts}); err == nil {
			t.Errorf("NewClient(%q) succeeded", hosts)
		}
	}
	c, err := NewClient(ClientConfig{Hosts: []string{"10.0.0.1:8080", "https://secure.example"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hosts := *c.hosts.Load()
	if got := string(hosts[0].scheme) + "|" + hosts[0].hc.Addr + "|" + hosts[1].hc.Addr; got != "http|10.0.0.1:8080|secure.example:443" {
		t.Errorf("hosts = %s", got)
	}
	if !strings.HasPrefix(string(hosts[1].scheme), "https") || !hosts[1].hc.IsTLS {
		t.Error("https host without TLS")
	}
}

// TestAppendForwarded: the rate-limit key's header is believed only from a
// trusted proxy (forwarded_by_client_ip not needed), right to left.
func TestAppendForwarded(t *testing.T) {
	trusted := ClientIPConfig{TrustedProxies: []string{"10.0.0.0/8"}}
	tests := []struct {
		name   string
		cfg    ClientIPConfig
		remote string
		value  string
		want   string // "" when not believed
	}{
		{"no trusted proxies", ClientIPConfig{}, "10.0.0.9", "1.1.1.1", ""},
		{"untrusted peer", trusted, "192.168.1.1", "1.1.1.1", ""},
		{"trusted peer", trusted, "10.0.0.9", "1.1.1.1", "1.1.1.1"},
		{"spoofed prefix ignored", trusted, "10.0.0.9", "6.6.6.6, 1.1.1.1", "1.1.1.1"},
		{"trusted hops skipped", trusted, "10.0.0.9", "6.6.6.6, 1.1.1.1, 10.1.1.1", "1.1.1.1"},
		{"only trusted: leftmost", trusted, "10.0.0.9", "10.2.2.2, 10.1.1.1", "10.2.2.2"},
		{"garbage", trusted, "10.0.0.9", "nope", ""},
		{"empty", trusted, "10.0.0.9", "", ""},
		{"mapped IPv4 peer", trusted, "::ffff:10.0.0.9", "2001:db8::1", "2001:db8::1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClientIP(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := c.AppendForwarded([]byte("x"), net.ParseIP(tc.remote), []byte(tc.value))
			if tc.want == "" {
				if ok || string(got) != "x" {
					t.Fatalf("believed: %q %v", got, ok)
				}
				return
			}
			if !ok || string(got) != "x"+tc.want {
				t.Fatalf("got %q %v, want x%s", got, ok, tc.want)
			}
		})
	}
}
