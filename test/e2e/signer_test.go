package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// The answers of KrakenD CE 2.12.1's auth/signer for signerConfig over
// signerBackend, recorded on loopback with the private JWKS of
// edge/auth/testdata (HS256 and RS256 signatures are deterministic).
const (
	krakendSignedHS     = "{\"access_token\":\"eyJhbGciOiJIUzI1NiIsImtpZCI6Im9jdDEiLCJ0eXAiOiJKV1QifQ.eyJhcnIiOlsxLHsiYSI6MSwiYiI6Mn1dLCJiaWciOjEyMzQ1Njc4OTAxMjM0NTY3ODkwLCJlIjoxZTMsIm4iOjEuMCwic3ViIjoiYVx1MDAzY2JcdTAwM2VcdTAwMjZjIiwidSI6IsOpXHUyMDI4IiwieiI6bnVsbH0.Hi1-J0o2J734bosQ7L1ex4yeKDmuzXILEnWPuh8cvh8\",\"keep\":1,\"num\":5,\"plain\":\"str\",\"refresh\":\"eyJhbGciOiJIUzI1NiIsImtpZCI6Im9jdDEiLCJ0eXAiOiJKV1QifQ.eyJ4IjoxfQ.tn0FPQ1mr3mBamkk3ISXtUpCQY-P7ODYIz7nzBgLlt8\"}"
	krakendSignedHSFull = "{\"access_token\":\"{\\\"payload\\\":\\\"eyJhcnIiOlsxLHsiYSI6MSwiYiI6Mn1dLCJiaWciOjEyMzQ1Njc4OTAxMjM0NTY3ODkwLCJlIjoxZTMsIm4iOjEuMCwic3ViIjoiYVx1MDAzY2JcdTAwM2VcdTAwMjZjIiwidSI6IsOpXHUyMDI4IiwieiI6bnVsbH0\\\",\\\"protected\\\":\\\"eyJhbGciOiJIUzI1NiIsImtpZCI6Im9jdDEiLCJ0eXAiOiJKV1QifQ\\\",\\\"signature\\\":\\\"Hi1-J0o2J734bosQ7L1ex4yeKDmuzXILEnWPuh8cvh8\\\"}\",\"keep\":1,\"num\":5,\"plain\":\"str\",\"refresh\":\"{\\\"payload\\\":\\\"eyJ4IjoxfQ\\\",\\\"protected\\\":\\\"eyJhbGciOiJIUzI1NiIsImtpZCI6Im9jdDEiLCJ0eXAiOiJKV1QifQ\\\",\\\"signature\\\":\\\"tn0FPQ1mr3mBamkk3ISXtUpCQY-P7ODYIz7nzBgLlt8\\\"}\"}"
	krakendSignedRS     = "{\"access_token\":\"eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYTEiLCJ0eXAiOiJKV1QifQ.eyJhcnIiOlsxLHsiYSI6MSwiYiI6Mn1dLCJiaWciOjEyMzQ1Njc4OTAxMjM0NTY3ODkwLCJlIjoxZTMsIm4iOjEuMCwic3ViIjoiYVx1MDAzY2JcdTAwM2VcdTAwMjZjIiwidSI6IsOpXHUyMDI4IiwieiI6bnVsbH0.h2QIpFJPYtF5hO1rIkSCGJWhG59UcYjRNHNyewEit4YLZ7frrOq90FxFCkr-iviKV1hLo553wRpZv1msoNsqOCfbHx0N39figZh6TiGM8bLBhM5KqVc-GVl8Lo4dC7TlI_280cG7qpTlwlRBltb8darOiWifykd9hPz70DFicW7eUSdlZg6pX2ShxNHz27JU4uFKkGNej3ndO0_9T8_3IVY3Wio8mmsISJC4eQXuxznD4slcQC9G5fR4n18mCpHtDFp8N7ZPfrFICba9Sc6mKIl5eVg48dLeK7cXylSilWYUx2ppliCjSw0iMcM7aTJLHNvkr8j0MdZtx_lJZqawVA\",\"keep\":1,\"num\":5,\"plain\":\"str\",\"refresh\":\"eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYTEiLCJ0eXAiOiJKV1QifQ.eyJ4IjoxfQ.CcOS3C6QHzGwaQ6gFmXFxJDoQdWHpvc2eKsz825scLKmN1-NFwNIqKfDo34tCN5j8EwQJNMc8YXoZlAxonQjwONr50Tk13H0udaNmLA9JxX1qSVsmgNF8jUGzSd42ypN7raVEUJwR2Vha_-3qVu7dx3tR6jV5zxGaXac2-Ko-ABHtYLGMK7q5lQ9qlf3Et-l0-vrwiPrr4m9-Gt5noncjpiPxPAyV0Jw7m-A37uUpHqx6SavjuMlSU_u35ddoqqMqq7IrCeT7X6ZBAQY9bN2g1Jwzl35Ntd15uUvofQUofYDQ_Ulg59jQGnnU-xZ4DebQp1s44ZkBLetXFtxbTz4YA\"}"
)

// signerToken is the backend body: an object to sign (with HTML
// characters, U+2028, numbers as written and nested keys out of order),
// another one, and fields that are not objects.
const signerToken = "{\"access_token\":{\"sub\":\"a<b>&c\",\"n\":1.0,\"e\":1e3,\"big\":12345678901234567890,\"u\":\"\u00e9\u2028\",\"z\":null,\"arr\":[1,{\"b\":2,\"a\":1}]},\"refresh\":{\"x\":1},\"plain\":\"str\",\"num\":5,\"keep\":1}"

