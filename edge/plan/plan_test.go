package plan_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/edge/plan"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// absent marks a header that must not be in the response.
const absent = "\x00absent"

type featureCase struct {
	name string
	// endpoint is added to the shared plan; nil for router-level cases.
	endpoint *gatewayv1.Endpoint
	method   string
	path     string
	headers  map[string]string
	body     string

	wantStatus  int
	wantHeaders map[string]string
	// wantJSON compares the body as JSON; wantBody byte for byte.
	wantJSON string
	wantBody *string
	// check inspects the echo-backend view or anything else.
	check func(t *testing.T, g got)
}

func str(s string) *string { return &s }

// noContentType is what KrakenD's status-only error answers carry.
var noContentType = map[string]string{"Content-Type": absent}

// with applies tweaks to an endpoint or backend (test-local helper).
func with[T any](e T, fns ...func(T)) T {
	for _, f := range fns {
		f(e)
	}
	return e
}

// echoed decodes what the echo backend saw (optionally under a group key).
func echoed(t *testing.T, body, group string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("echo body %q: %v", body, err)
	}
	if group != "" {
		m, _ = m[group].(map[string]any)
	}
	return m
}

func echoHeader(m map[string]any, name string) (string, bool) {
	h, _ := m["headers"].(map[string]any)
	v, ok := h[name].(string)
	return v, ok
}

