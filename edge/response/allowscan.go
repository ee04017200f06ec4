package response

import "github.com/valyala/fastjson"

// Allow-list decoding without a parse tree of the whole body.
//
// A backend with an allow list keeps a few top-level members of what is
// often a large object. Parsing the whole body into fastjson Values only to
// drop most of them costs as much as validating it again (and a copy of the
// body in the parser). decodeAllowed instead walks the top level of the
// body, copies the members whose key the allow list can
// keep into a small JSON text and parses only that. The walk is the
// validator's own pass (validScan with an allowTap), so the body is read once. apply's allowPrune
// then does exactly what it does on the full tree: the members it sees are
// the same, in the same order, with the same raw bytes; the ones left out
// are the ones it would have dropped.

// decodeAllowed validates body (validJSON's rules, in the same pass) and,
// when its top level is an object, returns the parsed object of its
// allowable top-level members. ok is false when body's top level is not an
// object (the caller then validates and decodes it in full); valid false
// with at the offset where body stopped being valid JSON.
func (f *Formatter) decodeAllowed(sl *slot, body []byte) (v *fastjson.Value, ok, valid bool, at int, err error) {
	i := skipWSAt(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, false, true, 0, nil
	}
	t := &sl.tap
	t.allow, t.keep = f.allow, false
	t.buf = append(sl.buf[:0], '{')
	valid, at = validScan(body, t)
	sl.buf = append(t.buf, '}')
	t.buf, t.allow = nil, nil
	if !valid {
		return nil, true, false, at, nil
	}
	v, err = sl.p.ParseBytes(sl.buf)
	return v, true, true, 0, err
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
