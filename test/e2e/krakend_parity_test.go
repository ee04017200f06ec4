package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// TestKrakenDParity runs a real gw-edge on a KrakenD file and checks the
// exact status, headers and body bytes of each answer against what
// KrakenD CE 2.12.1 answered to the same requests over the same backend
// (recorded by running it; the only difference is the version in the
// X-KrakenD and User-Agent values).
func TestKrakenDParity(t *testing.T) {
	bins := testenv.Build(t)
	be := parityBackend(t)
	dir := t.TempDir()
	cfg := testenv.WriteFile(t, dir, "krakend.json", parityConfig(be.URL))
	e := testenv.StartStandalone(t, bins, cfg, "-d")
	base := e.URL()
	backendHost := strings.TrimPrefix(be.URL, "http://")

	const json = "application/json; charset=utf-8"
	echo := func(path, ref, method string) string {
		r := "null"
		if ref != "" {
			r = fmt.Sprintf("%q", ref)
		}
		return `{"a":{"b":[3,{"c":2,"d":1}],"y":2},"ae":"gzip","m":"` + method + `","path":"` + path + `","ref":` + r + `,"z":1}`
	}
	redirected := func(code string) string { return echo("/echo/after", "http://"+backendHost+"/r"+code, "GET") }
	type want struct {
		status  int
		headers map[string]string // "" means absent
		body    string
	}
	ok := func(body string) want {
		return want{200, map[string]string{"Content-Type": json, "X-Krakend-Completed": "true", "X-Krakend": "Version apigw-1"}, body}
	}
	failed := want{500, map[string]string{"Content-Type": "", "X-Krakend-Completed": "false", "X-Krakend": "Version apigw-1"}, ""}
	cases := []struct {
		name, method, path string
		headers            map[string]string
		body               string
		want               want
	}{
		// Item 8: re-encoded JSON, sorted keys, compact, no newline.
		{name: "json re-encoded", path: "/echo", want: ok(echo("/echo", "", "GET"))},
		// Item 1: gzip asked for and decoded, for decoded and no-op endpoints.
		{name: "gzip decoded", path: "/gzip", want: ok(`{"a":"gz","z":1}`)},
		{name: "gzip no-op decoded", path: "/noop", want: want{200, map[string]string{
			"Content-Type": "application/json", "Content-Encoding": "", "X-Krakend-Completed": "false"}, `{"z":1,"a":"gz"}`}},
		// Item 2: backend redirects followed, Referer set, 303 turns POST into GET.
		{name: "301 followed", path: "/r/301", want: ok(redirected("301"))},
		{name: "302 followed", path: "/r/302", want: ok(redirected("302"))},
		{name: "303 followed", path: "/r/303", want: ok(redirected("303"))},
		{name: "307 followed", path: "/r/307", want: ok(redirected("307"))},
		{name: "308 followed", path: "/r/308", want: ok(redirected("308"))},
		{name: "303 after POST is a GET", method: "POST", path: "/post303", body: `{"x":1}`,
			want: ok(echo("/echo/after", "http://"+backendHost+"/r303", "GET"))},
		{name: "307 with a body and send_body_on_redirect keeps POST", method: "POST", path: "/post307", body: `{"x":1}`,
			want: ok(echo("/echo/after", "http://"+backendHost+"/r307", "POST"))},
		{name: "307 with a body, no send_body_on_redirect: the 3xx is the answer", method: "POST", path: "/post307n", body: `{"x":1}`, want: failed},
		// Item 3: KrakenD's error bytes.
		{name: "router 404", path: "/nothere", want: want{404, map[string]string{
			"Content-Type": "text/plain", "X-Krakend-Completed": "false", "X-Krakend": "Version apigw-1"}, "404 page not found"}},
		{name: "router 405", method: "PUT", path: "/echo", want: want{405, map[string]string{
			"Content-Type": "text/plain", "X-Krakend-Completed": "false", "Allow": ""}, "405 method not allowed"}},
		{name: "failed backend", path: "/fail", want: failed},
		{name: "param checker", path: "/r/a%2525b", want: want{400, map[string]string{
			"Content-Type": "text/plain; charset=utf-8", "X-Krakend": "", "X-Krakend-Completed": ""}, "error: encoded url params"}},
		{name: "every backend failed", path: "/agg", want: failed},
		{name: "endpoint timeout", path: "/slow", want: failed},
		// return_error_details: lura renders the error as a Go struct, so
		// its keys keep the struct's order (not sorted), and an empty body
		// or Content-Type is left out.
		{name: "error details in struct order", path: "/details", want: want{200, map[string]string{"Content-Type": json, "X-Krakend-Completed": "false"},
			`{"error_b1":{"http_status_code":500,"http_body":"{\"err\":\"boom\"}","http_body_encoding":"application/json"}}`}},
		{name: "error details without body", path: "/details2", want: want{200, map[string]string{"Content-Type": json, "X-Krakend-Completed": "false"},
			`{"a":"gz","error_b1":{"http_status_code":500},"z":1}`}},
		// A deliberate deviation (README): the request body reaches the
		// backend with its Content-Length, not chunked as KrakenD streams
		// it when Content-Length is not among the forwarded headers.
		// lura hands Go's client the client's body of unknown length:
		// chunked, unless the client's Content-Length is forwarded.
		{name: "request body forwarded chunked", method: "POST", path: "/framing", body: `{"x":1}`,
			want: ok(`{"body":"{\"x\":1}","cl":-1,"te":"chunked"}`)},
		{name: "request body sized when Content-Length is forwarded", method: "POST", path: "/framing-sized", body: `{"x":1}`,
			want: ok(`{"body":"{\"x\":1}","cl":7,"te":""}`)},
		// Item 7: XML and YAML.
		{name: "xml over a json backend", path: "/xml", want: want{200, map[string]string{"Content-Type": "application/xml"},
			`<doc><a><b>3</b><b><c>2</c><d>1</d></b><y>2</y></a><ae>gzip</ae><m>GET</m><path>/echo</path><ref/><z>1</z></doc>`}},
		{name: "negotiated yaml", path: "/neg", headers: map[string]string{"Accept": "application/x-yaml"},
			want: want{200, map[string]string{"Content-Type": "application/x-yaml; charset=utf-8"},
				"a:\n    b:\n        - \"3\"\n        - c: \"2\"\n          d: \"1\"\n    \"y\": \"2\"\nae: gzip\nm: GET\npath: /echo\nref: null\nz: \"1\"\n"}},
		{name: "negotiated xml", path: "/neg", headers: map[string]string{"Accept": "application/xml"},
			want: want{200, map[string]string{"Content-Type": "application/xml"},
				`<doc><a><b>3</b><b><c>2</c><d>1</d></b><y>2</y></a><ae>gzip</ae><m>GET</m><path>/echo</path><ref/><z>1</z></doc>`}},
		// Item 4: the debug (-d) and echo endpoints.
		{name: "debug endpoint", method: "POST", path: "/__debug/a/b?x=1", body: "hello", want: want{200,
			map[string]string{"Content-Type": json, "X-Krakend": ""}, `{"message":"pong"}`}},
		{name: "echo endpoint", method: "POST", path: "/__echo/a/b?x=1&y=2&x=0", body: "hello",
			headers: map[string]string{"X-A": "1", "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "curl/7.88.1", "Accept": "*/*"},
			want: want{200, map[string]string{"Content-Type": json},
				`{"req_uri":"/__echo/a/b?x=1\u0026y=2\u0026x=0","req_uri_details":{"fragment":"","host":"` + strings.TrimPrefix(base, "http://") +
					`","path":"/__echo/a/b","query":"x=1\u0026x=0\u0026y=2","user":""},"req_method":"POST","req_querystring":{"x":["1","0"],"y":["2"]},` +
					`"req_body":"hello","req_headers":{"Accept":["*/*"],"Content-Length":["5"],"Content-Type":["application/x-www-form-urlencoded"],"User-Agent":["curl/7.88.1"],"X-A":["1"]}}`}},
		// Item 6: router redirects.
		{name: "trailing slash redirect", path: "/echo/", want: want{301, map[string]string{
			"Location": "/echo", "Content-Type": "text/html; charset=utf-8"}, "<a href=\"/echo\">Moved Permanently</a>.\n\n"}},
		{name: "fixed path redirect", path: "/StAtic", want: want{301, map[string]string{
			"Location": "/static", "Content-Type": "text/html; charset=utf-8"}, "<a href=\"/static\">Moved Permanently</a>.\n\n"}},
		// gin walks parameter routes too: static segments take the route's
		// spelling, values keep the request's, the trailing slash is fixed,
		// the query is kept (and HTML-escaped in the body).
		{name: "fixed path redirect, param route", path: "/USERS/AbC/Posts", want: want{301, map[string]string{
			"Location": "/users/AbC/posts", "Content-Type": "text/html; charset=utf-8"}, "<a href=\"/users/AbC/posts\">Moved Permanently</a>.\n\n"}},
		{name: "fixed path redirect, param route, slash and query", path: "/Users/AbC/POSTS/?q=1&b=2", want: want{301, map[string]string{
			"Location": "/users/AbC/posts?q=1&b=2", "Content-Type": "text/html; charset=utf-8"}, "<a href=\"/users/AbC/posts?q=1&amp;b=2\">Moved Permanently</a>.\n\n"}},
		{name: "fixed path redirect, param route, POST", method: "POST", path: "/P/x", want: want{307, map[string]string{
			"Location": "/p/x", "Content-Type": "", "Content-Length": "0"}, ""}},
	}
	client := &http.Client{
		Timeout:       5 * time.Second,
		Transport:     &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(method, base+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.want.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.want.status)
			}
			for k, v := range tc.want.headers {
				if vs, present := resp.Header[http.CanonicalHeaderKey(k)]; v == "" && present {
					t.Errorf("header %s = %q, want none", k, vs)
				} else if v != "" && resp.Header.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, resp.Header.Get(k), v)
				}
			}
			if string(got) != tc.want.body {
				t.Errorf("body\n got %q\nwant %q", got, tc.want.body)
			}
		})
	}

	// Item 5: /__health in KrakenD's shape.
	code, h, b := testenv.Get(t, base+"/__health")
	health := regexp.MustCompile(`^\{"agents":\{\},"now":"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \+0000 UTC m=\+\d+\.\d+","status":"ok"\}$`)
	if code != 200 || !health.MatchString(b) || h.Get("Content-Type") != json {
		t.Errorf("health = %d %q %s", code, h.Get("Content-Type"), b)
	}
}