func featureCases(b *backends) []featureCase {
	h := b.host
	const jsonCT = "application/json; charset=utf-8"
	return []featureCase{
		{
			name:       "single backend json passes the object through",
			endpoint:   endpoint("GET", "/small", backend(h, "/small")),
			wantStatus: 200,
			wantHeaders: map[string]string{
				"X-Krakend": "Version apigw-1", "X-Krakend-Completed": "true", "Content-Type": jsonCT,
				"Cache-Control": absent,
			},
			wantBody: str(`{"a":1,"b":"two"}`),
		},
		{
			name:       "201 is a success",
			endpoint:   endpoint("POST", "/created", backend(h, "/created")),
			method:     "POST",
			wantStatus: 200, wantJSON: `{"created":true}`,
			wantHeaders: map[string]string{"X-Krakend-Completed": "true"},
		},
		{
			name:       "204 is a failure",
			endpoint:   endpoint("GET", "/nocontent", backend(h, "/nocontent")),
			wantStatus: 500, wantBody: str(""),
			wantHeaders: map[string]string{"X-Krakend-Completed": "false", "X-Krakend": "Version apigw-1", "Content-Type": absent},
		},
		{
			name: "allow with dotted paths",
			endpoint: endpoint("GET", "/users/{id}", with(backend(h, "/users/{id}"), func(e *gatewayv1.Backend) {
				e.Allow = []string{"id", "address.city"}
			})),
			path:       "/users/42",
			wantStatus: 200, wantJSON: `{"id":"42","address":{"city":"Paris"}}`,
		},
		{
			name: "deny, mapping and group",
			endpoint: endpoint("GET", "/deny/{id}", with(backend(h, "/users/{id}"), func(e *gatewayv1.Backend) {
				e.Deny = []string{"secret", "address"}
				e.Mapping = map[string]string{"name": "full_name"}
				e.Group = "user"
			})),
			path:       "/deny/7",
			wantStatus: 200, wantJSON: `{"user":{"id":"7","full_name":"alice"}}`,
		},
		{
			name: "target",
			endpoint: endpoint("GET", "/target", with(backend(h, "/users/1"), func(e *gatewayv1.Backend) {
				e.Target = "address"
			})),
			wantStatus: 200, wantJSON: `{"city":"Paris","zip":"75001"}`,
		},
		{
			name: "is_collection",
			endpoint: endpoint("GET", "/coll", with(backend(h, "/collection"), func(e *gatewayv1.Backend) {
				e.IsCollection = true
			})),
			wantStatus: 200, wantJSON: `{"collection":[1,2,3]}`,
		},
		{
			name: "json-collection output",
			endpoint: with(endpoint("GET", "/coll-out", with(backend(h, "/collection"), func(e *gatewayv1.Backend) {
				e.IsCollection = true
			})), func(e *gatewayv1.Endpoint) { e.OutputEncoding = "json-collection" }),
			wantStatus: 200, wantJSON: `[1,2,3]`,
		},
		{
			name: "string backend encoding",
			endpoint: endpoint("GET", "/text", with(backend(h, "/text"), func(e *gatewayv1.Backend) {
				e.Encoding = "string"
			})),
			wantStatus: 200, wantJSON: `{"content":"hello text"}`,
		},
		{
			name: "string output",
			endpoint: with(endpoint("GET", "/text-out", with(backend(h, "/text"), func(e *gatewayv1.Backend) {
				e.Encoding = "string"
			})), func(e *gatewayv1.Endpoint) { e.OutputEncoding = "string" }),
			wantStatus: 200, wantBody: str("hello text"),
			wantHeaders: map[string]string{"Content-Type": "text/plain; charset=utf-8"},
		},
		{
			name: "safejson array",
			endpoint: endpoint("GET", "/safe", with(backend(h, "/collection"), func(e *gatewayv1.Backend) {
				e.Encoding = "safejson"
			})),
			wantStatus: 200, wantJSON: `{"collection":[1,2,3]}`,
		},
		{
			name:       "json body null renders {} and is not complete",
			endpoint:   endpoint("GET", "/null", backend(h, "/null")),
			wantStatus: 200, wantJSON: `{}`,
			wantHeaders: map[string]string{"X-Krakend-Completed": "false"},
		},
		{
			name:       "empty object is not complete (lura checks len(Data) > 0)",
			endpoint:   endpoint("GET", "/empty", backend(h, "/empty")),
			wantStatus: 200, wantJSON: `{}`,
			wantHeaders: map[string]string{"X-Krakend-Completed": "false"},
		},
		{
			name: "aggregate merges in backend order",
			endpoint: endpoint("GET", "/agg",
				with(backend(h, "/users/1"), func(e *gatewayv1.Backend) { e.Group = "user"; e.Allow = []string{"name"} }),
				with(backend(h, "/posts"), func(e *gatewayv1.Backend) { e.Allow = []string{"posts"} })),
			wantStatus:  200,
			wantJSON:    `{"user":{"name":"alice"},"posts":[{"id":1,"title":"a"},{"id":2,"title":"b"}]}`,
			wantHeaders: map[string]string{"X-Krakend-Completed": "true"},
		},
		{
			name: "key collision: the later backend wins",
			endpoint: endpoint("GET", "/collide",
				with(backend(h, "/users/1"), func(e *gatewayv1.Backend) { e.Allow = []string{"name"} }),
				with(backend(h, "/posts"), func(e *gatewayv1.Backend) { e.Allow = []string{"name"} })),
			wantStatus: 200, wantJSON: `{"name":"posts-name"}`,
		},
		{
			name: "partial failure is 200 and incomplete",
			endpoint: with(endpoint("GET", "/partial", backend(h, "/small"), backend(h, "/fail")),
				func(e *gatewayv1.Endpoint) { e.CacheTtlMs = 60_000 }),
			wantStatus: 200, wantJSON: `{"a":1,"b":"two"}`,
			wantHeaders: map[string]string{"X-Krakend-Completed": "false", "Cache-Control": absent},
		},
		{
			name:       "every backend failing is 500",
			endpoint:   endpoint("GET", "/allfail", backend(h, "/fail"), backend(h, "/notfound")),
			wantStatus: 500, wantBody: str(""),
			wantHeaders: map[string]string{"X-Krakend-Completed": "false", "Content-Type": absent},
		},
		{
			name: "slow single backend past the timeout is 500",
			endpoint: with(endpoint("GET", "/slow", backend(h, "/slow")),
				func(e *gatewayv1.Endpoint) { e.TimeoutMs = 100 }),
			wantStatus: 500, wantBody: str(""), wantHeaders: noContentType,
		},
		{
			name: "slow backend in an aggregate: partial within the merge deadline",
			endpoint: with(endpoint("GET", "/slowagg", backend(h, "/small"), backend(h, "/slow")),
				func(e *gatewayv1.Endpoint) { e.TimeoutMs = 200 }),
			wantStatus: 200, wantJSON: `{"a":1,"b":"two"}`,
			wantHeaders: map[string]string{"X-Krakend-Completed": "false"},
		},
		{
			name:       "invalid backend JSON is 500",
			endpoint:   endpoint("GET", "/bad", backend(h, "/bad")),
			wantStatus: 500, wantBody: str(""), wantHeaders: noContentType,
		},
		{
			name:       "non-200 backend is 500",
			endpoint:   endpoint("GET", "/nf", backend(h, "/notfound")),
			wantStatus: 500, wantBody: str(""), wantHeaders: noContentType,
		},
		{
			name: "return_error_code passes the status, empty body without return_error_msg",
			endpoint: endpoint("GET", "/code", with(backend(h, "/notfound"), func(e *gatewayv1.Backend) {
				e.ReturnErrorCode = true
			})),
			wantStatus: 404, wantBody: str(""),
			wantHeaders: map[string]string{"X-Krakend-Completed": "false"},
		},
		{
			name: "return_error_code in an aggregate is 500",
			endpoint: endpoint("GET", "/code-agg",
				with(backend(h, "/notfound"), func(e *gatewayv1.Backend) { e.ReturnErrorCode = true }),
				backend(h, "/fail")),
			wantStatus: 500,
		},
		{
			name: "return_error_details: 200, error object, incomplete",
			endpoint: endpoint("GET", "/details", with(backend(h, "/notfound"), func(e *gatewayv1.Backend) {
				e.ReturnErrorDetails = "backend_a"
			})),
			wantStatus:  200,
			wantJSON:    `{"error_backend_a":{"http_status_code":404,"http_body":"{\"msg\":\"nope\"}","http_body_encoding":"application/json"}}`,
			wantHeaders: map[string]string{"X-Krakend-Completed": "false"},
		},
		{
			name:       "body beyond max_body_bytes is a backend failure (500)",
			endpoint:   endpoint("GET", "/huge", backend(h, "/huge")),
			wantStatus: 500, wantBody: str(""), wantHeaders: noContentType,
		},
		{
			name: "gzip backend body is decoded before manipulation",
			endpoint: endpoint("GET", "/gz", with(backend(h, "/gzip"), func(e *gatewayv1.Backend) {
				e.Allow = []string{"n"}
			})),
			wantStatus: 200, wantJSON: `{"n":42}`,
		},
		{
			name:       "gzip backend body on a pass-through json endpoint",
			endpoint:   endpoint("GET", "/gz-raw", backend(h, "/gzip")),
			wantStatus: 200, wantJSON: `{"zipped":true,"n":42}`,
			wantHeaders: map[string]string{"Content-Encoding": absent},
		},
		{
			name: "cache_ttl on a complete response",
			endpoint: with(endpoint("GET", "/cached", backend(h, "/small")),
				func(e *gatewayv1.Endpoint) { e.CacheTtlMs = 60_000 }),
			wantStatus:  200,
			wantHeaders: map[string]string{"Cache-Control": "public, max-age=60", "X-Krakend-Completed": "true"},
		},
		{
			name: "no-op passes status, headers and body, strips hop-by-hop",
			endpoint: with(endpoint("GET", "/noop", with(backend(h, "/noop"), func(e *gatewayv1.Backend) {
				e.Encoding = "no-op"
			})), func(e *gatewayv1.Endpoint) { e.OutputEncoding = "no-op" }),
			wantStatus: 202, wantBody: str("raw,body\n"),
			wantHeaders: map[string]string{
				"Content-Type": "text/csv", "X-Backend": "yes", "Set-Cookie": "a=1",
				"X-Hop": absent, "Keep-Alive": absent, "X-Krakend-Completed": "false", "X-Krakend": "Version apigw-1",
			},
		},
		{
			name: "no-op backend failure is 500",
			endpoint: with(endpoint("GET", "/noop-slow", with(backend(h, "/slow"), func(e *gatewayv1.Backend) {
				e.Encoding = "no-op"
			})), func(e *gatewayv1.Endpoint) { e.OutputEncoding = "no-op"; e.TimeoutMs = 50 }),
			wantStatus: 500, wantBody: str(""), wantHeaders: noContentType,
		},
		{
			name:       "default header policy: Content-Type only, gateway User-Agent, X-Forwarded-*",
			endpoint:   endpoint("POST", "/hdr-default", backend(h, "/echo/default")),
			method:     "POST",
			headers:    map[string]string{"X-Custom": "c", "User-Agent": "client-ua", "Content-Type": "text/plain", "Host": "api.example"},
			body:       "payload",
			wantStatus: 200,
			check: func(t *testing.T, g got) {
				m := echoed(t, g.Body, "")
				want := map[string]string{
					"Content-Type": "text/plain", "User-Agent": "KrakenD Version apigw-1",
					"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "api.example",
				}
				for k, v := range want {
					if got, _ := echoHeader(m, k); got != v {
						t.Errorf("backend header %s = %q, want %q", k, got, v)
					}
				}
				for _, k := range []string{"X-Custom", "X-Forwarded-Via"} {
					if v, ok := echoHeader(m, k); ok {
						t.Errorf("backend got %s: %q", k, v)
					}
				}
				if m["body"] != "payload" || m["method"] != "POST" {
					t.Errorf("backend saw %v %q", m["method"], m["body"])
				}
			},
		},
		{
			name: "input_headers allow-list with the backend subset and a forwarded User-Agent",
			endpoint: with(endpoint("GET", "/hdr-list",
				with(backend(h, "/echo/list"), func(e *gatewayv1.Backend) {
					e.InputHeaders = []string{"X-Custom", "User-Agent", "X-Forwarded-Via", "X-Forwarded-For"}
				})),
				func(e *gatewayv1.Endpoint) { e.InputHeaders = []string{"X-Custom", "X-Other", "User-Agent"} }),
			headers:    map[string]string{"X-Custom": "c", "X-Other": "o", "User-Agent": "client-ua", "Connection": "keep-alive"},
			wantStatus: 200,
			check: func(t *testing.T, g got) {
				m := echoed(t, g.Body, "")
				want := map[string]string{"X-Custom": "c", "User-Agent": "client-ua", "X-Forwarded-Via": "KrakenD Version apigw-1", "X-Forwarded-For": "127.0.0.1"}
				for k, v := range want {
					if got, _ := echoHeader(m, k); got != v {
						t.Errorf("backend header %s = %q, want %q", k, got, v)
					}
				}
				for _, k := range []string{"X-Other", "X-Forwarded-Host"} {
					if v, ok := echoHeader(m, k); ok {
						t.Errorf("backend got %s: %q (filtered by the backend subset)", k, v)
					}
				}
			},
		},
		{
			// lura's backend filter drops the User-Agent the router set, and
			// Go's net/http client then sends its own default: KrakenD's
			// backend sees Go-http-client/1.1, never the backend's name.
			name: "backend input_headers without User-Agent: Go's client default",
			endpoint: with(endpoint("GET", "/hdr-no-ua",
				with(backend(h, "/echo/no-ua"), func(e *gatewayv1.Backend) { e.InputHeaders = []string{"X-Custom"} })),
				func(e *gatewayv1.Endpoint) { e.InputHeaders = []string{"X-Custom", "User-Agent"} }),
			headers:    map[string]string{"X-Custom": "c", "User-Agent": "client-ua"},
			wantStatus: 200,
			check: func(t *testing.T, g got) {
				m := echoed(t, g.Body, "")
				for k, v := range map[string]string{"X-Custom": "c", "User-Agent": "Go-http-client/1.1"} {
					if got, _ := echoHeader(m, k); got != v {
						t.Errorf("backend header %s = %q, want %q", k, got, v)
					}
				}
			},
		},
		{
			name: "input_headers * forwards all but hop-by-hop and Connection-named ones",
			endpoint: with(endpoint("GET", "/hdr-all", backend(h, "/echo/all")),
				func(e *gatewayv1.Endpoint) { e.InputHeaders = []string{"*"} }),
			headers:    map[string]string{"X-Custom": "c", "X-Hop": "h", "Connection": "X-Hop", "Authorization": "Bearer t", "X-Forwarded-For": "6.6.6.6"},
			wantStatus: 200,
			check: func(t *testing.T, g got) {
				m := echoed(t, g.Body, "")
				for k, v := range map[string]string{"X-Custom": "c", "Authorization": "Bearer t", "X-Forwarded-For": "127.0.0.1"} {
					if got, _ := echoHeader(m, k); got != v {
						t.Errorf("backend header %s = %q, want %q", k, got, v)
					}
				}
				if v, ok := echoHeader(m, "X-Hop"); ok {
					t.Errorf("Connection-named header forwarded: %q", v)
				}
			},
		},
		{
			name: "input_query_strings allow-list; url_pattern params and fixed query",
			endpoint: with(endpoint("GET", "/q/{id}", backend(h, "/echo/u/{id}?fixed=1")),
				func(e *gatewayv1.Endpoint) { e.InputQueryStrings = []string{"a", "c"} }),
			path:       "/q/42?a=1&b=2&c=x%20y",
			wantStatus: 200,
			check: func(t *testing.T, g got) {
				m := echoed(t, g.Body, "")
				if m["path"] != "/echo/u/42" || m["query"] != "fixed=1&a=1&c=x+y" {
					t.Errorf("backend saw path %v query %v", m["path"], m["query"])
				}
			},
		},
		{
			name:       "no query string forwarded by default",
			endpoint:   endpoint("GET", "/q-none", backend(h, "/echo/none")),
			path:       "/q-none?a=1",
			wantStatus: 200,
			check: func(t *testing.T, g got) {
				if m := echoed(t, g.Body, ""); m["query"] != "" {
					t.Errorf("backend saw query %v", m["query"])
				}
			},
		},
		{
			name: "catch-all appends the rest of the path",
			endpoint: with(endpoint("GET", "/proxy/*", backend(h, "/echo/base/")),
				func(e *gatewayv1.Endpoint) { e.InputQueryStrings = []string{"*"} }),
			path:       "/proxy/a/b%20c?x=1&y",
			wantStatus: 200,
			check: func(t *testing.T, g got) {
				m := echoed(t, g.Body, "")
				if m["path"] != "/echo/base/a/b%20c" || m["query"] != "x=1&y" {
					t.Errorf("backend saw path %v query %v", m["path"], m["query"])
				}
			},
		},
		{
			name: "request body reaches every backend of an aggregate",
			endpoint: endpoint("POST", "/fanout-body",
				with(backend(h, "/echo/one"), func(e *gatewayv1.Backend) { e.Group = "one" }),
				with(backend(h, "/echo/two"), func(e *gatewayv1.Backend) { e.Group = "two"; e.Method = "PUT" })),
			method: "POST", body: `{"k":"v"}`, headers: map[string]string{"Content-Type": "application/json"},
			wantStatus: 200,
			check: func(t *testing.T, g got) {
				for _, grp := range []string{"one", "two"} {
					m := echoed(t, g.Body, grp)
					if m["body"] != `{"k":"v"}` {
						t.Errorf("backend %s saw body %v", grp, m["body"])
					}
				}
				if m := echoed(t, g.Body, "two"); m["method"] != "PUT" {
					t.Errorf("backend method %v, want PUT", m["method"])
				}
			},
		},
		{
			name: "sequential: later url_pattern uses earlier response fields",
			endpoint: with(endpoint("GET", "/seq/{id}",
				backend(h, "/seq/user"),
				backend(h, "/seq/team/{resp0_user.team}/{id}?tags={resp0_tags}")),
				func(e *gatewayv1.Endpoint) { e.Sequential = true }),
			path:        "/seq/99",
			wantStatus:  200,
			wantJSON:    `{"user":{"id":7,"team":"core"},"tags":["x","y"],"team_name":"core","member":"99","q":"tags=x,y"}`,
			wantHeaders: map[string]string{"X-Krakend-Completed": "true"},
		},
		{
			name: "sequential: the first failure fails the request",
			endpoint: with(endpoint("GET", "/seq-fail", backend(h, "/fail"), backend(h, "/small")),
				func(e *gatewayv1.Endpoint) { e.Sequential = true }),
			wantStatus: 500,
		},
		{
			name: "sequential: a later failure stops the chain with a partial answer",
			endpoint: with(endpoint("GET", "/seq-partial", backend(h, "/small"), backend(h, "/fail"), backend(h, "/posts")),
				func(e *gatewayv1.Endpoint) { e.Sequential = true }),
			wantStatus: 200, wantJSON: `{"a":1,"b":"two"}`,
			wantHeaders: map[string]string{"X-Krakend-Completed": "false"},
		},
		{
			name: "static errored masks a failed backend",
			endpoint: with(endpoint("GET", "/static-errored", backend(h, "/fail")),
				func(e *gatewayv1.Endpoint) {
					e.Static = &gatewayv1.Static{Strategy: "errored", Data: []byte(`{"fallback":true}`)}
				}),
			wantStatus: 200, wantJSON: `{"fallback":true}`,
			wantHeaders: map[string]string{"X-Krakend-Completed": "false"},
		},
		{
			name: "static always overwrites backend keys",
			endpoint: with(endpoint("GET", "/static-always", backend(h, "/small")),
				func(e *gatewayv1.Endpoint) {
					e.Static = &gatewayv1.Static{Strategy: "always", Data: []byte(`{"b":"static","c":3}`)}
				}),
			wantStatus: 200, wantJSON: `{"a":1,"b":"static","c":3}`,
		},
		{
			name: "static success does not apply on errors",
			endpoint: with(endpoint("GET", "/static-success", backend(h, "/small"), backend(h, "/fail")),
				func(e *gatewayv1.Endpoint) {
					e.Static = &gatewayv1.Static{Strategy: "success", Data: []byte(`{"c":3}`)}
				}),
			wantStatus: 200, wantJSON: `{"a":1,"b":"two"}`,
		},
		{
			name: "concurrent_calls: first good answer wins",
			endpoint: with(endpoint("GET", "/concurrent", with(backend(h, "/small"), func(e *gatewayv1.Backend) {
				e.Allow = []string{"a"}
			})), func(e *gatewayv1.Endpoint) { e.ConcurrentCalls = 3 }),
			wantStatus: 200, wantJSON: `{"a":1}`,
			wantHeaders: map[string]string{"X-Krakend-Completed": "true"},
		},
		{
			name: "endpoint flatmap after the merge",
			endpoint: with(endpoint("GET", "/flat",
				with(backend(h, "/small"), func(e *gatewayv1.Backend) { e.Group = "s" }),
				with(backend(h, "/posts"), func(e *gatewayv1.Backend) { e.Allow = []string{"posts"} })),
				func(e *gatewayv1.Endpoint) {
					e.Flatmap = []*gatewayv1.FlatmapOp{
						{Type: "move", Args: []string{"s.a", "first"}},
						{Type: "del", Args: []string{"posts.*.title"}},
					}
				}),
			wantStatus: 200, wantJSON: `{"s":{"b":"two"},"first":1,"posts":[{"id":1},{"id":2}]}`,
		},
		{
			name: "shadow backend: its answer is discarded",
			endpoint: endpoint("GET", "/shadowed", backend(h, "/small"), with(backend(h, "/shadow/one"),
				func(e *gatewayv1.Backend) { e.Shadow = true; e.ShadowTimeoutMs = 500 })),
			wantStatus: 200, wantBody: str(`{"a":1,"b":"two"}`),
			check: func(t *testing.T, g got) {
				select {
				case p := <-b.shadow:
					if p != "/shadow/one" {
						t.Errorf("shadow path %q", p)
					}
				case <-time.After(2 * time.Second):
					t.Error("shadow backend never called")
				}
			},
		},
		{
			name: "negotiate: JSON by default",
			endpoint: with(endpoint("GET", "/nego", backend(h, "/small")),
				func(e *gatewayv1.Endpoint) { e.OutputEncoding = "negotiate" }),
			wantStatus: 200, wantJSON: `{"a":1,"b":"two"}`,
			wantHeaders: map[string]string{"Content-Type": jsonCT},
		},
		{
			name:        "negotiate: XML on Accept application/xml",
			path:        "/nego",
			headers:     map[string]string{"Accept": "application/xml"},
			wantStatus:  200,
			wantHeaders: map[string]string{"Content-Type": "application/xml"},
			check: func(t *testing.T, g got) {
				if !strings.Contains(g.Body, "<a>1</a>") {
					t.Errorf("XML body %q", g.Body)
				}
			},
		},
		{
			name:        "negotiate: YAML on Accept text/plain",
			path:        "/nego",
			headers:     map[string]string{"Accept": "text/plain"},
			wantStatus:  200,
			wantHeaders: map[string]string{"Content-Type": "application/x-yaml; charset=utf-8"},
			check: func(t *testing.T, g got) {
				if !strings.Contains(g.Body, "b: two") {
					t.Errorf("YAML body %q", g.Body)
				}
			},
		},
		{
			name:       "percent-encoded parameter is rejected (KrakenD's param checker)",
			path:       "/users/a%2525b",
			wantStatus: 400, wantBody: str("error: encoded url params"),
			wantHeaders: map[string]string{"Content-Type": "text/plain; charset=utf-8", "X-Krakend": absent},
		},
		{
			name:       "404",
			path:       "/nowhere",
			wantStatus: 404, wantBody: str("404 page not found"),
			wantHeaders: map[string]string{"X-Krakend-Completed": "false", "X-Krakend": "Version apigw-1", "Content-Type": "text/plain"},
		},
		{
			name:       "405 is gin's text, without Allow (as KrakenD)",
			method:     "DELETE",
			path:       "/small",
			wantStatus: 405, wantBody: str("405 method not allowed"),
			wantHeaders: map[string]string{"Allow": absent, "Content-Type": "text/plain", "X-Krakend-Completed": "false"},
		},
		{
			name:        "HEAD is not answered by a GET endpoint (gin has no automatic HEAD)",
			method:      "HEAD",
			path:        "/small",
			wantStatus:  405,
			wantHeaders: map[string]string{"Allow": absent},
		},
		{
			name:        "OPTIONS without auto_options is 405",
			method:      "OPTIONS",
			path:        "/created",
			wantStatus:  405,
			wantHeaders: map[string]string{"Allow": absent},
		},
		{
			name:        "trailing slash redirect for GET is 301 and keeps the query",
			path:        "/small/?x=1",
			wantStatus:  301,
			wantHeaders: map[string]string{"Location": "/small?x=1"},
		},
		{
			name:        "trailing slash redirect for POST is 307",
			method:      "POST",
			path:        "/created/",
			wantStatus:  307,
			wantHeaders: map[string]string{"Location": "/created"},
		},
	}
}

