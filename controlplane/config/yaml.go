package config

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"

	yaml "go.yaml.in/yaml/v3"
)

// maxYAMLNodes bounds the tree built from a YAML document, whose aliases
// could otherwise expand exponentially ("billion laughs").
const maxYAMLNodes = 1 << 20

// parseYAML builds the node tree of a YAML document with the YAML 1.2 core
// schema of go.yaml.in/yaml/v3, the parser family KrakenD itself uses. We do
// not go through sigs.k8s.io/yaml: its YAML 1.1 resolver (yaml.v2) silently
// turns y, n, yes, no, on and off into booleans, keys included, so a static
// {"x": 1, "y": 2} written in YAML would compile to {"true": 2, "x": 1}.
// Anchors, aliases and merge keys (<<) are expanded.
func parseYAML(content []byte) (*node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(content, &doc); err != nil {
		return nil, yamlSyntaxError(err)
	}
	if doc.Kind == 0 {
		return nil, &syntaxError{msg: "empty document"}
	}
	c := &yamlConverter{}
	return c.convert(&doc, 0)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlSyntaxError keeps the line of a YAML parser error (YAML parsers
// report no column).
func yamlSyntaxError(err error) error {
	msg := err.Error()
	var pos position
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		pos.line, _ = strconv.Atoi(m[1])
		msg = "yaml: " + msg[len(m[0]):]
	}
	return &syntaxError{pos: pos, msg: msg}
}

type yamlConverter struct {
	nodes int
}

func (c *yamlConverter) convert(y *yaml.Node, depth int) (*node, error) {
	c.nodes++
	pos := position{line: y.Line, col: y.Column}
	switch {
	case depth >= maxDepth:
		return nil, &syntaxError{pos: pos, msg: fmt.Sprintf("nesting deeper than %d levels", maxDepth)}
	case c.nodes > maxYAMLNodes:
		return nil, &syntaxError{pos: pos, msg: "document expands to too many values (aliases)"}
	}
	switch y.Kind {
	case yaml.DocumentNode:
		if len(y.Content) == 0 {
			return &node{kind: typeNull, pos: position{line: 1, col: 1}}, nil
		}
		return c.convert(y.Content[0], depth+1)
	case yaml.AliasNode:
		if y.Alias == nil {
			return nil, &syntaxError{pos: pos, msg: "yaml: unknown anchor"}
		}
		n, err := c.convert(y.Alias, depth+1)
		if err != nil {
			return nil, err
		}
		// Point at the alias, where the user referenced the value.
		copied := *n
		copied.pos = pos
		return &copied, nil
	case yaml.SequenceNode:
		n := &node{kind: typeArray, pos: pos, items: make([]*node, 0, len(y.Content))}
		for _, item := range y.Content {
			v, err := c.convert(item, depth+1)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, v)
		}
		return n, nil
	case yaml.MappingNode:
		return c.mapping(y, pos, depth)
	case yaml.ScalarNode:
		return scalar(y, pos)
	default:
		return nil, &syntaxError{pos: pos, msg: "yaml: unexpected node"}
	}
}

// mapping converts a mapping, applying merge keys: members merged from
// "<<" never override keys the mapping sets itself.
func (c *yamlConverter) mapping(y *yaml.Node, pos position, depth int) (*node, error) {
	n := &node{kind: typeObject, pos: pos}
	var merged []member
	for i := 0; i+1 < len(y.Content); i += 2 {
		k, v := y.Content[i], y.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, &syntaxError{pos: position{line: k.Line, col: k.Column}, msg: "yaml: mapping keys must be scalars"}
		}
		if k.ShortTag() == "!!merge" {
			m, err := c.mergeSources(v, depth+1)
			if err != nil {
				return nil, err
			}
			merged = append(merged, m...)
			continue
		}
		val, err := c.convert(v, depth+1)
		if err != nil {
			return nil, err
		}
		n.members = append(n.members, member{key: k.Value, val: val})
	}
	for _, m := range merged {
		if !n.has(m.key) {
			n.members = append(n.members, m)
		}
	}
	return n, nil
}

func (n *node) has(key string) bool {
	for _, m := range n.members {
		if m.key == key {
			return true
		}
	}
	return false
}

// mergeSources returns the members a "<<" value contributes: one mapping,
// or a sequence of mappings where earlier ones win.
func (c *yamlConverter) mergeSources(v *yaml.Node, depth int) ([]member, error) {
	src, err := c.convert(v, depth)
	if err != nil {
		return nil, err
	}
	var sources []*node
	switch src.kind {
	case typeObject:
		sources = []*node{src}
	case typeArray:
		sources = src.items
	}
	var out []member
	seen := make(map[string]bool)
	for _, s := range sources {
		if s.kind != typeObject {
			return nil, &syntaxError{pos: s.pos, msg: "yaml: a merge key (<<) needs a mapping or a list of mappings"}
		}
		for _, m := range s.members {
			if !seen[m.key] {
				seen[m.key] = true
				out = append(out, m)
			}
		}
	}
	if len(sources) == 0 {
		return nil, &syntaxError{pos: src.pos, msg: "yaml: a merge key (<<) needs a mapping or a list of mappings"}
	}
	return out, nil
}

// scalar resolves a YAML scalar with the core schema.
func scalar(y *yaml.Node, pos position) (*node, error) {
	fail := func(what string) error {
		return &syntaxError{pos: pos, msg: fmt.Sprintf("yaml: %q is not a valid %s", y.Value, what)}
	}
	switch y.ShortTag() {
	case "!!null":
		return &node{kind: typeNull, pos: pos}, nil
	case "!!bool":
		var b bool
		if err := y.Decode(&b); err != nil {
			return nil, fail("boolean")
		}
		return &node{kind: typeBool, boolean: b, pos: pos}, nil
	case "!!int":
		var v any
		if err := y.Decode(&v); err != nil {
			return nil, fail("integer")
		}
		text, ok := intText(v)
		if !ok {
			return nil, fail("integer")
		}
		return &node{kind: typeNumber, text: text, pos: pos}, nil
	case "!!float":
		var f float64
		if err := y.Decode(&f); err != nil {
			return nil, fail("number")
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, &syntaxError{pos: pos, msg: fmt.Sprintf("yaml: %s cannot be represented in JSON", y.Value)}
		}
		b, err := json.Marshal(f)
		if err != nil {
			return nil, fail("number")
		}
		return &node{kind: typeNumber, text: string(b), pos: pos}, nil
	default:
		// Strings, and tags JSON has no type for (timestamps, binary,
		// custom tags), are kept as written.
		return &node{kind: typeString, text: y.Value, pos: pos}, nil
	}
}

func intText(v any) (string, bool) {
	switch i := v.(type) {
	case int:
		return strconv.Itoa(i), true
	case int64:
		return strconv.FormatInt(i, 10), true
	case uint64:
		return strconv.FormatUint(i, 10), true
	case *big.Int:
		return i.String(), true
	case float64:
		// yaml.v3 decodes integers beyond 64 bits as float64.
		b, err := json.Marshal(i)
		return string(b), err == nil
	default:
		return "", false
	}
}
