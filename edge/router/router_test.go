package router

import (
	"errors"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type lookupOut struct {
	Kind     Kind
	Route    int
	Params   []string
	Allow    string
	Location string
	Code     int
}

func lookup(t *Table, method, path string) lookupOut {
	var ps Params
	r := t.Lookup([]byte(method), []byte(path), &ps)
	out := lookupOut{Kind: r.Kind, Route: -1, Location: string(r.Location), Code: r.Code}
	if r.Kind == Found {
		out.Route = r.Route
		for i := 0; i < ps.Len(); i++ {
			out.Params = append(out.Params, string(ps.Value(i)))
		}
	}
	if r.Allowed != 0 {
		out.Allow = string(t.AppendAllow(nil, r.Allowed))
	}
	return out
}

func found(route int, params ...string) lookupOut {
	return lookupOut{Kind: Found, Route: route, Params: params}
}

func TestLookup(t *testing.T) {
	routes := []Route{
		{Method: "GET", Pattern: "/users"},                                    // 0
		{Method: "GET", Pattern: "/users/{id}"},                               // 1
		{Method: "GET", Pattern: "/users/me"},                                 // 2
		{Method: "POST", Pattern: "/users"},                                   // 3
		{Method: "GET", Pattern: "/users/{id}/posts/{post}"},                  // 4
		{Method: "GET", Pattern: "/files/{name}"},                             // 5
		{Method: "GET", Pattern: "/files/{base}.json", AllowMixed: true},      // 6
		{Method: "GET", Pattern: "/files/v{major}.{minor}", AllowMixed: true}, // 7
		{Method: "GET", Pattern: "/svc/*"},                                    // 8
		{Method: "GET", Pattern: "/svc/status"},                               // 9
		{Method: "GET", Pattern: "/a/{x}/c"},                                  // 10
		{Method: "GET", Pattern: "/a/b/d"},                                    // 11
		{Method: "DELETE", Pattern: "/users/{id}"},                            // 12
		{Method: "PUT", Pattern: "/items/"},                                   // 13
		{Method: "GET", Pattern: "/"},                                         // 14
		{Method: "GET", Pattern: "/deep/{a}/*"},                               // 15
		{Method: "GET", Pattern: "/__debug/*", SlashCatchAll: true},           // 16
	}
	tests := []struct {
		name   string
		cfg    Config
		method string
		path   string
		want   lookupOut
	}{
		{name: "static", method: "GET", path: "/users", want: found(0)},
		{name: "root", method: "GET", path: "/", want: found(14)},
		{name: "param", method: "GET", path: "/users/42", want: found(1, "42")},
		{name: "static beats param", method: "GET", path: "/users/me", want: found(2)},
		{name: "two params", method: "GET", path: "/users/7/posts/9", want: found(4, "7", "9")},
		{name: "method tree", method: "POST", path: "/users", want: found(3)},
		{name: "delete param", method: "DELETE", path: "/users/x", want: found(12, "x")},
		{name: "mixed beats param", method: "GET", path: "/files/report.json", want: found(6, "report")},
		{name: "mixed two params", method: "GET", path: "/files/v1.2", want: found(7, "1", "2")},
		{name: "mixed backtracks to param", method: "GET", path: "/files/v1", want: found(5, "v1")},
		{name: "mixed shortest first param", method: "GET", path: "/files/v1.2.3", want: found(7, "1", "2.3")},
		{name: "catch-all rest", method: "GET", path: "/svc/a/b", want: found(8, "/a/b")},
		{name: "catch-all trailing slash", method: "GET", path: "/svc/", want: found(8, "/")},
		{name: "catch-all bare prefix", method: "GET", path: "/svc", want: found(8, "")},
		{name: "static beats catch-all", method: "GET", path: "/svc/status", want: found(9)},
		{name: "catch-all below static", method: "GET", path: "/svc/status/x", want: found(8, "/status/x")},
		{name: "catch-all after param", method: "GET", path: "/deep/1/x/y", want: found(15, "1", "/x/y")},
		{name: "backtrack static to param", method: "GET", path: "/a/b/c", want: found(10, "b")},
		{name: "static deep", method: "GET", path: "/a/b/d", want: found(11)},
		{name: "param must be non-empty", method: "GET", path: "/users//posts/1",
			want: lookupOut{Kind: NotFound, Route: -1}},
		{name: "404", method: "GET", path: "/nope", want: lookupOut{Kind: NotFound, Route: -1}},
		{name: "not a path", method: "GET", path: "*", want: lookupOut{Kind: NotFound, Route: -1}},
		{name: "405 off", method: "PATCH", path: "/users", want: lookupOut{Kind: NotFound, Route: -1}},
		{name: "405 allow sorted", cfg: Config{HandleMethodNotAllowed: true}, method: "PATCH", path: "/users",
			want: lookupOut{Kind: MethodNotAllowed, Route: -1, Allow: "GET, POST"}},
		{name: "405 param path", cfg: Config{HandleMethodNotAllowed: true}, method: "POST", path: "/users/1",
			want: lookupOut{Kind: MethodNotAllowed, Route: -1, Allow: "DELETE, GET"}},
		{name: "HEAD is not GET", cfg: Config{HandleMethodNotAllowed: true}, method: "HEAD", path: "/svc/x",
			want: lookupOut{Kind: MethodNotAllowed, Route: -1, Allow: "GET"}},
		{name: "OPTIONS without auto", cfg: Config{HandleMethodNotAllowed: true}, method: "OPTIONS", path: "/users",
			want: lookupOut{Kind: MethodNotAllowed, Route: -1, Allow: "GET, POST"}},
		{name: "auto OPTIONS", cfg: Config{HandleMethodNotAllowed: true, AutoOptions: true}, method: "OPTIONS", path: "/users",
			want: lookupOut{Kind: Options, Route: -1, Allow: "GET, POST"}},
		{name: "auto OPTIONS unknown path", cfg: Config{HandleMethodNotAllowed: true, AutoOptions: true}, method: "OPTIONS", path: "/zzz",
			want: lookupOut{Kind: NotFound, Route: -1}},
		{name: "405 lists OPTIONS with auto", cfg: Config{HandleMethodNotAllowed: true, AutoOptions: true}, method: "PUT", path: "/users",
			want: lookupOut{Kind: MethodNotAllowed, Route: -1, Allow: "GET, OPTIONS, POST"}},
		{name: "redirect remove slash GET", cfg: Config{RedirectTrailingSlash: true}, method: "GET", path: "/users/",
			want: lookupOut{Kind: Redirect, Route: -1, Location: "/users", Code: 301}},
		{name: "redirect add slash PUT", cfg: Config{RedirectTrailingSlash: true}, method: "PUT", path: "/items",
			want: lookupOut{Kind: Redirect, Route: -1, Location: "/items/", Code: 307}},
		{name: "redirect param path", cfg: Config{RedirectTrailingSlash: true}, method: "GET", path: "/users/5/",
			want: lookupOut{Kind: Redirect, Route: -1, Location: "/users/5", Code: 301}},
		{name: "no redirect when disabled", method: "GET", path: "/users/",
			want: lookupOut{Kind: NotFound, Route: -1}},
		{name: "redirect before 405", cfg: Config{RedirectTrailingSlash: true, HandleMethodNotAllowed: true}, method: "POST", path: "/users/",
			want: lookupOut{Kind: Redirect, Route: -1, Location: "/users", Code: 307}},
		{name: "extra slashes kept", method: "GET", path: "//users", want: lookupOut{Kind: NotFound, Route: -1}},
		{name: "extra slashes removed", cfg: Config{RemoveExtraSlash: true}, method: "GET", path: "//users///7",
			want: found(1, "7")},
		{name: "extra slashes then redirect", cfg: Config{RemoveExtraSlash: true, RedirectTrailingSlash: true}, method: "PUT", path: "//items",
			want: lookupOut{Kind: Redirect, Route: -1, Location: "//items/", Code: 307}}, // gin toggles the request's own slash
		{name: "extra slashes: redirect drops one trailing slash", cfg: Config{RemoveExtraSlash: true, RedirectTrailingSlash: true}, method: "GET",
			path: "/users//", want: lookupOut{Kind: Redirect, Route: -1, Location: "/users/", Code: 301}},
		{name: "extra slashes: leading ones kept in the redirect", cfg: Config{RemoveExtraSlash: true, RedirectTrailingSlash: true}, method: "GET",
			path: "//users//", want: lookupOut{Kind: Redirect, Route: -1, Location: "//users/", Code: 301}},
		{name: "fixed path: case-insensitive static route", cfg: Config{RedirectFixedPath: true}, method: "GET", path: "/USERS/Me",
			want: lookupOut{Kind: Redirect, Route: -1, Location: "/users/me", Code: 301}},
		{name: "fixed path: 307 for other methods", cfg: Config{RedirectFixedPath: true}, method: "POST", path: "/Users",
			want: lookupOut{Kind: Redirect, Route: -1, Location: "/users", Code: 307}},
		{name: "fixed path with trailing slash", cfg: Config{RedirectFixedPath: true, RedirectTrailingSlash: true}, method: "GET", path: "/USERS/",
			want: lookupOut{Kind: Redirect, Route: -1, Location: "/users", Code: 301}},
		{name: "fixed path off", method: "GET", path: "/USERS/me", want: lookupOut{Kind: NotFound, Route: -1}},
		{name: "fixed path: exact match wins", cfg: Config{RedirectFixedPath: true}, method: "GET", path: "/users/Bob",
			want: found(1, "Bob")},
		// Parameter routes, as KrakenD 2.12.1 answered (gin's case-insensitive walk).
		{name: "fixed path: param route keeps the value's case", cfg: Config{RedirectFixedPath: true}, method: "GET", path: "/USERS/AbC/Posts/X",
			want: lookupOut{Kind: Redirect, Route: -1, Location: "/users/AbC/posts/X", Code: 301}},
		{name: "fixed path: param route, 307 for other methods", cfg: Config{RedirectFixedPath: true}, method: "DELETE", path: "/Users/AbC",
			want: lookupOut{Kind: Redirect, Route: -1, Location: "/users/AbC", Code: 307}},
		{name: "fixed path: param route backtracks", cfg: Config{RedirectFixedPath: true}, method: "GET", path: "/A/Q/C",
			want: lookupOut{Kind: Redirect, Route: -1, Location: "/a/Q/c", Code: 301}},
		{name: "fixed path: param route with its trailing slash dropped", cfg: Config{RedirectFixedPath: true}, method: "GET", path: "/USERS/AbC/",
			want: lookupOut{Kind: Redirect, Route: -1, Location: "/users/AbC", Code: 301}},
		{name: "fixed path: trailing slash added", cfg: Config{RedirectFixedPath: true}, method: "PUT", path: "/ITEMS",
			want: lookupOut{Kind: Redirect, Route: -1, Location: "/items/", Code: 307}},
		{name: "fixed path fixes the slash without trailing slash redirects", cfg: Config{RedirectFixedPath: true}, method: "GET", path: "/users/7/",
			want: lookupOut{Kind: Redirect, Route: -1, Location: "/users/7", Code: 301}},
		{name: "fixed path: catch-all rest kept", cfg: Config{RedirectFixedPath: true}, method: "GET", path: "/DEEP/1/X/y",
			want: lookupOut{Kind: Redirect, Route: -1, Location: "/deep/1/X/y", Code: 301}},
		{name: "slash catch-all: bare prefix is not a match", method: "GET", path: "/__debug", want: lookupOut{Kind: NotFound, Route: -1}},
		{name: "slash catch-all: trailing-slash redirect", cfg: Config{RedirectTrailingSlash: true}, method: "GET", path: "/__debug",
			want: lookupOut{Kind: Redirect, Route: -1, Location: "/__debug/", Code: 301}},
		{name: "slash catch-all: its slash", method: "GET", path: "/__debug/", want: found(16, "/")},
		{name: "slash catch-all: repeated slash kept", method: "GET", path: "/__debug//x", want: found(16, "//x")},
		{name: "slash catch-all: fixed path", cfg: Config{RedirectFixedPath: true}, method: "GET", path: "/__DEBUG/x",
			want: lookupOut{Kind: Redirect, Route: -1, Location: "/__debug/x", Code: 301}},
		{name: "slash catch-all: fixed path adds the slash", cfg: Config{RedirectFixedPath: true}, method: "GET", path: "/__Debug",
			want: lookupOut{Kind: Redirect, Route: -1, Location: "/__debug/", Code: 301}},
		{name: "fixed path: nothing close", cfg: Config{RedirectFixedPath: true}, method: "GET", path: "/USERS/a/b/c/d",
			want: lookupOut{Kind: NotFound, Route: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.Routes = routes
			tbl, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := lookup(tbl, tc.method, tc.path)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Lookup(%s %s) (-want +got):\n%s", tc.method, tc.path, diff)
			}
		})
	}
}