func TestFeatures(t *testing.T) {
	t.Parallel()
	b := startBackends(t)
	cases := featureCases(b)
	var eps []*gatewayv1.Endpoint
	for _, tc := range cases {
		if tc.endpoint != nil {
			eps = append(eps, tc.endpoint)
		}
	}
	p := mustBuild(t, snapshot(eps...), plan.Deps{})
	e := startEdge(t, p)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method, path := tc.method, tc.path
			if method == "" {
				method = "GET"
			}
			if path == "" {
				path = tc.endpoint.GetPath()
			}
			g := do(t, e.addr, method, path, tc.headers, tc.body)
			if g.Status != tc.wantStatus {
				t.Errorf("status = %d, want %d (body %q)", g.Status, tc.wantStatus, g.Body)
			}
			for k, want := range tc.wantHeaders {
				v, ok := g.Headers[k]
				switch {
				case want == absent && ok:
					t.Errorf("header %s = %q, want none", k, v)
				case want != absent && v != want:
					t.Errorf("header %s = %q, want %q", k, v, want)
				}
			}
			if tc.wantBody != nil && g.Body != *tc.wantBody {
				t.Errorf("body = %q, want %q", g.Body, *tc.wantBody)
			}
			if tc.wantJSON != "" {
				if diff := jsonDiff(tc.wantJSON, g.Body); diff != "" {
					t.Errorf("body (-want +got):\n%s", diff)
				}
			}
			if tc.check != nil {
				tc.check(t, g)
			}
		})
	}
}

