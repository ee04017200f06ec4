package response

import (
	"bytes"

	"github.com/valyala/fastjson"
)

// Allow-list decoding without a parse tree of the whole body.
//
// A backend with an allow list keeps a few top-level members of what is
// often a large object. Parsing the whole body into fastjson Values only to
// drop most of them costs as much as validating it again (and a copy of the
// body in the parser). decodeAllowed instead walks the top level of the
// already validated body, copies the members whose key the allow list can
// keep into a small JSON text and parses only that. apply's allowPrune
// then does exactly what it does on the full tree: the members it sees are
// the same, in the same order, with the same raw bytes; the ones left out
// are the ones it would have dropped.

// scanSpecial marks the bytes a skip over valid JSON must look at inside an
// array or object: string starts and nesting.
var scanSpecial = [256]bool{'"': true, '{': true, '[': true, '}': true, ']': true}

// decodeAllowed returns the parsed object of body's allowable top-level
// members, or ok false when body's top level is not an object (the caller
// then decodes it in full). body must be valid JSON (validJSON).
func (f *Formatter) decodeAllowed(sl *slot, body []byte) (*fastjson.Value, bool, error) {
	i := skipWSAt(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, false, nil
	}
	buf := append(sl.buf[:0], '{')
	i = skipWSAt(body, i+1)
	for i < len(body) && body[i] == '"' {
		ks := i
		ke := skipString(body, i)
		key := body[ks+1 : ke-1]
		// A key with an escape is kept as is: the tree's key is its
		// unescaped form, which allowPrune compares.
		keep := bytes.IndexByte(key, '\\') >= 0 || f.allow.find(b2s(key)) != nil
		i = skipWSAt(body, ke)
		i = skipWSAt(body, i+1) // the ':'
		vs := i
		i = skipValue(body, i)
		if keep {
			if len(buf) > 1 {
				buf = append(buf, ',')
			}
			buf = append(buf, body[ks:ke]...)
			buf = append(buf, ':')
			buf = append(buf, body[vs:i]...)
		}
		i = skipWSAt(body, i)
		if i < len(body) && body[i] == ',' {
			i = skipWSAt(body, i+1)
		}
	}
	buf = append(buf, '}')
	sl.buf = buf
	v, err := sl.p.ParseBytes(buf)
	return v, true, err
}

func skipWSAt(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index after the string that starts at b[i] ('"').
func skipString(b []byte, i int) int {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return len(b)
		}
		j += k
		n := 0
		for p := j - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
		j++
	}
}

// skipValue returns the index after the valid JSON value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			c := b[i]
			if !scanSpecial[c] {
				i++
				continue
			}
			switch c {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			default: // '}', ']'
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	// A number, true, false or null.
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}
