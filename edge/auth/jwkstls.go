package auth

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"golang.org/x/crypto/nacl/secretbox"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// DefaultJWKSCipherSuites are the TLS 1.2 suites a JWKS client offers when
// cipher_suites is empty: krakend-jose's default list (TLS 1.3 suites are
// not configurable in Go and always on).
var DefaultJWKSCipherSuites = []uint16{
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,
}

// ErrPinnedKeyNotFound is the handshake error of a JWKS server whose
// certificates match none of jwk_fingerprints.
var ErrPinnedKeyNotFound = errors.New("jwks tls: no certificate matches jwk_fingerprints")

// tlsKey is the sourceSpec form of a JWKSClientTLS ("" when unset).
func tlsKey(t *gatewayv1.JWKSClientTLS) string {
	if t == nil || (len(t.GetCipherSuites()) == 0 && len(t.GetFingerprints()) == 0 && t.GetLocalCa() == "") {
		return ""
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(t)
	return string(b)
}

// tlsProblem is one setting transportFor refuses: the field (as in the
// config, "cipher_suites[0]") and why.
type tlsProblem struct{ field, detail string }

// checkJWKSTLS reports what transportFor would refuse, without reading
// local_ca.
func checkJWKSTLS(t *gatewayv1.JWKSClientTLS) []tlsProblem {
	var out []tlsProblem
	for i, id := range t.GetCipherSuites() {
		if id > 0xffff || !secureSuite(uint16(id)) {
			out = append(out, tlsProblem{fmt.Sprintf("cipher_suites[%d]", i), fmt.Sprintf("%d is not a secure TLS cipher suite Go implements", id)})
		}
	}
	for i, f := range t.GetFingerprints() {
		if len(f) != sha256.Size {
			out = append(out, tlsProblem{fmt.Sprintf("jwk_fingerprints[%d]", i), fmt.Sprintf("%d bytes, want a %d-byte SHA-256 digest", len(f), sha256.Size)})
		}
	}
	return out
}

func secureSuite(id uint16) bool {
	for _, c := range tls.CipherSuites() {
		if c.ID == id {
			return true
		}
	}
	return false
}

// transportFor builds the transport of a source with its own TLS settings
// (key is a tlsKey): the cipher suites, the system roots plus local_ca,
// and, with fingerprints, a check after the usual chain verification that
// one certificate the server sent has a pinned public key (krakend-jose
// hashes the PKIX DER form of each peer certificate's key with SHA-256).
func (k *Keys) transportFor(key string) (*http.Transport, error) {
	t := &gatewayv1.JWKSClientTLS{}
	if err := proto.Unmarshal([]byte(key), t); err != nil {
		return nil, fmt.Errorf("jwks tls: %w", err)
	}
	if errs := checkJWKSTLS(t); len(errs) > 0 {
		return nil, fmt.Errorf("jwks tls: %s: %s", errs[0].field, errs[0].detail)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: DefaultJWKSCipherSuites, RootCAs: k.cfg.RootCAs}
	if cs := t.GetCipherSuites(); len(cs) > 0 {
		cfg.CipherSuites = make([]uint16, len(cs))
		for i, id := range cs {
			cfg.CipherSuites[i] = uint16(id)
		}
	}
	if ca := t.GetLocalCa(); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("jwks tls: jwk_local_ca: %w", err)
		}
		pool := k.cfg.RootCAs
		if pool == nil {
			if pool, err = x509.SystemCertPool(); err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
		} else {
			pool = pool.Clone()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("jwks tls: jwk_local_ca %q: no PEM certificate in it", ca)
		}
		cfg.RootCAs = pool
	}
	if pins := t.GetFingerprints(); len(pins) > 0 {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			for _, c := range cs.PeerCertificates {
				der, err := x509.MarshalPKIXPublicKey(c.PublicKey)
				if err != nil {
					continue
				}
				sum := sha256.Sum256(der)
				for _, p := range pins {
					if bytes.Equal(sum[:], p) {
						return nil
					}
				}
			}
			return ErrPinnedKeyNotFound
		}
	}
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: k.cfg.FetchTimeout,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}, nil
}

// encKey is the sourceSpec form of a JWKSEncryption ("" when unset).
func encKey(e *gatewayv1.JWKSEncryption) string {
	if e == nil || len(e.GetKeeperKey()) == 0 {
		return ""
	}
	return string(e.GetKeeperKey()) + string(e.GetCypherKey())
}

// decryptJWKS opens a jwk_local_path file encrypted as krakend-jose's
// secrets package writes it (enc is an encKey): the cypher key is opened
// with the keeper's 32-byte key (gocloud.dev localsecrets: NaCl secretbox,
// 24-byte nonce first), and the file with AES-256-GCM whose key is the hex
// MD5 of that plain key (12-byte nonce first).
func decryptJWKS(data []byte, enc string) ([]byte, error) {
	if len(enc) < 32 {
		return nil, errors.New("decrypt jwks: no keeper key")
	}
	var keeper [32]byte
	copy(keeper[:], enc[:32])
	sealed := []byte(enc[32:])
	if len(sealed) < 24 {
		return nil, errors.New("decrypt jwks: cypher_key is too short")
	}
	var nonce [24]byte
	copy(nonce[:], sealed[:24])
	plainKey, ok := secretbox.Open(nil, sealed[24:], &nonce, &keeper)
	if !ok {
		return nil, errors.New("decrypt jwks: cypher_key does not open with the secret_url key")
	}
	sum := md5.Sum(plainKey)
	block, err := aes.NewCipher([]byte(hex.EncodeToString(sum[:])))
	if err != nil {
		return nil, fmt.Errorf("decrypt jwks: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("decrypt jwks: %w", err)
	}
	if len(data) < gcm.NonceSize() {
		return nil, errors.New("decrypt jwks: the file is too short")
	}
	plain, err := gcm.Open(nil, data[:gcm.NonceSize()], data[gcm.NonceSize():], nil)
	if err != nil {
		return nil, fmt.Errorf("decrypt jwks: %w", err)
	}
	return plain, nil
}
