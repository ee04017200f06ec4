package duration

import (
	"testing"
	"time"
)

func TestSplitJoin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		d      time.Duration
		ms, ns int64
	}{
		{name: "unset", d: 0},
		{name: "negative", d: -time.Second},
		{name: "whole ms", d: 1500 * time.Millisecond, ms: 1500},
		{name: "150us", d: 150 * time.Microsecond, ms: 1, ns: 150_000},
		{name: "1ns", d: 1, ms: 1, ns: 1},
		{name: "2.5ms", d: 2500 * time.Microsecond, ms: 3, ns: 2_500_000},
		{name: "1h", d: time.Hour, ms: 3_600_000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ms, ns := Split(tc.d)
			if ms != tc.ms || ns != tc.ns {
				t.Fatalf("Split(%v) = (%d, %d), want (%d, %d)", tc.d, ms, ns, tc.ms, tc.ns)
			}
			want := tc.d
			if want < 0 {
				want = 0
			}
			if got := Join(ms, ns); got != want {
				t.Fatalf("Join(Split(%v)) = %v", tc.d, got)
			}
		})
	}
	// An edge without the feature reads only ms: rounded up, never shorter.
	if got := Join(1, 0); got != time.Millisecond {
		t.Fatalf("Join(1, 0) = %v, want 1ms", got)
	}
}
