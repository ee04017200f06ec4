package response

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

func parseOutput(name string) (Output, error) {
	switch name {
	case "", "json":
		return OutputJSON, nil
	case "json-collection":
		return OutputJSONCollection, nil
	case "string":
		return OutputString, nil
	case "no-op":
		return OutputNoOp, nil
	case "negotiate":
		return OutputNegotiate, nil
	case "xml":
		return OutputXML, nil
	case "yaml":
		return OutputYAML, nil
	}
	return 0, fmt.Errorf("output encoding %q: unsupported (json, json-collection, string, no-op, negotiate, xml, yaml)", name)
}

// field returns v[key] when v is an object.
func field(v *fastjson.Value, key string) *fastjson.Value {
	if v == nil || v.Type() != fastjson.TypeObject {
		return nil
	}
	o, _ := v.Object()
	return o.Get(key)
}

func render(dst []byte, o Output, v *fastjson.Value, accept []byte) ([]byte, string) {
	return renderOrdered(dst, o, v, accept, nil)
}

// renderOrdered is render with ordered's objects written in their stored
// key order (JSON; see Scratch.KeepOrder).
func renderOrdered(dst []byte, o Output, v *fastjson.Value, accept []byte, ordered []*fastjson.Value) ([]byte, string) {
	if o == OutputNegotiate {
		o = negotiate(accept)
	}
	switch o {
	case OutputJSONCollection:
		c := field(v, "collection")
		if c == nil {
			return append(dst, "[]"...), ContentTypeJSON
		}
		return appendJSON(dst, c, ordered), ContentTypeJSON
	case OutputString:
		if c := field(v, "content"); c != nil && c.Type() == fastjson.TypeString {
			b, _ := c.StringBytes()
			dst = append(dst, b...)
		}
		return dst, ContentTypeText
	case OutputXML:
		return appendXMLDoc(dst, v), ContentTypeXML
	case OutputYAML:
		return appendYAMLDoc(dst, v), ContentTypeYAML
	}
	if v == nil || v.Type() == fastjson.TypeNull {
		return append(dst, "{}"...), ContentTypeJSON
	}
	return appendJSON(dst, v, ordered), ContentTypeJSON
}

// negotiation offers, in gin's order first (lura offers JSON, text/plain →
// YAML, application/xml → XML), then our additions, which only decide
// Accept entries that KrakenD would skip.
var offers = [...]struct {
	mime string
	out  Output
}{
	{"application/json", OutputJSON},
	{"text/plain", OutputYAML},
	{"application/xml", OutputXML},
	{"application/yaml", OutputYAML},
	{"application/x-yaml", OutputYAML},
	{"text/yaml", OutputYAML},
	{"text/x-yaml", OutputYAML},
	{"text/xml", OutputXML},
}

// negotiate is gin's Context.NegotiateFormat: Accept entries in header
// order (q-values ignored), parameters stripped; an entry matches an offer
// if it is a prefix of it or a '*' is reached; no entries → JSON; no match →
// JSON (lura's default branch).
func negotiate(accept []byte) Output {
	for len(accept) > 0 {
		var part []byte
		if i := indexByte(accept, ','); i >= 0 {
			part, accept = accept[:i], accept[i+1:]
		} else {
			part, accept = accept, nil
		}
		if i := indexByte(part, ';'); i > 0 {
			part = part[:i]
		}
		part = trimSpace(part)
		if len(part) == 0 {
			continue
		}
		for _, of := range offers {
			i := 0
			for ; i < len(part) && i < len(of.mime); i++ {
				if part[i] == '*' {
					return of.out
				}
				if part[i] != of.mime[i] {
					break
				}
			}
			if i == len(part) {
				return of.out
			}
		}
	}
	return OutputJSON
}

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// ---------------------------------------------------------------- XML

// appendXMLDoc renders like krakend-xml (mxj's Map.Xml with XML escaping
// on): a single top-level key that is not an array becomes the root
// element, otherwise the root is <doc>; keys starting with '-' are
// attributes, "#text" is the element text; arrays repeat the element; null,
// empty arrays and attribute-only objects are self-closed. No XML declaration, no
// indentation. Nil data renders an empty body (gin's c.XML(nil)).
func appendXMLDoc(dst []byte, v *fastjson.Value) []byte {
	if v == nil || v.Type() != fastjson.TypeObject {
		return dst
	}
	f := acquireFields()
	defer releaseFields(f)
	o, _ := v.Object()
	if o.Len() == 1 {
		single := false
		o.Visit(func(k []byte, c *fastjson.Value) {
			if c.Type() != fastjson.TypeArray {
				single = true
				dst = f.appendXMLElem(dst, k, c)
			}
		})
		if single {
			return dst
		}
	}
	return f.appendXMLElem(dst, []byte("doc"), v)
}

