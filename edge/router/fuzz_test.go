package router

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// refRoute is the slow reference: one anchored regular expression per route
// and a rank vector per matched route; the best match is the smallest rank
// vector (lexicographic, a prefix before its extensions), which is the
// documented precedence static > mixed (more literal bytes first) > param >
// catch-all, applied segment by segment from the left.
type refRoute struct {
	method string
	re     *regexp.Regexp
	ranks  []refRank
}

type refRank struct {
	kind   int // 0 static, 1 mixed, 2 param, 3 catch-all
	litLen int
	shape  string
}

func (a refRank) less(b refRank) (less, equal bool) {
	if a.kind != b.kind {
		return a.kind < b.kind, false
	}
	if a.litLen != b.litLen {
		return a.litLen > b.litLen, false
	}
	if a.shape != b.shape {
		return a.shape < b.shape, false
	}
	return false, true
}

func rankLess(a, b []refRank) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if l, eq := a[i].less(b[i]); !eq {
			return l
		}
	}
	return len(a) < len(b)
}

func newRefRoute(r Route) refRoute {
	body := strings.TrimPrefix(r.Pattern, "/")
	catchAll := false
	if body == "*" {
		body, catchAll = "", true
	} else if strings.HasSuffix(body, "/*") {
		body, catchAll = strings.TrimSuffix(body, "/*"), true
	}
	var re strings.Builder
	re.WriteString("(?s)^") // s: a catch-all rest may hold newlines
	var ranks []refRank
	if !(catchAll && body == "" && r.Pattern == "/*") {
		for _, seg := range strings.Split(body, "/") {
			re.WriteString("/")
			switch {
			case !strings.Contains(seg, "{"):
				re.WriteString(regexp.QuoteMeta(seg))
				ranks = append(ranks, refRank{kind: 0})
			case strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") && strings.Count(seg, "{") == 1:
				re.WriteString("([^/]+)")
				ranks = append(ranks, refRank{kind: 2})
			default:
				lit, shape := 0, ""
				rest := seg
				for rest != "" {
					i := strings.IndexByte(rest, '{')
					if i < 0 {
						re.WriteString(regexp.QuoteMeta(rest))
						lit += len(rest)
						shape += rest
						break
					}
					re.WriteString(regexp.QuoteMeta(rest[:i]))
					lit += i
					shape += rest[:i] + "{}"
					j := strings.IndexByte(rest, '}')
					rest = rest[j+1:]
					if rest == "" {
						re.WriteString("([^/]+)")
					} else {
						re.WriteString("([^/]+?)")
					}
				}
				ranks = append(ranks, refRank{kind: 1, litLen: lit, shape: shape})
			}
		}
	}
	if catchAll {
		re.WriteString("(/.*)?")
		ranks = append(ranks, refRank{kind: 3})
	}
	re.WriteString("$")
	return refRoute{method: r.Method, re: regexp.MustCompile(re.String()), ranks: ranks}
}

// refLookup returns the best route for method and path, its params, and the
// set of other methods matching path.
func refLookup(routes []refRoute, method, path string) (best int, params []string, others map[string]bool) {
	best = -1
	others = map[string]bool{}
	for i, r := range routes {
		m := r.re.FindStringSubmatch(path)
		if m == nil {
			continue
		}
		if r.method != method {
			others[r.method] = true
			continue
		}
		// Rank vectors only compare the segments actually consumed: a
		// catch-all rank sits where the rest of the path begins.
		if best < 0 || rankLess(r.ranks, routes[best].ranks) {
			best, params = i, m[1:]
		}
	}
	return best, params, others
}

var (
	fuzzSegs  = []string{"a", "b", "ab", "{p}", "x.{e}", "{n}.{e}", "a{p}", "{n}.json", "", "v{a}.{b}"}
	fuzzPaths = []string{"a", "b", "ab", "x.y", "a.b.c", "aa", "", "v1.2", "r.json", "x.json"}
)

// FuzzRouter compares Table.Lookup with the regexp reference.
func FuzzRouter(f *testing.F) {
	f.Add([]byte{3, 0, 2, 3, 0, 1, 2, 1, 3, 1, 2, 0, 2, 0, 1, 0})
	f.Add([]byte{4, 0x80, 1, 3, 0x40, 2, 0, 3, 1, 5, 3, 4, 1, 2, 2, 7, 0, 2, 0, 2})
	f.Add([]byte{2, 0xc0, 2, 6, 1, 1, 2, 9, 2, 3, 8, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			b := int(data[0])
			data = data[1:]
			return b
		}
		var routes []Route
		nroutes := next()%6 + 1
		for i := 0; i < nroutes; i++ {
			flags := next()
			nseg := next()%4 + 1
			var sb strings.Builder
			pi := 0
			for s := 0; s < nseg; s++ {
				seg := fuzzSegs[next()%len(fuzzSegs)]
				// unique parameter names inside one route
				for _, n := range []string{"{p}", "{e}", "{n}", "{a}", "{b}"} {
					for strings.Contains(seg, n) {
						seg = strings.Replace(seg, n, "{"+n[1:2]+strconv.Itoa(pi)+"}", 1)
						pi++
					}
				}
				sb.WriteString("/")
				sb.WriteString(seg)
			}
			if flags&0x80 != 0 {
				sb.WriteString("/*")
			}
			method := "GET"
			if flags&0x40 != 0 {
				method = "POST"
			}
			routes = append(routes, Route{Method: method, Pattern: sb.String(), AllowMixed: true})
		}
		if next()%7 == 0 {
			routes = append(routes, Route{Method: "GET", Pattern: "/*"})
		}
		var pb strings.Builder
		npath := next() % 6
		for s := 0; s <= npath; s++ {
			pb.WriteString("/")
			pb.WriteString(fuzzPaths[next()%len(fuzzPaths)])
		}
		path := pb.String()
		method := "GET"
		if next()%2 == 1 {
			method = "POST"
		}

		tbl, err := New(Config{Routes: routes, HandleMethodNotAllowed: true, RedirectTrailingSlash: true})
		if err != nil {
			return // duplicates are rejected; nothing to compare
		}
		ref := make([]refRoute, len(routes))
		for i, r := range routes {
			ref[i] = newRefRoute(r)
		}
		checkLookup(t, routes, tbl, ref, method, path)
	})
}

