package response

import (
	"strconv"
	"strings"

	"github.com/valyala/fastjson"
)

func splitPath(p string) []string { return strings.Split(p, ".") }

func lookup(dst []byte, v *fastjson.Value, path []string) ([]byte, bool) {
	for _, p := range path {
		if v == nil {
			return dst, false
		}
		switch v.Type() {
		case fastjson.TypeObject:
			o, _ := v.Object()
			v = o.Get(p)
		case fastjson.TypeArray:
			a, _ := v.Array()
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(a) {
				return dst, false
			}
			v = a[i]
		default:
			return dst, false
		}
	}
	if v == nil {
		return dst, false
	}
	if v.Type() == fastjson.TypeArray {
		// lura: elements joined with "," each printed with %v.
		a, _ := v.Array()
		for i, c := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendScalarText(dst, c)
		}
		return dst, true
	}
	return appendScalarText(dst, v), true
}

// appendScalarText is lura's stringification of one placeholder value:
// strings unquoted, numbers as written, booleans, null as "<nil>", and (our
// choice, where lura prints Go's map[k:v] or [a b] syntax) objects and
// arrays as compact JSON.
func appendScalarText(dst []byte, v *fastjson.Value) []byte {
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return append(dst, b...)
	case fastjson.TypeNumber:
		return v.MarshalTo(dst)
	case fastjson.TypeTrue:
		return append(dst, "true"...)
	case fastjson.TypeFalse:
		return append(dst, "false"...)
	case fastjson.TypeNull:
		return append(dst, "<nil>"...)
	}
	return appendJSON(dst, v, nil)
}