// parityBackend answers like the backend the KrakenD recordings were made
// with: an indented, unsorted JSON document with a trailing newline that
// echoes the Accept-Encoding, Referer and method it got, a gzip body, a
// failure, redirects and a slow answer.
func parityBackend(t *testing.T) *testenv.Backend {
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, status int, body []byte) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}
	echo := func(w http.ResponseWriter, r *http.Request) {
		ref := "null"
		if v := r.Header.Get("Referer"); v != "" {
			ref = fmt.Sprintf("%q", v)
		}
		ae := "null"
		if v := r.Header.Get("Accept-Encoding"); v != "" {
			ae = fmt.Sprintf("%q", v)
		}
		writeJSON(w, 200, []byte(fmt.Sprintf("{\n  \"z\": 1,\n  \"a\": {\n    \"y\": 2,\n    \"b\": [\n      3,\n      {\n        \"d\": 1,\n        \"c\": 2\n      }\n    ]\n  },\n  \"path\": %q,\n  \"ae\": %s,\n  \"ref\": %s,\n  \"m\": %q\n}\n",
			r.URL.Path, ae, ref, r.Method)))
	}
	mux.HandleFunc("/echo", echo)
	mux.HandleFunc("/echo/", echo)
	mux.HandleFunc("/gzip", func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write([]byte(`{"z":1,"a":"gz"}`))
		zw.Close()
		w.Header().Set("Content-Encoding", "gzip")
		writeJSON(w, 200, buf.Bytes())
	})
	mux.HandleFunc("/fail/", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 500, []byte(`{"err":"boom"}`)) })
	mux.HandleFunc("/empty500", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	mux.HandleFunc("/raw/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []byte(fmt.Sprintf(`{"uri":%q}`, r.RequestURI)))
	})
	mux.HandleFunc("/framing", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		writeJSON(w, 200, []byte(fmt.Sprintf(`{"cl":%d,"te":%q,"body":%q}`, r.ContentLength, strings.Join(r.TransferEncoding, ","), b)))
	})
	mux.HandleFunc("/slowfail", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(150 * time.Millisecond):
		case <-r.Context().Done():
		}
		writeJSON(w, 500, []byte(`{"err":"slow"}`))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
		}
		writeJSON(w, 200, []byte(`{}`))
	})
	for _, code := range []int{301, 302, 303, 307, 308} {
		mux.HandleFunc(fmt.Sprintf("/r%d", code), func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Location", "/echo/after")
			w.WriteHeader(code)
		})
	}
	return testenv.StartBackend(t, mux)
}

