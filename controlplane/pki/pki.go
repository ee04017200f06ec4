// Package pki is the control plane's built-in certificate authority, for
// operators who have none: `gw-controlplane ca init` creates a CA and the
// control plane's server certificate in the data dir, and `gwctl certs
// issue` has the running control plane sign an edge's certificate request.
//
// An edge certificate names the edge by URI SANs: apigw://node/<node-id>
// and apigw://region/<region>. The control plane takes the edge's identity
// from its verified certificate (see Identity), never from what the edge
// says in its Hello.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apigw/gateway/internal/atomicfile"
)

// Files inside <data-dir>/pki.
const (
	Dir        = "pki"
	CACert     = "ca.crt"
	CAKey      = "ca.key"
	ServerCert = "server.crt"
	ServerKey  = "server.key"
)

// Lifetimes.
const (
	CAValidity          = 10 * 365 * 24 * time.Hour
	ServerValidity      = 365 * 24 * time.Hour
	DefaultEdgeValidity = 90 * 24 * time.Hour
	MaxEdgeValidity     = 365 * 24 * time.Hour
)

// URI SAN scheme and hosts naming an edge.
const (
	uriScheme   = "apigw"
	uriNode     = "node"
	uriRegion   = "region"
	maxIDLength = 128
)

// Paths returns the CA and server files of the PKI under dataDir.
func Paths(dataDir string) (caCert, caKey, serverCert, serverKey string) {
	d := filepath.Join(dataDir, Dir)
	return filepath.Join(d, CACert), filepath.Join(d, CAKey), filepath.Join(d, ServerCert), filepath.Join(d, ServerKey)
}

// Exists reports whether dataDir holds a server certificate of the
// built-in PKI.
func Exists(dataDir string) bool {
	_, _, sc, _ := Paths(dataDir)
	_, err := os.Stat(sc)
	return err == nil
}

// Init creates the CA and a server certificate for hosts (DNS names or IP
// addresses) under dataDir. It refuses to overwrite an existing CA.
func Init(dataDir string, hosts []string, now time.Time) error {
	caCertPath, caKeyPath, srvCertPath, srvKeyPath := Paths(dataDir)
	if _, err := os.Stat(caKeyPath); err == nil {
		return fmt.Errorf("ca init: %s exists; remove the pki directory to start over (every issued certificate then stops working)", caKeyPath)
	}
	if len(hosts) == 0 {
		return errors.New("ca init: no host for the server certificate")
	}
	if err := os.MkdirAll(filepath.Dir(caKeyPath), 0o700); err != nil {
		return fmt.Errorf("ca init: %w", err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("ca init: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "apigw control plane CA", Organization: []string{"apigw"}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("ca init: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return fmt.Errorf("ca init: %w", err)
	}
	srvKey, srvDER, err := serverCert(ca, caKey, hosts, now)
	if err != nil {
		return fmt.Errorf("ca init: %w", err)
	}
	for _, f := range []struct {
		path string
		b    []byte
		mode os.FileMode
	}{
		{caKeyPath, keyPEM(caKey), 0o600},
		{caCertPath, certPEM(caDER), 0o644},
		{srvKeyPath, keyPEM(srvKey), 0o600},
		{srvCertPath, certPEM(srvDER), 0o644},
	} {
		if err := os.WriteFile(f.path, f.b, f.mode); err != nil {
			return fmt.Errorf("ca init: %w", err)
		}
		if err := os.Chmod(f.path, f.mode); err != nil {
			return fmt.Errorf("ca init: %w", err)
		}
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

func keyPEM(k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err) // a P-256 key always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// CA signs edge certificates.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
}

// serverCert makes a sync/admin server key and certificate for hosts (DNS
// names or IP addresses), signed by ca.
func serverCert(ca *x509.Certificate, caKey crypto.Signer, hosts []string, now time.Time) (*ecdsa.PrivateKey, []byte, error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("no host for the server certificate")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "apigw control plane", Organization: []string{"apigw"}},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(ServerValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	return key, der, nil
}

// RenewServer replaces the server certificate of the built-in PKI under
// dataDir with a new key and certificate for hosts (nil: the names of the
// current one), valid ServerValidity from now. Each file is replaced
// atomically, key first; a running control plane picks the pair up
// without a restart. It returns the hosts and the new expiry.
func RenewServer(dataDir string, hosts []string, now time.Time) ([]string, time.Time, error) {
	ca, err := Load(dataDir)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("renew server certificate: %w", err)
	}
	_, _, srvCertPath, srvKeyPath := Paths(dataDir)
	if len(hosts) == 0 {
		b, err := os.ReadFile(srvCertPath)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("renew server certificate: %w (give --host)", err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, time.Time{}, fmt.Errorf("renew server certificate: %s holds no PEM certificate (give --host)", srvCertPath)
		}
		cur, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("renew server certificate: %w (give --host)", err)
		}
		hosts = append(hosts, cur.DNSNames...)
		for _, ip := range cur.IPAddresses {
			hosts = append(hosts, ip.String())
		}
	}
	key, der, err := serverCert(ca.cert, ca.key, hosts, now)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("renew server certificate: %w", err)
	}
	for _, f := range []struct {
		path string
		b    []byte
		mode os.FileMode
	}{{srvKeyPath, keyPEM(key), 0o600}, {srvCertPath, certPEM(der), 0o644}} {
		if err := atomicfile.Write(f.path, f.b, f.mode); err != nil {
			return nil, time.Time{}, fmt.Errorf("renew server certificate: %w", err)
		}
	}
	c, _ := x509.ParseCertificate(der)
	return hosts, c.NotAfter, nil
}

