package router

import (
	"strconv"
	"testing"
)

// benchTable builds n GET routes: a third static, a third with one
// parameter, a third with two parameters, plus one catch-all.
func benchTable(b *testing.B, n int) *Table {
	b.Helper()
	routes := make([]Route, 0, n+1)
	for i := 0; len(routes) < n; i++ {
		s := strconv.Itoa(i)
		switch i % 3 {
		case 0:
			routes = append(routes, Route{Method: "GET", Pattern: "/api/v1/static" + s + "/items"})
		case 1:
			routes = append(routes, Route{Method: "GET", Pattern: "/api/v1/users" + s + "/{id}"})
		default:
			routes = append(routes, Route{Method: "GET", Pattern: "/api/v1/orgs" + s + "/{org}/repos/{repo}"})
		}
	}
	routes = append(routes, Route{Method: "GET", Pattern: "/files/*"})
	t, err := New(Config{Routes: routes, HandleMethodNotAllowed: true, RedirectTrailingSlash: true})
	if err != nil {
		b.Fatal(err)
	}
	return t
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		t := benchTable(b, n)
		last := strconv.Itoa((n - 1) / 3 * 3)
		paths := []struct{ name, path string }{
			{"static", "/api/v1/static" + last + "/items"},
			{"param", "/api/v1/users1/12345"},
			{"params2", "/api/v1/orgs2/acme/repos/gateway"},
			{"catchall", "/files/a/b/c.txt"},
			{"notfound", "/api/v2/nothing/here"},
		}
		for _, p := range paths {
			b.Run(strconv.Itoa(n)+"/"+p.name, func(b *testing.B) {
				method, path := []byte("GET"), []byte(p.path)
				var ps Params
				b.ReportAllocs()
				for b.Loop() {
					t.Lookup(method, path, &ps)
				}
			})
		}
	}
}

// BenchmarkNew compiles n routes that are siblings under one prefix, the
// shape of a large generated configuration (building 10,000 of them was
// quadratic in the sibling count before the build used the child map).
func BenchmarkNew(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		routes := make([]Route, n)
		for i := range routes {
			routes[i] = Route{Method: "GET", Pattern: "/v1/resource" + strconv.Itoa(i) + "/{id}"}
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := New(Config{Routes: routes}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
