package e2e

import (
	"net/http"
	"testing"

	"github.com/apigw/gateway/test/testenv"
)

// TestStandalone serves a KrakenD file with no control plane, the way a
// KrakenD binary would be replaced in dev and CI.
func TestStandalone(t *testing.T) {
	bins := testenv.Build(t)
	backend := echoBackend(t, "b1")
	dir := t.TempDir()
	cfg := testenv.WriteFile(t, dir, "krakend.json", helloConfig(backend.URL, "/up"))

	e := testenv.StartStandalone(t, bins, cfg, "-d")
	if got := bodyField(t, e.URL()+"/hello", "path"); got != "/up" {
		t.Errorf("/hello → %q, want /up", got)
	}
	if got := bodyField(t, e.URL()+"/items/42", "path"); got != "/items/42" {
		t.Errorf("/items/42 → %q", got)
	}
	code, _, body := testenv.Get(t, e.URL()+"/nope")
	if code != http.StatusNotFound || body != "404 page not found" {
		t.Errorf("/nope → %d %s", code, body)
	}
	if h, ok := e.Health(); !ok || h.Version != 1 {
		t.Errorf("health = %+v, %v", h, ok)
	}
}

// TestStandaloneRejectsBadFile exits 1 and prints every violation.
func TestStandaloneRejectsBadFile(t *testing.T) {
	bins := testenv.Build(t)
	dir := t.TempDir()
	cfg := testenv.WriteFile(t, dir, "bad.json", `{"version": 3, "endpoints": [{"endpoint": "nope", "backend": []}]}`)
	p := testenv.Start(t, "gw-edge run", bins.Edge, "run", "-c", cfg, "--listen", "127.0.0.1:0")
	testenv.Eventually(t, 10e9, func() error {
		if exited, _ := p.Exited(); !exited {
			return errorf("still running")
		}
		return nil
	})
	_, err := p.Exited()
	if err == nil || err.Error() != "exit status 1" {
		t.Fatalf("exit: %v, want exit status 1", err)
	}
	mustContain(t, "output", p.Output(), "endpoints[0].endpoint", "endpoints[0].backend")
}