// appendXMLElem writes v as element name; object fields in key order (a
// Go map's, as mxj walks it).
func (f *fields) appendXMLElem(dst, name []byte, v *fastjson.Value) []byte {
	switch v.Type() {
	case fastjson.TypeArray:
		a, _ := v.Array()
		for _, c := range a {
			dst = f.appendXMLElem(dst, name, c)
		}
		if len(a) > 0 {
			return dst
		}
		fallthrough // mxj writes an empty array as an empty element
	case fastjson.TypeNull:
		dst = append(dst, '<')
		dst = appendXMLName(dst, name)
		return append(dst, '/', '>')
	case fastjson.TypeObject:
		o, _ := v.Object()
		from, to := f.push(o, false)
		dst = append(dst, '<')
		dst = appendXMLName(dst, name)
		children := 0
		for i := from; i < to; i++ {
			k, c := f.kv[i].k, f.kv[i].v
			if len(k) > 1 && k[0] == '-' && isXMLScalar(c) {
				dst = append(dst, ' ')
				dst = appendXMLName(dst, k[1:])
				dst = append(dst, '=', '"')
				dst = appendXMLScalar(dst, c)
				dst = append(dst, '"')
				continue
			}
			children++
		}
		if children == 0 {
			f.pop(from)
			return append(dst, '/', '>')
		}
		dst = append(dst, '>')
		for i := from; i < to; i++ {
			k, c := f.kv[i].k, f.kv[i].v
			switch {
			case len(k) > 1 && k[0] == '-' && isXMLScalar(c):
			case string(k) == "#text" && isXMLScalar(c):
				dst = appendXMLScalar(dst, c)
			default:
				dst = f.appendXMLElem(dst, k, c)
			}
		}
		f.pop(from)
		dst = append(dst, '<', '/')
		dst = appendXMLName(dst, name)
		return append(dst, '>')
	}
	dst = append(dst, '<')
	dst = appendXMLName(dst, name)
	dst = append(dst, '>')
	dst = appendXMLScalar(dst, v)
	dst = append(dst, '<', '/')
	dst = appendXMLName(dst, name)
	return append(dst, '>')
}

func isXMLScalar(v *fastjson.Value) bool {
	switch v.Type() {
	case fastjson.TypeString, fastjson.TypeNumber, fastjson.TypeTrue, fastjson.TypeFalse:
		return true
	}
	return false
}

func appendXMLScalar(dst []byte, v *fastjson.Value) []byte {
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return appendXMLText(dst, b)
	case fastjson.TypeNumber:
		return v.MarshalTo(dst)
	case fastjson.TypeTrue:
		return append(dst, "true"...)
	case fastjson.TypeFalse:
		return append(dst, "false"...)
	}
	return dst
}

