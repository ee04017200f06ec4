// Package dnstest runs a DNS server on loopback for tests: SRV records and
// A records (127.0.0.1) from tables the test sets, over UDP.
package dnstest

import (
	"context"
	"net"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Server answers SRV and A queries on 127.0.0.1 (UDP) from tables the
// test changes; every other question gets NXDOMAIN, and fail makes every
// answer SERVFAIL.
type Server struct {
	addr string
	mu   sync.Mutex
	srv  map[string][]*net.SRV
	a    map[string]bool // names resolving to 127.0.0.1
	fail bool
}

// Start runs a Server until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &Server{addr: pc.LocalAddr().String(), srv: map[string][]*net.SRV{}, a: map[string]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out, ok := d.answer(buf[:n]); ok {
				pc.WriteTo(out, from)
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return d
}

// Set makes name's SRV records srvs, and their targets resolve to
// 127.0.0.1.
func (d *Server) Set(name string, srvs ...*net.SRV) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.srv[name] = srvs
	for _, s := range srvs {
		d.a[s.Target] = true
	}
}

// Fail makes every answer SERVFAIL (or not).
func (d *Server) Fail(fail bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail = fail
}

func (d *Server) answer(q []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, false
	}
	question, err := p.Question()
	if err != nil {
		return nil, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	name := question.Name.String()
	srvs, isSRV := d.srv[name]
	switch {
	case d.fail:
		rh.RCode = dnsmessage.RCodeServerFailure
	case question.Type == dnsmessage.TypeSRV && isSRV, question.Type == dnsmessage.TypeA && d.a[name]:
	case question.Type == dnsmessage.TypeAAAA && d.a[name]:
		// The name exists, without IPv6 addresses.
	default:
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil || b.Question(question) != nil {
		return nil, false
	}
	if err := b.StartAnswers(); err != nil {
		return nil, false
	}
	rr := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 1}
	if rh.RCode == dnsmessage.RCodeSuccess {
		switch question.Type {
		case dnsmessage.TypeSRV:
			for _, s := range srvs {
				target := dnsmessage.MustNewName(s.Target)
				if err := b.SRVResource(rr, dnsmessage.SRVResource{Priority: s.Priority, Weight: s.Weight, Port: s.Port, Target: target}); err != nil {
					return nil, false
				}
			}
		case dnsmessage.TypeA:
			if err := b.AResource(rr, dnsmessage.AResource{A: [4]byte{127, 0, 0, 1}}); err != nil {
				return nil, false
			}
		}
	}
	out, err := b.Finish()
	return out, err == nil
}

// Resolver sends every query to d.
func (d *Server) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "udp", d.addr)
	}}
}
