package response

import (
	"bytes"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

const hexDigits = "0123456789abcdef"

// htmlSafe[b] is true when ASCII byte b is written as is inside a JSON string
// by encoding/json with HTML escaping on (json.Marshal, which gin's c.JSON
// uses): everything but control characters, '"', '\\', '<', '>' and '&'.
var htmlSafe = func() (t [utf8.RuneSelf]bool) {
	for i := 0x20; i < utf8.RuneSelf; i++ {
		t[i] = true
	}
	t['"'], t['\\'], t['<'], t['>'], t['&'] = false, false, false, false, false
	return t
}()

// appendJSONString appends s as a JSON string exactly as encoding/json
// writes it: HTML-safe, invalid UTF-8 replaced by \ufffd, U+2028 and U+2029
// escaped, \b \f \n \r \t short forms (Go >= 1.22).
func appendJSONString(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if htmlSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendMinimalJSONString appends s as a JSON string escaping only what JSON
// requires ('"', '\\' and control characters). Used to build JSON text that
// fastjson parses right away; invalid UTF-8 is kept and dealt with when
// rendering.
func appendMinimalJSONString(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b >= 0x20 && b != '"' && b != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch b {
		case '"', '\\':
			dst = append(dst, '\\', b)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendJSON appends v as compact JSON. Object keys keep v's order; strings
// are escaped like encoding/json; numbers are written as the backend wrote
// them (Decode validated them). A nil v is written as null.
func appendJSON(dst []byte, v *fastjson.Value) []byte { return appendJSONDepth(dst, v, 0) }

// fastDepth bounds the levels at which appendJSONDepth tries fastjson's own
// MarshalTo first: a failed attempt costs one extra pass over the subtree,
// so at most fastDepth extra passes in total.
const fastDepth = 3

func appendJSONDepth(dst []byte, v *fastjson.Value, depth int) []byte {
	if v == nil {
		return append(dst, "null"...)
	}
	t := v.Type()
	if depth < fastDepth && (t == fastjson.TypeObject || t == fastjson.TypeArray) {
		// fastjson writes parsed strings and keys exactly as the backend
		// sent them. That is encoding/json's output too unless a segment
		// holds an escape (the source's own, or strconv.Quote's for values
		// fastjson unescaped), an HTML character, invalid UTF-8 or
		// U+2028/U+2029: then take the slow path for this level.
		start := len(dst)
		dst = v.MarshalTo(dst)
		if plainJSON(dst[start:]) {
			return dst
		}
		dst = dst[:start]
	}
	switch t {
	case fastjson.TypeObject:
		o, _ := v.Object()
		dst = append(dst, '{')
		first := true
		o.Visit(func(k []byte, c *fastjson.Value) {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			dst = appendJSONDepth(dst, c, depth+1)
		})
		return append(dst, '}')
	case fastjson.TypeArray:
		a, _ := v.Array()
		dst = append(dst, '[')
		for i, c := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONDepth(dst, c, depth+1)
		}
		return append(dst, ']')
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return appendJSONString(dst, b)
	case fastjson.TypeNumber:
		return v.MarshalTo(dst)
	case fastjson.TypeTrue:
		return append(dst, "true"...)
	case fastjson.TypeFalse:
		return append(dst, "false"...)
	default:
		return append(dst, "null"...)
	}
}

// jsonSpecial marks the ASCII bytes plainJSON rejects.
var jsonSpecial = func() (t [256]bool) {
	t['\\'], t['<'], t['>'], t['&'] = true, true, true, true
	return t
}()

// plainJSON reports whether b, compact JSON from fastjson's MarshalTo, is
// byte for byte what appendJSON would write.
func plainJSON(b []byte) bool {
	high := false
	for _, c := range b {
		if jsonSpecial[c] {
			return false
		}
		if c >= utf8.RuneSelf {
			high = true
		}
	}
	if !high {
		return true
	}
	return utf8.Valid(b) && !bytes.Contains(b, lineSep) && !bytes.Contains(b, paraSep)
}

var (
	lineSep = []byte("\u2028")
	paraSep = []byte("\u2029")
)

// cook resolves every lazily unescaped part of v (string contents, object
// keys) so that later reads never write to v. Values shared between
// goroutines (static data) must be cooked once before publication.
func cook(v *fastjson.Value) {
	if v == nil {
		return
	}
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		o.Visit(func(_ []byte, c *fastjson.Value) { cook(c) })
	case fastjson.TypeArray:
		a, _ := v.Array()
		for _, c := range a {
			cook(c)
		}
	}
}

// validObject reports whether body is strictly valid JSON with an object at
// the top level.
func validObject(body []byte) bool {
	i := skipSpace(body)
	if i == len(body) || body[i] != '{' {
		return false
	}
	return fastjson.ValidateBytes(body) == nil
}

func skipSpace(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
