//go:build !race

package breaker

import (
	"testing"
	"time"
)

func TestAllowDoneAllocs(t *testing.T) {
	b, _, _ := newBreaker(t, Config{MaxErrors: 5, Interval: time.Minute})
	tests := []struct {
		name string
		fn   func()
	}{
		{"Allow+Done success", func() { tk, _ := b.Allow(); b.Done(tk, true) }},
		{"Allow+Done failure then success", func() {
			tk, _ := b.Allow()
			b.Done(tk, false)
			tk, _ = b.Allow()
			b.Done(tk, true)
		}},
		{"Allow+Release", func() { tk, _ := b.Allow(); b.Release(tk) }},
	}
	for _, tc := range tests {
		if n := testing.AllocsPerRun(1000, tc.fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", tc.name, n)
		}
	}
}
