package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

func newIssuer(t *testing.T) *testenv.Issuer {
	t.Helper()
	is, err := testenv.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(is.Close)
	return is
}

func token(t *testing.T, is *testenv.Issuer, sub, jti string, exp time.Time) string {
	t.Helper()
	tok, err := is.Token(sub, jti, exp)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func jwtConfig(backendURL string, is *testenv.Issuer) string {
	return fmt.Sprintf(`{
  "version": 3,
  "host": [%q],
  "extra_config": {
    "auth/revoker": {"N": 10000, "P": 0.000000001, "TTL": 7200, "token_keys": ["jti", "sub"]}
  },
  "endpoints": [{
    "endpoint": "/me",
    "input_headers": ["X-User"],
    "backend": [{"url_pattern": "/users/{JWT.sub}"}],
    "extra_config": {"auth/validator": %s}
  }]
}`, backendURL, strings.Replace(is.ValidatorConfig(), "{", `{"propagate_claims": [["sub", "X-User"]], `, 1))
}

// call sends GET /me with a bearer token and returns the status and the
// upstream path the backend saw (empty unless 200).
func callMe(t *testing.T, e *testenv.Edge, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.URL()+"/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /me on %s: %v", e.Name, err)
	}
	defer resp.Body.Close()
	var m map[string]string
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m["path"]
}

// TestRevocationAcrossFleet revokes tokens once with gwctl and checks that
// two real edges reject them, that an edge restarted while the control
// plane is down still rejects them, and that an expired revocation lets the
// token through again when the token itself is still valid.
func TestRevocationAcrossFleet(t *testing.T) {
	bins := testenv.Build(t)
	is := newIssuer(t)
	backend := echoBackend(t, "users")
	dir := t.TempDir()
	cfg := testenv.WriteFile(t, dir, "jwt.json", jwtConfig(backend.URL, is))

	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	e1 := testenv.StartEdge(t, bins, cp, "edge-a", "eu", filepath.Join(dir, "a"))
	e2 := testenv.StartEdge(t, bins, cp, "edge-b", "us", filepath.Join(dir, "b"))
	edges := []*testenv.Edge{e1, e2}
	if r := testenv.Gwctl(t, bins, cp, "push", cfg, "--wait", "--timeout", "20s"); r.Code != 0 {
		t.Fatalf("push: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	hour := time.Now().Add(time.Hour)
	alice := token(t, is, "alice", "jti-alice", hour)
	bob := token(t, is, "bob", "jti-bob", hour)
	carol := token(t, is, "carol", "jti-carol", hour)
	expect := func(what string, token string, wantCode int) {
		t.Helper()
		for _, e := range edges {
			testenv.Eventually(t, 5*time.Second, func() error {
				if code, _ := callMe(t, e, token); code != wantCode {
					return fmt.Errorf("%s on %s: status %d, want %d", what, e.Name, code, wantCode)
				}
				return nil
			})
		}
	}

	for _, e := range edges {
		code, path := callMe(t, e, alice)
		if code != http.StatusOK || path != "/users/alice" {
			t.Fatalf("valid token on %s: %d %q, want 200 /users/alice", e.Name, code, path)
		}
	}
	expect("no token", "", http.StatusUnauthorized)

	r := testenv.Gwctl(t, bins, cp, "revoke", "jti-alice", "--wait", "--timeout", "10s")
	if r.Code != 0 {
		t.Fatalf("revoke: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	mustContain(t, "revoke output", r.Stdout, "2/2 edges at revocation seq 1")
	// --wait returned: both edges enforce it now, no retry needed.
	for _, e := range edges {
		if code, _ := callMe(t, e, alice); code != http.StatusUnauthorized {
			t.Errorf("revoked token on %s: status %d, want 401", e.Name, code)
		}
	}
	expect("bob before his revocation", bob, http.StatusOK)

	if r := testenv.Gwctl(t, bins, cp, "revoke", "--claim", "sub", "bob", "--wait"); r.Code != 0 {
		t.Fatalf("revoke sub: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	expect("bob after revoking his subject", bob, http.StatusUnauthorized)

	if r := testenv.Gwctl(t, bins, cp, "revoke", "jti-carol", "--until", "2s", "--wait"); r.Code != 0 {
		t.Fatalf("revoke carol: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	expect("carol while revoked", carol, http.StatusUnauthorized)
	list := testenv.Gwctl(t, bins, cp, "revocations")
	mustContain(t, "revocations", list.Stdout, "jti-alice", "bob", "jti-carol")

	// The revocation of carol lapses 2 s after it was made (each edge's own
	// clock); her token is otherwise valid. Bounded wait on the answer.
	for _, e := range edges {
		testenv.Eventually(t, 15*time.Second, func() error {
			if code, _ := callMe(t, e, carol); code != http.StatusOK {
				return fmt.Errorf("carol after her revocation lapsed on %s: status %d, want 200", e.Name, code)
			}
			return nil
		})
	}

	// Control plane gone, an edge restarted: it still knows every revocation.
	cp.Kill()
	e1.Kill()
	e1.RestartSamePort(t)
	e1.WaitVersion(t, 1, 5*time.Second)
	for token, want := range map[string]int{alice: 401, bob: 401, carol: 200} {
		if code, _ := callMe(t, e1, token); code != want {
			t.Errorf("restarted edge with the control plane down: status %d, want %d (token %s…)", code, want, token[:strings.IndexByte(token, '.')])
		}
	}
}
