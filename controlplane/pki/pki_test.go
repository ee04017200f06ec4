package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

func csrFor(t *testing.T, cn string, dns ...string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func parse(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestInitIssueAndIdentity: ca init writes 0600 keys and refuses to run
// twice; an issued certificate names what the operator asked for (not
// what the CSR says), chains to the CA, and reads back as that identity.
func TestInitIssueAndIdentity(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if err := Init(dir, []string{"cp.internal", "127.0.0.1"}, now); err != nil {
		t.Fatal(err)
	}
	caCert, caKey, srvCert, srvKey := Paths(dir)
	for _, p := range []string{caKey, srvKey} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v mode %v, want 0600", p, err, fi.Mode().Perm())
		}
	}
	if err := Init(dir, []string{"x"}, now); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("second init: %v, want refused", err)
	}
	if !Exists(dir) {
		t.Fatal("Exists after Init: false")
	}
	ca, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, notAfter, err := ca.Issue(csrFor(t, "edge-evil", "admin.example"), "edge-1", "eu", 0, now)
	if err != nil {
		t.Fatal(err)
	}
	c := parse(t, certPEM)
	if d := notAfter.Sub(now); d != DefaultEdgeValidity {
		t.Errorf("validity %s, want %s", d, DefaultEdgeValidity)
	}
	if len(c.DNSNames) != 0 || c.Subject.CommonName != "edge-1" {
		t.Errorf("the CSR's names leaked into the certificate: cn %q dns %v", c.Subject.CommonName, c.DNSNames)
	}
	roots := x509.NewCertPool()
	b, _ := os.ReadFile(caCert)
	roots.AppendCertsFromPEM(b)
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("issued certificate does not chain to the CA: %v", err)
	}
	if node, region, err := Identity(c); err != nil || node != "edge-1" || region != "eu" {
		t.Errorf("identity %q %q %v, want edge-1 eu", node, region, err)
	}
	srv := parse(t, mustRead(t, srvCert))
	if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: "cp.internal"}); err != nil {
		t.Errorf("server certificate for cp.internal: %v", err)
	}
	for name, tc := range map[string]struct {
		node, region string
		validity     time.Duration
	}{
		"bad node":       {"edge 1", "eu", 0},
		"empty region":   {"edge-1", "", 0},
		"too long":       {"edge-1", "eu", 2 * MaxEdgeValidity},
		"too short":      {"edge-1", "eu", time.Second},
		"long node name": {strings.Repeat("a", 129), "eu", 0},
	} {
		if _, _, err := ca.Issue(csrFor(t, "x"), tc.node, tc.region, tc.validity, now); err == nil {
			t.Errorf("%s: issued", name)
		}
	}
	if _, _, err := ca.Issue([]byte("junk"), "edge-1", "eu", 0, now); err == nil {
		t.Error("junk CSR: issued")
	}
}

// TestIdentityOfOtherPKIs: without our URI SANs the single DNS SAN or the
// CN names the node; ambiguous certificates are refused.
func TestIdentityOfOtherPKIs(t *testing.T) {
	uri := func(s string) *url.URL { u, _ := url.Parse(s); return u }
	for name, tc := range map[string]struct {
		cert     x509.Certificate
		node, re string
		wantErr  string
	}{
		"uri":            {cert: x509.Certificate{URIs: []*url.URL{uri("apigw://node/e1"), uri("apigw://region/eu")}}, node: "e1", re: "eu"},
		"one dns":        {cert: x509.Certificate{DNSNames: []string{"e2.example"}}, node: "e2.example"},
		"cn":             {cert: x509.Certificate{Subject: pkix.Name{CommonName: "e3"}}, node: "e3"},
		"two dns":        {cert: x509.Certificate{DNSNames: []string{"a", "b"}}, wantErr: "2 DNS SANs"},
		"two nodes":      {cert: x509.Certificate{URIs: []*url.URL{uri("apigw://node/a"), uri("apigw://node/b")}}, wantErr: "two nodes"},
		"two regions":    {cert: x509.Certificate{URIs: []*url.URL{uri("apigw://node/a"), uri("apigw://region/x"), uri("apigw://region/y")}}, wantErr: "two regions"},
		"bad characters": {cert: x509.Certificate{Subject: pkix.Name{CommonName: "e\x1b[2J"}}, wantErr: "not one of"},
		"nothing":        {cert: x509.Certificate{}, wantErr: "required"},
	} {
		node, region, err := Identity(&tc.cert)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %q %q %v, want error %q", name, node, region, err, tc.wantErr)
			}
		case err != nil || node != tc.node || region != tc.re:
			t.Errorf("%s: %q %q %v, want %q %q", name, node, region, err, tc.node, tc.re)
		}
	}
}

// TestRenewServer: a renewed server certificate keeps the names, has a
// new key, chains to the same CA and loads as a pair.
func TestRenewServer(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, []string{"cp.internal", "10.0.0.1"}, time.Now().Add(-300*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	caCert, _, srvCert, srvKey := Paths(dir)
	old := parse(t, mustRead(t, srvCert))
	hosts, notAfter, err := RenewServer(dir, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(hosts, ",") != "cp.internal,10.0.0.1" {
		t.Errorf("hosts %v, want the old certificate's", hosts)
	}
	cur := parse(t, mustRead(t, srvCert))
	if !notAfter.After(old.NotAfter) || cur.SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Errorf("not renewed: %s → %s", old.NotAfter, cur.NotAfter)
	}
	if _, err := tls.LoadX509KeyPair(srvCert, srvKey); err != nil {
		t.Errorf("renewed pair: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(mustRead(t, caCert))
	if _, err := cur.Verify(x509.VerifyOptions{Roots: roots, DNSName: "cp.internal"}); err != nil {
		t.Errorf("renewed certificate: %v", err)
	}
	if fi, _ := os.Stat(srvKey); fi.Mode().Perm() != 0o600 {
		t.Errorf("server key mode %v", fi.Mode().Perm())
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
