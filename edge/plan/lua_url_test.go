package plan_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/apigw/gateway/edge/plan"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// TestLuaBackendURLOtherHost: a modifier/lua-backend pre that sets url()
// to another host sends the call there, as lura's HTTP executor does (two
// real backends); what Go's client would refuse to send is KrakenD's error
// text (recorded on KrakenD CE v2.12.1 with return_error_msg).
func TestLuaBackendURLOtherHost(t *testing.T) {
	t.Parallel()
	first, second := whoAmI(t), whoAmI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	pre := func(js string) *gatewayv1.Backend {
		be := backend(first.host, "/echo/orig")
		be.LuaBackend = &gatewayv1.LuaScript{Pre: "local r = request.load(); " + js, AllowOpenLibs: true}
		return be
	}
	agg := endpoint("GET", "/agg", pre("r:url('http://"+second.host+"/echo/g1')"), backend(first.host, "/echo/g2"))
	agg.Backends[0].Group, agg.Backends[1].Group = "a", "b"
	snap := snapshot(
		endpoint("GET", "/other", pre("r:url('http://"+second.host+"/echo/there?x=1')")),
		endpoint("GET", "/keep/{id}", pre("r:url(string.gsub(r:url(), '"+first.host+"', '"+second.host+"'))")),
		endpoint("GET", "/hosthdr", pre("r:headers('Host', 'forced.example'); r:url('http://"+second.host+"/echo/h')")),
		endpoint("GET", "/user", pre("r:url('http://u:pw@"+second.host+"/echo/u')")),
		endpoint("GET", "/same", pre("r:url('http://"+first.host+"/echo/same')")),
		endpoint("GET", "/rel", pre("r:url('/rel?x=1')")),
		endpoint("GET", "/ftp", pre("r:url('ftp://"+second.host+"/f')")),
		endpoint("GET", "/nohost", pre("r:url('http:///x')")),
		endpoint("GET", "/closed", pre("r:url('http://"+closed+"/none')")),
		agg,
	)
	snap.Endpoints[1].Backends[0].UrlPattern = "/echo/{id}"
	snap.Service.Router = &gatewayv1.Router{ReturnErrorMsg: true}
	e := startEdge(t, mustBuild(t, snap, plan.Deps{}))

	type echo struct {
		Server, Host, Path, Query, Authorization string
	}
	decode := func(t *testing.T, s string) echo {
		t.Helper()
		var v echo
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatalf("not an echo: %q", s)
		}
		return v
	}
	for _, tc := range []struct {
		uri, host, path, query string
	}{
		{"/other?q=1", second.host, "/echo/there", "x=1"},
		{"/keep/5", second.host, "/echo/5", ""},
		{"/hosthdr", second.host, "/echo/h", ""}, // the Host header is the URL's
		{"/same", first.host, "/echo/same", ""},
	} {
		g := do(t, e.addr, "GET", tc.uri, nil, "")
		if g.Status != 200 {
			t.Errorf("%s: status %d: %s", tc.uri, g.Status, g.Body)
			continue
		}
		v := decode(t, g.Body)
		if v.Server != tc.host || v.Host != tc.host || v.Path != tc.path || v.Query != tc.query {
			t.Errorf("%s: backend %s saw Host %s, %s?%s; want %s, %s?%s", tc.uri, v.Server, v.Host, v.Path, v.Query, tc.host, tc.path, tc.query)
		}
	}
	g := do(t, e.addr, "GET", "/user", nil, "")
	if v := decode(t, g.Body); v.Server != second.host || v.Authorization != "Basic dTpwdw==" {
		t.Errorf("/user: backend %s, Authorization %q; want %s and basic u:pw", v.Server, v.Authorization, second.host)
	}

	g = do(t, e.addr, "GET", "/agg", nil, "")
	var parts map[string]echo
	if err := json.Unmarshal([]byte(g.Body), &parts); err != nil || g.Status != 200 {
		t.Fatalf("/agg: %d %q", g.Status, g.Body)
	}
	if parts["a"].Server != second.host || parts["a"].Path != "/echo/g1" || parts["b"].Server != first.host || parts["b"].Path != "/echo/g2" {
		t.Errorf("/agg: a went to %s%s, b to %s%s", parts["a"].Server, parts["a"].Path, parts["b"].Server, parts["b"].Path)
	}

	for _, tc := range []struct{ uri, body string }{
		{"/rel", `Get "/rel?x=1": unsupported protocol scheme ""`},
		{"/ftp", `Get "ftp://` + second.host + `/f": unsupported protocol scheme "ftp"`},
		{"/nohost", `Get "http:///x": http: no Host in request URL`},
		{"/closed", `Get "http://` + closed + `/none": dial tcp ` + closed + `: connect: connection refused`},
	} {
		g := do(t, e.addr, "GET", tc.uri, nil, "")
		if g.Status != 500 || g.Body != tc.body || g.Headers["Content-Type"] != "text/plain; charset=utf-8" || g.Headers["X-Krakend-Completed"] != "false" {
			t.Errorf("%s: %d %q (%q); want 500 %q", tc.uri, g.Status, g.Body, g.Headers["Content-Type"], tc.body)
		}
	}
}

// whoAmIServer is a backend that names itself: its own address, then the
// Host header, path, query and Authorization it received.
type whoAmIServer struct{ host string }

func whoAmI(t *testing.T) whoAmIServer {
	t.Helper()
	var self string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"server": self, "host": r.Host, "path": r.URL.EscapedPath(),
			"query": r.URL.RawQuery, "authorization": r.Header.Get("Authorization")})
	}))
	t.Cleanup(srv.Close)
	self = strings.TrimPrefix(srv.URL, "http://")
	return whoAmIServer{host: self}
}