// appendXMLText escapes & < > " ' (mxj.XMLEscapeChars(true)) and replaces
// what XML 1.0 cannot carry (control characters, invalid UTF-8) by U+FFFD.
func appendXMLText(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			switch {
			case b == '&':
				dst = append(dst, "&amp;"...)
			case b == '<':
				dst = append(dst, "&lt;"...)
			case b == '>':
				dst = append(dst, "&gt;"...)
			case b == '"':
				dst = append(dst, "&quot;"...)
			case b == '\'':
				dst = append(dst, "&apos;"...)
			case b < 0x20 && b != '\t' && b != '\n' && b != '\r':
				dst = append(dst, "\uFFFD"...)
			default:
				dst = append(dst, b)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if (r == utf8.RuneError && size == 1) || r == 0xFFFE || r == 0xFFFF {
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// appendXMLName writes a key as an XML name: bytes that cannot appear in a
// name become '_' (mxj writes keys verbatim, which can yield broken XML).
func appendXMLName(dst, k []byte) []byte {
	if len(k) == 0 {
		return append(dst, '_')
	}
	for i, b := range k {
		ok := b >= 0x80 || b == '_' || b == ':' || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
			(i > 0 && (b == '-' || b == '.' || (b >= '0' && b <= '9')))
		if !ok {
			if i == 0 && (b == '-' || b == '.' || (b >= '0' && b <= '9')) {
				dst = append(dst, '_', b)
				continue
			}
			b = '_'
		}
		dst = append(dst, b)
	}
	return dst
}

// ---------------------------------------------------------------- YAML

// appendYAMLDoc renders block YAML in yaml.v3's layout (4-space indent,
// "- " items), keys sorted. Strings are plain when unambiguous,
// otherwise double-quoted; numbers are quoted (KrakenD's json.Number values
// are strings to yaml.v3). Nil data renders "{}".
func appendYAMLDoc(dst []byte, v *fastjson.Value) []byte {
	if v == nil || v.Type() == fastjson.TypeNull {
		return append(dst, "{}\n"...)
	}
	if isYAMLFlow(v) {
		dst = appendYAMLFlow(dst, v)
		return append(dst, '\n')
	}
	f := acquireFields()
	defer releaseFields(f)
	switch v.Type() {
	case fastjson.TypeObject:
		return f.appendYAMLMap(dst, v, 0, false)
	case fastjson.TypeArray:
		return f.appendYAMLSeq(dst, v, 0, false)
	}
	return dst
}

// isYAMLFlow: scalars and empty containers are written inline.
func isYAMLFlow(v *fastjson.Value) bool {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		return o.Len() == 0
	case fastjson.TypeArray:
		a, _ := v.Array()
		return len(a) == 0
	}
	return true
}

func appendYAMLFlow(dst []byte, v *fastjson.Value) []byte {
	switch v.Type() {
	case fastjson.TypeObject:
		return append(dst, "{}"...)
	case fastjson.TypeArray:
		return append(dst, "[]"...)
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return appendYAMLString(dst, b)
	case fastjson.TypeNumber:
		// KrakenD's numbers are json.Number, a string to yaml.v3.
		dst = append(dst, '"')
		dst = v.MarshalTo(dst)
		return append(dst, '"')
	case fastjson.TypeTrue:
		return append(dst, "true"...)
	case fastjson.TypeFalse:
		return append(dst, "false"...)
	}
	return append(dst, "null"...)
}

func appendIndent(dst []byte, n int) []byte {
	for ; n > 0; n-- {
		dst = append(dst, ' ')
	}
	return dst
}

// appendYAMLMap writes a block mapping at indent; inline means the first key
// continues the current line (after "- ").
func (f *fields) appendYAMLMap(dst []byte, v *fastjson.Value, indent int, inline bool) []byte {
	o, _ := v.Object()
	from, to := f.push(o, false)
	for i := from; i < to; i++ {
		k, c := f.kv[i].k, f.kv[i].v
		if !(i == from && inline) {
			dst = appendIndent(dst, indent)
		}
		dst = appendYAMLString(dst, k)
		dst = append(dst, ':')
		if isYAMLFlow(c) {
			dst = append(dst, ' ')
			dst = appendYAMLFlow(dst, c)
			dst = append(dst, '\n')
			continue
		}
		dst = append(dst, '\n')
		if c.Type() == fastjson.TypeObject {
			dst = f.appendYAMLMap(dst, c, indent+4, false)
		} else {
			dst = f.appendYAMLSeq(dst, c, indent+4, false)
		}
	}
	f.pop(from)
	return dst
}

func (f *fields) appendYAMLSeq(dst []byte, v *fastjson.Value, indent int, inline bool) []byte {
	a, _ := v.Array()
	for i, c := range a {
		if !(i == 0 && inline) {
			dst = appendIndent(dst, indent)
		}
		dst = append(dst, '-', ' ')
		switch {
		case isYAMLFlow(c):
			dst = appendYAMLFlow(dst, c)
			dst = append(dst, '\n')
		case c.Type() == fastjson.TypeObject:
			dst = f.appendYAMLMap(dst, c, indent+2, true)
		default:
			dst = f.appendYAMLSeq(dst, c, indent+2, true)
		}
	}
	return dst
}

// appendYAMLString writes s as yaml.v3 (gin's YAML renderer) does: plain
// when no YAML reader could take it for anything but that string;
// double-quoted when plain it would read as another type (a number, a
// boolean, null) or holds characters single quotes cannot carry;
// single-quoted otherwise ("- x", "a: b").
func appendYAMLString(dst, s []byte) []byte {
	if yamlPlainSafe(s) {
		return append(dst, s...)
	}
	if yamlNonString(s) || !yamlSingleQuotable(s) {
		return appendYAMLDouble(dst, s)
	}
	dst = append(dst, '\'')
	for _, c := range s {
		if c == '\'' {
			dst = append(dst, '\'')
		}
		dst = append(dst, c)
	}
	return append(dst, '\'')
}

// yamlSingleQuotable: printable text only (no escapes needed). yaml.v3
// also single-quotes the line separators U+2028 and U+2029, written as
// they are; we do so when they end the string and follow no space (text
// after a separator makes yaml.v3 break the line and indent it there,
// which our scalar writer does not do: double-quoted, "\L", instead).
func yamlSingleQuotable(s []byte) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	if len(s) == 0 {
		return false
	}
	body := s
	for len(body) > 0 {
		r, n := utf8.DecodeLastRune(body)
		if r != 0x2028 && r != 0x2029 {
			break
		}
		body = body[:len(body)-n]
	}
	if len(body) < len(s) && len(body) > 0 && body[len(body)-1] == ' ' {
		return false
	}
	return yamlPrintable(body)
}

// yamlPrintable: valid UTF-8 of yaml.v3's printable set (tab, breaks,
// the BOM and characters beyond U+FFFD excluded).
func yamlPrintable(s []byte) bool {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRune(s[i:])
		if !yamlPrintableRune(r) || (r == utf8.RuneError && n == 1) {
			return false
		}
		i += n
	}
	return true
}