func TestParamNames(t *testing.T) {
	tbl, err := New(Config{Routes: []Route{
		{Method: "GET", Pattern: "/u/{id}/f/{name}.{ext}/*", AllowMixed: true},
		{Method: "GET", Pattern: "/*"},
		{Method: "GET", Pattern: "/static"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"id", "name", "ext", "*"}, {"*"}, nil}
	for i, w := range want {
		if diff := cmp.Diff(w, tbl.ParamNames(i)); diff != "" {
			t.Errorf("ParamNames(%d) (-want +got):\n%s", i, diff)
		}
	}
	if got := lookup(tbl, "GET", "/anything/at/all"); !cmp.Equal(got, found(1, "/anything/at/all")) {
		t.Errorf("root catch-all: %+v", got)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name  string
		route Route
		dup   bool // added after a route GET /a/{id}
	}{
		{name: "no slash", route: Route{Method: "GET", Pattern: "a"}},
		{name: "unbalanced", route: Route{Method: "GET", Pattern: "/a/{id"}},
		{name: "unbalanced close", route: Route{Method: "GET", Pattern: "/a/id}"}},
		{name: "empty param", route: Route{Method: "GET", Pattern: "/a/{}"}},
		{name: "bad param name", route: Route{Method: "GET", Pattern: "/a/{i d}"}},
		{name: "mixed without disable_rest", route: Route{Method: "GET", Pattern: "/a/file.{ext}"}},
		{name: "adjacent params", route: Route{Method: "GET", Pattern: "/a/{x}{y}", AllowMixed: true}},
		{name: "star inside", route: Route{Method: "GET", Pattern: "/a/*/b"}},
		{name: "star suffix", route: Route{Method: "GET", Pattern: "/a/b*"}},
		{name: "duplicate param name", route: Route{Method: "GET", Pattern: "/a/{x}/{x}"}},
		{name: "lower-case method", route: Route{Method: "get", Pattern: "/b"}},
		{name: "duplicate shape", route: Route{Method: "GET", Pattern: "/a/{other}"}, dup: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(Config{Routes: []Route{{Method: "GET", Pattern: "/a/{id}"}, tc.route}})
			var re *RouteError
			if !errors.As(err, &re) {
				t.Fatalf("New: got %v, want a *RouteError", err)
			}
			if re.Index != 1 {
				t.Errorf("RouteError.Index = %d, want 1", re.Index)
			}
			if tc.dup != errors.Is(err, ErrDuplicate) {
				t.Errorf("errors.Is(err, ErrDuplicate) = %v, want %v (err %v)", !tc.dup, tc.dup, err)
			}
		})
	}
	t.Run("duplicate static and catch-all", func(t *testing.T) {
		_, err := New(Config{Routes: []Route{
			{Method: "GET", Pattern: "/x"}, {Method: "GET", Pattern: "/x"},
			{Method: "GET", Pattern: "/y/*"}, {Method: "GET", Pattern: "/y/*"},
			{Method: "POST", Pattern: "/x"},
		}})
		j, ok := err.(interface{ Unwrap() []error })
		if !ok || len(j.Unwrap()) != 2 {
			t.Fatalf("want 2 joined errors, got %v", err)
		}
	})
}

// TestManyStaticSiblings: past staticScanMax siblings the build looks
// children up in the node's map; every sibling still matches its own
// route, and a repeated one is still a duplicate.
func TestManyStaticSiblings(t *testing.T) {
	t.Parallel()
	const n = 100
	routes := make([]Route, n)
	for i := range routes {
		routes[i] = Route{Method: "GET", Pattern: "/v1/r" + strconv.Itoa(i) + "/{id}"}
	}
	tbl, err := New(Config{Routes: routes})
	if err != nil {
		t.Fatal(err)
	}
	var ps Params
	for i := range n {
		if r := tbl.Lookup([]byte("GET"), []byte("/v1/r"+strconv.Itoa(i)+"/7"), &ps); r.Kind != Found || r.Route != i {
			t.Errorf("/v1/r%d/7: %+v, want route %d", i, r, i)
		}
	}
	_, err = New(Config{Routes: append(routes, Route{Method: "GET", Pattern: "/v1/r50/{x}"})})
	if !errors.Is(err, ErrDuplicate) {
		t.Errorf("a repeat of the 51st sibling: err %v, want ErrDuplicate", err)
	}
}
