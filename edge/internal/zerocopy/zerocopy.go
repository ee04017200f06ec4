// Package zerocopy is the edge's one place for unsafe []byte/string views,
// used on the hot path where a copy would be the only allocation.
//
// The caller guarantees what the compiler cannot: the bytes behind a view
// are not modified while the view is in use, and a []byte view of a string
// is never written to.
//
// zerocopy imports nothing from the project.
package zerocopy

import "unsafe"

// String views b as a string without copying.
func String(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// Bytes views s as bytes without copying; the result must not be modified.
func Bytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
