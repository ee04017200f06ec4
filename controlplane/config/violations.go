package config

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/proto/violation"
)

// Violation kinds (FieldViolation.kind), from the shared vocabulary in
// proto/violation (the edge's plan builder uses the same). Tests and tools
// compare kinds and paths, never the detail text.
const (
	KindRequired    = string(violation.Required)
	KindInvalid     = string(violation.Invalid)
	KindDuplicate   = string(violation.Duplicate)
	KindNotFound    = string(violation.NotFound)
	KindUnsupported = string(violation.Unsupported)
	KindTooMany     = string(violation.TooMany)
)

// Warning kinds (FieldViolation.kind of a warning). A warning does not stop
// a configuration; with [Options.Strict] it is a violation.
const (
	KindNoEffect   = "no_effect"  // accepted, but does nothing here (the detail says why)
	KindOverridden = "overridden" // KrakenD reads the value and replaces it; so do we
	KindNormalized = "normalized" // rewritten the way KrakenD rewrites it (the detail says how)
	// KindApproximated: applied, but not exactly as KrakenD does (the
	// detail says how it differs).
	KindApproximated = "approximated"
)

// MaxViolations caps the violations returned; one more, of kind too_many and
// with an empty path, then says how many were left out.
const MaxViolations = 100

// path is a violation path written with the configuration's JSON key names:
// "endpoints[2].backend[0].host[0]", `extra_config["proxy"].static`.
type path string

var simpleKey = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)

// field returns the path of object member name. Names that are not plain
// identifiers (unknown keys may be anything) use the bracket form.
func (p path) field(name string) path {
	if !simpleKey.MatchString(name) {
		return p.key(name)
	}
	if p == "" {
		return path(name)
	}
	return p + "." + path(name)
}

// key returns the path of map entry k: p["k"].
func (p path) key(k string) path { return p + path("["+strconv.Quote(k)+"]") }

// index returns the path of list element i: p[i].
func (p path) index(i int) path { return p + path("["+strconv.Itoa(i)+"]") }

// schematic drops list indexes from p: "endpoints[3].backend[0].host"
// becomes "endpoints[].backend[].host".
func schematic(p path) path {
	var out path
	for _, e := range splitPath(string(p)) {
		switch {
		case e.index >= 0:
			out += "[]"
		case e.isKey:
			out = out.key(e.name)
		default:
			out = out.field(e.name)
		}
	}
	return out
}

// pathElem is one step of a parsed path: a name, an index or a map key.
type pathElem struct {
	name  string
	index int // -1 unless the element is a list index
	isKey bool
}

// splitPath parses a path produced by the methods above. Malformed input
// degrades to a single name element; it never fails.
func splitPath(p string) []pathElem {
	var out []pathElem
	for len(p) > 0 {
		switch {
		case p[0] == '.':
			p = p[1:]
		case strings.HasPrefix(p, `["`):
			q, err := strconv.QuotedPrefix(p[1:])
			if err != nil || !strings.HasPrefix(p[1+len(q):], "]") {
				return append(out, pathElem{name: p, index: -1})
			}
			k, _ := strconv.Unquote(q)
			out = append(out, pathElem{name: k, index: -1, isKey: true})
			p = p[1+len(q)+1:]
		case p[0] == '[':
			end := strings.IndexByte(p, ']')
			n, err := strconv.Atoi(p[1:max(end, 1)])
			if end < 0 || err != nil {
				return append(out, pathElem{name: p, index: -1})
			}
			out = append(out, pathElem{index: n})
			p = p[end+1:]
		default:
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			out = append(out, pathElem{name: p[:end], index: -1})
			p = p[end:]
		}
	}
	return out
}

// comparePaths orders paths element by element, list indexes numerically
// (so endpoints[2] sorts before endpoints[10]).
func comparePaths(a, b string) int {
	ea, eb := splitPath(a), splitPath(b)
	for i := 0; i < len(ea) && i < len(eb); i++ {
		x, y := ea[i], eb[i]
		switch {
		case x.index >= 0 && y.index >= 0:
			if x.index != y.index {
				return x.index - y.index
			}
		case x.index >= 0:
			return -1
		case y.index >= 0:
			return 1
		default:
			if c := strings.Compare(x.name, y.name); c != 0 {
				return c
			}
		}
	}
	return len(ea) - len(eb)
}

