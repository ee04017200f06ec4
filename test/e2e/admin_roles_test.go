package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/controlplane/pki"
	"github.com/apigw/gateway/test/testenv"
)

// createToken runs `gw-controlplane token create` against a data dir (the
// control plane may be running) and writes the printed secret to a 0600
// file for gwctl --token-file.
func createToken(t *testing.T, bins testenv.Bins, dataDir, name, role string) (secret, file string) {
	t.Helper()
	out, err := exec.Command(bins.ControlPlane, "token", "create", "--data-dir", dataDir, "--name", name, "--role", role).Output()
	if err != nil {
		t.Fatalf("token create %s: %v", name, err)
	}
	secret = strings.TrimSpace(string(out))
	file = filepath.Join(t.TempDir(), name+".token")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return secret, file
}

// TestAdminTokenRoles: the audit author was whatever the client said, and
// one token could do everything. Named tokens now have roles, are stored
// hashed, take effect on a running control plane within a second, and the
// audit record names the token that acted.
func TestAdminTokenRoles(t *testing.T) {
	bins := testenv.Build(t)
	is := newIssuer(t)
	backend := echoBackend(t, "users")
	dir := t.TempDir()
	cfg := testenv.WriteFile(t, dir, "jwt.json", jwtConfig(backend.URL, is))
	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	ciSecret, ci := createToken(t, bins, cp.DataDir, "ci", "push")
	_, viewer := createToken(t, bins, cp.DataDir, "viewer", "read")
	_, sec := createToken(t, bins, cp.DataDir, "security", "revoke")

	as := func(tokenFile string, args ...string) testenv.Result {
		return testenv.Gwctl(t, bins, cp, append([]string{"--token-file", tokenFile}, args...)...)
	}
	// Picked up without a restart.
	testenv.Eventually(t, 10*time.Second, func() error {
		if r := as(viewer, "status"); r.Code != 0 {
			return fmt.Errorf("viewer status: exit %d %s", r.Code, r.Stderr)
		}
		return nil
	})
	for name, tc := range map[string]struct {
		token string
		args  []string
		want  string
	}{
		"viewer push":     {viewer, []string{"push", cfg}, "not allowed: token \"viewer\" has role read; Push needs push"},
		"ci revoke":       {ci, []string{"revoke", "jti-1"}, "Revoke needs revoke"},
		"security push":   {sec, []string{"push", cfg}, "Push needs push"},
		"ci certs issue":  {ci, []string{"certs", "issue", "--node-id", "e", "--region", "r", "--out", t.TempDir()}, "IssueCertificate needs admin"},
		"viewer rollback": {viewer, []string{"rollback", "1"}, "Rollback needs push"},
	} {
		r := as(tc.token, tc.args...)
		if r.Code != 4 || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 4 and %q", name, r.Code, r.Stderr, tc.want)
		}
	}
	if r := as(ci, "push", cfg, "--author", "alice"); r.Code != 0 {
		t.Fatalf("ci push: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := as(sec, "revoke", "jti-1"); r.Code != 0 {
		t.Fatalf("security revoke: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r := as(viewer, "history")
	mustContain(t, "history", r.Stdout, "token:ci (alice)")
	r = as(viewer, "revocations")
	mustContain(t, "revocations", r.Stdout, "token:security")
	cp.WaitLog(t, 0, 5*time.Second, func(m map[string]any) bool {
		a, _ := m["author"].(string) // the token, then gwctl's user@host
		return m["message"] == "revocation appended" && strings.HasPrefix(a, "token:security (")
	})

	// Only hashes are stored.
	b, err := os.ReadFile(filepath.Join(cp.DataDir, "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), ciSecret) {
		t.Error("tokens.json holds a token in clear")
	}
	if fi, _ := os.Stat(filepath.Join(cp.DataDir, "tokens.json")); fi.Mode().Perm() != 0o600 {
		t.Errorf("tokens.json mode %s, want 0600", fi.Mode().Perm())
	}

	// Deleted: refused within a second or so.
	if out, err := exec.Command(bins.ControlPlane, "token", "delete", "--data-dir", cp.DataDir, "--name", "ci").CombinedOutput(); err != nil {
		t.Fatalf("token delete: %v\n%s", err, out)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if r := as(ci, "status"); r.Code != 4 || !strings.Contains(r.Stderr, "refused the admin token") {
			return errors.New("the deleted token still works")
		}
		return nil
	})

	// A tokens file others can read stops the next start.
	cp.Stop()
	if err := os.Chmod(filepath.Join(cp.DataDir, "tokens.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := testenv.Start(t, "gw-controlplane restart", bins.ControlPlane, cp.Args...)
	testenv.Eventually(t, 10*time.Second, func() error {
		if done, _ := p.Exited(); !done {
			return errors.New("still running")
		}
		return nil
	})
	mustContain(t, "restart", p.Output(), "lets other users read a private key")
}

// TestAdminTLSWhenRemote: a remote admin API carried tokens and
// configurations in plaintext. Off loopback it now needs TLS (the built-in
// PKI's server certificate by default) unless --insecure-admin, which
// warns at start; gwctl --ca speaks TLS to it.
func TestAdminTLSWhenRemote(t *testing.T) {
	bins := testenv.Build(t)
	dir := t.TempDir()
	remote := []string{"--admin-listen", "0.0.0.0:0", "--admin-allow-remote"}

	plain := []string{"--data-dir", filepath.Join(dir, "plain"), "--sync-listen", "127.0.0.1:0", "--log-format", "json"}
	p := testenv.Start(t, "gw-controlplane plaintext admin", bins.ControlPlane, append(plain, remote...)...)
	testenv.Eventually(t, 10*time.Second, func() error {
		if done, _ := p.Exited(); !done {
			return errors.New("still running")
		}
		return nil
	})
	if _, err := p.Exited(); err == nil {
		t.Fatal("plaintext remote admin: exit 0")
	}
	mustContain(t, "refusal", p.Output(), "has no TLS", "--insecure-admin")
	p = testenv.Start(t, "gw-controlplane insecure admin", bins.ControlPlane, append(append(plain, remote...), "--insecure-admin")...)
	p.WaitLog(t, 0, 10*time.Second, func(m map[string]any) bool {
		return m["level"] == "warn" && strings.HasPrefix(fmt.Sprint(m["message"]), "--insecure-admin")
	})
	p.Stop()

	cpDir := filepath.Join(dir, "cp")
	testenv.InitPKI(t, bins, cpDir)
	cp := testenv.StartControlPlane(t, bins, cpDir, remote...)
	cp.WaitLog(t, 0, 5*time.Second, func(m map[string]any) bool { return m["message"] == "listening" && m["admin_tls"] == "builtin-pki" })
	_, port, _ := strings.Cut(cp.Admin, "]:")
	if port == "" {
		_, port, _ = strings.Cut(cp.Admin, "0.0.0.0:")
	}
	cp.Admin = "127.0.0.1:" + port
	ca := filepath.Join(cpDir, "pki", "ca.crt")
	if r := testenv.Gwctl(t, bins, cp, "--ca", ca, "status"); r.Code != 0 {
		t.Fatalf("gwctl --ca status: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := testenv.Gwctl(t, bins, cp, "status"); r.Code != 4 {
		t.Errorf("plaintext gwctl against the TLS admin API: exit %d, want 4\n%s", r.Code, r.Stderr)
	}
	if r := testenv.Gwctl(t, bins, cp, "--tls", "status"); r.Code != 4 {
		t.Errorf("gwctl --tls (system roots) against the built-in CA's certificate: exit %d, want 4\n%s", r.Code, r.Stderr)
	}
}

// TestAdminClientCertificateInAudit: with --admin-tls-client-ca, admin
// clients need a certificate from that CA as well as a token, and audit
// records name both.
func TestAdminClientCertificateInAudit(t *testing.T) {
	bins := testenv.Build(t)
	backend := echoBackend(t, "users")
	dir := t.TempDir()
	opsDir := filepath.Join(dir, "ops-ca") // the operators' CA, not the edges'
	if err := pki.Init(opsDir, []string{"localhost"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	ops, err := pki.Load(opsDir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	certPEM, _, err := ops.Issue(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), "alice", "ops", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	aliceCrt := testenv.WriteFile(t, dir, "alice.crt", string(certPEM))
	aliceKey := testenv.WriteFile(t, dir, "alice.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))

	cpDir := filepath.Join(dir, "cp")
	testenv.InitPKI(t, bins, cpDir)
	opsCA, _, _, _ := pki.Paths(opsDir)
	cp := testenv.StartControlPlane(t, bins, cpDir, "--admin-tls-client-ca", opsCA)
	cp.WaitLog(t, 0, 5*time.Second, func(m map[string]any) bool {
		return m["message"] == "listening" && m["admin_tls"] == "builtin-pki+client-ca"
	})
	ca := filepath.Join(cpDir, "pki", "ca.crt")
	cfg := testenv.WriteFile(t, dir, "gw.json", helloConfig(backend.URL, "/hello"))
	if r := testenv.Gwctl(t, bins, cp, "--ca", ca, "push", cfg); r.Code != 4 {
		t.Errorf("push without a client certificate: exit %d, want 4\n%s", r.Code, r.Stderr)
	}
	if r := testenv.Gwctl(t, bins, cp, "--ca", ca, "--tls-cert", aliceCrt, "--tls-key", aliceKey, "push", cfg, "--author", "change-42"); r.Code != 0 {
		t.Fatalf("push with alice's certificate: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r := testenv.Gwctl(t, bins, cp, "--ca", ca, "--tls-cert", aliceCrt, "--tls-key", aliceKey, "history")
	mustContain(t, "history", r.Stdout, "token:admin, cert:alice (change-42)")
}
