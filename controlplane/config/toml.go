package config

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	toml "github.com/pelletier/go-toml/v2"
)

// parseTOML builds the node tree of a TOML document (KrakenD 2.12 reads
// .toml through koanf's go-toml/v2 parser, as we do). go-toml hands back
// plain maps, so members are in key order and values carry no column; a
// violation in a TOML file names its path and, for syntax errors, the line.
func parseTOML(content []byte) (*node, error) {
	var doc map[string]any
	if err := toml.Unmarshal(content, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, col := de.Position()
			return nil, &syntaxError{pos: position{line: line, col: col}, msg: "toml: " + de.Error()}
		}
		return nil, &syntaxError{msg: "toml: " + err.Error()}
	}
	return tomlNode(doc, 0)
}

func tomlNode(v any, depth int) (*node, error) {
	if depth >= maxDepth {
		return nil, &syntaxError{msg: fmt.Sprintf("nesting deeper than %d levels", maxDepth)}
	}
	switch t := v.(type) {
	case nil:
		return &node{kind: typeNull}, nil
	case bool:
		return &node{kind: typeBool, boolean: t}, nil
	case int64:
		return &node{kind: typeNumber, text: strconv.FormatInt(t, 10)}, nil
	case float64:
		if math.IsInf(t, 0) || math.IsNaN(t) {
			return nil, &syntaxError{msg: fmt.Sprintf("toml: %v cannot be represented in JSON", t)}
		}
		return &node{kind: typeNumber, text: strconv.FormatFloat(t, 'g', -1, 64)}, nil
	case string:
		return &node{kind: typeString, text: t}, nil
	case time.Time:
		return &node{kind: typeString, text: t.Format(time.RFC3339Nano)}, nil
	case fmt.Stringer: // local dates and times
		return &node{kind: typeString, text: t.String()}, nil
	case []any:
		n := &node{kind: typeArray, items: make([]*node, 0, len(t))}
		for _, item := range t {
			c, err := tomlNode(item, depth+1)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, c)
		}
		return n, nil
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		n := &node{kind: typeObject, members: make([]member, 0, len(keys))}
		for _, k := range keys {
			c, err := tomlNode(t[k], depth+1)
			if err != nil {
				return nil, err
			}
			n.members = append(n.members, member{key: k, val: c})
		}
		return n, nil
	default:
		return nil, &syntaxError{msg: fmt.Sprintf("toml: unexpected value of type %T", v)}
	}
}