func parityConfig(backend string) string {
	be := func(pattern string) string {
		return `{"host": ["` + backend + `"], "url_pattern": "` + pattern + `"}`
	}
	return `{
  "version": 3,
  "timeout": "500ms",
  "echo_endpoint": true,
  "endpoints": [
    {"endpoint": "/echo", "backend": [` + be("/echo") + `]},
    {"endpoint": "/static", "backend": [` + be("/echo") + `]},
    {"endpoint": "/users/{id}/posts", "backend": [` + be("/echo") + `]},
    {"endpoint": "/p/{x}", "method": "POST", "backend": [` + be("/echo") + `]},
    {"endpoint": "/gzip", "backend": [` + be("/gzip") + `]},
    {"endpoint": "/noop", "output_encoding": "no-op", "backend": [{"host": ["` + backend + `"], "url_pattern": "/gzip", "encoding": "no-op"}]},
    {"endpoint": "/fail", "backend": [` + be("/fail/1") + `]},
    {"endpoint": "/agg", "backend": [` + be("/fail/1") + `, ` + be("/fail/2") + `]},
    {"endpoint": "/slow", "backend": [` + be("/slow") + `]},
    {"endpoint": "/r/{c}", "backend": [` + be("/r{c}") + `]},
    {"endpoint": "/post303", "method": "POST", "backend": [` + be("/r303") + `]},
    {"endpoint": "/post307", "method": "POST", "backend": [{"host": ["` + backend + `"], "url_pattern": "/r307",
      "extra_config": {"backend/http/client": {"send_body_on_redirect": true}}}]},
    {"endpoint": "/post307n", "method": "POST", "backend": [` + be("/r307") + `]},
    {"endpoint": "/details", "backend": [{"host": ["` + backend + `"], "url_pattern": "/fail/1", "extra_config": {"backend/http": {"return_error_details": "b1"}}}, ` + be("/fail/2") + `]},
    {"endpoint": "/details2", "backend": [{"host": ["` + backend + `"], "url_pattern": "/empty500", "extra_config": {"backend/http": {"return_error_details": "b1"}}}, ` + be("/gzip") + `]},
    {"endpoint": "/framing", "method": "POST", "backend": [` + be("/framing") + `]},
    {"endpoint": "/framing-sized", "method": "POST", "input_headers": ["Content-Length", "Content-Type"], "backend": [` + be("/framing") + `]},
    {"endpoint": "/xml", "output_encoding": "xml", "backend": [` + be("/echo") + `]},
    {"endpoint": "/neg", "output_encoding": "negotiate", "backend": [` + be("/echo") + `]}
  ]
}`
}

