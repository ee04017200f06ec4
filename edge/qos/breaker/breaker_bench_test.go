package breaker

import (
	"testing"
	"time"
)

func BenchmarkAllowDone(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"closed", Config{MaxErrors: 5}},
		{"closed-with-interval", Config{MaxErrors: 5, Interval: time.Minute}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			br, _ := New(tc.cfg)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tk, ok := br.Allow()
					if ok {
						br.Done(tk, true)
					}
				}
			})
		})
	}
	b.Run("open-reject", func(b *testing.B) {
		br, _ := New(Config{Timeout: time.Hour})
		tk, _ := br.Allow()
		br.Done(tk, false)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				br.Allow()
			}
		})
	})
}
