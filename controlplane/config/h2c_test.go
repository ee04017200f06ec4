package config

import (
	"slices"
	"testing"
)

// TestUseH2C: use_h2c at the root or in the router namespace (KrakenD reads
// both) turns h2c on and lists the listener.h2c feature, so an edge without
// it NACKs instead of serving HTTP/1.1 only.
func TestUseH2C(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, root string
		want       bool
	}{
		{"absent", ``, false},
		{"root false", `"use_h2c": false`, false},
		{"root true", `"use_h2c": true`, true},
		{"router true", `"extra_config": {"router": {"use_h2c": true}}`, true},
		{"router false", `"extra_config": {"router": {"use_h2c": false}}`, false},
		{"either", `"use_h2c": false, "extra_config": {"router": {"use_h2c": true}}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := compileDoc(t, conf(tc.root, ep("/a", "")))
			if got := snap.GetService().GetH2C(); got != tc.want {
				t.Errorf("h2c = %v, want %v", got, tc.want)
			}
			if got := slices.Contains(snap.GetFeatures(), "listener.h2c"); got != tc.want {
				t.Errorf("features %v: listener.h2c present %v, want %v", snap.GetFeatures(), got, tc.want)
			}
		})
	}
}
