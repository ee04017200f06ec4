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

// AppendJSONString appends s as a JSON string exactly as encoding/json
// writes it: HTML-safe, invalid UTF-8 replaced by \ufffd, U+2028 and U+2029
// escaped, \b \f \n \r \t short forms (Go >= 1.22).
func AppendJSONString(dst []byte, s []byte) []byte {
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

// appendJSON appends v as compact JSON the way KrakenD writes its map:
// object keys sorted (the last of duplicates wins), strings escaped like
// encoding/json, numbers as the backend wrote them (KrakenD decodes with
// UseNumber; Decode validated them), no trailing newline. A nil v is
// written as null.
func appendJSON(dst []byte, v *fastjson.Value, ordered []*fastjson.Value) []byte {
	f := acquireFields()
	f.ordered = ordered
	dst = f.appendJSON(dst, v)
	f.ordered, f.orderedSet = nil, nil
	releaseFields(f)
	return dst
}

func (f *fields) appendJSON(dst []byte, v *fastjson.Value) []byte {
	if v == nil {
		return append(dst, "null"...)
	}
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		from, to := f.push(o, f.keepsOrder(v))
		dst = append(dst, '{')
		for i := from; i < to; i++ {
			if i > from {
				dst = append(dst, ',')
			}
			e := f.kv[i]
			dst = AppendJSONString(dst, e.k)
			dst = append(dst, ':')
			dst = f.appendJSON(dst, e.v)
		}
		f.pop(from)
		return append(dst, '}')
	case fastjson.TypeArray:
		a, _ := v.Array()
		dst = append(dst, '[')
		for i, c := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = f.appendJSON(dst, c)
		}
		return append(dst, ']')
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return AppendJSONString(dst, b)
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

// canonicalObject reports whether body, valid JSON (validObject), is
// already byte for byte what appendJSON writes for it: a top-level object,
// no whitespace outside strings, every object's keys strictly ascending,
// and strings that encoding/json would write unchanged (no escapes, no
// HTML characters, valid UTF-8 without U+2028/U+2029). Such a body can be
// sent as it came. One pass, no allocation; nesting deeper than
// maxCanonicalDepth answers false (the body is re-encoded instead).
func canonicalObject(b []byte) bool {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return false
	}
	type level struct {
		obj, wantKey, hasPrev bool
		prev                  []byte
	}
	var stack [maxCanonicalDepth]level
	d := -1
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '{', '[':
			d++
			if d == len(stack) {
				return false
			}
			stack[d] = level{obj: c == '{', wantKey: c == '{'}
		case '}', ']':
			d--
		case ',':
			if d >= 0 && stack[d].obj {
				stack[d].wantKey = true
			}
		case '"':
			j, high := i+1, false
			for ; j < len(b) && b[j] != '"'; j++ {
				ch := b[j]
				if ch == '\\' || ch == '<' || ch == '>' || ch == '&' || ch < 0x20 {
					return false
				}
				high = high || ch >= utf8.RuneSelf
			}
			if j == len(b) {
				return false
			}
			s := b[i+1 : j]
			if high && (!utf8.Valid(s) || bytes.Contains(s, lineSep) || bytes.Contains(s, paraSep)) {
				return false
			}
			if d >= 0 && stack[d].wantKey {
				l := &stack[d]
				if l.hasPrev && bytes.Compare(l.prev, s) >= 0 {
					return false
				}
				l.prev, l.hasPrev, l.wantKey = s, true, false
			}
			i = j
		case ' ', '\t', '\n', '\r':
			return false
		}
	}
	return true
}

// maxCanonicalDepth bounds canonicalObject's nesting (its stack lives on
// the goroutine stack).
const maxCanonicalDepth = 32

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
	ok, _ := validJSON(body[i:])
	return ok
}

func skipSpace(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