func yamlPrintableRune(r rune) bool {
	switch {
	case r == 0x85, r == 0x2028, r == 0x2029, r == 0xFEFF:
		return false
	case 0x20 <= r && r <= 0x7E, 0xA0 <= r && r <= 0xD7FF, 0xE000 <= r && r <= 0xFFFD:
		return true
	}
	return false
}

// appendYAMLDouble writes s double-quoted with yaml.v3's escapes.
func appendYAMLDouble(dst, s []byte) []byte {
	const hex = "0123456789ABCDEF"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRune(s[i:])
		i += n
		switch {
		case r == '"' || r == '\\':
			dst = append(dst, '\\', byte(r))
			continue
		case yamlPrintableRune(r) && !(r == utf8.RuneError && n == 1):
			dst = utf8.AppendRune(dst, r)
			continue
		}
		dst = append(dst, '\\')
		switch r {
		case 0:
			dst = append(dst, '0')
		case 7:
			dst = append(dst, 'a')
		case 8:
			dst = append(dst, 'b')
		case 9:
			dst = append(dst, 't')
		case 0xA:
			dst = append(dst, 'n')
		case 0xB:
			dst = append(dst, 'v')
		case 0xC:
			dst = append(dst, 'f')
		case 0xD:
			dst = append(dst, 'r')
		case 0x1B:
			dst = append(dst, 'e')
		case 0x85:
			dst = append(dst, 'N')
		case 0x2028:
			dst = append(dst, 'L')
		case 0x2029:
			dst = append(dst, 'P')
		default:
			width := 2
			switch {
			case r <= 0xFF:
				dst = append(dst, 'x')
			case r <= 0xFFFF:
				dst, width = append(dst, 'u'), 4
			default:
				dst, width = append(dst, 'U'), 8
			}
			for k := width - 1; k >= 0; k-- {
				dst = append(dst, hex[(r>>(4*k))&0xF])
			}
		}
	}
	return append(dst, '"')
}

// yamlNonString reports whether plain s would resolve to a non-string
// YAML value (yaml.v3's resolve plus its YAML 1.1 booleans and base-60
// floats): those are double-quoted.
func yamlNonString(s []byte) bool {
	switch string(s) {
	case "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE",
		"yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF",
		"y", "Y", "n", "N", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF",
		".nan", ".NaN", ".NAN", "<<":
		return true
	}
	c := s[0]
	if c == '+' || c == '-' {
		if len(s) == 1 {
			return false
		}
		c = s[1]
	}
	if (c < '0' || c > '9') && c != '.' {
		return false
	}
	n := strings.ReplaceAll(string(s), "_", "")
	if _, err := strconv.ParseInt(n, 0, 64); err == nil {
		return true
	}
	if _, err := strconv.ParseFloat(n, 64); err == nil {
		return true
	}
	// Base 60 (YAML 1.1): digits and ':' only.
	for _, b := range n {
		if (b < '0' || b > '9') && b != ':' && b != '.' && b != '+' && b != '-' {
			return false
		}
	}
	return strings.IndexByte(n, ':') > 0
}

func yamlPlainSafe(s []byte) bool {
	if len(s) == 0 || s[0] == ' ' || s[len(s)-1] == ' ' || s[len(s)-1] == ':' {
		return false
	}
	// A leading '-' is plain when it cannot start a sequence entry or a
	// number ("-type"; yaml.v3 writes it so).
	dashWord := s[0] == '-' && len(s) > 1 && s[1] != ' ' && s[1] != '.' && s[1] != '-' && (s[1] < '0' || s[1] > '9')
	switch s[0] {
	case '-':
		if !dashWord {
			return false
		}
	case '?', ':':
		// Indicators only when followed by a space.
		if len(s) == 1 || s[1] == ' ' {
			return false
		}
	case '+', '.', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		if yamlNonString(s) {
			return false
		}
	case ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', '~':
		return false
	}
	for i, b := range s {
		if b < 0x20 || b == 0x7f {
			return false
		}
		if (b == ':' || b == '#') && i+1 < len(s) && s[i+1] == ' ' || b == '#' && i > 0 && s[i-1] == ' ' {
			return false
		}
	}
	if !yamlPrintable(s) {
		return false
	}
	switch string(s) {
	case "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE",
		"yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF",
		"y", "Y", "n", "N":
		return false
	}
	return true
}
