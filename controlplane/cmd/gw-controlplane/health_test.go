package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apigw/gateway/controlplane/store"
)

func probe(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestHealthProbes: /healthz answers while the process serves; /readyz
// follows the store (a real bbolt file) and the shutdown signal.
func TestHealthProbes(t *testing.T) {
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "cp.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mux := http.NewServeMux()
	registerHealth(ctx, mux, st)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	if code, body := probe(t, srv, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body := probe(t, srv, "/readyz"); code != 200 || body != "ok\n" {
		t.Fatalf("/readyz with an open store: %d %q", code, body)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if code, body := probe(t, srv, "/readyz"); code != 503 || !strings.HasPrefix(body, "store: ") {
		t.Fatalf("/readyz with a closed store: %d %q, want 503 store: ...", code, body)
	}
	cancel()
	if code, body := probe(t, srv, "/readyz"); code != 503 || body != "shutting down\n" {
		t.Fatalf("/readyz after the signal: %d %q", code, body)
	}
	if code, _ := probe(t, srv, "/healthz"); code != 200 {
		t.Fatalf("/healthz after the signal: %d, want 200 (alive while draining)", code)
	}
	resp, err := srv.Client().Post(srv.URL+"/readyz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /readyz: %d, want 405", resp.StatusCode)
	}
}
