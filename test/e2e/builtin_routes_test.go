package e2e

import (
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/apigw/gateway/test/testenv"
)

// TestBuiltinRoutesInsideServiceLayers: the gateway's own routes sit where
// KrakenD puts them. CORS wraps /__health, /__debug/ and /__echo/ like every
// route; security/http and the bot detector guard /__debug/ and /__echo/
// but not /__health (gin middleware added after the health route); the
// health route is GET only, so other methods get gin's 405. Every answer is
// the one KrakenD CE 2.12.1 gave to the same request on the same file, all
// headers compared (but Date and our X-Apigw-Snapshot-*), found by KrakenD's
// integration fixture replayed against both gateways.
func TestBuiltinRoutesInsideServiceLayers(t *testing.T) {
	bins := testenv.Build(t)
	be := parityBackend(t)
	cfg := testenv.WriteFile(t, t.TempDir(), "krakend.json", `{
  "version": 3,
  "echo_endpoint": true,
  "extra_config": {
    "security/cors": {"allow_origins": ["*"], "allow_methods": ["GET", "POST"], "expose_headers": ["Content-Length"], "max_age": "12h"},
    "security/bot-detector": {"deny": ["badbot"]},
    "security/http": {"frame_deny": true}
  },
  "endpoints": [
    {"endpoint": "/e", "backend": [{"host": ["`+be.URL+`"], "url_pattern": "/echo"}]}
  ]
}`)
	e := testenv.StartStandalone(t, bins, cfg, "-d")

	const (
		origin   = "Origin: http://a.example"
		bot      = "User-Agent: badbot"
		jsonUTF8 = "Content-Type: application/json; charset=utf-8"
		vary     = "Vary: Origin"
		frame    = "X-Frame-Options: DENY"
		kd       = "X-Krakend: Version apigw-1"
		inc      = "X-Krakend-Completed: false"
		acao     = "Access-Control-Allow-Origin: *"
		aceh     = "Access-Control-Expose-Headers: Content-Length"
		acma     = "Access-Control-Max-Age: 43200"
		preVary  = "Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
		pong     = `{"message":"pong"}`
		health   = "HEALTH" // KrakenD's health body, its time masked
	)
	method405 := []string{"Content-Type: text/plain", vary, frame, kd, inc, "Content-Length: 22"}
	for _, tc := range []struct {
		method, path string
		req          []string
		status       int
		headers      []string
		body         string
	}{
		{"GET", "/__health", nil, 200, []string{jsonUTF8, vary, "Content-Length: 90"}, health},
		{"GET", "/__health", []string{origin}, 200, []string{acao, aceh, jsonUTF8, vary, "Content-Length: 90"}, health},
		{"GET", "/__health", []string{bot}, 200, []string{jsonUTF8, vary, "Content-Length: 90"}, health},
		{"POST", "/__health", nil, 405, method405, "405 method not allowed"},
		{"HEAD", "/__health", nil, 405, method405, ""},
		{"PUT", "/__health", []string{origin}, 405, method405, "405 method not allowed"},
		{"OPTIONS", "/__health", []string{origin, "Access-Control-Request-Method: GET"}, 204,
			[]string{"Access-Control-Allow-Methods: GET", acao, acma, preVary}, ""},
		{"GET", "/__debug/x", []string{origin}, 200, []string{acao, aceh, jsonUTF8, vary, frame, "Content-Length: 18"}, pong},
		{"GET", "/__debug/x", []string{bot}, 403, []string{vary, frame, "Content-Length: 0"}, ""},
		{"POST", "/__debug/x", nil, 200, []string{jsonUTF8, vary, frame, "Content-Length: 18"}, pong},
		{"OPTIONS", "/__debug/x", []string{origin, "Access-Control-Request-Method: POST"}, 204,
			[]string{"Access-Control-Allow-Methods: POST", acao, acma, preVary}, ""},
		{"GET", "/__echo/x", []string{bot}, 403, []string{vary, frame, "Content-Length: 0"}, ""},
		{"GET", "/__debug", []string{origin}, 301, []string{acao, aceh, "Content-Type: text/html; charset=utf-8",
			"Location: /__debug/", vary, "Content-Length: 44"}, `<a href="/__debug/">Moved Permanently</a>.` + "\n\n"},
		{"HEAD", "/__debug", nil, 307, []string{"Content-Type: text/html; charset=utf-8", "Location: /__debug/", vary}, ""},
		{"GET", "/e", []string{bot}, 403, []string{vary, frame, "Content-Length: 0"}, ""},
		{"GET", "/nothing", []string{origin}, 404, []string{acao, aceh, "Content-Type: text/plain", vary, frame, kd, inc,
			"Content-Length: 18"}, "404 page not found"},
		// Odd spellings of the builtin routes are routes of gin's router
		// in KrakenD: its fixed-path and trailing-slash redirects (before
		// any gin middleware: no security/http, no bot detector), or the
		// route itself for a percent-encoded or inner-slash spelling.
		{"GET", "/__HEALTH", []string{origin, bot}, 301, moved("/__health", acao, aceh, vary), movedBody("/__health")},
		{"GET", "//__health", []string{origin, bot}, 301, moved("/__health", acao, aceh, vary), movedBody("/__health")},
		{"GET", "/__health/", []string{origin, bot}, 301, moved("/__health", acao, aceh, vary), movedBody("/__health")},
		{"GET", "/__h%65alth", []string{origin, bot}, 200, []string{acao, aceh, jsonUTF8, vary, "Content-Length: 90"}, health},
		{"GET", "/__DEBUG/x", []string{origin, bot}, 301, moved("/__debug/x", acao, aceh, vary), movedBody("/__debug/x")},
		{"GET", "//__debug/x", []string{origin, bot}, 301, moved("/__debug/x", acao, aceh, vary), movedBody("/__debug/x")},
		{"GET", "/__debug//x", []string{origin, bot}, 403, []string{acao, aceh, vary, frame, "Content-Length: 0"}, ""},
		{"GET", "/__debug//x", nil, 200, []string{jsonUTF8, vary, frame, "Content-Length: 18"}, pong},
		// The same holds for the endpoints' redirects: security/http is gin
		// middleware, so a redirect carries no X-Frame-Options.
		{"GET", "/E", []string{origin, bot}, 301, moved("/e", acao, aceh, vary), movedBody("/e")},
		{"GET", "/e/", []string{origin, bot}, 301, moved("/e", acao, aceh, vary), movedBody("/e")},
	} {
		name := tc.method + " " + tc.path + " " + strings.Join(tc.req, ",")
		req, err := http.NewRequest(tc.method, e.URL()+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("User-Agent", "probe")
		for _, h := range tc.req {
			k, v, _ := strings.Cut(h, ": ")
			req.Header.Set(k, v)
		}
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := string(b)
		if strings.HasPrefix(body, `{"agents":{},"now":"`) && strings.HasSuffix(body, `","status":"ok"}`) {
			body = health
		}
		// The health body carries the time, whose length varies (RFC 3339
		// with trailing zeros cut): its Content-Length is not compared.
		timed := body == health
		var got []string
		for k, vs := range resp.Header {
			if k == "Date" || strings.HasPrefix(k, "X-Apigw-Snapshot-") || (timed && k == "Content-Length") {
				continue
			}
			for _, v := range vs {
				got = append(got, k+": "+v)
			}
		}
		sort.Strings(got)
		var want []string
		for _, h := range tc.headers {
			if !timed || !strings.HasPrefix(h, "Content-Length: ") {
				want = append(want, h)
			}
		}
		sort.Strings(want)
		if resp.StatusCode != tc.status || strings.Join(got, "\n") != strings.Join(want, "\n") || body != tc.body {
			t.Errorf("%s = %d\n%s\n%q\nwant (KrakenD) %d\n%s\n%q", name, resp.StatusCode, strings.Join(got, "\n"), body,
				tc.status, strings.Join(want, "\n"), tc.body)
		}
	}
}

// moved is the header set of gin's 301 to loc, with extra headers.
func moved(loc string, extra ...string) []string {
	return append([]string{"Content-Type: text/html; charset=utf-8", "Location: " + loc,
		"Content-Length: " + strconv.Itoa(len(movedBody(loc)))}, extra...)
}

// movedBody is Go's http.Redirect body for a GET, which gin writes.
func movedBody(loc string) string { return `<a href="` + loc + `">Moved Permanently</a>.` + "\n\n" }

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
