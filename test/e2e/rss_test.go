package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// rssFixture reads a feed of edge/response/testdata and KrakenD CE
// 2.12.1's answer for it (recorded on loopback).
func rssFixture(t *testing.T, name string) (feed, want []byte) {
	dir := filepath.Join(testenv.RepoRoot(), "edge", "response", "testdata")
	feed, err := os.ReadFile(filepath.Join(dir, name+".xml"))
	if err != nil {
		t.Fatal(err)
	}
	want, err = os.ReadFile(filepath.Join(dir, name+".krakend.json"))
	if err != nil {
		t.Fatal(err)
	}
	return feed, bytes.TrimSpace(want)
}

func rssSetup(t *testing.T) (cfg string, want map[string][]byte) {
	rss, wantRSS := rssFixture(t, "rss-feed")
	atom, wantAtom := rssFixture(t, "atom-feed")
	be := testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/feed.rss":
			w.Header().Set("Content-Type", "application/rss+xml")
			w.Write(rss)
		case "/feed.atom":
			w.Header().Set("Content-Type", "application/atom+xml")
			w.Write(atom)
		default:
			w.Write([]byte("<html>not a feed</html>"))
		}
	}))
	cfg = fmt.Sprintf(`{
  "version": 3,
  "host": [%q],
  "endpoints": [
    {"endpoint": "/rss", "backend": [{"url_pattern": "/feed.rss", "encoding": "rss"}]},
    {"endpoint": "/atom", "backend": [{"url_pattern": "/feed.atom", "encoding": "rss"}]},
    {"endpoint": "/html", "backend": [{"url_pattern": "/page", "encoding": "rss"}]}
  ]
}`, be.URL)
	return cfg, map[string][]byte{"/rss": wantRSS, "/atom": wantAtom}
}

func checkRSS(t *testing.T, base string, want map[string][]byte) {
	t.Helper()
	for path, body := range want {
		code, h, got := testenv.Get(t, base+path)
		if code != 200 || got != string(body) || h.Get("Content-Type") != "application/json; charset=utf-8" || h.Get("X-Krakend-Completed") != "true" {
			t.Errorf("%s: %d %s %q\n got %s\nwant %s", path, code, h.Get("Content-Type"), h.Get("X-Krakend-Completed"), got, body)
		}
	}
	if code, _, _ := testenv.Get(t, base+"/html"); code != 500 {
		t.Errorf("/html (not a feed): %d, want 500", code)
	}
}

// TestRSS serves encoding rss through `gw-edge run -c`: the answers are
// KrakenD's bytes for the same feeds.
func TestRSS(t *testing.T) {
	bins := testenv.Build(t)
	cfg, want := rssSetup(t)
	e := testenv.StartStandalone(t, bins, testenv.WriteFile(t, t.TempDir(), "krakend.json", cfg))
	checkRSS(t, e.URL(), want)
}

// TestRSSThroughControlPlane: pushed through the control plane; an edge
// without the encoding.rss feature NACKs it.
func TestRSSThroughControlPlane(t *testing.T) {
	bins := testenv.Build(t)
	cfg, want := rssSetup(t)
	dir := t.TempDir()
	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	edge := testenv.StartEdge(t, bins, cp, "edge-new", "eu", filepath.Join(dir, "new"))
	testenv.StartEdge(t, bins, cp, "edge-old", "eu", filepath.Join(dir, "old"), "--disable-feature", "encoding.rss")
	r := testenv.Gwctl(t, bins, cp, "push", testenv.WriteFile(t, dir, "krakend.json", cfg), "--wait", "--timeout", "20s")
	if r.Code != 1 {
		t.Fatalf("push: exit %d, want 1 (edge-old NACKs)\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	mustContain(t, "push output", r.Stdout+r.Stderr, "edge-old", "encoding.rss")
	edge.WaitVersion(t, 1, 10*time.Second)
	checkRSS(t, edge.URL(), want)
}
