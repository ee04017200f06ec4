package response

import (
	"bytes"
	"encoding/binary"
)

// maxValidDepth is encoding/json's nesting limit: Valid rejects a document
// with more than 10000 arrays and objects open at once.
const maxValidDepth = 10000

// strStop[b] is true for the bytes that end the fast scan of a string's
// contents: '"', '\\' and the control characters encoding/json rejects.
var strStop = func() (t [256]bool) {
	for i := 0; i < 0x20; i++ {
		t[i] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// hexVal[b] is true for the hexadecimal digits of a \u escape.
var hexVal = func() (t [256]bool) {
	for _, c := range "0123456789abcdefABCDEF" {
		t[c] = true
	}
	return t
}()

const (
	lo7  = 0x0101010101010101
	hi7  = 0x8080808080808080
	dq8  = '"' * lo7
	bs8  = '\\' * lo7
	sp8  = 0x20 * lo7
	word = 8
)

// validJSON reports whether b is exactly one JSON value, surrounded by
// optional whitespace, under encoding/json.Valid's rules (what KrakenD's
// decoder accepts): strict numbers, no raw control characters in strings
// (before, between or after escapes), only JSON's escapes, any other bytes
// (invalid UTF-8 included) allowed in strings, at most 10000 levels of
// nesting. On failure it also returns the offset where b stopped being
// valid. One pass, no allocation, no recursion: fastjson.ValidateBytes
// scans a string twice when it has escapes and misses a control character
// that comes before an escape ("\x13\\b"), which encoding/json rejects.
func validJSON(b []byte) (ok bool, at int) { return validScan(b, nil) }

// allowTap collects, while validScan validates a top-level object, the
// members whose key the allow list can keep (see decodeAllowed).
type allowTap struct {
	allow *allowNode
	buf   []byte // '{' then the kept members, comma separated
	keep  bool   // the current top-level member is kept
	ks    int    // its key's offset (the opening quote)
	ke    int    // the offset after its key's closing quote
	vs    int    // its value's offset
}

// validScan is validJSON that, with t non-nil, also appends the kept
// top-level members of an object to t.buf (the caller checks the top level
// is '{'). validJSON is validScan without a tap: one copy of the grammar.
// The tap's nil checks cost about 30 ns on a 100-byte body and nothing
// measurable on 20 KB (interleaved BenchmarkValidJSON, against fastjson in
// the same run); a second copy of the validator is not worth that.
func validScan(b []byte, t *allowTap) (ok bool, at int) {
	// open holds one bit per open container, 1 for an object.
	var open [maxValidDepth/64 + 1]uint64
	depth, i, n := 0, 0, len(b)

value:
	for i < n && isSpace(b[i]) {
		i++
	}
	if i == n {
		return false, i
	}
	switch c := b[i]; {
	case c == '{':
		if depth == maxValidDepth {
			return false, i
		}
		open[depth>>6] |= 1 << (depth & 63)
		depth++
		i++
		for i < n && isSpace(b[i]) {
			i++
		}
		if i < n && b[i] == '}' {
			depth--
			i++
			goto next
		}
		goto key
	case c == '[':
		if depth == maxValidDepth {
			return false, i
		}
		open[depth>>6] &^= 1 << (depth & 63)
		depth++
		i++
		for i < n && isSpace(b[i]) {
			i++
		}
		if i < n && b[i] == ']' {
			depth--
			i++
			goto next
		}
		goto value
	case c == '"':
		if i = scanString(b, i+1); i < 0 {
			return false, -i - 1
		}
	case c == 't':
		if n-i < 4 || b[i+1] != 'r' || b[i+2] != 'u' || b[i+3] != 'e' {
			return false, i
		}
		i += 4
	case c == 'f':
		if n-i < 5 || b[i+1] != 'a' || b[i+2] != 'l' || b[i+3] != 's' || b[i+4] != 'e' {
			return false, i
		}
		i += 5
	case c == 'n':
		if n-i < 4 || b[i+1] != 'u' || b[i+2] != 'l' || b[i+3] != 'l' {
			return false, i
		}
		i += 4
	case c == '-' || c-'0' <= 9:
		if i = scanNumber(b, i); i < 0 {
			return false, -i - 1
		}
	default:
		return false, i
	}

next: // after a complete value: the container's separator or end
	if t != nil && depth == 1 && t.keep {
		if len(t.buf) > 1 {
			t.buf = append(t.buf, ',')
		}
		t.buf = append(t.buf, b[t.ks:t.ke]...)
		t.buf = append(t.buf, ':')
		t.buf = append(t.buf, b[t.vs:i]...)
		t.keep = false
	}
	for i < n && isSpace(b[i]) {
		i++
	}
	if depth == 0 {
		return i == n, i
	}
	if i == n {
		return false, i
	}
	if open[(depth-1)>>6]&(1<<((depth-1)&63)) != 0 {
		switch b[i] {
		case ',':
			i++
			for i < n && isSpace(b[i]) {
				i++
			}
			goto key
		case '}':
			depth--
			i++
			goto next
		}
		return false, i
	}
	switch b[i] {
	case ',':
		i++
		goto value
	case ']':
		depth--
		i++
		goto next
	}
	return false, i

key: // at an object key (whitespace skipped)
	if i == n || b[i] != '"' {
		return false, i
	}
	ks := i
	if i = scanString(b, i+1); i < 0 {
		return false, -i - 1
	}
	if t != nil && depth == 1 {
		// A key with an escape is kept as is: the tree's key is its
		// unescaped form, which allowPrune compares.
		key := b[ks+1 : i-1]
		t.keep = bytes.IndexByte(key, '\\') >= 0 || t.allow.find(b2s(key)) != nil
		t.ks, t.ke = ks, i
	}
	for i < n && isSpace(b[i]) {
		i++
	}
	if i == n || b[i] != ':' {
		return false, i
	}
	i++
	if t != nil && depth == 1 {
		for i < n && isSpace(b[i]) {
			i++
		}
		t.vs = i
	}
	goto value
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// scanString scans a string's contents from i (after the opening quote) and
// returns the offset after the closing quote, or -(offset+1) of the error.
func scanString(b []byte, i int) int {
	n := len(b)
	for {
		// Eight bytes at a time while none of them is '"', '\\' or < 0x20.
		for n-i >= word {
			w := binary.LittleEndian.Uint64(b[i:])
			if hasZero(w^dq8)|hasZero(w^bs8)|((w-sp8)&^w&hi7) != 0 {
				break
			}
			i += word
		}
		for i < n && !strStop[b[i]] {
			i++
		}
		if i == n {
			return -(i + 1)
		}
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			if i+1 == n {
				return -(i + 2)
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if n-i < 6 || !hexVal[b[i+2]] || !hexVal[b[i+3]] || !hexVal[b[i+4]] || !hexVal[b[i+5]] {
					return -(i + 2)
				}
				i += 6
			default:
				return -(i + 2)
			}
		default: // a control character
			return -(i + 1)
		}
	}
}

// hasZero is non-zero when one of w's bytes is zero.
func hasZero(w uint64) uint64 { return (w - lo7) &^ w & hi7 }

// scanNumber scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? from i and
// returns the offset after it, or -(offset+1) of the error.
func scanNumber(b []byte, i int) int {
	n := len(b)
	if b[i] == '-' {
		i++
	}
	switch {
	case i == n:
		return -(i + 1)
	case b[i] == '0':
		i++
	case b[i]-'1' <= 8:
		i++
		for i < n && b[i]-'0' <= 9 {
			i++
		}
	default:
		return -(i + 1)
	}
	if i < n && b[i] == '.' {
		i++
		if i == n || b[i]-'0' > 9 {
			return -(i + 1)
		}
		for i < n && b[i]-'0' <= 9 {
			i++
		}
	}
	if i < n && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < n && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i == n || b[i]-'0' > 9 {
			return -(i + 1)
		}
		for i < n && b[i]-'0' <= 9 {
			i++
		}
	}
	return i
}
