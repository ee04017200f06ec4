//go:build !race

package accesslog

import (
	"io"
	"testing"
	"time"
)

// TestWriteAllocs: a line in either format costs no allocation once the
// pool is warm.
func TestWriteAllocs(t *testing.T) {
	for _, f := range []Format{FormatKrakenD, FormatJSON} {
		l, err := New(Config{Out: io.Discard, Format: f, SkipPaths: []string{"/skip"}})
		if err != nil {
			t.Fatal(err)
		}
		r := Request{Method: []byte("GET"), Path: []byte("/a/b"), Query: []byte("x=1"), ClientIP: []byte("127.0.0.1"),
			Status: 500, Bytes: 10, Complete: []byte("false"), TraceID: []byte("4bf92f3577b34da6a3ce929d0e0e4736")}
		now := time.Now()
		got := testing.AllocsPerRun(200, func() {
			e := l.Start(r.Path, now)
			e.Route, e.Backends = "/a/{b}", 2
			e.Errors = append(e.Errors, "invalid status code 500 [GET /x]: http://127.0.0.1/x\nx"...)
			e.ClientIP = append(e.ClientIP, r.ClientIP...)
			e.Finish(&r, now)
			if l.Start([]byte("/skip"), now) != nil {
				t.Fatal("skip path not skipped")
			}
		})
		if got != 0 {
			t.Errorf("%s: %v allocs per line, want 0", f, got)
		}
	}
}

// TestOffAllocs: a nil (off) log costs nothing.
func TestOffAllocs(t *testing.T) {
	var l *Log
	path := []byte("/a")
	got := testing.AllocsPerRun(200, func() {
		if l.Start(path, time.Time{}) != nil {
			t.Fatal("a nil log started an entry")
		}
	})
	if got != 0 {
		t.Errorf("%v allocs, want 0", got)
	}
}