// Load reads the CA of the built-in PKI under dataDir; the key file must
// not be readable by others.
func Load(dataDir string) (*CA, error) {
	caCertPath, caKeyPath, _, _ := Paths(dataDir)
	fi, err := os.Stat(caKeyPath)
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("load ca: %s: mode %s lets other users read the CA key; chmod 600 it", caKeyPath, fi.Mode().Perm())
	}
	pair, err := tls.LoadX509KeyPair(caCertPath, caKeyPath)
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("load ca: the key cannot sign")
	}
	return &CA{cert: cert, certPEM: certPEM(pair.Certificate[0]), key: signer}, nil
}

// CertPEM returns the CA certificate.
func (c *CA) CertPEM() []byte { return c.certPEM }

// Issue signs the public key of csrPEM (whose signature must verify) as
// the certificate of edge nodeID in region, valid for validity (0: the
// default). The names in the CSR are ignored: the certificate names what
// the caller asked for, and the caller is an authenticated operator.
func (c *CA) Issue(csrPEM []byte, nodeID, region string, validity time.Duration, now time.Time) (certPEMOut []byte, notAfter time.Time, err error) {
	if err := CheckID("node id", nodeID); err != nil {
		return nil, time.Time{}, err
	}
	if err := CheckID("region", region); err != nil {
		return nil, time.Time{}, err
	}
	switch {
	case validity == 0:
		validity = DefaultEdgeValidity
	case validity < time.Minute || validity > MaxEdgeValidity:
		return nil, time.Time{}, fmt.Errorf("validity %s: must be between 1m and %s", validity, MaxEdgeValidity)
	}
	blk, _ := pem.Decode(csrPEM)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return nil, time.Time{}, errors.New("csr: no PEM \"CERTIFICATE REQUEST\" block")
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, time.Time{}, fmt.Errorf("csr: %w", err)
	}
	notAfter = now.Add(validity)
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: nodeID, OrganizationalUnit: []string{region}, Organization: []string{"apigw edge"}},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs: []*url.URL{
			{Scheme: uriScheme, Host: uriNode, Path: "/" + nodeID},
			{Scheme: uriScheme, Host: uriRegion, Path: "/" + region},
		},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, csr.PublicKey, c.key)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("issue certificate: %w", err)
	}
	return certPEM(der), notAfter, nil
}

// CheckID checks a node id or region: 1 to 128 characters of [A-Za-z0-9._-].
// Identities travel in logs, metrics labels and terminals; nothing else
// belongs in them.
func CheckID(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s: required", what)
	}
	if len(s) > maxIDLength {
		return fmt.Errorf("%s: %d bytes, at most %d", what, len(s), maxIDLength)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%s: byte %d (%q) is not one of [A-Za-z0-9._-]", what, i, c)
		}
	}
	return nil
}

// Identity returns the edge named by a verified client certificate: the
// node id of its apigw://node/ URI SAN (else its only DNS SAN, else its
// common name, for operators' own PKIs) and the region of its
// apigw://region/ URI SAN ("" when absent: any region is accepted).
func Identity(cert *x509.Certificate) (nodeID, region string, err error) {
	for _, u := range cert.URIs {
		if u.Scheme != uriScheme {
			continue
		}
		v := strings.TrimPrefix(u.Path, "/")
		switch u.Host {
		case uriNode:
			if nodeID != "" && nodeID != v {
				return "", "", fmt.Errorf("client certificate names two nodes (%q, %q)", nodeID, v)
			}
			nodeID = v
		case uriRegion:
			if region != "" && region != v {
				return "", "", fmt.Errorf("client certificate names two regions (%q, %q)", region, v)
			}
			region = v
		}
	}
	if nodeID == "" {
		switch {
		case len(cert.DNSNames) == 1:
			nodeID = cert.DNSNames[0]
		case len(cert.DNSNames) == 0:
			nodeID = cert.Subject.CommonName
		default:
			return "", "", fmt.Errorf("client certificate names %d DNS SANs and no %s://%s/ URI: which node is it?", len(cert.DNSNames), uriScheme, uriNode)
		}
	}
	if err := CheckID("certificate node id", nodeID); err != nil {
		return "", "", err
	}
	return nodeID, region, nil
}
