package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/internal/dnstest"
)

func TestSRVInstances(t *testing.T) {
	t.Parallel()
	srv := func(target string, port, prio, weight uint16) *net.SRV {
		return &net.SRV{Target: target, Port: port, Priority: prio, Weight: weight}
	}
	tests := []struct {
		name string
		in   []*net.SRV
		want []string
	}{
		{"none", nil, nil},
		{"lowest priority only, weights divided by their gcd", []*net.SRV{srv("c.", 3, 20, 100), srv("b.", 2, 10, 25), srv("a.", 1, 10, 50)},
			[]string{"a.:1", "a.:1", "b.:2"}},
		{"weights over 100 are scaled", []*net.SRV{srv("a.", 1, 0, 300), srv("b.", 2, 0, 100)},
			// 300*100/400 = 75, 100*100/400 = 25, gcd 25: 3 and 1.
			[]string{"a.:1", "a.:1", "a.:1", "b.:2"}},
		{"equal weights, ordered by target then port", []*net.SRV{srv("b.", 1, 0, 5), srv("a.", 2, 0, 5), srv("a.", 1, 0, 5)},
			[]string{"a.:1", "a.:2", "b.:1"}},
		{"zero weights give no instance", []*net.SRV{srv("a.", 1, 0, 0)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := srvInstances(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("srvInstances = %v, want %v", got, tt.want)
			}
		})
	}
}

// tagServer answers its tag.
func tagServer(t *testing.T, tag string) uint16 {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, tag) }))
	t.Cleanup(s.Close)
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	n, _ := strconv.Atoi(port)
	return uint16(n)
}

func call(t *testing.T, c *Client) (string, error) {
	t.Helper()
	h := c.Pick()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(string(h.scheme) + "://" + string(h.host) + "/")
	if err := h.Do(req, resp, time.Now().Add(5*time.Second)); err != nil {
		return "", err
	}
	return string(resp.Body()), nil
}

// TestDNSSRVDiscovery: sd: dns against a DNS server on loopback. The
// client resolves the SRV name when built, re-resolves every TTL (a changed
// record moves the traffic), keeps its hosts when a lookup fails, and fails
// calls with ErrNoHosts while the name resolves to nothing.
func TestDNSSRVDiscovery(t *testing.T) {
	t.Parallel()
	d := dnstest.Start(t)
	portA, portB := tagServer(t, "a"), tagServer(t, "b")
	const name = "_api._tcp.gw.test."
	d.Set(name, &net.SRV{Target: "backend-a.gw.test.", Port: portA, Priority: 1, Weight: 10})

	c, err := NewClient(ClientConfig{Hosts: []string{name}, SD: SD{Name: name, TTL: MinSDTTL, Resolver: d.Resolver()}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Hosts(); !slices.Equal(got, []string{"http://backend-a.gw.test.:" + strconv.Itoa(int(portA))}) {
		t.Fatalf("resolved hosts = %v", got)
	}
	if body, err := call(t, c); err != nil || body != "a" {
		t.Fatalf("call = %q, %v; want backend a", body, err)
	}

	d.Set(name, &net.SRV{Target: "backend-b.gw.test.", Port: portB, Priority: 1, Weight: 10})
	waitFor(t, func() bool { body, err := call(t, c); return err == nil && body == "b" }, "traffic to move to backend b after the SRV record changed")

	d.Fail(true)
	failures := c.sdErrors.Load()
	waitFor(t, func() bool { return c.sdErrors.Load() > failures }, "a failed re-resolution")
	if body, err := call(t, c); err != nil || body != "b" {
		t.Errorf("after a failed lookup: %q, %v; want backend b kept", body, err)
	}

	empty, err := NewClient(ClientConfig{Hosts: []string{"_none._tcp.gw.test."}, SD: SD{Name: "_none._tcp.gw.test.", Resolver: d.Resolver()}})
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	if _, err := call(t, empty); !errors.Is(err, ErrNoHosts) {
		t.Errorf("call to a name without records: %v, want ErrNoHosts", err)
	}
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