// checkLookup compares tbl.Lookup(method, path) with the reference: the
// route and its parameters, else the trailing-slash redirect, else 405 with
// the other methods, else 404.
func checkLookup(t *testing.T, routes []Route, tbl *Table, ref []refRoute, method, path string) {
	t.Helper()
	wantRoute, wantParams, others := refLookup(ref, method, path)

	var ps Params
	got := tbl.Lookup([]byte(method), []byte(path), &ps)
	if wantRoute >= 0 {
		if got.Kind != Found || got.Route != wantRoute {
			t.Fatalf("routes %v, %s %s: got %+v, want route %d", routes, method, path, got, wantRoute)
		}
		for i, w := range wantParams {
			if string(ps.Value(i)) != w {
				t.Fatalf("routes %v, %s %s: param %d = %q, want %q", routes, method, path, i, ps.Value(i), w)
			}
		}
		return
	}
	if got.Kind == Found {
		t.Fatalf("routes %v, %s %s: got route %d, reference has none", routes, method, path, got.Route)
	}
	// The redirect target must match for the method; otherwise 405/404
	// follow the other methods.
	if len(path) > 1 {
		alt := path + "/"
		if strings.HasSuffix(path, "/") {
			alt = path[:len(path)-1]
		}
		if r, _, _ := refLookup(ref, method, alt); r >= 0 {
			if got.Kind != Redirect || string(got.Location) != alt {
				t.Fatalf("routes %v, %s %s: got %+v, want redirect to %s", routes, method, path, got, alt)
			}
			return
		}
	}
	if len(others) > 0 {
		var want []string
		for _, m := range tbl.Methods() {
			if others[m] {
				want = append(want, m)
			}
		}
		if got.Kind != MethodNotAllowed || string(tbl.AppendAllow(nil, got.Allowed)) != strings.Join(want, ", ") {
			t.Fatalf("routes %v, %s %s: got %+v, want 405 %v", routes, method, path, got, want)
		}
		return
	}
	if got.Kind != NotFound {
		t.Fatalf("routes %v, %s %s: got %+v, want 404", routes, method, path, got)
	}
}

// FuzzRouterPath looks up arbitrary request paths (any bytes after the
// leading slash) in a fixed table with every kind of segment and compares
// the answer with the regexp reference.
func FuzzRouterPath(f *testing.F) {
	routes := []Route{
		{Method: "GET", Pattern: "/users"},
		{Method: "GET", Pattern: "/users/{id}"},
		{Method: "POST", Pattern: "/users/{id}"},
		{Method: "GET", Pattern: "/users/{id}/posts/{post}"},
		{Method: "GET", Pattern: "/users/me"},
		{Method: "GET", Pattern: "/files/{name}.{ext}", AllowMixed: true},
		{Method: "GET", Pattern: "/files/{name}.json", AllowMixed: true},
		{Method: "GET", Pattern: "/files/v{major}.{minor}", AllowMixed: true},
		{Method: "GET", Pattern: "/static/*"},
		{Method: "POST", Pattern: "/a/b/c"},
		{Method: "GET", Pattern: "/a/{x}/c"},
		{Method: "GET", Pattern: "/"},
	}
	tbl, err := New(Config{Routes: routes, HandleMethodNotAllowed: true, RedirectTrailingSlash: true})
	if err != nil {
		f.Fatal(err)
	}
	ref := make([]refRoute, len(routes))
	for i, r := range routes {
		ref[i] = newRefRoute(r)
	}
	for _, p := range []string{"/users", "/users/", "/users/42", "/users/me/", "/users/42/posts/7", "/files/a.b.c",
		"/files/x.json", "/files/v1.2", "/static", "/static/", "/static/a/b", "/a/b/c", "/a/z/c/", "//", "/users//posts/1",
		"/files/.json", "/users/%2F", "/\xff/\x00"} {
		f.Add(p, false)
		f.Add(p, true)
	}
	f.Fuzz(func(t *testing.T, path string, post bool) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		method := "GET"
		if post {
			method = "POST"
		}
		checkLookup(t, routes, tbl, ref, method, path)
	})
}
