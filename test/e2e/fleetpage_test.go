package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// fleetPageV2 adds a proxy.static endpoint, which an edge started with
// --disable-feature proxy.static refuses.
func fleetPageV2(backendURL string) string {
	return strings.Replace(helloConfig(backendURL, "/v2"), `"endpoints": [`, `"endpoints": [
    {"endpoint": "/status", "backend": [{"url_pattern": "/status"}], "extra_config": {"proxy": {"static": {"strategy": "always", "data": {"ok": true}}}}},`, 1)
}

// TestFleetPageInChromium starts a control plane and four edges (real
// processes) in three regions, pushes two versions (one edge NACKs the
// second), revokes a token and stops one edge, then loads the fleet page
// in a real headless Chromium and checks that it shows that fleet. The
// screenshot is saved in $GW_TEST_ARTIFACTS (else the test's temp dir).
func TestFleetPageInChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed (.ci/run installs Debian's chromium)")
		}
		t.Skip("chromium is not installed")
	}
	bins := testenv.Build(t)
	backend := echoBackend(t, "b1")
	dir := t.TempDir()
	v1 := testenv.WriteFile(t, dir, "v1.json", helloConfig(backend.URL, "/v1"))
	v2 := testenv.WriteFile(t, dir, "v2.json", fleetPageV2(backend.URL))

	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"), "--fleet-listen", "127.0.0.1:0")
	if cp.Fleet == "" {
		t.Fatal("the listening line has no fleet address")
	}
	eu1 := testenv.StartEdge(t, bins, cp, "edge-eu-1", "eu-west", filepath.Join(dir, "e1"), "--metrics-listen", "127.0.0.1:0")
	testenv.StartEdge(t, bins, cp, "edge-eu-2", "eu-west", filepath.Join(dir, "e2"))
	testenv.StartEdge(t, bins, cp, "edge-us-1", "us-east", filepath.Join(dir, "e3"), "--disable-feature", "proxy.static")
	gone := testenv.StartEdge(t, bins, cp, "edge-ap-1", "ap-south", filepath.Join(dir, "e4"))

	if r := testenv.Gwctl(t, bins, cp, "push", v1, "--wait", "--timeout", "20s", "--author", "alice"); r.Code != 0 {
		t.Fatalf("push v1: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	gone.Stop()
	// edge-us-1 NACKs v2: push --wait reports it (exit 1) once the others ACKed.
	if r := testenv.Gwctl(t, bins, cp, "push", v2, "--wait", "--timeout", "20s", "--author", "bob"); r.Code != 1 || !strings.Contains(r.Stdout+r.Stderr, "edge-us-1") {
		t.Fatalf("push v2: exit %d, want 1 naming edge-us-1\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	// The edge's revocation lag gauge moves with the first delta.
	eu1Metrics := metricsURL(t, eu1)
	wantMetric(t, eu1Metrics, "gw_edge_revocation_lag_seconds", 0)
	if r := testenv.Gwctl(t, bins, cp, "revoke", "tok-fleet-page", "--author", "carol", "--wait"); r.Code != 0 {
		t.Fatalf("revoke: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	wantMetric(t, eu1Metrics, "gw_edge_revocation_seq", 1)
	if lag, ok := scrape(t, eu1Metrics, "gw_edge_revocation_lag_seconds"); !ok || lag <= 0 || lag > 30 {
		t.Errorf("gw_edge_revocation_lag_seconds = %v (present %v) after a revocation, want a small positive lag", lag, ok)
	}

	base := "http://" + cp.Fleet + "/"
	// Behind the admin token: refused without it (and audited), served
	// with it as a bearer token.
	for _, auth := range []string{"", "Bearer wrong", "Basic " + "Zm9vOmJhcg=="} {
		req, _ := http.NewRequest(http.MethodGet, base, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Fatalf("auth %q: %d %v, want 401 with a basic challenge", auth, resp.StatusCode, resp.Header)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, base, nil)
	req.Header.Set("Authorization", "Bearer "+cp.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("bearer: %d %v", resp.StatusCode, resp.Header)
	}
	if r := testenv.Gwctl(t, bins, cp, "audit", "--action", "get"); !strings.Contains(r.Stdout, "refused (Unauthenticated)") {
		t.Fatalf("refused page loads are not in the audit log:\n%s%s", r.Stdout, r.Stderr)
	}

	// The browser sends the token as the basic-auth password.
	url := "http://fleet:" + cp.Token + "@" + cp.Fleet + "/"
	chrome := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		full := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
			"--no-first-run", "--disable-extensions", "--user-data-dir=" + t.TempDir(), "--window-size=1280,1400"}, args...)
		cmd := exec.CommandContext(ctx, chromium, append(full, url)...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v", args, err)
		}
		return string(out)
	}
	dom := chrome("--dump-dom")
	for _, want := range []string{
		`<title>gw-controlplane fleet</title>`,
		`data-region="eu-west"`, `data-region="us-east"`, `data-region="ap-south"`,
		`data-node="edge-eu-1" data-state="in_sync"`,
		`data-node="edge-eu-2" data-state="in_sync"`,
		`data-node="edge-us-1" data-state="rejected"`,
		`data-node="edge-ap-1" data-state="disconnected"`,
		`version <b>2</b>`,
		`edge-us-1 (us-east) rejected version 2`,
		`edge-ap-1 (ap-south) is disconnected since`,
		`<td><code>tok-fleet-page</code></td>`,
		`+ GET /status`,
		`class="conv-version" data-version="2"`,
		`<b>v2</b>: 2/4 edges acknowledged`,
		`<b>v1</b>: 4/4 edges acknowledged`,
		`<polyline class="step"`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if n := len(regexp.MustCompile(`<tr class="edge"`).FindAllString(dom, -1)); n != 4 {
		t.Errorf("the page lists %d edges, want 4", n)
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	outDir := os.Getenv("GW_TEST_ARTIFACTS")
	if outDir == "" {
		outDir = t.TempDir()
	}
	shot := filepath.Join(outDir, "fleet-page.png")
	chrome("--screenshot=" + shot)
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if len(b) < 10_000 || string(b[1:4]) != "PNG" {
		t.Fatalf("screenshot %s is not a PNG of a page (%d bytes)", shot, len(b))
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(b))
}
