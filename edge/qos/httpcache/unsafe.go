package httpcache

import "unsafe"

// unsafeString views b as a string without copying, for passing stored
// header names to RequestHeader.Peek on the hit path. b must not change
// while the string is used (stored names never change).
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
