package test

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/apigw/gateway/controlplane/config"
	"github.com/apigw/gateway/edge/router"
)

// controlPlaneOnly are the rules the control plane's validator adds to the
// route grammar the edge router implements: KrakenD's reserved segments,
// characters no request path can hold, empty inner segments, and the health
// path. Outside them both must accept exactly the same patterns.
var (
	reservedSegment = regexp.MustCompile(`/__(debug|echo|health)(/.*)?$`)
	emptyInner      = regexp.MustCompile(`//.`)
)

func controlPlaneOnly(p string) bool {
	return reservedSegment.MatchString(p) || strings.ContainsAny(p, "?# \t\r\n") || emptyInner.MatchString(p) ||
		p == "/__health" || strings.HasSuffix(p, "//") || strings.ContainsRune(p, '"') || strings.ContainsRune(p, '\\')
}

// compiles reports whether the control plane accepts pattern as an
// endpoint path (no violation of the endpoint's path), and those violations
// when it does not.
func compiles(t *testing.T, pattern string, disableRest bool) (bool, string) {
	t.Helper()
	doc := map[string]any{
		"version":      3,
		"disable_rest": disableRest,
		"endpoints": []any{map[string]any{
			"endpoint": pattern,
			"backend":  []any{map[string]any{"url_pattern": "/x", "host": []string{"http://127.0.0.1:8081"}}},
		}},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = config.Compile("fuzz.json", b)
	if err == nil {
		return true, ""
	}
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("compile %q: %v", pattern, err)
	}
	var lines []string
	for _, v := range ve.Violations {
		if v.GetPath() == "endpoints[0].endpoint" {
			lines = append(lines, config.FormatViolation(v))
		}
	}
	return len(lines) == 0, strings.Join(lines, "; ")
}

// FuzzRouteGrammar proves the control plane's validator and the edge router
// agree on route patterns: whatever the control plane accepts, the edge
// compiles (so a pushed config never fails on the edge for its paths), and,
// outside the control plane's documented extra rules, whatever the edge
// refuses the control plane refuses too.
func FuzzRouteGrammar(f *testing.F) {
	for _, s := range []string{
		"/", "/users", "/users/{id}", "/users/{id}/posts/{post}", "/files/*", "/*", "/a/{b}/*",
		"/file.{ext}", "/v{major}.{minor}", "/{a}{b}", "/{}", "/{a", "/a}", "/a*b", "/a/*/b",
		"users", "/{a}/{a}", "/{a-b_c}", "/{a.b}", "/__health", "/__debug/x", "/a//b", "/a/",
		"/" + strings.Repeat("{p}/", 40), "/{é}", "/a b", "/a?b",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, pattern string, disableRest bool) {
		if len(pattern) > 512 || !utf8Valid(pattern) {
			return
		}
		_, routerErr := router.New(router.Config{Routes: []router.Route{{Method: "GET", Pattern: pattern, AllowMixed: disableRest}}})
		ok, violations := compiles(t, pattern, disableRest)
		if ok && routerErr != nil {
			t.Fatalf("%q (disable_rest %v): the control plane accepts it, the edge router refuses it: %v", pattern, disableRest, routerErr)
		}
		if !ok && routerErr == nil && !controlPlaneOnly(pattern) {
			t.Fatalf("%q (disable_rest %v): the edge router accepts it, the control plane refuses it: %s", pattern, disableRest, violations)
		}
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
