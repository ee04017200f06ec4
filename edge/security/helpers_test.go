package security_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/security"
)

// hdrNext marks responses of the handler behind CORS and Secure.
const hdrNext = "X-Next"

// chain is how the edge calls the package: CORS, then Secure, then the
// router (here a handler that answers 200 "next").
func chain(c *security.CORS, s *security.Secure) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if c.Handle(ctx) || s.Handle(ctx) {
			return
		}
		ctx.Response.Header.Set(hdrNext, "1")
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetBodyString("next")
	}
}

// serve starts a real fasthttp server for h on 127.0.0.1:0 (over TLS when
// tlsOn) and returns its base URL.
func serve(t testing.TB, h fasthttp.RequestHandler, tlsOn bool) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: h}
	done := make(chan error, 1)
	scheme := "http://"
	if tlsOn {
		cert, key := selfSigned(t)
		scheme = "https://"
		go func() { done <- s.ServeTLSEmbed(ln, cert, key) }()
	} else {
		go func() { done <- s.Serve(ln) }()
	}
	t.Cleanup(func() {
		if err := s.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return scheme + ln.Addr().String()
}

func selfSigned(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// client is a real HTTP client that does not follow redirects.
func client(t testing.TB) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // self-signed test server
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// request is one client request of a table test.
type request struct {
	method string
	path   string
	host   string      // Host header; "" keeps the server address
	header http.Header // extra headers (several values = several lines)
}

// answer is what a table test compares.
type answer struct {
	Status  int
	Headers http.Header // the headers selected by the test
	Body    string      // only when the request did not reach the handler behind
	Next    bool        // the request reached the handler behind
}

func do(t *testing.T, c *http.Client, base string, r request, selected func(string) bool) answer {
	t.Helper()
	method := r.method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, base+r.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if r.host != "" {
		req.Host = r.host
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{Status: resp.StatusCode, Headers: http.Header{}, Next: resp.Header.Get(hdrNext) == "1"}
	if !a.Next {
		a.Body = string(body)
	}
	for k, vs := range resp.Header {
		if selected(k) {
			a.Headers[k] = vs
		}
	}
	return a
}

func isCORSHeader(k string) bool {
	return k == "Vary" || strings.HasPrefix(k, "Access-Control-")
}

func h(kv ...string) http.Header {
	out := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		out.Add(kv[i], kv[i+1])
	}
	return out
}

// newCtx returns a request context as the server hands it to the handler.
func newCtx(method, uri, host string, kv ...string) *fasthttp.RequestCtx {
	ctx := new(fasthttp.RequestCtx)
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	ctx.Request.Header.SetHost(host)
	for i := 0; i < len(kv); i += 2 {
		ctx.Request.Header.Set(kv[i], kv[i+1])
	}
	return ctx
}
