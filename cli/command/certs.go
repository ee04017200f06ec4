package command

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

var certsCommand = subcommand{
	name:    "certs",
	args:    "issue --node-id ID --region R [--out DIR] [--validity D]",
	summary: "issue an edge's mTLS certificate from the control plane's built-in CA",
	remote:  true,
	run:     runCerts,
}

// runCerts generates the edge's key here (it never leaves this machine),
// sends a certificate request, and writes DIR/<node-id>.key (0600),
// DIR/<node-id>.crt and DIR/ca.crt.
func runCerts(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 || args[0] != "issue" {
		return exitf(ExitUsage, "certs: the only subcommand is issue")
	}
	fs := c.newFlagSet()
	c.rpcTimeoutFlag(fs)
	node := fs.String("node-id", "", "the edge's node id (its --node-id); required")
	region := fs.String("region", "", "the edge's region (its --region); required")
	out := fs.String("out", ".", "directory to write <node-id>.key, <node-id>.crt and ca.crt into")
	validity := fs.Duration("validity", 90*24*time.Hour, "certificate lifetime (at most a year)")
	if _, err := parse(fs, args[1:], 0); err != nil {
		return helpOK(err)
	}
	if *node == "" || *region == "" {
		return exitf(ExitUsage, "certs issue: --node-id and --region are required")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("certs issue: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: *node}}, key)
	if err != nil {
		return fmt.Errorf("certs issue: %w", err)
	}
	a, err := c.dial()
	if err != nil {
		return err
	}
	defer a.close()
	resp, err := call(ctx, a, "certs issue", a.api.IssueCertificate, &gatewayv1.IssueCertificateRequest{
		NodeId: *node, Region: *region, ValiditySeconds: int64(validity.Seconds()),
		CsrPem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
	})
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("certs issue: %w", err)
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return fmt.Errorf("certs issue: %w", err)
	}
	keyPath := filepath.Join(*out, *node+".key")
	certPath := filepath.Join(*out, *node+".crt")
	caPath := filepath.Join(*out, "ca.crt")
	for _, f := range []struct {
		path string
		b    []byte
		mode os.FileMode
	}{
		{keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600},
		{certPath, []byte(resp.GetCertificatePem()), 0o644},
		{caPath, []byte(resp.GetCaPem()), 0o644},
	} {
		if err := writeFileAtomic(f.path, f.b, f.mode); err != nil {
			return fmt.Errorf("certs issue: %w", err)
		}
	}
	fmt.Fprintf(c.stdout, "issued %s (region %s), valid until %s\n  gw-edge --tls-cert %s --tls-key %s --controlplane-ca %s\n",
		*node, *region, time.UnixMilli(resp.GetNotAfterUnixMs()).UTC().Format(time.RFC3339), certPath, keyPath, caPath)
	return nil
}

// writeFileAtomic replaces path with b (mode applied before the rename, so
// a key is never readable by others, even for a moment).
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
