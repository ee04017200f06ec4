package tlsconf

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io/fs"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/apigw/gateway/edge/internal/certtest"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func leafOf(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	if len(cfg.Certificates) == 0 {
		t.Fatal("no certificate loaded")
	}
	return fingerprint(cfg.Certificates[0].Certificate[0])
}

// TestServerReloadsChangedFiles: a rotation is picked up at the next check,
// a half-written rotation (new certificate, old key) keeps the previous
// material and is retried until the key follows.
func TestServerReloadsChangedFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := certtest.NewCA(t, "ca")
	first := ca.Issue(t, "first")
	certFile, keyFile := first.Write(t, dir, "server")
	logs := &bytes.Buffer{}
	s, err := newServer(&gatewayv1.ServerTLS{Keys: []*gatewayv1.KeyPair{{Certificate: certFile, PrivateKey: keyFile}}}, zerolog.New(logs), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := leafOf(t, s.current()); got != first.Fingerprint() {
		t.Fatalf("serves %s, want the first certificate", got)
	}

	second := ca.Issue(t, "second")
	second.Write(t, dir, "server")
	if got := leafOf(t, s.current()); got != second.Fingerprint() {
		t.Fatalf("after rotation serves %s, want the second certificate", got)
	}
	if got := s.Leaves(); len(got) != 1 || got[0] != second.Fingerprint() {
		t.Errorf("Leaves = %v", got)
	}

	third := ca.Issue(t, "third")
	certtest.WriteFile(t, certFile, third.CertPEM) // the key is not there yet
	if got := leafOf(t, s.current()); got != second.Fingerprint() {
		t.Fatalf("with a mismatched key serves %s, want the second certificate kept", got)
	}
	if !strings.Contains(logs.String(), "cannot be loaded") {
		t.Errorf("no error logged for the half rotation: %s", logs)
	}
	certtest.WriteFile(t, keyFile, third.KeyPEM)
	if got := leafOf(t, s.current()); got != third.Fingerprint() {
		t.Fatalf("once the key follows serves %s, want the third certificate", got)
	}
}

// TestServerChecksAtMostEveryInterval: between checks the files are not
// looked at.
func TestServerChecksAtMostEveryInterval(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := certtest.NewCA(t, "ca")
	first := ca.Issue(t, "first")
	certFile, keyFile := first.Write(t, dir, "server")
	s, err := newServer(&gatewayv1.ServerTLS{Keys: []*gatewayv1.KeyPair{{Certificate: certFile, PrivateKey: keyFile}}}, zerolog.Nop(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca.Issue(t, "second").Write(t, dir, "server")
	if got := leafOf(t, s.current()); got != first.Fingerprint() {
		t.Fatal("reloaded before the check interval passed")
	}
	s.nextCheck.Store(0) // the interval has passed
	if got := leafOf(t, s.current()); got == first.Fingerprint() {
		t.Fatal("not reloaded once the check was due")
	}
}

func TestServerSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := certtest.NewCA(t, "ca")
	a, b := ca.Issue(t, "a"), ca.Issue(t, "b")
	ac, ak := a.Write(t, dir, "a")
	bc, bk := b.Write(t, dir, "b")
	caFile := filepath.Join(dir, "ca.pem")
	certtest.WriteFile(t, caFile, ca.PEM)
	spec := &gatewayv1.ServerTLS{
		Keys:             []*gatewayv1.KeyPair{{Certificate: ac, PrivateKey: ak}, {Certificate: bc, PrivateKey: bk}},
		MinVersion:       tls.VersionTLS12,
		MaxVersion:       tls.VersionTLS13,
		CipherSuites:     []uint32{uint32(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)},
		CurvePreferences: []uint32{uint32(tls.CurveP384)},
		EnableMtls:       true, CaCerts: []string{caFile}, DisableSystemCaPool: true,
	}
	s, err := NewServer(spec, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.current()
	if len(cfg.Certificates) != 2 || cfg.MinVersion != tls.VersionTLS12 || cfg.MaxVersion != tls.VersionTLS13 ||
		len(cfg.CipherSuites) != 1 || cfg.CipherSuites[0] != tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 ||
		len(cfg.CurvePreferences) != 1 || cfg.CurvePreferences[0] != tls.CurveP384 ||
		cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil {
		t.Errorf("config does not follow the spec: %+v", cfg)
	}
	if !slices.Equal(cfg.NextProtos, []string{"h2", "http/1.1"}) {
		t.Errorf("NextProtos = %v, want h2 then http/1.1 (see TestServerALPN)", cfg.NextProtos)
	}
	if s.Config().GetConfigForClient == nil {
		t.Error("the listener's config does not pick the current certificates per handshake")
	}
}

func TestServerFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := certtest.NewCA(t, "ca")
	c, k := ca.Issue(t, "a").Write(t, dir, "a")
	notPEM := filepath.Join(dir, "garbage.pem")
	certtest.WriteFile(t, notPEM, []byte("not a certificate"))
	tests := []struct {
		name string
		spec *gatewayv1.ServerTLS
		path string
		is   error
	}{
		{"no keys", &gatewayv1.ServerTLS{}, "tls.keys", nil},
		{"missing certificate", &gatewayv1.ServerTLS{Keys: []*gatewayv1.KeyPair{{Certificate: filepath.Join(dir, "nope.pem"), PrivateKey: k}}}, "tls.keys[0].certificate", fs.ErrNotExist},
		{"missing key", &gatewayv1.ServerTLS{Keys: []*gatewayv1.KeyPair{{Certificate: c, PrivateKey: filepath.Join(dir, "nope.key")}}}, "tls.keys[0].private_key", fs.ErrNotExist},
		{"not a pair", &gatewayv1.ServerTLS{Keys: []*gatewayv1.KeyPair{{Certificate: c, PrivateKey: notPEM}}}, "tls.keys[0]", nil},
		{"ca not PEM", &gatewayv1.ServerTLS{Keys: []*gatewayv1.KeyPair{{Certificate: c, PrivateKey: k}}, EnableMtls: true, CaCerts: []string{notPEM}, DisableSystemCaPool: true}, "tls.ca_certs[0]", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewServer(tt.spec, zerolog.Nop())
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *FileError", err)
			}
			if fe.Path != tt.path {
				t.Errorf("path = %q, want %q (%v)", fe.Path, tt.path, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
		})
	}
}

func TestClientKeyFollowsContent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := certtest.NewCA(t, "ca")
	c, k := ca.Issue(t, "client").Write(t, dir, "client")
	caFile := filepath.Join(dir, "ca.pem")
	certtest.WriteFile(t, caFile, ca.PEM)
	spec := &gatewayv1.ClientTLS{CaCerts: []string{caFile}, DisableSystemCaPool: true, MinVersion: tls.VersionTLS13,
		ClientCerts: []*gatewayv1.KeyPair{{Certificate: c, PrivateKey: k}}}
	cfg, key1, err := NewClient(spec)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 || len(cfg.Certificates) != 1 || cfg.RootCAs == nil || cfg.InsecureSkipVerify {
		t.Errorf("config does not follow the spec: %+v", cfg)
	}
	_, again, _ := NewClient(spec)
	if again != key1 {
		t.Error("the same files gave another key")
	}
	ca.Issue(t, "client").Write(t, dir, "client")
	_, key2, err := NewClient(spec)
	if err != nil {
		t.Fatal(err)
	}
	if key2 == key1 {
		t.Error("a rotated client certificate kept the key: the upstream client would not be rebuilt")
	}
	if cfg, key, err := NewClient(nil); cfg != nil || key != "" || err != nil {
		t.Errorf("NewClient(nil) = %v, %q, %v", cfg, key, err)
	}
	if _, _, err := NewClient(&gatewayv1.ClientTLS{CaCerts: []string{filepath.Join(dir, "nope")}}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing CA file: %v", err)
	}
}

