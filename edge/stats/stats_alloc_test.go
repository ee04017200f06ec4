//go:build !race

package stats

import (
	"crypto/tls"
	"testing"
	"time"
)

// TestRecordAllocs: recording a request in the router and proxy series,
// with its TLS version and suite, does not allocate once the series, the
// status counter and the TLS counters exist (the histogram's sample grows
// to its 1028 values, then stays).
func TestRecordAllocs(t *testing.T) {
	s := New()
	l, r := s.Layer("pipe", "/x"), s.Route("/x")
	start := time.Now()
	s.ConnectionTLS(tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	for range sampleSize {
		r.Observe(200, 10, start)
		l.Observe(start, true, false)
	}
	if n := testing.AllocsPerRun(100, func() {
		s.Connection()
		s.ConnectionTLS(tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
		l.Observe(start, true, false)
		r.Observe(200, 10, start)
		s.Disconnection()
	}); n != 0 {
		t.Errorf("%v allocs per recorded request, want 0", n)
	}
}
