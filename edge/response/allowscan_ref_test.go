package response

import (
	"bytes"
	"encoding/json"
	"testing"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"

	"github.com/valyala/fastjson"
)

// The two-pass allow scan (validJSON, then a skip over the top level) that
// decodeAllowed replaced; FuzzDecodeAllowedFused checks they agree.

var scanSpecial = [256]bool{'"': true, '{': true, '[': true, '}': true, ']': true}

func (f *Formatter) decodeAllowedTwoPass(sl *slot, body []byte) (*fastjson.Value, bool, error) {
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
		keep := bytes.IndexByte(key, '\\') >= 0 || f.allow.find(b2s(key)) != nil
		i = skipWSAt(body, ke)
		i = skipWSAt(body, i+1)
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

// FuzzDecodeAllowedFused checks that the one-pass decodeAllowed accepts and
// rejects exactly what validJSON does (encoding/json.Valid's rules), at the
// same offset, and that on a valid object it builds the same kept-members
// text as validJSON followed by the two-pass scan.
func FuzzDecodeAllowedFused(f *testing.F) {
	for _, b := range allowScanBodies {
		f.Add([]byte(b), uint8(0))
	}
	for _, b := range []string{`{"id":1,"a":"\x13\\b"}`, `{"id":[1,2}`, `{"id":1,}`, `{"id":1} x`, `{"id"1}`,
		`{"\u0069d":{"x":[true,null]},"name":-0.5e3}`, `{"id":01}`, `{"id":"\xff"}`, ` {} `, `[{"id":1}]`} {
		f.Add([]byte(b), uint8(1))
	}
	f.Fuzz(func(t *testing.T, body []byte, pick uint8) {
		fm, err := NewFormatter(&gatewayv1.Backend{Allow: allowScanLists[int(pick)%len(allowScanLists)]})
		if err != nil {
			t.Fatal(err)
		}
		var fused, two slot
		_, ok, valid, at, ferr := fm.decodeAllowed(&fused, body)
		wantValid, wantAt := validJSON(body)
		if wantValid != (json.Valid(body)) {
			t.Fatalf("validJSON %v, encoding/json %v on %q", wantValid, !wantValid, body)
		}
		if !ok {
			// Not an object: the caller validates and decodes in full.
			if i := skipWSAt(body, 0); i < len(body) && body[i] == '{' {
				t.Fatalf("%q: fused declined an object", body)
			}
			return
		}
		if valid != wantValid || (!valid && at != wantAt) {
			t.Fatalf("%q: fused valid %v at %d, validJSON %v at %d", body, valid, at, wantValid, wantAt)
		}
		if !valid {
			return
		}
		_, wantOK, terr := fm.decodeAllowedTwoPass(&two, body)
		if !wantOK {
			t.Fatalf("%q: fused took it as an object, two-pass did not", body)
		}
		if string(fused.buf) != string(two.buf) || (ferr != nil) != (terr != nil) {
			t.Fatalf("%q: fused %q (%v), two-pass %q (%v)", body, fused.buf, ferr, two.buf, terr)
		}
	})
}
