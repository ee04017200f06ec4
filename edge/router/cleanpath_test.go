package router

import "testing"

// TestAppendCleanPath: the paths gin's cleanPath gives, as KrakenD's
// fixed-path redirects showed them (Location of its 301s).
func TestAppendCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"//static": "/static", "/static/../static": "/static", "/./static": "/static", "/static/.": "/static/",
		"/static//": "/static/", "//": "/", "/..": "/", "/.": "/", "/a/../b/c": "/b/c", "/a/b/..": "/a/",
		"/a//b/./c/": "/a/b/c/", "": "/", "a/b": "/a/b", "/.well-known/x": "/.well-known/x",
	} {
		if got := string(AppendCleanPath([]byte("keep"), []byte(in))); got != "keep"+want {
			t.Errorf("AppendCleanPath(%q) = %q, want %q", in, got[4:], want)
		}
	}
}

// TestFixedPathCleansFirst: an unclean path redirects to the route its
// cleaned form names, as gin's RedirectFixedPath does; without the
// redirect it is a 404, never the route itself.
func TestFixedPathCleansFirst(t *testing.T) {
	routes := []Route{{Method: "GET", Pattern: "/static"}, {Method: "POST", Pattern: "/p/{a}/{b}"}}
	tbl, err := New(Config{Routes: routes, RedirectFixedPath: true, HandleMethodNotAllowed: true})
	if err != nil {
		t.Fatal(err)
	}
	var ps Params
	for _, tc := range []struct {
		method, path, loc string
		code              int
		kind              Kind
	}{
		{"GET", "//static", "/static", 301, Redirect},
		{"GET", "/x/../static", "/static", 301, Redirect},
		{"POST", "/p//A/b", "/p/A/b", 307, Redirect},
		{"POST", "//static", "", 0, NotFound}, // KrakenD: 404, not 405
	} {
		r := tbl.Lookup([]byte(tc.method), []byte(tc.path), &ps)
		if r.Kind != tc.kind || string(r.Location) != tc.loc || r.Code != tc.code {
			t.Errorf("%s %s = %+v, want kind %v %d %q", tc.method, tc.path, r, tc.kind, tc.code, tc.loc)
		}
	}
}
