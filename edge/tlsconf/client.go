package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// NewClient reads the files of spec (client_tls) and returns the
// configuration of the upstream client's TLS connections, with a key that
// identifies it: the settings and the content of every file read. A nil
// spec gives a nil configuration and an empty key. Files are read when a
// plan is built: a snapshot applied after the files change builds clients
// with the new ones.
func NewClient(spec *gatewayv1.ClientTLS) (cfg *tls.Config, key string, err error) {
	if spec == nil {
		return nil, "", nil
	}
	cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	s := &Server{}
	st := &serverState{digest: sha256.New()}
	cfg.InsecureSkipVerify = spec.GetAllowInsecureConnections() //nolint:gosec // operator opt-in (allow_insecure_connections)
	if v := spec.GetMinVersion(); v != 0 {
		cfg.MinVersion = uint16(v)
	}
	cfg.MaxVersion = uint16(spec.GetMaxVersion())
	cfg.CipherSuites = uint16s(spec.GetCipherSuites())
	cfg.CurvePreferences = curves(spec.GetCurvePreferences())
	pool, err := s.pool(st, spec.GetDisableSystemCaPool(), spec.GetCaCerts(), "http_client.tls.ca_certs")
	if err != nil {
		return nil, "", err
	}
	cfg.RootCAs = pool
	for i, k := range spec.GetClientCerts() {
		p := fmt.Sprintf("http_client.tls.client_certs[%d]", i)
		certPEM, err := s.read(st, p+".certificate", k.GetCertificate())
		if err != nil {
			return nil, "", err
		}
		keyPEM, err := s.read(st, p+".private_key", k.GetPrivateKey())
		if err != nil {
			return nil, "", err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, "", &FileError{Path: p, File: k.GetCertificate() + ", " + k.GetPrivateKey(), Err: err}
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	return cfg, specKey(spec) + hex.EncodeToString(st.digest.Sum(nil)), nil
}

// specKey encodes spec injectively.
func specKey(spec *gatewayv1.ClientTLS) string {
	var b strings.Builder
	str := func(s string) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	nums := func(v []uint32) {
		b.WriteString(strconv.Itoa(len(v)))
		for _, x := range v {
			b.WriteByte(',')
			b.WriteString(strconv.FormatUint(uint64(x), 10))
		}
		b.WriteByte(';')
	}
	b.WriteString(strconv.FormatBool(spec.GetAllowInsecureConnections()))
	b.WriteString(strconv.FormatBool(spec.GetDisableSystemCaPool()))
	nums([]uint32{spec.GetMinVersion(), spec.GetMaxVersion()})
	nums(spec.GetCipherSuites())
	nums(spec.GetCurvePreferences())
	b.WriteString(strconv.Itoa(len(spec.GetCaCerts())))
	for _, f := range spec.GetCaCerts() {
		str(f)
	}
	b.WriteString(strconv.Itoa(len(spec.GetClientCerts())))
	for _, k := range spec.GetClientCerts() {
		str(k.GetCertificate())
		str(k.GetPrivateKey())
	}
	return b.String()
}
