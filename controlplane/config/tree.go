package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"
)

// maxDepth bounds nesting so hostile input cannot exhaust the stack. Real
// configurations nest about ten levels deep.
const maxDepth = 512

// jsonType is the JSON type of a node.
type jsonType uint8

const (
	typeNull jsonType = iota
	typeBool
	typeNumber
	typeString
	typeArray
	typeObject
)

func (t jsonType) String() string {
	switch t {
	case typeBool:
		return "boolean"
	case typeNumber:
		return "number"
	case typeString:
		return "string"
	case typeArray:
		return "array"
	case typeObject:
		return "object"
	default:
		return "null"
	}
}

// position is a 1-based line and column (in characters) in the original
// document; the zero value means unknown.
// A value set by an environment override has no line; env names the
// variable instead.
type position struct {
	line, col int
	env       string
}

func (p position) String() string {
	if p.env != "" {
		return "from $" + p.env
	}
	if p.col == 0 {
		return "line " + strconv.Itoa(p.line)
	}
	return "line " + strconv.Itoa(p.line) + ", column " + strconv.Itoa(p.col)
}

// node is one JSON value with the position where it starts. Objects keep
// their members in document order, duplicates included, so the decoder can
// report them.
type node struct {
	kind    jsonType
	text    string // string value, or the literal of a number
	boolean bool
	items   []*node
	members []member
	pos     position
}

type member struct {
	key string
	val *node
}

// syntaxError is a document that is not well-formed JSON or YAML.
type syntaxError struct {
	pos position
	msg string
}

func (e *syntaxError) Error() string {
	if e.pos.line == 0 {
		return e.msg
	}
	return e.msg + " (" + e.pos.String() + ")"
}

// lineIndex converts byte offsets into positions. Columns count
// characters, so converting an offset needs the characters between the
// start of its line and it; the index remembers the last offset it
// converted and counts on from there when the next one is further along the
// same line. The parser asks for offsets in increasing order, so a whole
// document costs one pass over it however long its lines are (a minified
// file is one line).
type lineIndex struct {
	data   []byte
	starts []int // offset of the first byte of each line

	// The last conversion: offset, its line (0-based) and column (1-based).
	lastOff, lastLine, lastCol int
}

func newLineIndex(data []byte) *lineIndex {
	starts := []int{0}
	for i, b := range data {
		if b == '\n' {
			starts = append(starts, i+1)
		}
	}
	return &lineIndex{data: data, starts: starts, lastCol: 1}
}

func (li *lineIndex) at(off int) position {
	if li == nil {
		return position{}
	}
	off = min(max(off, 0), len(li.data))
	var line int
	if off >= li.lastOff && (li.lastLine+1 == len(li.starts) || off < li.starts[li.lastLine+1]) {
		line = li.lastLine // same line as the last conversion: count on from it
	} else {
		line = sort.Search(len(li.starts), func(i int) bool { return li.starts[i] > off }) - 1
	}
	from, col := li.starts[line], 1
	if line == li.lastLine && off >= li.lastOff {
		from, col = li.lastOff, li.lastCol
	}
	col += utf8.RuneCount(li.data[from:off])
	li.lastOff, li.lastLine, li.lastCol = off, line, col
	return position{line: line + 1, col: col}
}

// parseJSON builds the node tree of one JSON document. Positions are
// computed when lines is not nil.
func parseJSON(data []byte, lines *lineIndex) (*node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	p := &jsonParser{dec: dec, data: data, lines: lines}
	tok, off, err := p.next()
	if err != nil {
		return nil, p.syntax(err)
	}
	root, err := p.value(tok, off, 0)
	if err != nil {
		return nil, err
	}
	if _, off, err := p.next(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, p.syntax(err)
		}
		return nil, &syntaxError{pos: lines.at(off), msg: "unexpected data after the top-level value"}
	}
	return root, nil
}

type jsonParser struct {
	dec   *json.Decoder
	data  []byte
	lines *lineIndex
}

