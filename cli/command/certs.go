package command

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

var certsCommand = subcommand{
	name:    "certs",
	args:    "issue --node-id ID --region R [--out DIR | --kube-secret NAME] [--validity D]",
	summary: "issue an edge's mTLS certificate from the control plane's built-in CA",
	remote:  true,
	run:     runCerts,
}

// runCerts generates the edge's key here (it never leaves this process),
// sends a certificate request, and writes DIR/<node-id>.key (0600),
// DIR/<node-id>.crt, DIR/ca.crt and DIR/signing.pub: everything the edge
// needs for mTLS and signed snapshots. With --kube-secret it writes nothing
// and prints the same four as a Kubernetes Secret manifest instead (keys
// tls.key, tls.crt, ca.crt, signing.pub), for `| kubectl apply -f -`.
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
	secret := fs.String("kube-secret", "", "print a Kubernetes Secret of this name holding the key, certificate, CA and signing.pub, instead of writing files")
	if _, err := parse(fs, args[1:], 0); err != nil {
		return helpOK(err)
	}
	if *node == "" || *region == "" {
		return exitf(ExitUsage, "certs issue: --node-id and --region are required")
	}
	if *secret != "" && !kubeName(*secret) {
		return exitf(ExitUsage, "certs issue: --kube-secret %q: not a Kubernetes object name (lowercase letters, digits, '-' and '.', at most 253)", *secret)
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
	resp, err := call(ctx, a, "certs issue", gatewayv1.AdminServiceClient.IssueCertificate, &gatewayv1.IssueCertificateRequest{
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
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if *secret != "" {
		return writeKubeSecret(c.stdout, *secret, *node, *region, map[string][]byte{
			"tls.key": keyPEM, "tls.crt": []byte(resp.GetCertificatePem()),
			"ca.crt": []byte(resp.GetCaPem()), "signing.pub": []byte(resp.GetSnapshotPublicKeyPem()),
		})
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return fmt.Errorf("certs issue: %w", err)
	}
	keyPath := filepath.Join(*out, *node+".key")
	certPath := filepath.Join(*out, *node+".crt")
	caPath := filepath.Join(*out, "ca.crt")
	pubPath := filepath.Join(*out, "signing.pub")
	files := []struct {
		path string
		b    []byte
		mode os.FileMode
	}{
		{keyPath, keyPEM, 0o600},
		{certPath, []byte(resp.GetCertificatePem()), 0o644},
		{caPath, []byte(resp.GetCaPem()), 0o644},
	}
	if pub := resp.GetSnapshotPublicKeyPem(); pub != "" {
		files = append(files, struct {
			path string
			b    []byte
			mode os.FileMode
		}{pubPath, []byte(pub), 0o644})
	}
	for _, f := range files {
		if err := writeFileAtomic(f.path, f.b, f.mode); err != nil {
			return fmt.Errorf("certs issue: %w", err)
		}
	}
	fmt.Fprintf(c.stdout, "issued %s (region %s), valid until %s\n  gw-edge --node-id %s --region %s --tls-cert %s --tls-key %s --controlplane-ca %s",
		printable(*node), printable(*region), time.UnixMilli(resp.GetNotAfterUnixMs()).UTC().Format(time.RFC3339),
		printable(*node), printable(*region), certPath, keyPath, caPath)
	if resp.GetSnapshotPublicKeyPem() != "" {
		fmt.Fprintf(c.stdout, " --snapshot-public-key %s", pubPath)
	}
	fmt.Fprintln(c.stdout)
	return nil
}

// writeKubeSecret prints an Opaque Secret holding data (base64, keys in
// order), annotated with the edge's node and region (ids are checked by the
// control plane, so they are plain ASCII).
func writeKubeSecret(w io.Writer, name, node, region string, data map[string][]byte) error {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Secret\ntype: Opaque\nmetadata:\n  name: %s\n  labels:\n    app.kubernetes.io/part-of: apigw\n", name)
	fmt.Fprintf(&b, "  annotations:\n    apigw.dev/node-id: %q\n    apigw.dev/region: %q\ndata:\n", node, region)
	keys := make([]string, 0, len(data))
	for k := range data {
		if len(data[k]) > 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %s\n", k, base64.StdEncoding.EncodeToString(data[k]))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// kubeName reports whether s is a DNS-1123 subdomain (a Secret's name).
func kubeName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if !alnum && (r != '-' && r != '.' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
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
	if err == nil {
		err = f.Sync() // on disk before the rename makes it the file
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