func signerBackend(t *testing.T) *testenv.Backend {
	jwks, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "edge", "auth", "testdata", "signer-jwks.json"))
	if err != nil {
		t.Fatal(err)
	}
	return testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Custom", "v1") // KrakenD's signer drops backend headers
		switch r.URL.Path {
		case "/jwks":
			w.Write(jwks)
		case "/tok":
			w.Write([]byte(signerToken))
		case "/null":
			w.Write([]byte("null"))
		case "/array":
			w.Write([]byte(`[{"a":1}]`))
		default:
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"error":"x"}`))
		}
	}))
}

func signerConfig(backend string) string {
	sig := func(extra string) string {
		alg, kid := "HS256", "oct1"
		switch extra {
		case "rs":
			alg, kid, extra = "RS256", "rsa1", ""
		case "no-key":
			kid, extra = "none", ""
		}
		return `{"alg": "` + alg + `", "kid": "` + kid + `", "keys_to_sign": ["access_token", "refresh"], "jwk_url": "` + backend + `/jwks", "disable_jwk_security": true` + extra + `}`
	}
	ep := func(path, url, signer string) string {
		return fmt.Sprintf(`{"endpoint": %q, "backend": [{"url_pattern": %q}], "extra_config": {"auth/signer": %s}}`, path, url, signer)
	}
	return fmt.Sprintf(`{
  "version": 3,
  "timeout": "2s",
  "host": [%q],
  "endpoints": [%s]
}`, backend, strings.Join([]string{
		ep("/hs", "/tok", sig("")),
		ep("/hs-full", "/tok", sig(`, "full": true`)),
		ep("/rs", "/tok", sig("rs")),
		ep("/fail", "/fail", sig("")),
		ep("/array", "/array", sig("")),
		ep("/null", "/null", sig("")),
		ep("/no-key", "/tok", sig("no-key")),
		ep("/xml", "/tok", sig("")), // output_encoding is set below
	}, ",\n    "))
}

// signerCases are KrakenD's answers: 200 JSON without X-KrakenD headers;
// an empty 400 for a backend failure (a non-object body included); an
// empty 401 when the key set has no key kid.
var signerCases = []struct {
	path   string
	status int
	body   string
}{
	{"/hs", 200, krakendSignedHS},
	{"/hs-full", 200, krakendSignedHSFull},
	{"/rs", 200, krakendSignedRS},
	{"/xml", 200, krakendSignedHS},
	{"/fail", 400, ""},
	{"/array", 400, ""},
	{"/null", 200, "null"},
	{"/no-key", 401, ""},
}

func checkSigner(t *testing.T, base string) {
	t.Helper()
	for _, tc := range signerCases {
		code, h, body := testenv.Get(t, base+tc.path)
		if code != tc.status || body != tc.body {
			t.Errorf("%s: %d %q\nwant %d %q", tc.path, code, body, tc.status, tc.body)
		}
		want := map[string]bool{"Date": true, "Content-Length": true}
		if tc.status == 200 {
			want["Content-Type"] = true
			if ct := h.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("%s: Content-Type %q", tc.path, ct)
			}
		}
		for k, v := range h {
			if !want[k] {
				t.Errorf("%s: header %s: %q; KrakenD sends only Date, Content-Length and Content-Type", tc.path, k, v)
			}
		}
	}
}

func signerFile(t *testing.T, backend string) string {
	cfg := strings.Replace(signerConfig(backend), `{"endpoint": "/xml",`, `{"endpoint": "/xml", "output_encoding": "xml",`, 1)
	return testenv.WriteFile(t, t.TempDir(), "krakend.json", cfg)
}

// TestSigner serves auth/signer through `gw-edge run -c` and compares the
// answers byte for byte with KrakenD CE 2.12.1's for the same config and
// backend.
func TestSigner(t *testing.T) {
	bins := testenv.Build(t)
	be := signerBackend(t)
	e := testenv.StartStandalone(t, bins, signerFile(t, be.URL))
	checkSigner(t, e.URL())
}

// TestSignerThroughControlPlane: the same config pushed through the
// control plane; an edge started without the auth.signer feature NACKs it
// and keeps serving its previous plan.
func TestSignerThroughControlPlane(t *testing.T) {
	bins := testenv.Build(t)
	be := signerBackend(t)
	dir := t.TempDir()
	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	edge := testenv.StartEdge(t, bins, cp, "edge-new", "eu", filepath.Join(dir, "new"))
	old := testenv.StartEdge(t, bins, cp, "edge-old", "eu", filepath.Join(dir, "old"), "--disable-feature", "auth.signer")

	r := testenv.Gwctl(t, bins, cp, "push", signerFile(t, be.URL), "--wait", "--timeout", "20s")
	if r.Code != 1 {
		t.Fatalf("push: exit %d, want 1 (edge-old NACKs)\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	mustContain(t, "push output", r.Stdout+r.Stderr, "edge-old", "auth.signer")
	edge.WaitVersion(t, 1, 10*time.Second)
	checkSigner(t, edge.URL())
	if h, _ := old.Health(); h.Version != 0 {
		t.Errorf("NACKing edge serves version %d, want none", h.Version)
	}
}