func TestSlowAggregateAnswersAtMergeDeadline(t *testing.T) {
	t.Parallel()
	b := startBackends(t)
	ep := with(endpoint("GET", "/slowagg", backend(b.host, "/small"), backend(b.host, "/slow")),
		func(e *gatewayv1.Endpoint) { e.TimeoutMs = 200 })
	e := startEdge(t, mustBuild(t, snapshot(ep), plan.Deps{}))
	start := time.Now()
	g := do(t, e.addr, "GET", "/slowagg", nil, "")
	if took := time.Since(start); took > 350*time.Millisecond {
		t.Errorf("answered after %v; the merge deadline is 170ms", took)
	}
	if g.Status != 200 || g.Headers["X-Krakend-Completed"] != "false" {
		t.Errorf("got %d %v", g.Status, g.Headers)
	}
}

func TestRouterOptions(t *testing.T) {
	t.Parallel()
	b := startBackends(t)
	snap := snapshot(
		endpoint("GET", "/small", backend(b.host, "/small")),
		endpoint("POST", "/small", backend(b.host, "/created")),
		with(endpoint("GET", "/code", with(backend(b.host, "/teapot"), func(e *gatewayv1.Backend) {
			e.ReturnErrorCode = true
		}))),
		with(endpoint("GET", "/file.{ext}", backend(b.host, "/echo/{ext}")), func(e *gatewayv1.Endpoint) { e.DisableRest = true }),
	)
	snap.Service.Router = &gatewayv1.Router{
		AutoOptions:                  true,
		HideVersionHeader:            true,
		ReturnErrorMsg:               true,
		DisableRedirectTrailingSlash: true,
		ErrorBody_404:                []byte(`{"custom":404}`),
		ErrorBody_405:                []byte(`{"custom":405}`),
		DisableHealth:                true,
	}
	p := mustBuild(t, snap, plan.Deps{})
	if p.HealthPath() != "" {
		t.Errorf("HealthPath() = %q with disable_health", p.HealthPath())
	}
	e := startEdge(t, p)
	tests := []struct {
		name, method, path string
		status             int
		headers            map[string]string
		body               string
	}{
		{"auto OPTIONS", "OPTIONS", "/small", 200, map[string]string{"Allow": "GET, POST", "X-Krakend": "Version undefined"}, ""},
		{"405 lists OPTIONS too", "PUT", "/small", 405, map[string]string{"Allow": "GET, OPTIONS, POST"}, `{"custom":405}`},
		{"custom 404", "GET", "/nope", 404, nil, `{"custom":404}`},
		// gin's fixed-path redirect still fixes the slash (observed on KrakenD 2.12.1).
		{"trailing slash fixed by the fixed-path redirect", "GET", "/small/", 301, map[string]string{"Location": "/small"}, "<a href=\"/small\">Moved Permanently</a>.\n\n"},
		{"hidden version", "GET", "/small", 200, map[string]string{"X-Krakend": "Version undefined"}, `{"a":1,"b":"two"}`},
		{"return_error_msg with return_error_code", "GET", "/code", 418, map[string]string{"Content-Type": "text/plain"}, "short and stout"},
		{"disable_rest mixed segment", "GET", "/file.csv", 200, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := do(t, e.addr, tc.method, tc.path, nil, "")
			if g.Status != tc.status {
				t.Errorf("status %d, want %d (%q)", g.Status, tc.status, g.Body)
			}
			for k, v := range tc.headers {
				if g.Headers[k] != v {
					t.Errorf("header %s = %q, want %q", k, g.Headers[k], v)
				}
			}
			if tc.body != "" && g.Body != tc.body {
				t.Errorf("body %q, want %q", g.Body, tc.body)
			}
		})
	}
	if g := do(t, e.addr, "GET", "/file.csv", nil, ""); !strings.Contains(g.Body, `"/echo/csv"`) {
		t.Errorf("mixed segment param not forwarded: %s", g.Body)
	}
}

