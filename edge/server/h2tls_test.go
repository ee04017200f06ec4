package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apigw/gateway/edge/internal/certtest"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// tlsProtoClient is a client over TLS speaking only the given protocol
// (HTTP/2 or HTTP/1.1, each offered alone by ALPN); dials counts its TCP
// connections.
func tlsProtoClient(t *testing.T, roots *x509.CertPool, h2 bool) (*http.Client, *atomic.Int32) {
	t.Helper()
	var dials atomic.Int32
	var protocols http.Protocols
	tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if h2 {
		protocols.SetHTTP2(true)
	} else {
		protocols.SetHTTP1(true)
		// Go's Transport sends no ALPN for HTTP/1.1 alone; browsers
		// and curl --http1.1 send this.
		tc.NextProtos = []string{"http/1.1"}
	}
	tr := &http.Transport{
		Protocols:       &protocols,
		TLSClientConfig: tc,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}, &dials
}

// tlsEdge starts an edge serving snap over TLS with a certificate of a CA
// the test makes; it returns the harness, the CA and the https base URL.
func tlsEdge(t *testing.T, snap *gatewayv1.Snapshot) (*harness, *certtest.CA, string) {
	t.Helper()
	ca := certtest.NewCA(t, "test CA")
	certFile, keyFile := ca.Issue(t, "edge").Write(t, t.TempDir(), "server")
	snap.Service.Tls = &gatewayv1.ServerTLS{
		Keys:       []*gatewayv1.KeyPair{{Certificate: certFile, PrivateKey: keyFile}},
		MinVersion: tls.VersionTLS12,
	}
	h := start(t, nil)
	h.apply(t, envelope(t, 1, snap))
	return h, ca, "https://" + h.srv.Addr().String()
}