// next reads one token and returns the offset where it starts.
func (p *jsonParser) next() (json.Token, int, error) {
	off := int(p.dec.InputOffset())
	tok, err := p.dec.Token()
	for off < len(p.data) {
		c := p.data[off]
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != ',' && c != ':' {
			break
		}
		off++
	}
	return tok, off, err
}

func (p *jsonParser) syntax(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return &syntaxError{pos: p.lines.at(int(se.Offset)), msg: se.Error()}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &syntaxError{pos: p.lines.at(len(p.data)), msg: "unexpected end of JSON input"}
	default:
		return &syntaxError{msg: err.Error()}
	}
}

func (p *jsonParser) value(tok json.Token, off, depth int) (*node, error) {
	n := &node{pos: p.lines.at(off)}
	switch t := tok.(type) {
	case nil:
		n.kind = typeNull
	case bool:
		n.kind, n.boolean = typeBool, t
	case json.Number:
		n.kind, n.text = typeNumber, string(t)
	case string:
		n.kind, n.text = typeString, t
	case json.Delim:
		if depth >= maxDepth {
			return nil, &syntaxError{pos: n.pos, msg: fmt.Sprintf("nesting deeper than %d levels", maxDepth)}
		}
		switch t {
		case '[':
			n.kind = typeArray
			for p.dec.More() {
				tok, off, err := p.next()
				if err != nil {
					return nil, p.syntax(err)
				}
				item, err := p.value(tok, off, depth+1)
				if err != nil {
					return nil, err
				}
				n.items = append(n.items, item)
			}
		case '{':
			n.kind = typeObject
			for p.dec.More() {
				tok, _, err := p.next()
				if err != nil {
					return nil, p.syntax(err)
				}
				key, _ := tok.(string) // the decoder only yields string keys
				tok, off, err := p.next()
				if err != nil {
					return nil, p.syntax(err)
				}
				val, err := p.value(tok, off, depth+1)
				if err != nil {
					return nil, err
				}
				n.members = append(n.members, member{key: key, val: val})
			}
		}
		if _, _, err := p.next(); err != nil { // the closing delimiter
			return nil, p.syntax(err)
		}
	}
	return n, nil
}

// canonicalJSON renders n as compact JSON with object keys sorted (the last
// of duplicate keys wins) and numbers normalised, so that the same data
// written in JSON or in YAML yields the same bytes.
func canonicalJSON(n *node) []byte {
	var buf bytes.Buffer
	writeCanonical(&buf, n)
	return buf.Bytes()
}

func writeCanonical(buf *bytes.Buffer, n *node) {
	switch n.kind {
	case typeBool:
		buf.WriteString(strconv.FormatBool(n.boolean))
	case typeNumber:
		buf.WriteString(canonicalNumber(n.text))
	case typeString:
		writeJSONString(buf, n.text)
	case typeArray:
		buf.WriteByte('[')
		for i, item := range n.items {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeCanonical(buf, item)
		}
		buf.WriteByte(']')
	case typeObject:
		last := make(map[string]*node, len(n.members))
		keys := make([]string, 0, len(n.members))
		for _, m := range n.members {
			if _, dup := last[m.key]; !dup {
				keys = append(keys, m.key)
			}
			last[m.key] = m.val
		}
		sort.Strings(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeJSONString(buf, k)
			buf.WriteByte(':')
			writeCanonical(buf, last[k])
		}
		buf.WriteByte('}')
	default:
		buf.WriteString("null")
	}
}

func writeJSONString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // encoding a string cannot fail
	buf.Truncate(buf.Len() - 1)
}

// canonicalNumber keeps integers that fit in an int64 exactly and renders
// every other number as encoding/json renders a float64 (which is what the
// YAML to JSON conversion produces).
func canonicalNumber(lit string) string {
	if i, err := strconv.ParseInt(lit, 10, 64); err == nil {
		return strconv.FormatInt(i, 10)
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return lit
	}
	b, err := json.Marshal(f)
	if err != nil {
		return lit
	}
	return string(b)
}
