package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/edge/internal/certtest"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// tlsGet sends GET url over c and returns the status, the served leaf's
// fingerprint and whether the connection was reused.
func tlsGet(t *testing.T, c *http.Client, url string) (code int, leaf string, reused bool) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	}))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		t.Fatalf("GET %s: not served over TLS", url)
	}
	return resp.StatusCode, certtest.Pair{DER: resp.TLS.PeerCertificates[0].Raw}.Fingerprint(), reused
}

func tlsClient(roots *x509.CertPool, keepAlive bool, certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: !keepAlive,
		ForceAttemptHTTP2: true, // the edge must still answer HTTP/1.1
	}}
}

// TestTLSListenerReloadsCertificates: the listener serves the snapshot's
// certificate; rewriting its files makes new handshakes see the new one
// without a restart, while a keep-alive connection opened before keeps
// working on its own handshake.
func TestTLSListenerReloadsCertificates(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "b1")
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test CA")
	first := ca.Issue(t, "first")
	certFile, keyFile := first.Write(t, dir, "server")

	h := start(t, nil)
	snap := snapshot(endpoint("/hello", b.URL, "/v1"))
	snap.Service.Tls = &gatewayv1.ServerTLS{
		Keys:       []*gatewayv1.KeyPair{{Certificate: certFile, PrivateKey: keyFile}},
		MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS13,
	}
	h.apply(t, envelope(t, 1, snap))
	url := "https://" + h.srv.Addr().String() + "/hello"

	kept := tlsClient(ca.Pool(), true)
	code, leaf, _ := tlsGet(t, kept, url)
	if code != 200 || leaf != first.Fingerprint() {
		t.Fatalf("first request: %d with %s, want 200 with the first certificate", code, leaf)
	}

	second := ca.Issue(t, "second")
	second.Write(t, dir, "server")
	fresh := tlsClient(ca.Pool(), false)
	deadline := time.Now().Add(10 * time.Second) // CheckInterval is 1 s
	for {
		code, leaf, _ = tlsGet(t, fresh, url)
		if leaf == second.Fingerprint() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new handshakes still see %s 10 s after the rotation", leaf)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != 200 {
		t.Errorf("after rotation: %d", code)
	}

	code, leaf, reused := tlsGet(t, kept, url)
	if code != 200 || !reused || leaf != first.Fingerprint() {
		t.Errorf("keep-alive connection after rotation: %d, reused %v, leaf %s; want 200 on the same connection with the first certificate", code, reused, leaf)
	}

	// Plain HTTP is not served on a TLS listener.
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + h.srv.Addr().String() + "/hello"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP on the TLS listener: %d", resp.StatusCode)
		}
	}
}

// TestTLSListenerSettings: versions and mutual TLS as the snapshot says.
func TestTLSListenerSettings(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "b1")
	dir := t.TempDir()
	ca := certtest.NewCA(t, "server CA")
	certFile, keyFile := ca.Issue(t, "edge").Write(t, dir, "server")
	clientCA := certtest.NewCA(t, "client CA")
	clientCAFile := filepath.Join(dir, "clients.pem")
	certtest.WriteFile(t, clientCAFile, clientCA.PEM)
	good := clientCA.Issue(t, "good client")
	goodCert, err := tls.X509KeyPair(good.CertPEM, good.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	stranger := certtest.NewCA(t, "other CA").Issue(t, "stranger")
	strangerCert, err := tls.X509KeyPair(stranger.CertPEM, stranger.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}

	h := start(t, nil)
	snap := snapshot(endpoint("/hello", b.URL, "/v1"))
	snap.Service.Tls = &gatewayv1.ServerTLS{
		Keys:       []*gatewayv1.KeyPair{{Certificate: certFile, PrivateKey: keyFile}},
		MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS13,
		EnableMtls: true, CaCerts: []string{clientCAFile}, DisableSystemCaPool: true,
	}
	h.apply(t, envelope(t, 1, snap))
	url := "https://" + h.srv.Addr().String() + "/hello"

	if code, _, _ := tlsGet(t, tlsClient(ca.Pool(), false, goodCert), url); code != 200 {
		t.Errorf("client with a certificate of ca_certs: %d", code)
	}
	for name, c := range map[string]*http.Client{
		"no client certificate":        tlsClient(ca.Pool(), false),
		"certificate of another CA":    tlsClient(ca.Pool(), false, strangerCert),
		"TLS 1.2 against TLS 1.3 only": {Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{goodCert}, MaxVersion: tls.VersionTLS12}}},
	} {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: served %d, want the handshake refused", name, resp.StatusCode)
		}
	}

	// A snapshot back to plain HTTP: new connections are plain.
	plain := snapshot(endpoint("/hello", b.URL, "/v1"))
	h.apply(t, envelope(t, 2, plain))
	if r := get(t, h.url+"/hello"); r.code != 200 {
		t.Errorf("plain HTTP after TLS was turned off: %d", r.code)
	}
}

