// Package ascii is the edge's one ASCII case-folding helper for header
// names and tokens on the hot path: byte-wise, allocation-free, and blind to
// anything outside ASCII (HTTP header names are tokens, RFC 9110 §5.1).
//
// ascii imports nothing from the project.
package ascii

// Lower returns c lowercased when it is an ASCII capital letter.
func Lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// EqualFold reports whether a and b are equal ignoring ASCII case.
func EqualFold(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if Lower(a[i]) != Lower(b[i]) {
			return false
		}
	}
	return true
}
