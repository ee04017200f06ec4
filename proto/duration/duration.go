// Package duration is how a Snapshot carries a time.Duration: a whole
// number of milliseconds in a *_ms field, and the exact value in a sibling
// *_ns field when milliseconds would lose it (KrakenD parses Go durations,
// so "150us" is a valid endpoint timeout). The control plane's compiler
// splits with Split and lists feature.DurationSubMs when any field needed
// nanoseconds; the edge joins with Join. An edge without the feature reads
// only the *_ms field, rounded up, and NACKs such a snapshot instead.
//
// It imports only the standard library, so the edge, the control plane and
// the CLI may all depend on it.
package duration

import "time"

// Split returns d as the pair of fields to store: ms is d in milliseconds,
// rounded up, and ns is d when it is not a whole number of milliseconds,
// else 0. A d <= 0 is (0, 0), "unset".
func Split(d time.Duration) (ms, ns int64) {
	if d <= 0 {
		return 0, 0
	}
	q := d / time.Millisecond
	if d%time.Millisecond != 0 {
		return int64(q) + 1, int64(d)
	}
	return int64(q), 0
}

// Join is the inverse of Split: the exact duration when ns is set, else ms
// milliseconds. Unset (or negative) fields give 0.
func Join(ms, ns int64) time.Duration {
	if ns > 0 {
		return time.Duration(ns)
	}
	if ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return 0
}
