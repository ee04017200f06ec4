package server

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/edge/apply"
	"github.com/apigw/gateway/edge/internal/dnstest"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// TestSDDNSBackend: a snapshot backend with sd: dns is served from the SRV
// name's targets, and follows a changed record at the next resolution
// (dns_cache_ttl), through a DNS server on loopback.
func TestSDDNSBackend(t *testing.T) {
	t.Parallel()
	d := dnstest.Start(t)
	b1, b2 := startBackend(t, "b1"), startBackend(t, "b2")
	port := func(url string) uint16 {
		_, p, _ := net.SplitHostPort(strings.TrimPrefix(url, "http://"))
		n, _ := strconv.Atoi(p)
		return uint16(n)
	}
	const name = "_users._tcp.gw.test."
	d.Set(name, &net.SRV{Target: "one.gw.test.", Port: port(b1.URL), Weight: 1})

	h := start(t, func(_ *Config, a *apply.Config) { a.Deps.Resolver = d.Resolver() })
	snap := snapshot(endpoint("/users", name, "/u"))
	be := snap.Endpoints[0].Backends[0]
	be.Sd, be.SdScheme, be.DisableHostSanitize = "dns", "http", true
	snap.Service.HttpClient.DnsCacheTtlMs = 1000
	h.apply(t, envelope(t, 1, snap))

	if r := get(t, h.url+"/users"); r.code != 200 || !strings.Contains(r.body, `"tag":"b1"`) {
		t.Fatalf("GET /users = %d %s, want backend b1 (the SRV target)", r.code, r.body)
	}
	d.Set(name, &net.SRV{Target: "two.gw.test.", Port: port(b2.URL), Weight: 1})
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := get(t, h.url+"/users")
		if r.code == 200 && strings.Contains(r.body, `"tag":"b2"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d %s 10 s after the SRV record moved to b2", r.code, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMartianURLModifierReroutes: a url.Modifier with a host sends the
// backend call to that host (martian sets req.URL.Host), not to the pool of
// the backend's own host.
func TestMartianURLModifierReroutes(t *testing.T) {
	t.Parallel()
	own, other := startBackend(t, "own"), startBackend(t, "other")
	h := start(t, nil)
	snap := snapshot(endpoint("/r", own.URL, "/v1"))
	snap.Endpoints[0].Backends[0].Martian = &gatewayv1.MartianModifier{Scope: []string{"request"},
		Kind: &gatewayv1.MartianModifier_UrlModifier{UrlModifier: &gatewayv1.MartianURL{
			Host: strings.TrimPrefix(other.URL, "http://"), Path: "/moved"}}}
	h.apply(t, envelope(t, 1, snap))
	if r := get(t, h.url+"/r"); r.code != 200 || !strings.Contains(r.body, `"tag":"other"`) || !strings.Contains(r.body, `"path":"/moved"`) {
		t.Errorf("GET /r = %d %s, want the other backend's /moved", r.code, r.body)
	}
}

// TestMartianPortModifierReroutes: port.Modifier sends the call to another
// port of the backend's host; status.Modifier then rewrites the answer's
// status before the gateway checks it (a 500 fails the call, as in KrakenD).
func TestMartianPortModifierReroutes(t *testing.T) {
	t.Parallel()
	own, other := startBackend(t, "own"), startBackend(t, "other")
	_, otherPort, _ := strings.Cut(strings.TrimPrefix(other.URL, "http://"), ":")
	port, err := strconv.Atoi(otherPort)
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, nil)
	snap := snapshot(endpoint("/r", own.URL, "/v1"), endpoint("/s", own.URL, "/v1"))
	snap.Endpoints[0].Backends[0].Martian = &gatewayv1.MartianModifier{Scope: []string{"request"},
		Kind: &gatewayv1.MartianModifier_PortModifier{PortModifier: &gatewayv1.MartianPort{Port: int32(port)}}}
	snap.Endpoints[1].Backends[0].Martian = &gatewayv1.MartianModifier{Scope: []string{"response"},
		Kind: &gatewayv1.MartianModifier_StatusModifier{StatusModifier: &gatewayv1.MartianStatus{StatusCode: 500}}}
	h.apply(t, envelope(t, 1, snap))
	if r := get(t, h.url+"/r"); r.code != 200 || !strings.Contains(r.body, `"tag":"other"`) {
		t.Errorf("GET /r = %d %s, want the backend on the other port", r.code, r.body)
	}
	if r := get(t, h.url+"/s"); r.code == 200 {
		t.Errorf("GET /s with status.Modifier 500 = %d %s, want the failed backend call", r.code, r.body)
	}
}