func TestMethodNotAllowedDisabled(t *testing.T) {
	t.Parallel()
	b := startBackends(t)
	snap := snapshot(endpoint("GET", "/small", backend(b.host, "/small")))
	snap.Service.Router = &gatewayv1.Router{DisableHandleMethodNotAllowed: true, RemoveExtraSlash: true}
	e := startEdge(t, mustBuild(t, snap, plan.Deps{}))
	if g := do(t, e.addr, "POST", "/small", nil, ""); g.Status != 404 {
		t.Errorf("POST with 405 handling disabled: %d, want 404", g.Status)
	}
	if g := do(t, e.addr, "GET", "//small", nil, ""); g.Status != 200 {
		t.Errorf("GET //small with remove_extra_slash: %d, want 200", g.Status)
	}
}

func TestForwardedFor(t *testing.T) {
	t.Parallel()
	b := startBackends(t)
	tests := []struct {
		name   string
		router *gatewayv1.Router
		xff    string
		want   string
	}{
		{"untrusted by default", &gatewayv1.Router{ForwardedByClientIp: true}, "1.2.3.4", "127.0.0.1"},
		{"trusted proxy", &gatewayv1.Router{ForwardedByClientIp: true, TrustedProxies: []string{"127.0.0.0/8"}}, "1.2.3.4, 10.0.0.1", "10.0.0.1"},
		{"trusted chain skips trusted hops", &gatewayv1.Router{ForwardedByClientIp: true, TrustedProxies: []string{"127.0.0.1", "10.0.0.0/8"}}, "1.2.3.4, 10.0.0.1", "1.2.3.4"},
		{"trusted but disabled", &gatewayv1.Router{TrustedProxies: []string{"127.0.0.1"}}, "1.2.3.4", "127.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := snapshot(endpoint("GET", "/e", backend(b.host, "/echo/e")))
			snap.Service.Router = tc.router
			e := startEdge(t, mustBuild(t, snap, plan.Deps{}))
			g := do(t, e.addr, "GET", "/e", map[string]string{"X-Forwarded-For": tc.xff}, "")
			if v, _ := echoHeader(echoed(t, g.Body, ""), "X-Forwarded-For"); v != tc.want {
				t.Errorf("X-Forwarded-For = %q, want %q", v, tc.want)
			}
		})
	}
}