// TestKrakenDReturnErrorMsg: with router.return_error_msg a failed request
// carries KrakenD's error text (a backend's own body with
// return_error_code), as KrakenD CE 2.12.1 wrote it over the same backend.
func TestKrakenDReturnErrorMsg(t *testing.T) {
	bins := testenv.Build(t)
	be := parityBackend(t)
	dir := t.TempDir()
	// A loopback port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	cfg := parityConfig(be.URL)
	cfg = strings.Replace(cfg, `"echo_endpoint": true,`, `"echo_endpoint": true, "extra_config": {"router": {"return_error_msg": true}},`, 1)
	cfg = strings.Replace(cfg, `"endpoints": [`, `"endpoints": [
    {"endpoint": "/failrc", "backend": [{"host": ["`+be.URL+`"], "url_pattern": "/fail/rc", "extra_config": {"backend/http": {"return_error_code": true}}}]},
    {"endpoint": "/agg3", "backend": [{"host": ["`+be.URL+`"], "url_pattern": "/slow"}, {"host": ["`+be.URL+`"], "url_pattern": "/slowfail"}, {"host": ["`+be.URL+`"], "url_pattern": "/fail/2"}]},
    {"endpoint": "/form", "method": "POST", "backend": [{"host": ["`+be.URL+`"], "url_pattern": "/echo"}],
     "extra_config": {"validation/json-schema": {"type": "object", "required": ["name", "age"],
       "properties": {"name": {"type": "string", "minLength": 3}, "age": {"type": "integer"}}}}},
    {"endpoint": "/down", "backend": [{"host": ["http://`+down+`"], "url_pattern": "/x"}]},
    {"endpoint": "/noopdown", "output_encoding": "no-op", "backend": [{"host": ["http://`+down+`"], "url_pattern": "/x", "encoding": "no-op"}]},
    {"endpoint": "/noopslow", "output_encoding": "no-op", "backend": [{"host": ["`+be.URL+`"], "url_pattern": "/slow", "encoding": "no-op"}]},
    {"endpoint": "/rl", "backend": [{"host": ["`+be.URL+`"], "url_pattern": "/echo", "extra_config": {"qos/ratelimit/proxy": {"max_rate": 1, "capacity": 1}}}]},
    {"endpoint": "/rlnoop", "output_encoding": "no-op", "backend": [{"host": ["`+be.URL+`"], "url_pattern": "/echo", "encoding": "no-op", "extra_config": {"qos/ratelimit/proxy": {"max_rate": 1, "capacity": 1}}}]},`, 1)
	e := testenv.StartStandalone(t, bins, testenv.WriteFile(t, dir, "krakend.json", cfg))
	const text = "text/plain; charset=utf-8"
	for _, tc := range []struct {
		path, contentType, body string
		status                  int
	}{
		{"/fail", text, "invalid status code 500 [GET /fail/1]: " + be.URL + "/fail/1", 500},
		// One line per backend in order of arrival, the ones the merge
		// deadline cut last.
		{"/agg3", text, "invalid status code 500 [GET /fail/2]: " + be.URL + "/fail/2\ninvalid status code 500 [GET /slowfail]: " + be.URL + "/slowfail\ncontext deadline exceeded", 500},
		{"/slow", text, "context deadline exceeded", 500},
		{"/r/999", text, "invalid status code 404 [GET /r{{.C}}]: " + be.URL + "/r999", 500},
		{"/failrc", "application/json", `{"err":"boom"}`, 500},
		{"/down", text, `Get "http://` + down + `/x": dial tcp ` + down + `: connect: connection refused`, 500},
		{"/noopdown", text, `Get "http://` + down + `/x": dial tcp ` + down + `: connect: connection refused`, 500},
		{"/noopslow", text, "context deadline exceeded", 500},
	} {
		code, h, body := testenv.Get(t, e.URL()+tc.path)
		if code != tc.status || h.Get("Content-Type") != tc.contentType || body != tc.body || h.Get("X-Krakend-Completed") != "false" {
			t.Errorf("GET %s = %d %q %q, want %d %q %q", tc.path, code, h.Get("Content-Type"), body, tc.status, tc.contentType, tc.body)
		}
	}
	// A refused JSON-schema body: 400 with KrakenD's validator's words
	// (gojsonschema's, properties sorted where KrakenD's order varies
	// between processes); the first JSON value is validated, what follows
	// it is not looked at.
	for _, tc := range []struct {
		body, want string
		status     int
	}{
		{"", "could not validate an empty body", 400},
		{"{bad", "invalid character 'b' looking for beginning of object key string", 400},
		{`{"name":`, "unexpected EOF", 400},
		{`{}`, "- (root): name is required\n- (root): age is required", 400},
		{`{"name":"ab","age":"x"}`, "- age: Invalid type. Expected: integer, given: string\n- name: String length must be greater than or equal to 3", 400},
		{`{"name":"abc","age":1} trailing`, "", 200},
	} {
		code, h, body := testenv.Do(t, http.MethodPost, e.URL()+"/form", tc.body)
		if tc.status == 200 {
			if code != 200 {
				t.Errorf("POST /form %q = %d %q, want 200", tc.body, code, body)
			}
			continue
		}
		if code != tc.status || h.Get("Content-Type") != text || body != tc.want || h.Get("X-Krakend-Completed") != "false" || h.Get("X-Krakend") == "" {
			t.Errorf("POST /form %q = %d %q %q Completed=%q, want %d %q %q false", tc.body, code, h.Get("Content-Type"), body, h.Get("X-Krakend-Completed"), tc.status, text, tc.want)
		}
	}
	// A backend rate limit (1/s, capacity 1): within a few back-to-back
	// requests one is refused, and KrakenD answers it "500 rate limit
	// exceded" (sic) as text, for JSON and no-op endpoints alike.
	for _, path := range []string{"/rl", "/rlnoop"} {
		limited := false
		for i := 0; i < 6 && !limited; i++ {
			code, h, body := testenv.Get(t, e.URL()+path)
			if code == 200 {
				continue
			}
			limited = true
			if code != 500 || h.Get("Content-Type") != text || body != "rate limit exceded" || h.Get("X-Krakend-Completed") != "false" {
				t.Errorf("GET %s limited = %d %q %q, want 500 %q %q", path, code, h.Get("Content-Type"), body, text, "rate limit exceded")
			}
		}
		if !limited {
			t.Errorf("GET %s: 6 back-to-back requests, none refused by a 1/s backend limit", path)
		}
	}
}

