package router

import (
	"errors"
	"strings"
)

// MaxParams bounds the number of parameters one pattern may declare (the
// catch-all counts as one). Params holds this many slots inline so a match
// never allocates.
const MaxParams = 32

// CatchAllParam is the name of the slot that receives the rest of the path
// of a catch-all ("/*") pattern. It is always the last slot.
const CatchAllParam = "*"

// segKind orders the alternatives tried at one path segment: a lower kind
// wins. The catch-all is not a segment kind of its own: it is tried after
// every child of a node.
type segKind uint8

const (
	kindStatic segKind = iota // "users"
	kindMixed                 // "file.{ext}", "v{major}.{minor}" (disable_rest only)
	kindParam                 // "{id}"
)

// part is one piece of a mixed segment: a literal or a parameter.
type part struct {
	lit     string // literal bytes; empty for a parameter
	isParam bool
}

// segment is one parsed "/"-separated piece of a pattern.
type segment struct {
	kind  segKind
	lit   string // kindStatic: the literal segment
	parts []part // kindMixed: literals and parameters in order
	// shape identifies the segment with parameter names erased; two patterns
	// whose segments have equal shapes share a tree node.
	shape string
	// litLen is the number of literal bytes of a mixed segment; more literal
	// bytes means more specific, so it is tried first.
	litLen int
	names  []string // parameter names in order of appearance
}

// parsedPattern is a route pattern split into segments.
type parsedPattern struct {
	segs     []segment
	catchAll bool
	names    []string // all parameter names in slot order (catch-all last)
}

var (
	errNoLeadingSlash = errors.New("must start with /")
	errUnbalanced     = errors.New("unbalanced { }")
	errBadParamName   = errors.New("parameter names use only letters, digits, '-' and '_'")
	errEmptyParam     = errors.New("empty parameter name")
	errAdjacentParams = errors.New("two parameters without a literal between them")
	errMixedSegment   = errors.New("a parameter must be a whole segment unless disable_rest is set")
	errStar           = errors.New("'*' is only allowed as the final segment \"/*\"")
	errDuplicateParam = errors.New("duplicate parameter name")
	errTooManyParams  = errors.New("too many parameters")
)

// parsePattern splits a pattern into segments. allowMixed permits
// parameters inside a segment ("/file.{ext}"), KrakenD's disable_rest.
func parsePattern(pattern string, allowMixed bool) (parsedPattern, error) {
	var pp parsedPattern
	if !strings.HasPrefix(pattern, "/") {
		return pp, errNoLeadingSlash
	}
	body := pattern[1:]
	if body == "*" {
		pp.catchAll = true
		body = ""
		pp.names = append(pp.names, CatchAllParam)
		return pp, nil
	}
	if strings.HasSuffix(body, "/*") {
		pp.catchAll = true
		body = body[:len(body)-2]
	}
	for _, raw := range strings.Split(body, "/") {
		seg, err := parseSegment(raw, allowMixed)
		if err != nil {
			return pp, err
		}
		pp.segs = append(pp.segs, seg)
		pp.names = append(pp.names, seg.names...)
	}
	if pp.catchAll {
		pp.names = append(pp.names, CatchAllParam)
	}
	if len(pp.names) > MaxParams {
		return pp, errTooManyParams
	}
	seen := make(map[string]bool, len(pp.names))
	for _, n := range pp.names {
		if seen[n] {
			return pp, errDuplicateParam
		}
		seen[n] = true
	}
	return pp, nil
}

func parseSegment(raw string, allowMixed bool) (segment, error) {
	if strings.Contains(raw, "*") {
		return segment{}, errStar
	}
	if !strings.ContainsAny(raw, "{}") {
		return segment{kind: kindStatic, lit: raw, shape: raw}, nil
	}
	var seg segment
	var shape strings.Builder
	rest := raw
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		closeIdx := strings.IndexByte(rest, '}')
		if open < 0 {
			if closeIdx >= 0 {
				return segment{}, errUnbalanced
			}
			seg.parts = append(seg.parts, part{lit: rest})
			shape.WriteString(rest)
			seg.litLen += len(rest)
			break
		}
		if closeIdx >= 0 && closeIdx < open {
			return segment{}, errUnbalanced
		}
		if open > 0 {
			seg.parts = append(seg.parts, part{lit: rest[:open]})
			shape.WriteString(rest[:open])
			seg.litLen += open
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return segment{}, errUnbalanced
		}
		name := rest[open+1 : open+end]
		if name == "" {
			return segment{}, errEmptyParam
		}
		if strings.ContainsAny(name, "{") {
			return segment{}, errUnbalanced
		}
		if !validParamName(name) {
			return segment{}, errBadParamName
		}
		if n := len(seg.parts); n > 0 && seg.parts[n-1].isParam {
			return segment{}, errAdjacentParams
		}
		seg.parts = append(seg.parts, part{isParam: true})
		seg.names = append(seg.names, name)
		shape.WriteString("{}")
		rest = rest[open+end+1:]
	}
	if len(seg.parts) == 1 && seg.parts[0].isParam {
		return segment{kind: kindParam, shape: "{}", names: seg.names}, nil
	}
	if !allowMixed {
		return segment{}, errMixedSegment
	}
	seg.kind = kindMixed
	seg.shape = shape.String()
	return seg, nil
}

// validParamName follows KrakenD's `\{([a-zA-Z\-_0-9]+)\}`.
func validParamName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// mixedBefore orders the mixed segments of one node: more literal bytes
// first (more specific), then by shape so the order is deterministic.
func mixedBefore(a, b *segment) bool {
	if a.litLen != b.litLen {
		return a.litLen > b.litLen
	}
	return a.shape < b.shape
}

// matchMixed matches one path segment s against the parts of a mixed
// segment, appending the captured values to ps. Each parameter captures a
// non-empty value; a parameter followed by a literal captures the shortest
// value that lets the rest of the segment match (backtracking), the last
// parameter captures the rest of the segment. On failure ps is restored.
func matchMixed(parts []part, s []byte, ps *Params) bool {
	if len(parts) == 0 {
		return len(s) == 0
	}
	p := parts[0]
	if !p.isParam {
		if len(s) < len(p.lit) || string(s[:len(p.lit)]) != p.lit {
			return false
		}
		return matchMixed(parts[1:], s[len(p.lit):], ps)
	}
	if len(s) == 0 {
		return false
	}
	if len(parts) == 1 {
		ps.push(s)
		return true
	}
	lit := parts[1].lit // parsing guarantees a literal follows a parameter
	for i := 1; i+len(lit) <= len(s); i++ {
		if string(s[i:i+len(lit)]) != lit {
			continue
		}
		ps.push(s[:i])
		if matchMixed(parts[1:], s[i:], ps) {
			return true
		}
		ps.pop()
	}
	return false
}
