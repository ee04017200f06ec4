package response

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/valyala/fastjson"
)

// XML decoding follows krakend-xml, which calls mxj.NewMapXmlReader with
// its defaults (no casting):
//
//   - the root element is the single top-level key: <a><b>1</b></a> →
//     {"a":{"b":"1"}};
//   - attributes become "-name" keys, before the children;
//   - an element with only text is that text; with attributes or children,
//     its (trimmed, non-blank) text goes under "#text"; an empty element is "";
//   - repeated sibling names become an array (at the first one's position);
//   - every value is a string (no number or boolean casting);
//   - namespace prefixes are dropped (Name.Local), comments, processing
//     instructions and anything after the root element are ignored;
//   - is_collection wraps the whole map: {"collection":{"root":…}}.
//
// Differences from mxj: text met before the first child of a text-only
// element is dropped in both, but blank text after a comment does not reset
// the value to "" here; nesting deeper than maxXMLDepth is an error. Decoding
// XML allocates (encoding/xml does): it is the slow path, as in KrakenD.

const maxXMLDepth = 128 // keeps the JSON form under fastjson.MaxDepth

var errXMLDepth = errors.New("xml nesting too deep")

type xmlEntry struct {
	key  string
	attr bool      // value is text
	text string    // attribute value or "#text"
	elem *xmlElem  // child element
	next *xmlEntry // next entry with the same key (list), only on the first
	dup  bool      // part of another entry's list
}

type xmlElem struct {
	entries []*xmlEntry
	text    string // simple value when entries is empty
}

func (e *xmlElem) add(en *xmlEntry) {
	for _, p := range e.entries {
		if p.key == en.key && !p.dup {
			last := p
			for last.next != nil {
				last = last.next
			}
			last.next = en
			en.dup = true
			break
		}
	}
	e.entries = append(e.entries, en)
}

func (f *Formatter) decodeXML(sl *slot, body []byte) (*fastjson.Value, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	var root *xmlElem
	var rootName string
	for root == nil {
		t, err := d.Token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("decode xml: %w: %v", ErrSyntax, err)
		}
		if se, ok := t.(xml.StartElement); ok {
			rootName = se.Name.Local
			if root, err = parseXMLElem(d, se, 1); err != nil {
				return nil, fmt.Errorf("decode xml: %w: %v", ErrSyntax, err)
			}
		}
	}
	sl.buf = append(sl.buf[:0], '{')
	if f.isCollection {
		sl.buf = append(sl.buf, `"collection":{`...)
	}
	sl.buf = appendMinimalJSONString(sl.buf, s2b(rootName))
	sl.buf = append(sl.buf, ':')
	sl.buf = appendXMLElemJSON(sl.buf, root)
	if f.isCollection {
		sl.buf = append(sl.buf, '}')
	}
	sl.buf = append(sl.buf, '}')
	v, err := sl.p.ParseBytes(sl.buf)
	if err != nil {
		return nil, fmt.Errorf("decode xml: %w: %v", ErrSyntax, err)
	}
	return v, nil
}

func parseXMLElem(d *xml.Decoder, se xml.StartElement, depth int) (*xmlElem, error) {
	if depth > maxXMLDepth {
		return nil, errXMLDepth
	}
	e := &xmlElem{}
	for _, a := range se.Attr {
		e.add(&xmlEntry{key: "-" + a.Name.Local, attr: true, text: a.Value})
	}
	for {
		t, err := d.Token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		switch tt := t.(type) {
		case xml.StartElement:
			c, err := parseXMLElem(d, tt, depth+1)
			if err != nil {
				return nil, err
			}
			e.add(&xmlEntry{key: tt.Name.Local, elem: c})
		case xml.EndElement:
			return e, nil
		case xml.CharData:
			s := strings.Trim(string(tt), "\t\r\b\n ")
			if s == "" {
				continue
			}
			if len(e.entries) == 0 {
				e.text = s
				continue
			}
			found := false
			for _, p := range e.entries {
				if p.key == "#text" && p.attr {
					p.text, found = s, true
					break
				}
			}
			if !found {
				e.entries = append(e.entries, &xmlEntry{key: "#text", attr: true, text: s})
			}
		}
	}
}

func appendXMLElemJSON(dst []byte, e *xmlElem) []byte {
	if len(e.entries) == 0 {
		return appendMinimalJSONString(dst, s2b(e.text))
	}
	dst = append(dst, '{')
	first := true
	for _, en := range e.entries {
		if en.dup {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendMinimalJSONString(dst, s2b(en.key))
		dst = append(dst, ':')
		if en.next == nil {
			dst = appendXMLEntryJSON(dst, en)
			continue
		}
		dst = append(dst, '[')
		for p := en; p != nil; p = p.next {
			if p != en {
				dst = append(dst, ',')
			}
			dst = appendXMLEntryJSON(dst, p)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

func appendXMLEntryJSON(dst []byte, en *xmlEntry) []byte {
	if en.attr {
		return appendMinimalJSONString(dst, s2b(en.text))
	}
	return appendXMLElemJSON(dst, en.elem)
}