// TestJSONErrorBodies: the apigw/errors namespace turns KrakenD's empty
// error answers and router texts into our fixed JSON bodies.
func TestJSONErrorBodies(t *testing.T) {
	t.Parallel()
	b := startBackends(t)
	snap := snapshot(endpoint("GET", "/fail", backend(b.host, "/notfound")))
	snap.Service.Router.JsonErrorBodies = true
	e := startEdge(t, mustBuild(t, snap, plan.Deps{}))
	for _, tc := range []struct {
		method, path string
		status       int
		body, allow  string
	}{
		{"GET", "/nowhere", 404, `{"error":"not_found"}`, ""},
		{"DELETE", "/fail", 405, `{"error":"method_not_allowed"}`, "GET"},
		{"GET", "/fail", 500, `{"error":"internal"}`, ""},
	} {
		g := do(t, e.addr, tc.method, tc.path, nil, "")
		if g.Status != tc.status || g.Body != tc.body || g.Headers["Content-Type"] != "application/json" || g.Headers["Allow"] != tc.allow {
			t.Errorf("%s %s = %d %q %v, want %d %q application/json Allow %q", tc.method, tc.path, g.Status, g.Body, g.Headers, tc.status, tc.body, tc.allow)
		}
	}
}

// TestDisablePathDecoding: router.disable_path_decoding turns KrakenD's
// param checker off, so an encoded parameter reaches the backend.
func TestDisablePathDecoding(t *testing.T) {
	t.Parallel()
	b := startBackends(t)
	for _, raw := range []bool{false, true} {
		snap := snapshot(endpoint("GET", "/users/{id}", backend(b.host, "/users/{id}")))
		snap.Service.Router.DisablePathDecoding = raw
		e := startEdge(t, mustBuild(t, snap, plan.Deps{}))
		g := do(t, e.addr, "GET", "/users/100%25", nil, "")
		want := 400
		if raw {
			want = 200
		}
		if g.Status != want {
			t.Errorf("disable_path_decoding %v: GET /users/100%%25 = %d %q, want %d", raw, g.Status, g.Body, want)
		}
		if !raw && g.Body != `error: invalid URL escape "%"` {
			t.Errorf("param checker text = %q", g.Body)
		}
	}
}
