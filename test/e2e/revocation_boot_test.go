package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// bootConfig is jwtConfig plus an unprotected endpoint.
func bootConfig(backendURL string, is *testenv.Issuer) string {
	c := jwtConfig(backendURL, is)
	return strings.Replace(c, `"endpoints": [{`, `"endpoints": [{"endpoint": "/open", "backend": [{"url_pattern": "/open"}]}, {`, 1)
}

// health returns the edge's /__health status code, its "status" word and
// the X-Apigw-Degraded header.
func health(t *testing.T, e *testenv.Edge) (int, string, string) {
	t.Helper()
	code, h, body := testenv.Get(t, e.URL()+"/__health")
	word := ""
	if i := strings.Index(body, `"status":"`); i >= 0 {
		word = body[i+len(`"status":"`):]
		word = word[:strings.IndexByte(word, '"')]
	}
	return code, word, h.Get("X-Apigw-Degraded")
}

// revocationFiles lists the edge's revocation records.
func revocationFiles(t *testing.T, dataDir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dataDir, "revocations-*.pb"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no revocation records in %s (%v)", dataDir, err)
	}
	return files
}

// TestRevocationStateAtBootFailsClosed: an edge whose revocation records
// are corrupt, or gone, at a restart with the control plane down does not
// serve protected routes as if nothing were revoked: they answer 503,
// /__health answers 503 "degraded" (X-Apigw-Degraded: revocations_unknown),
// unprotected routes keep serving from the stored config, and everything
// returns to normal once the control plane answers again.
func TestRevocationStateAtBootFailsClosed(t *testing.T) {
	bins := testenv.Build(t)
	is := newIssuer(t)
	backend := echoBackend(t, "users")
	dir := t.TempDir()
	cfg := testenv.WriteFile(t, dir, "jwt.json", bootConfig(backend.URL, is))

	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	edge := testenv.StartEdge(t, bins, cp, "edge-a", "eu", filepath.Join(dir, "a"))
	if r := testenv.Gwctl(t, bins, cp, "push", cfg, "--wait", "--timeout", "20s"); r.Code != 0 {
		t.Fatalf("push: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	soon := time.Now().Add(30 * time.Minute)
	alice := token(t, is, "alice", "jti-alice", soon)
	bob := token(t, is, "bob", "jti-bob", soon)
	if r := testenv.Gwctl(t, bins, cp, "revoke", "jti-alice", "--wait", "--timeout", "10s"); r.Code != 0 {
		t.Fatalf("revoke: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	want := func(what string, wantAlice, wantBob, wantOpen, wantHealth int, wantWord, wantCause string) {
		t.Helper()
		testenv.Eventually(t, 15*time.Second, func() error {
			if code, _ := callMe(t, edge, alice); code != wantAlice {
				return fmt.Errorf("%s: revoked token: %d, want %d", what, code, wantAlice)
			}
			if code, _ := callMe(t, edge, bob); code != wantBob {
				return fmt.Errorf("%s: valid token: %d, want %d", what, code, wantBob)
			}
			if code, _, _ := testenv.Get(t, edge.URL()+"/open"); code != wantOpen {
				return fmt.Errorf("%s: unprotected route: %d, want %d", what, code, wantOpen)
			}
			if code, word, cause := health(t, edge); code != wantHealth || word != wantWord || cause != wantCause {
				return fmt.Errorf("%s: health %d %q %q, want %d %q %q", what, code, word, cause, wantHealth, wantWord, wantCause)
			}
			return nil
		})
	}
	want("synced", 401, 200, 200, 200, "ok", "")

	// With auth/revoker (TTL 2 h, leeway 1 s), a token whose revocation
	// could lapse while it is still valid is refused: no exp, exp 1e300, a
	// lifetime (exp - iat) over TTL - 2·leeway even with little of it left,
	// no iat.
	now := time.Now()
	for name, claims := range map[string]map[string]any{
		"no exp":         claimsFor(map[string]any{"jti": "x1", "exp": nil}),
		"exp 1e300":      claimsFor(map[string]any{"jti": "x2", "exp": 1e300}),
		"3 h lifetime":   claimsFor(map[string]any{"jti": "x3", "iat": now.Add(-150 * time.Minute).Unix(), "exp": now.Add(30 * time.Minute).Unix()}),
		"no iat":         claimsFor(map[string]any{"jti": "x4", "iat": nil}),
		"2 h - 2 s (ok)": claimsFor(map[string]any{"jti": "x5", "iat": now.Unix(), "exp": now.Add(2*time.Hour - 2*time.Second).Unix()}),
		"2 h - 1 s":      claimsFor(map[string]any{"jti": "x6", "iat": now.Unix(), "exp": now.Add(2*time.Hour - time.Second).Unix()}),
	} {
		wantCode := http.StatusUnauthorized
		if strings.HasSuffix(name, "(ok)") {
			wantCode = http.StatusOK
		}
		if code, _ := callMe(t, edge, sign(t, is, claims)); code != wantCode {
			t.Errorf("token with %s: status %d, want %d", name, code, wantCode)
		}
	}

	damage := map[string]func(t *testing.T, files []string){
		"corrupt": func(t *testing.T, files []string) {
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				for i := len(b) / 2; i < len(b); i++ {
					b[i] ^= 0xff
				}
				if err := os.WriteFile(f, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		},
		"missing": func(t *testing.T, files []string) {
			for _, f := range files {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			}
		},
	}
	for _, name := range []string{"corrupt", "missing"} {
		cp.Kill()
		edge.Kill()
		damage[name](t, revocationFiles(t, edge.DataDir))
		from := len(edge.Lines())
		edge.RestartSamePort(t)
		edge.WaitLog(t, from, 10*time.Second, func(m map[string]any) bool {
			msg, _ := m["message"].(string)
			return strings.Contains(msg, "protected routes answer 503")
		})
		want(name+" state, control plane down", 503, 503, 200, 503, "degraded", "revocations_unknown")

		// The 503 says nothing about why (an empty body, as every
		// auth refusal without apigw/errors json).
		req, _ := http.NewRequest(http.MethodGet, edge.URL()+"/me", nil)
		req.Header.Set("Authorization", "Bearer "+bob)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || len(body) != 0 {
			t.Fatalf("%s: protected route answered %d %q", name, resp.StatusCode, body)
		}

		cp.RestartSamePorts(t)
		want(name+" state, control plane back", 401, 200, 200, 200, "ok", "")
		// The set is on disk again, so a later restart is not degraded.
		revocationFiles(t, edge.DataDir)
	}
}