// TestTLSServesHTTP2: a TLS listener offers h2 by ALPN as KrakenD's does;
// HTTP/2 requests take the same routes with the same answers as HTTP/1.1,
// several streams are in flight at once on one connection, and HTTP/1.1
// clients (by ALPN or with no ALPN at all) are still served by fasthttp.
func TestTLSServesHTTP2(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "b1")
	snap := snapshot(endpoint("/hello", b.URL, "/v1"), endpoint("/slow", b.URL, "/slow/a"))
	snap.Service.MaxBodyBytes = 1024
	h, ca, base := tlsEdge(t, snap)

	c2, dials := tlsProtoClient(t, ca.Pool(), true)
	resp, err := c2.Get(base + "/hello")
	if err != nil {
		t.Fatalf("h2 GET: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.TLS == nil || resp.TLS.NegotiatedProtocol != "h2" {
		t.Fatalf("GET /hello over TLS = %s (ALPN %q), want HTTP/2 by ALPN h2", resp.Proto, resp.TLS.NegotiatedProtocol)
	}
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"path":"/v1"`) || !strings.Contains(string(body), `"tag":"b1"`) {
		t.Errorf("h2 GET /hello = %d %s, want 200 from the backend", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}
	if resp.Header.Get("Connection") != "" || resp.ContentLength != int64(len(body)) {
		t.Errorf("headers %v, content length %d for %d bytes", resp.Header, resp.ContentLength, len(body))
	}

	// Several streams in flight together: the backend holds each request
	// until all of them have reached it, so they cannot have been served
	// one after the other.
	const n = 6
	var wg sync.WaitGroup
	replies := make(chan reply, n)
	for range n {
		wg.Go(func() {
			r, err := c2.Get(base + "/slow")
			if err != nil {
				t.Errorf("h2 GET /slow: %v", err)
				return
			}
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			replies <- reply{code: r.StatusCode, body: r.Proto + " " + string(b)}
		})
	}
	for range n {
		b.waitStarted(t)
	}
	close(b.release)
	wg.Wait()
	close(replies)
	for r := range replies {
		if r.code != 200 || !strings.HasPrefix(r.body, "HTTP/2.0 ") || !strings.Contains(r.body, `"path":"/slow/a"`) {
			t.Errorf("concurrent h2 GET /slow = %d %s", r.code, r.body)
		}
	}
	if got := dials.Load(); got != 1 {
		t.Errorf("%d connections for %d requests, want 1", got, n+1)
	}

	// The router's answers and the body limit are the HTTP/1.1 ones.
	c1, _ := tlsProtoClient(t, ca.Pool(), false)
	for _, tc := range []struct {
		method, path, body string
		code               int
	}{
		{http.MethodGet, "/nope", "", 404},
		{http.MethodPost, "/hello", strings.Repeat("x", 2048), 413}, // over max_body_bytes
		{http.MethodPost, "/hello", "small", 405},
		{http.MethodHead, "/hello", "", 405}, // a GET endpoint, as KrakenD's router
		{http.MethodGet, "/hello", "", 200},
	} {
		h1 := do(t, c1, tc.method, base+tc.path, nil, strings.NewReader(tc.body))
		h2 := do(t, c2, tc.method, base+tc.path, nil, strings.NewReader(tc.body))
		if h2.code != tc.code || h2.code != h1.code || h2.body != h1.body || h2.header.Get("Content-Type") != h1.header.Get("Content-Type") {
			t.Errorf("%s %s: h2 %d %q (%s), HTTP/1.1 %d %q (%s), want %d", tc.method, tc.path,
				h2.code, h2.body, h2.header.Get("Content-Type"), h1.code, h1.body, h1.header.Get("Content-Type"), tc.code)
		}
	}

	// HTTP/1.1 by ALPN.
	resp, err = c1.Get(base + "/hello")
	if err != nil {
		t.Fatalf("HTTP/1.1 GET: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 1 || resp.TLS.NegotiatedProtocol != "http/1.1" || resp.StatusCode != 200 || !strings.Contains(string(body), `"path":"/v1"`) {
		t.Errorf("HTTP/1.1 client = %s (ALPN %q) %d %s", resp.Proto, resp.TLS.NegotiatedProtocol, resp.StatusCode, body)
	}

	// No ALPN at all (an old client, openssl s_client): HTTP/1.1.
	conn, err := tls.Dial("tcp", h.srv.Addr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "" {
		t.Errorf("ALPN without client protocols = %q", p)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET /hello HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	raw, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the response without ALPN: %v", err)
	}
	body, _ = io.ReadAll(raw.Body)
	raw.Body.Close()
	if raw.ProtoMajor != 1 || raw.StatusCode != 200 || !strings.Contains(string(body), `"path":"/v1"`) {
		t.Errorf("client without ALPN = %s %d %s", raw.Proto, raw.StatusCode, body)
	}
}

// TestTLSHTTP2Reload: rotated certificate files are picked up by new
// HTTP/2 connections, while an HTTP/2 connection opened before keeps its
// handshake and its streams.
func TestTLSHTTP2Reload(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "b1")
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test CA")
	first := ca.Issue(t, "first")
	certFile, keyFile := first.Write(t, dir, "server")
	h := start(t, nil)
	snap := snapshot(endpoint("/hello", b.URL, "/v1"))
	snap.Service.Tls = &gatewayv1.ServerTLS{Keys: []*gatewayv1.KeyPair{{Certificate: certFile, PrivateKey: keyFile}}}
	h.apply(t, envelope(t, 1, snap))
	url := "https://" + h.srv.Addr().String() + "/hello"

	leafOf := func(c *http.Client) (string, int) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
			t.Fatalf("GET = %s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
		}
		return certtest.Pair{DER: resp.TLS.PeerCertificates[0].Raw}.Fingerprint(), resp.StatusCode
	}
	kept, keptDials := tlsProtoClient(t, ca.Pool(), true)
	if leaf, _ := leafOf(kept); leaf != first.Fingerprint() {
		t.Fatalf("first certificate not served")
	}

	second := ca.Issue(t, "second")
	second.Write(t, dir, "server")
	deadline := time.Now().Add(10 * time.Second) // CheckInterval is 1 s
	for {
		fresh, _ := tlsProtoClient(t, ca.Pool(), true)
		if leaf, _ := leafOf(fresh); leaf == second.Fingerprint() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("new HTTP/2 connections still see the first certificate 10 s after the rotation")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if leaf, _ := leafOf(kept); leaf != first.Fingerprint() || keptDials.Load() != 1 {
		t.Errorf("HTTP/2 connection opened before the rotation: certificate changed or %d dials, want the first certificate on 1 connection", keptDials.Load())
	}
}

// TestTLSHTTP2Drain: a generation change (new http_server settings) lets an
// HTTP/2 request in flight over TLS finish, sends the connection GOAWAY,
// and the client's next request opens a new HTTP/2 connection to the new
// generation.
func TestTLSHTTP2Drain(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "b1")
	snap := snapshot(endpoint("/slow", b.URL, "/slow/a"), endpoint("/hello", b.URL, "/v1"))
	snap.Service.HttpServer.MaxShutdownWaitMs = 5000
	h, ca, base := tlsEdge(t, snap)

	c, dials := tlsProtoClient(t, ca.Pool(), true)
	done := make(chan reply, 1)
	go func() {
		resp, err := c.Get(base + "/slow")
		if err != nil {
			done <- reply{code: -1, body: err.Error()}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		done <- reply{code: resp.StatusCode, body: resp.Proto + " " + string(body)}
	}()
	b.waitStarted(t)
	snap.Service.HttpServer.IdleTimeoutMs = 30000 // a new generation
	h.apply(t, envelope(t, 2, snap))
	close(b.release)
	if r := <-done; r.code != 200 || !strings.HasPrefix(r.body, "HTTP/2.0 ") || !strings.Contains(r.body, "/slow/a") {
		t.Fatalf("in-flight h2 request across the generation change = %d %s", r.code, r.body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for dials.Load() < 2 {
		// GOAWAY may reach the client just after the response: until it
		// has, the old connection can still serve (it is draining).
		r := do(t, c, http.MethodGet, base+"/hello", nil, nil)
		if r.code != 200 || !strings.Contains(r.body, `"path":"/v1"`) {
			t.Fatalf("GET after the generation change = %d %s", r.code, r.body)
		}
		if time.Now().After(deadline) {
			t.Fatal("the HTTP/2 connection of the old generation still serves 10 s after it was drained")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// handshake dials the edge with cfg and returns the connection state, or
// the handshake's error; on success it also checks that the connection
// serves a request (HTTP/1.1, whatever ALPN chose is not asked for).
func handshake(t *testing.T, addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET /hello HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("request after the handshake: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("request after the handshake = %d", resp.StatusCode)
	}
	return conn.ConnectionState(), nil
}

// TestTLSListenerKeysSuitesCurves: with real handshakes, SNI picks among
// keys[] (the first one without a match), and cipher_suites and
// curve_preferences are what a TLS 1.2 handshake can use; a list without
// HTTP/2's mandatory suite offers http/1.1 only by ALPN.
func TestTLSListenerKeysSuitesCurves(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "b1")
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test CA")
	a, bb := ca.Issue(t, "a.test"), ca.Issue(t, "b.test")
	ac, ak := a.Write(t, dir, "a")
	bc, bk := bb.Write(t, dir, "b")
	h := start(t, nil)
	snap := snapshot(endpoint("/hello", b.URL, "/v1"))
	snap.Service.Tls = &gatewayv1.ServerTLS{
		Keys:         []*gatewayv1.KeyPair{{Certificate: ac, PrivateKey: ak}, {Certificate: bc, PrivateKey: bk}},
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   tls.VersionTLS12,
		CipherSuites: []uint32{uint32(tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)},
		// The certificates' keys are P-256: Go matches SNI only among
		// certificates whose curve the server's preferences hold.
		CurvePreferences: []uint32{uint32(tls.CurveP256)},
	}
	h.apply(t, envelope(t, 1, snap))
	addr := h.srv.Addr().String()
	client := func(name string, suites []uint16, curves []tls.CurveID) *tls.Config {
		return &tls.Config{RootCAs: ca.Pool(), ServerName: name, CipherSuites: suites, CurvePreferences: curves, NextProtos: []string{"h2", "http/1.1"}}
	}

	for name, want := range map[string]string{"a.test": a.Fingerprint(), "b.test": bb.Fingerprint(), "localhost": a.Fingerprint()} {
		st, err := handshake(t, addr, client(name, nil, nil))
		if err != nil {
			t.Errorf("SNI %s: %v", name, err)
			continue
		}
		if got := (certtest.Pair{DER: st.PeerCertificates[0].Raw}).Fingerprint(); got != want {
			t.Errorf("SNI %s: served %s, want %s", name, got, want)
		}
		if st.Version != tls.VersionTLS12 || st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 {
			t.Errorf("SNI %s: version %x suite %s", name, st.Version, tls.CipherSuiteName(st.CipherSuite))
		}
		if st.NegotiatedProtocol != "http/1.1" {
			t.Errorf("SNI %s: ALPN %q, want http/1.1 (the suites rule HTTP/2 out)", name, st.NegotiatedProtocol)
		}
	}
	if _, err := handshake(t, addr, client("a.test", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, nil)); err == nil {
		t.Error("a client without the configured cipher suite completed a handshake")
	}
	if _, err := handshake(t, addr, client("a.test", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}, []tls.CurveID{tls.CurveP256})); err != nil {
		t.Errorf("a client with the configured suite and curve: %v", err)
	}
	if _, err := handshake(t, addr, client("a.test", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}, []tls.CurveID{tls.X25519, tls.CurveP384})); err == nil {
		t.Error("a client without the configured curve completed a handshake")
	}
}
