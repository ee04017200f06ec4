//go:build !race

package stats

import (
	"testing"
	"time"
)

// TestRecordAllocs: recording a request in the router and proxy series
// does not allocate once the series and the status counter exist (the
// histogram's sample grows to its 1028 values, then stays).
func TestRecordAllocs(t *testing.T) {
	s := New()
	l, r := s.Layer("pipe", "/x"), s.Route("/x")
	start := time.Now()
	for range sampleSize {
		r.Observe(200, 10, start)
		l.Observe(start, true, false)
	}
	if n := testing.AllocsPerRun(100, func() {
		s.Connection(nil)
		l.Observe(start, true, false)
		r.Observe(200, 10, start)
		s.Disconnection()
	}); n != 0 {
		t.Errorf("%v allocs per recorded request, want 0", n)
	}
}
