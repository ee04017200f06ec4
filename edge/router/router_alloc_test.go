//go:build !race

package router

import "testing"

func TestMatchAllocs(t *testing.T) {
	tbl, err := New(Config{
		Routes: []Route{
			{Method: "GET", Pattern: "/users/{id}"},
			{Method: "GET", Pattern: "/users/{id}/posts/{post}"},
			{Method: "GET", Pattern: "/static/path"},
			{Method: "GET", Pattern: "/files/{base}.{ext}", AllowMixed: true},
			{Method: "GET", Pattern: "/svc/*"},
			{Method: "POST", Pattern: "/users"},
			{Method: "PUT", Pattern: "/items/"},
		},
		RedirectTrailingSlash:  true,
		HandleMethodNotAllowed: true,
		AutoOptions:            true,
		RemoveExtraSlash:       true,
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ method, path string }{
		{"GET", "/users/42"},
		{"GET", "/users/42/posts/7"},
		{"GET", "/static/path"},
		{"GET", "/files/a.b"},
		{"GET", "/svc/x/y/z"},
		{"GET", "/nope"},
		{"DELETE", "/users/1"},
		{"OPTIONS", "/users"},
		{"PUT", "/items"},
		{"GET", "//users//9"},
	}
	var ps Params
	for _, c := range cases {
		m, p := []byte(c.method), []byte(c.path)
		tbl.Lookup(m, p, &ps) // grow scratch buffers once
		if n := testing.AllocsPerRun(100, func() { tbl.Lookup(m, p, &ps) }); n != 0 {
			t.Errorf("Lookup(%s %s): %v allocs, want 0", c.method, c.path, n)
		}
	}
}