// TestTLSMissingFilesRejectSnapshot: a snapshot naming certificate files
// this edge does not have is refused with the key's path, and the plan in
// service stays.
func TestTLSMissingFilesRejectSnapshot(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "b1")
	h := start(t, nil)
	h.apply(t, envelope(t, 1, snapshot(endpoint("/hello", b.URL, "/v1"))))
	snap := snapshot(endpoint("/hello", b.URL, "/v1"))
	missing := filepath.Join(t.TempDir(), "absent.pem")
	snap.Service.Tls = &gatewayv1.ServerTLS{Keys: []*gatewayv1.KeyPair{{Certificate: missing, PrivateKey: missing}}}
	err := h.applier.Apply(context.Background(), envelope(t, 2, snap))
	if err == nil || !strings.Contains(err.Error(), "service.tls.keys[0].certificate") || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("apply = %v, want a violation at service.tls.keys[0].certificate", err)
	}
	if v, _ := h.srv.Current(); v != 1 {
		t.Errorf("serving v%d, want v1 kept", v)
	}
	if r := get(t, h.url+"/hello"); r.code != 200 {
		t.Errorf("plain HTTP on the kept plan: %d", r.code)
	}
}

// startTLSBackend serves {"tls":"ok"} over TLS with cfg on 127.0.0.1.
func startTLSBackend(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"tls":"ok"}`)
	}))
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestClientTLS: client_tls on the upstream client, against TLS backends on
// loopback: CA files, insecure mode, client certificates (mTLS), versions,
// cipher suites and curves.
func TestClientTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := certtest.NewCA(t, "backend CA")
	caFile := filepath.Join(dir, "ca.pem")
	certtest.WriteFile(t, caFile, ca.PEM)
	serving := ca.Issue(t, "backend")
	servingCert, err := tls.X509KeyPair(serving.CertPEM, serving.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	clientCA := certtest.NewCA(t, "edge client CA")
	clientCert, clientKey := clientCA.Issue(t, "edge").Write(t, dir, "client")

	plainTLS := startTLSBackend(t, &tls.Config{Certificates: []tls.Certificate{servingCert}, MinVersion: tls.VersionTLS12})
	mutual := startTLSBackend(t, &tls.Config{Certificates: []tls.Certificate{servingCert}, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCA.Pool()})
	onlyTLS13 := startTLSBackend(t, &tls.Config{Certificates: []tls.Certificate{servingCert}, MinVersion: tls.VersionTLS13})
	// TLS 1.2 backends with one cipher suite, one curve.
	oneSuite := startTLSBackend(t, &tls.Config{Certificates: []tls.Certificate{servingCert}, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}})
	oneCurve := startTLSBackend(t, &tls.Config{Certificates: []tls.Certificate{servingCert}, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
		CurvePreferences: []tls.CurveID{tls.CurveP384}})

	trust := func() *gatewayv1.ClientTLS {
		return &gatewayv1.ClientTLS{CaCerts: []string{caFile}, DisableSystemCaPool: true,
			MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
	}
	withCert := trust()
	withCert.ClientCerts = []*gatewayv1.KeyPair{{Certificate: clientCert, PrivateKey: clientKey}}
	tls12 := trust()
	tls12.MaxVersion = tls.VersionTLS12
	with12 := func(suites []uint32, curves []uint32) *gatewayv1.ClientTLS {
		s := trust()
		s.MaxVersion, s.CipherSuites, s.CurvePreferences = tls.VersionTLS12, suites, curves
		return s
	}
	tests := []struct {
		name    string
		backend string
		spec    *gatewayv1.ClientTLS
		ok      bool
	}{
		{"ca_certs trusts the backend", plainTLS, trust(), true},
		{"system roots only", plainTLS, nil, false},
		{"no CA at all", plainTLS, &gatewayv1.ClientTLS{DisableSystemCaPool: true}, false},
		{"allow_insecure_connections", plainTLS, &gatewayv1.ClientTLS{AllowInsecureConnections: true, DisableSystemCaPool: true}, true},
		{"mTLS backend with client_certs", mutual, withCert, true},
		{"mTLS backend without a client certificate", mutual, trust(), false},
		{"max_version TLS12 against a TLS 1.3 backend", onlyTLS13, tls12, false},
		{"TLS 1.3 backend", onlyTLS13, trust(), true},
		{"cipher_suites without the backend's suite", oneSuite, with12([]uint32{uint32(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)}, nil), false},
		{"cipher_suites with the backend's suite", oneSuite, with12([]uint32{uint32(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256), uint32(tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)}, nil), true},
		{"curve_preferences without the backend's curve", oneCurve, with12(nil, []uint32{uint32(tls.CurveP256)}), false},
		{"curve_preferences with the backend's curve", oneCurve, with12(nil, []uint32{uint32(tls.CurveP384)}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, nil)
			snap := snapshot(endpoint("/hello", tt.backend, "/v1"))
			snap.Service.HttpClient.Tls = tt.spec
			h.apply(t, envelope(t, 1, snap))
			r := get(t, h.url+"/hello")
			if tt.ok && (r.code != 200 || !strings.Contains(r.body, `"tls":"ok"`)) {
				t.Errorf("GET = %d %s, want the backend's answer", r.code, r.body)
			}
			if !tt.ok && r.code == 200 {
				t.Errorf("GET = %d %s, want the backend call refused at the handshake", r.code, r.body)
			}
		})
	}
}

// TestClientTLSMissingFile: a client_tls file absent on this edge fails the
// build at the key that names it.
func TestClientTLSMissingFile(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	snap := snapshot(endpoint("/hello", "https://127.0.0.1:1", "/v1"))
	snap.Service.HttpClient.Tls = &gatewayv1.ClientTLS{CaCerts: []string{filepath.Join(t.TempDir(), "absent.pem")}}
	err := h.applier.Apply(context.Background(), envelope(t, 1, snap))
	if err == nil || !strings.Contains(err.Error(), "service.http_client.tls.ca_certs[0]") {
		t.Fatalf("apply = %v, want a violation at service.http_client.tls.ca_certs[0]", err)
	}
}
