package tracing

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func scrape(t *testing.T, port int) (int, string) {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/metrics")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func promConfig(port int, attr string) *gatewayv1.OpenTelemetry {
	return &gatewayv1.OpenTelemetry{
		ServiceName:   "t",
		Prometheus:    []*gatewayv1.PrometheusExporter{{Name: "p", Host: "127.0.0.1", Port: uint32(port), GoMetrics: true}},
		GlobalMetrics: &gatewayv1.MetricsLayer{Attributes: []*gatewayv1.KeyValue{{Key: "gen", Value: attr}}},
	}
}

// serveOne records one request through t's server instruments.
func serveOne(t *testing.T, tr *Tracer, route string) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI(route)
	ctx.Request.Header.SetMethod("GET")
	var r Request
	tr.Start(&r, &ctx)
	r.SetRoute("GET "+route, route)
	ctx.SetStatusCode(201)
	ctx.SetBodyString("hello")
	r.End(&ctx)
	r.Reset()
}

// TestPrometheusExporter: an exporters.prometheus[] entry serves the
// instruments on its own listener, in the Prometheus text format (with
// the Go collector when go_metrics is set); a Tracer for the next
// snapshot takes the address over while the previous one still holds it,
// and the last release closes the listener.
func TestPrometheusExporter(t *testing.T) {
	port := freePort(t)
	a, err := New(promConfig(port, "a"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	serveOne(t, a, "/x")
	st, body := scrape(t, port)
	if st != 200 || !strings.Contains(body, `http_server_duration_count{`) || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("scrape: %d\n%s", st, body)
	}
	for _, want := range []string{`gen="a"`, `http_route="/x"`, `http_response_status_code="201"`, `http_request_method="GET"`, `url_scheme="http"`} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s:\n%s", want, body)
		}
	}
	if !strings.Contains(body, `http_server_response_size_sum{`) {
		t.Errorf("no http_server_response_size:\n%s", body)
	}

	b, err := New(promConfig(port, "b"), Options{})
	if err != nil {
		t.Fatalf("second tracer on the same port: %v", err)
	}
	serveOne(t, b, "/y")
	if _, body := scrape(t, port); !strings.Contains(body, `gen="b"`) || strings.Contains(body, `gen="a"`) {
		t.Errorf("after the handover the scrape shows:\n%s", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if st, body := scrape(t, port); st != 200 || !strings.Contains(body, `gen="b"`) {
		t.Errorf("the previous tracer's release stopped the listener: %d %s", st, body)
	}
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := scrape(t, port); st != 0 {
		t.Errorf("listener still answers %d after the last release", st)
	}
}

// TestPrometheusExporterBusyPort: a port another process holds fails New
// with the address.
func TestPrometheusExporterBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if _, err := New(promConfig(port, "a"), Options{}); err == nil || !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Fatalf("New on a busy port: %v", err)
	}
	if len(listeners.by) != 0 {
		t.Errorf("a failed New left listeners %v", listeners.by)
	}
}

func TestOptCacheBounded(t *testing.T) {
	var c optCache[int]
	builds := 0
	build := func() attribute.Set { builds++; return attribute.NewSet() }
	for i := range maxCached + 10 {
		c.get(i, build)
	}
	for i := range maxCached {
		c.get(i, build)
	}
	if builds != maxCached+10 {
		t.Errorf("%d builds, want %d (each cached key built once)", builds, maxCached+10)
	}
	if n := len(*c.m.Load()); n != maxCached {
		t.Errorf("%d cached, want the bound %d", n, maxCached)
	}
}

func TestMethodName(t *testing.T) {
	for in, want := range map[string]string{"GET": "GET", "PATCH": "PATCH", "get": "_OTHER", "BREW": "_OTHER"} {
		if got := methodName([]byte(in)); got != want {
			t.Errorf("methodName(%q) = %q, want %q", in, got, want)
		}
	}
}