// parentPath drops the last element of p ("" for a top-level path).
func parentPath(p string) string {
	elems := splitPath(p)
	if len(elems) <= 1 {
		return ""
	}
	var out path
	for _, e := range elems[:len(elems)-1] {
		switch {
		case e.index >= 0:
			out = out.index(e.index)
		case e.isKey:
			out = out.key(e.name)
		default:
			out = out.field(e.name)
		}
	}
	return string(out)
}

// violations collects FieldViolations. The zero value is ready to use.
type violations struct {
	list []*gatewayv1.FieldViolation
}

func (vs *violations) add(p path, kind, format string, args ...any) {
	vs.list = append(vs.list, &gatewayv1.FieldViolation{
		Path:   string(p),
		Kind:   kind,
		Detail: fmt.Sprintf(format, args...),
	})
}

// unsupportedValue reports a value outside an allowed set.
func (vs *violations) unsupportedValue(p path, value string, allowed []string) {
	vs.add(p, KindUnsupported, "%q is not supported; allowed: %s", value, strings.Join(allowed, ", "))
}

// finish returns the violations ready for a caller: positions appended to the
// details, exact duplicates removed, sorted by path, capped at MaxViolations.
func finish(list []*gatewayv1.FieldViolation, positions map[string]position) []*gatewayv1.FieldViolation {
	return finishAt(list, positions, nil)
}

// finishAt is finish with an origin for positions (Options.Origin).
func finishAt(list []*gatewayv1.FieldViolation, positions map[string]position, origin func(line, col int) (string, bool)) []*gatewayv1.FieldViolation {
	if len(list) == 0 {
		return nil
	}
	out := make([]*gatewayv1.FieldViolation, 0, len(list))
	seen := make(map[string]bool, len(list))
	for _, v := range list {
		id := v.GetPath() + "\x00" + v.GetKind() + "\x00" + v.GetDetail()
		if seen[id] {
			continue
		}
		seen[id] = true
		detail := v.GetDetail()
		if pos, ok := locate(v.GetPath(), positions); ok {
			at := pos.String()
			if from, ok := originOf(pos, origin); ok {
				at += "; from " + from
			}
			detail += " (" + at + ")"
		}
		out = append(out, &gatewayv1.FieldViolation{Path: v.GetPath(), Kind: v.GetKind(), Detail: detail})
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if c := comparePaths(a.GetPath(), b.GetPath()); c != 0 {
			return c < 0
		}
		if a.GetKind() != b.GetKind() {
			return a.GetKind() < b.GetKind()
		}
		return a.GetDetail() < b.GetDetail()
	})
	if len(out) > MaxViolations {
		more := len(out) - MaxViolations
		out = append(out[:MaxViolations:MaxViolations], &gatewayv1.FieldViolation{
			Kind:   KindTooMany,
			Detail: fmt.Sprintf("and %d more", more),
		})
	}
	return out
}

// originOf asks origin where the text at pos came from.
func originOf(pos position, origin func(line, col int) (string, bool)) (string, bool) {
	if origin == nil || pos.line == 0 {
		return "", false
	}
	return origin(pos.line, pos.col)
}

// locate finds where the value at p (or its nearest ancestor that exists in
// the file, for a missing key) starts.
func locate(p string, positions map[string]position) (position, bool) {
	if len(positions) == 0 || p == "" {
		return position{}, false
	}
	for {
		if pos, ok := positions[p]; ok && (pos.line > 0 || pos.env != "") {
			return pos, true
		}
		if p == "" {
			return position{}, false
		}
		p = parentPath(p)
	}
}

// mergeStages combines decode and validation violations. A value that could
// not be decoded was left at its zero value, so validation violations at its
// path or below it only repeat the decode one and are dropped.
func mergeStages(decoded, validated []*gatewayv1.FieldViolation) []*gatewayv1.FieldViolation {
	out := append([]*gatewayv1.FieldViolation(nil), decoded...)
	for _, v := range validated {
		if !underAny(v.GetPath(), decoded) {
			out = append(out, v)
		}
	}
	return out
}

// underAny says whether p is the path of a decode violation or lies below one.
func underAny(p string, decoded []*gatewayv1.FieldViolation) bool {
	for _, d := range decoded {
		dp := d.GetPath()
		if dp == "" || p == dp || strings.HasPrefix(p, dp+".") || strings.HasPrefix(p, dp+"[") {
			return true
		}
	}
	return false
}