// TestKrakenDProtectionAnswers: the answers of the request-side guards, as
// KrakenD CE 2.12.1 sent them. JWT 401/403 come from its JWT middleware,
// before the endpoint handler: no body, no X-KrakenD headers, no
// Content-Type (compared with a running KrakenD 2.12.1). A JSON
// schema 400 comes from the proxy stack: X-KrakenD and
// X-KrakenD-Completed: false, no body.
func TestKrakenDProtectionAnswers(t *testing.T) {
	bins := testenv.Build(t)
	be := parityBackend(t)
	is, err := testenv.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	defer is.Close()
	validator := strings.Replace(is.ValidatorConfig(), "{", `{"roles_key": "roles", "roles": ["admin"], `, 1)
	cfg := fmt.Sprintf(`{
  "version": 3,
  "timeout": "500ms",
  "endpoints": [
    {"endpoint": "/private", "backend": [{"host": [%q], "url_pattern": "/echo"}],
     "extra_config": {"auth/validator": %s}},
    {"endpoint": "/form", "method": "POST", "backend": [{"host": [%q], "url_pattern": "/echo"}],
     "extra_config": {"validation/json-schema": {"type": "object", "required": ["name"]}}}
  ]
}`, be.URL, validator, be.URL)
	e := testenv.StartStandalone(t, bins, testenv.WriteFile(t, t.TempDir(), "krakend.json", cfg))

	noRole, err := is.Sign(map[string]any{"iss": testenv.IssuerName, "aud": []string{testenv.IssuerAudience},
		"sub": "u1", "exp": time.Now().Add(time.Hour).Unix(), "roles": []string{"reader"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
		status      int
	}{
		{"no token", "", 401},
		{"missing role", noRole, 403},
	} {
		req, _ := http.NewRequest(http.MethodGet, e.URL()+"/private", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || len(body) != 0 || resp.Header.Get("X-Krakend") != "" || resp.Header.Get("X-Krakend-Completed") != "" || resp.Header.Get("Content-Type") != "" {
			t.Errorf("%s: %d %q X-Krakend=%q Content-Type=%q, want %d, empty, no X-Krakend, no Content-Type",
				tc.name, resp.StatusCode, body, resp.Header.Get("X-Krakend"), resp.Header.Get("Content-Type"), tc.status)
		}
	}
	code, h, body := testenv.Do(t, http.MethodPost, e.URL()+"/form", `{"age": 3}`)
	if code != 400 || body != "" || h.Get("X-Krakend-Completed") != "false" || h.Get("X-Krakend") == "" {
		t.Errorf("schema: %d %q Completed=%q X-Krakend=%q, want 400, empty, false, set", code, body, h.Get("X-Krakend-Completed"), h.Get("X-Krakend"))
	}
}

// TestKrakenDRouterOptions: auto_options, remove_extra_slash and
// disable_path_decoding together, as KrakenD CE 2.12.1 answered the same
// requests over the same backend (recorded on loopback).
func TestKrakenDRouterOptions(t *testing.T) {
	bins := testenv.Build(t)
	be := parityBackend(t)
	cfg := `{"version": 3, "timeout": "500ms",
  "extra_config": {"router": {"auto_options": true, "remove_extra_slash": true, "disable_path_decoding": true}},
  "endpoints": [
    {"endpoint": "/echo", "backend": [{"host": ["` + be.URL + `"], "url_pattern": "/raw/echo"}]},
    {"endpoint": "/echo", "method": "PUT", "backend": [{"host": ["` + be.URL + `"], "url_pattern": "/raw/echo"}]},
    {"endpoint": "/p/{x}", "method": "POST", "backend": [{"host": ["` + be.URL + `"], "url_pattern": "/raw/{x}"}]},
    {"endpoint": "/g/{x}", "backend": [{"host": ["` + be.URL + `"], "url_pattern": "/raw/{x}"}]}
  ]}`
	e := testenv.StartStandalone(t, bins, testenv.WriteFile(t, t.TempDir(), "krakend.json", cfg))
	client := &http.Client{
		Timeout:       5 * time.Second,
		Transport:     &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	const json = "application/json; charset=utf-8"
	for _, tc := range []struct {
		method, path string
		status       int
		headers      map[string]string // "" means absent
		body         string
	}{
		// auto_options: 200, the route's methods, no body, no Content-Type.
		{"OPTIONS", "/echo", 200, map[string]string{"Allow": "GET, PUT", "Content-Type": "", "Content-Length": "0", "X-Krakend-Completed": ""}, ""},
		{"OPTIONS", "/p/1", 200, map[string]string{"Allow": "POST", "Content-Type": ""}, ""},
		{"OPTIONS", "/nothere", 404, map[string]string{"Content-Type": "text/plain", "X-Krakend-Completed": "false"}, "404 page not found"},
		// remove_extra_slash: repeated slashes are served.
		{"GET", "//echo", 200, map[string]string{"Content-Type": json}, `{"uri":"/raw/echo"}`},
		{"GET", "///g//a", 200, map[string]string{"Content-Type": json}, `{"uri":"/raw/a"}`},
		// disable_path_decoding: no param checker; the value reaches the
		// backend encoded as it came.
		{"GET", "/g/a%20b", 200, map[string]string{"Content-Type": json}, `{"uri":"/raw/a%20b"}`},
		// Deliberate deviations (README): KrakenD decodes the value once
		// more, so %253F reaches its backend as %3F, and %3F or %23 cut
		// the backend path into a query or a fragment
		// ("/raw/a?x=1"). Ours stays the path segment it was.
		{"GET", "/g/a%2525b", 200, map[string]string{"Content-Type": json}, `{"uri":"/raw/a%2525b"}`},
		{"GET", "/g/a%3Fx=1", 200, map[string]string{"Content-Type": json}, `{"uri":"/raw/a%3Fx=1"}`},
		// KrakenD redirects /echo// to /echo/ first (one slash a hop) and
		// //echo// to the protocol-relative //echo/ (another host); the
		// server cleans the path before routing here, so both go to /echo.
		// gin strips one trailing slash per hop; the extra slashes stay
		// (KrakenD 2.12.1 re-checked after the routing change).
		{"GET", "/echo//", 301, map[string]string{"Location": "/echo/"}, "<a href=\"/echo/\">Moved Permanently</a>.\n\n"},
		{"GET", "//echo//", 301, map[string]string{"Location": "//echo/"}, "<a href=\"//echo/\">Moved Permanently</a>.\n\n"},
	} {
		req, err := http.NewRequest(tc.method, e.URL()+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || string(got) != tc.body {
			t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.path, resp.StatusCode, got, tc.status, tc.body)
		}
		for k, v := range tc.headers {
			if vs, present := resp.Header[http.CanonicalHeaderKey(k)]; v == "" && present {
				t.Errorf("%s %s: header %s = %q, want none", tc.method, tc.path, k, vs)
			} else if v != "" && resp.Header.Get(k) != v {
				t.Errorf("%s %s: header %s = %q, want %q", tc.method, tc.path, k, resp.Header.Get(k), v)
			}
		}
	}
}
