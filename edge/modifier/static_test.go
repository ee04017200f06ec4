package modifier_test

import (
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/modifier"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// staticTree writes a root directory, a directory outside it, and links
// from the root into both. It returns the root.
func staticTree(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{root, filepath.Join(root, "sub"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"root/data.json":     `{"a":1}`,
		"root/hello.txt":     "hello world\n",
		"root/noext":         "noext",
		"root/sub/page.html": "<p>hi</p>",
		"root/mapped.json":   `{"m":1}`,
		"outside/secret.txt": "secret",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(base, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"root/out.txt":    filepath.Join(outside, "secret.txt"), // leaves the root
		"root/outdir":     outside,                              // leaves the root
		"root/inside.txt": "hello.txt",                          // stays inside
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(base, name)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func staticMod(scope []string, root string, explicit map[string]string) *gatewayv1.MartianModifier {
	return &gatewayv1.MartianModifier{Scope: scope, Kind: &gatewayv1.MartianModifier_StaticModifier{
		StaticModifier: &gatewayv1.MartianStatic{RootPath: root, ExplicitPaths: explicit}}}
}

// serveStatic runs m as the proxy does: the request phase, then the
// response phase on an empty response when the round trip is skipped, or
// on backend when it is not.
func serveStatic(t *testing.T, m *gatewayv1.MartianModifier, rq *fasthttp.Request, backend *fasthttp.Response, opts ...modifier.Option) (*fasthttp.Response, bool, error) {
	t.Helper()
	mod, err := modifier.New(m, opts...)
	if err != nil {
		t.Fatal(err)
	}
	rs := &fasthttp.Response{}
	skipped := false
	switch err := mod.ModifyRequest(rq); {
	case errors.Is(err, modifier.ErrSkipRoundTrip):
		skipped = true
		rs.Header.SetNoDefaultContentType(true)
	case err != nil:
		t.Fatal(err)
	default:
		if backend != nil {
			backend.CopyTo(rs)
		}
	}
	return rs, skipped, mod.ModifyResponse(rs, rq)
}

func TestStaticServesFiles(t *testing.T) {
	t.Parallel()
	root := staticTree(t)
	m := staticMod(nil, root, map[string]string{"/alias": "/mapped.json", "/gone": "/nope.json", "/alias/": "data.json"})
	for _, tc := range []struct {
		path, status, ctype, body string
	}{
		{"/data.json", "200", "application/json", `{"a":1}`},
		{"/hello.txt", "200", "text/plain; charset=utf-8", "hello world\n"},
		{"/sub/page.html", "200", "text/html; charset=utf-8", "<p>hi</p>"},
		{"/sub/../data.json", "200", "application/json", `{"a":1}`},
		{"/alias", "200", "application/json", `{"m":1}`},
		{"/inside.txt", "200", "text/plain; charset=utf-8", "hello world\n"},
		// Unknown extension: no Content-Type (martian sends it empty).
		{"/noext", "200", "", "noext"},
		// Missing: 404, body untouched (empty here).
		{"/missing.json", "404", "", ""},
		{"/gone", "404", "", ""},
		{"/data.json/x", "404", "", ""},
		// The cleaned path is looked up: "/alias/" is "/alias" (the key
		// "/alias/" never matches).
		{"/alias/", "200", "application/json", `{"m":1}`},
		// Never outside the root, never a directory.
		{"/out.txt", "404", "", ""},
		{"/outdir/secret.txt", "404", "", ""},
		{"/../outside/secret.txt", "404", "", ""},
		{"/sub", "404", "", ""},
		{"/", "404", "", ""},
	} {
		rs, skipped, err := serveStatic(t, m, backendReq("https://backend:8443"+tc.path), nil)
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		if !skipped {
			t.Errorf("%s: the backend would be called", tc.path)
		}
		if got := rs.StatusCode(); got != atoi(tc.status) {
			t.Errorf("%s: status %d, want %s", tc.path, got, tc.status)
		}
		if got := string(rs.Header.ContentType()); got != tc.ctype {
			t.Errorf("%s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if got := string(rs.Body()); got != tc.body {
			t.Errorf("%s: body %q, want %q", tc.path, got, tc.body)
		}
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestStaticScopes(t *testing.T) {
	t.Parallel()
	root := staticTree(t)
	backend := func() *fasthttp.Response {
		r := &fasthttp.Response{}
		r.Header.Set("X-Backend", "yes")
		r.Header.Set("Content-Encoding", "identity")
		r.Header.SetContentType("application/json")
		r.SetBodyString(`{"backend":true}`)
		return r
	}
	// Response scope only: the backend is called and the file replaces its
	// body; its other headers stay.
	rq := backendReq("https://backend:8443/hello.txt")
	rs, skipped, err := serveStatic(t, staticMod([]string{"response"}, root, nil), rq, backend())
	if err != nil || skipped {
		t.Fatalf("response scope: skipped=%v err=%v", skipped, err)
	}
	if string(rs.Body()) != "hello world\n" || string(rs.Header.Peek("X-Backend")) != "yes" ||
		string(rs.Header.ContentType()) != "text/plain; charset=utf-8" || len(rs.Header.Peek("Content-Encoding")) != 0 {
		t.Errorf("response scope: %q %q", rs.Header.String(), rs.Body())
	}
	if string(rq.URI().Scheme()) != "https" {
		t.Error("response scope changed the scheme")
	}
	// A missing file keeps the backend's body with a 404.
	rs, _, err = serveStatic(t, staticMod([]string{"response"}, root, nil), backendReq("http://b/missing"), backend())
	if err != nil || rs.StatusCode() != 404 || string(rs.Body()) != `{"backend":true}` {
		t.Errorf("response scope, missing: %d %q %v", rs.StatusCode(), rs.Body(), err)
	}
	// Request scope only: not called, and nothing reads the file: an empty
	// 200 without headers, as KrakenD answers. https becomes http.
	rq = backendReq("https://backend:8443/hello.txt")
	rs, skipped, err = serveStatic(t, staticMod([]string{"request"}, root, nil), rq, backend())
	if err != nil || !skipped || rs.StatusCode() != 200 || len(rs.Body()) != 0 || len(rs.Header.ContentType()) != 0 {
		t.Errorf("request scope: skipped=%v %d %q %v", skipped, rs.StatusCode(), rs.Body(), err)
	}
	if string(rq.URI().Scheme()) != "http" {
		t.Errorf("scheme %q, want http (martian downgrades)", rq.URI().Scheme())
	}
}

func TestStaticInGroupsAndFilters(t *testing.T) {
	t.Parallel()
	root := staticTree(t)
	// In a fifo.Group the modifiers after static.Modifier still run, and the
	// group reports the skip.
	g := fifo(false, nil, staticMod(nil, root, nil), setHdr(nil, "X-After", "1"))
	rq := backendReq("http://b/data.json")
	rs, skipped, err := serveStatic(t, g, rq, nil)
	if err != nil || !skipped || string(rq.Header.Peek("X-After")) != "1" || string(rs.Header.Peek("X-After")) != "1" || string(rs.Body()) != `{"a":1}` {
		t.Errorf("group: skipped=%v err=%v req %q resp %q", skipped, err, rq.Header.Peek("X-After"), rs.Body())
	}
	// An error after it still fails the call.
	bad := fifo(true, nil, staticMod(nil, root, nil), &gatewayv1.MartianModifier{Kind: &gatewayv1.MartianModifier_PortModifier{
		PortModifier: &gatewayv1.MartianPort{Port: 1}}})
	mod, err := modifier.New(bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := mod.ModifyRequest(backendReq("http://[::1/x")); err == nil || errors.Is(err, modifier.ErrSkipRoundTrip) {
		t.Errorf("a failing modifier after static: %v", err)
	}
	// Behind a filter: only matching requests are answered from disk.
	f := &gatewayv1.MartianModifier{Kind: &gatewayv1.MartianModifier_HeaderFilter{HeaderFilter: &gatewayv1.MartianFilter{
		Name: "X-Static", Value: "1", Modifier: staticMod(nil, root, nil)}}}
	if _, skipped, _ := serveStatic(t, f, backendReq("http://b/data.json", "X-Static", "1"), nil); !skipped {
		t.Error("filter matched but the backend would be called")
	}
	if _, skipped, _ := serveStatic(t, f, backendReq("http://b/data.json"), nil); skipped {
		t.Error("filter did not match but the backend would not be called")
	}
}

func TestStaticRanges(t *testing.T) {
	t.Parallel()
	root := staticTree(t)
	m := staticMod(nil, root, nil)
	for _, tc := range []struct {
		rng, status, contentRange, body string
		fails                           bool
	}{
		{rng: "bytes=0-4", status: "206", contentRange: "bytes 0-4/12", body: "hello"},
		{rng: "bytes=6-", status: "206", contentRange: "bytes 6-11/12", body: "world\n"},
		{rng: "BYTES=0-0", status: "206", contentRange: "bytes 0-0/12", body: "h"},
		// Clamped to the file (martian pads with NUL bytes).
		{rng: "bytes=6-100", status: "206", contentRange: "bytes 6-11/12", body: "world\n"},
		{rng: "bytes=3-1", status: "416"},
		{rng: "bytes=20-25", status: "416"},
		{rng: "bytes=0-1-2", status: "416"},
		{rng: "bytes=0-11,0-11", status: "416"}, // more than the file
		{rng: "bytes=-3", fails: true},          // martian cannot parse a suffix range
		{rng: "bytes=x-1", fails: true},
	} {
		rs, _, err := serveStatic(t, m, backendReq("http://b/hello.txt", "Range", tc.rng), nil)
		if tc.fails {
			if err == nil {
				t.Errorf("%s: served (%d), want the call to fail", tc.rng, rs.StatusCode())
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.rng, err)
			continue
		}
		if rs.StatusCode() != atoi(tc.status) || string(rs.Header.Peek("Content-Range")) != tc.contentRange || string(rs.Body()) != tc.body {
			t.Errorf("%s: %d %q %q, want %s %q %q", tc.rng, rs.StatusCode(), rs.Header.Peek("Content-Range"), rs.Body(), tc.status, tc.contentRange, tc.body)
		}
	}
	// Several ranges: multipart/byteranges, each part with its type and range.
	rs, _, err := serveStatic(t, m, backendReq("http://b/hello.txt", "Range", "bytes=0-1,6-7"), nil)
	if err != nil || rs.StatusCode() != 206 {
		t.Fatalf("multi: %d %v", rs.StatusCode(), err)
	}
	mt, params, err := mime.ParseMediaType(string(rs.Header.ContentType()))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("multi Content-Type %q", rs.Header.ContentType())
	}
	mr := multipart.NewReader(strings.NewReader(string(rs.Body())), params["boundary"])
	var parts []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		parts = append(parts, p.Header.Get("Content-Type")+"|"+p.Header.Get("Content-Range")+"|"+string(b))
	}
	want := "text/plain; charset=utf-8|bytes 0-1/12|he,text/plain; charset=utf-8|bytes 6-7/12|wo"
	if got := strings.Join(parts, ","); got != want {
		t.Errorf("parts %q\nwant  %q", got, want)
	}
}

func TestStaticLimitsAndErrors(t *testing.T) {
	t.Parallel()
	root := staticTree(t)
	// max_body_bytes bounds the file as it bounds a backend body.
	_, _, err := serveStatic(t, staticMod(nil, root, nil), backendReq("http://b/hello.txt"), nil, modifier.WithMaxBodyBytes(5))
	if !errors.Is(err, fasthttp.ErrBodyTooLarge) {
		t.Errorf("a file over max_body_bytes: %v", err)
	}
	if _, _, err := serveStatic(t, staticMod(nil, root, nil), backendReq("http://b/hello.txt"), nil, modifier.WithMaxBodyBytes(12)); err != nil {
		t.Errorf("a file of max_body_bytes: %v", err)
	}
	// A root that does not exist answers 404, as martian.
	rs, _, err := serveStatic(t, staticMod(nil, filepath.Join(root, "nope"), nil), backendReq("http://b/data.json"), nil)
	if err != nil || rs.StatusCode() != 404 {
		t.Errorf("missing root: %d %v", rs.StatusCode(), err)
	}
	// Compile errors.
	for name, m := range map[string]*gatewayv1.MartianModifier{
		"no root":          staticMod(nil, "", nil),
		"explicit escapes": staticMod(nil, root, map[string]string{"/a": "../x"}),
		"explicit is root": staticMod(nil, root, map[string]string{"/a": "/"}),
	} {
		if _, err := modifier.New(m); err == nil {
			t.Errorf("%s: compiled", name)
		}
	}
}