// TestServerALPN: the listener offers h2 before http/1.1, as Go's net/http
// does on a TLS listener, unless its TLS 1.2 cipher suites lack the one
// HTTP/2 requires; a real handshake negotiates what is offered.
func TestServerALPN(t *testing.T) {
	t.Parallel()
	ca := certtest.NewCA(t, "ca")
	certFile, keyFile := ca.Issue(t, "edge").Write(t, t.TempDir(), "server")
	tests := []struct {
		name       string
		min, max   uint16
		suites     []uint32
		clientMax  uint16
		wantOffer  []string
		wantChosen string
	}{
		{"defaults", 0, 0, nil, 0, []string{"h2", "http/1.1"}, "h2"},
		{"TLS 1.3 only", tls.VersionTLS13, tls.VersionTLS13, nil, 0, []string{"h2", "http/1.1"}, "h2"},
		{"TLS 1.2 with HTTP/2's suite", tls.VersionTLS12, tls.VersionTLS12,
			[]uint32{uint32(tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384), uint32(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)}, tls.VersionTLS12, []string{"h2", "http/1.1"}, "h2"},
		{"TLS 1.2 without HTTP/2's suite", tls.VersionTLS12, tls.VersionTLS12,
			[]uint32{uint32(tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)}, tls.VersionTLS12, []string{"http/1.1"}, "http/1.1"},
		{"the same suites with a TLS 1.3 minimum", tls.VersionTLS13, 0,
			[]uint32{uint32(tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)}, 0, []string{"h2", "http/1.1"}, "h2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := NewServer(&gatewayv1.ServerTLS{
				Keys:       []*gatewayv1.KeyPair{{Certificate: certFile, PrivateKey: keyFile}},
				MinVersion: uint32(tc.min), MaxVersion: uint32(tc.max), CipherSuites: tc.suites,
			}, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			if got := s.current().NextProtos; !slices.Equal(got, tc.wantOffer) {
				t.Errorf("NextProtos = %q, want %q", got, tc.wantOffer)
			}
			cc, sc := net.Pipe()
			defer cc.Close()
			defer sc.Close()
			srv := tls.Server(sc, s.Config())
			go srv.Handshake()
			cl := tls.Client(cc, &tls.Config{RootCAs: ca.Pool(), ServerName: "edge", MaxVersion: tc.clientMax, NextProtos: []string{"h2", "http/1.1"}})
			if err := cl.Handshake(); err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if got := cl.ConnectionState().NegotiatedProtocol; got != tc.wantChosen {
				t.Errorf("negotiated %q, want %q", got, tc.wantChosen)
			}
		})
	}
}
