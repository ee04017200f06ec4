package config

import (
	"regexp"
	"strings"
)

var (
	// reservedPath is KrakenD's check (lura config/config.go): any
	// __debug, __echo or __health segment is reserved for its own handlers.
	reservedPath = regexp.MustCompile(`/__(debug|echo|health)(/.*)?$`)
	// paramName is what KrakenD accepts between braces in an endpoint.
	paramName = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	// embeddedParam finds {x} inside a segment (disable_rest).
	embeddedParam = regexp.MustCompile(`\{([^{}]*)\}`)
)

// route is the parsed form of an endpoint path.
type route struct {
	// params holds the parameter names, in order.
	params []string
	// shape is the path with every parameter written "{}": two endpoints
	// with the same method and shape match exactly the same requests.
	shape    string
	catchAll bool
	// ok is false when the path has violations; it is then not compared
	// with other routes and its parameters are incomplete.
	ok bool
}

func (r route) hasParam(name string) bool {
	for _, p := range r.params {
		if p == name {
			return true
		}
	}
	return false
}

// parseRoute checks an endpoint path and returns its route.
//
// Besides KrakenD's rules (leading "/", reserved segments, parameters as
// whole segments unless disable_rest), it accepts our one extension: a
// trailing "/*" catch-all. Any other "*", empty inner segments ("//"),
// whitespace, "?" and "#" are violations.
func (v *validator) parseRoute(p path, raw string, disableRest bool) route {
	r := route{ok: true}
	fail := func(kind, format string, args ...any) {
		v.vs.add(p, kind, format, args...)
		r.ok = false
	}
	switch {
	case raw == "":
		fail(KindRequired, "an endpoint path is required")
		return r
	case !strings.HasPrefix(raw, "/"):
		fail(KindInvalid, "%q must start with \"/\"", raw)
		return r
	case reservedPath.MatchString(raw):
		fail(KindInvalid, "%q: the __debug, __echo and __health segments are reserved", raw)
		return r
	case strings.ContainsAny(raw, "?# \t\r\n"):
		fail(KindInvalid, "%q: a path must not contain whitespace, \"?\" or \"#\"", raw)
		return r
	}
	if h := v.healthPath(); h != "" && raw == h {
		fail(KindDuplicate, "%q is the health endpoint (router.health_path)", raw)
		return r
	}

	body := raw[1:]
	if strings.HasSuffix(raw, "/*") {
		r.catchAll = true
		body = strings.TrimPrefix(raw[:len(raw)-2], "/")
	}
	if strings.Contains(body, "*") {
		fail(KindInvalid, "%q: \"*\" is only allowed as a trailing \"/*\" catch-all", raw)
		return r
	}

	var shape strings.Builder
	var segments []string
	if body != "" || !r.catchAll {
		segments = strings.Split(body, "/")
	}
	for i, seg := range segments {
		shape.WriteByte('/')
		switch {
		case seg == "" && i < len(segments)-1:
			fail(KindInvalid, "%q: empty path segment", raw)
		case isWholeParam(seg):
			r.addParam(v, p, raw, seg[1:len(seg)-1])
			shape.WriteString("{}")
		case !strings.ContainsAny(seg, "{}"):
			shape.WriteString(seg)
		case !disableRest:
			fail(KindInvalid, "%q: parameters must be whole path segments like /{id} unless the service sets disable_rest: true", raw)
		default:
			rest := embeddedParam.ReplaceAllStringFunc(seg, func(m string) string {
				r.addParam(v, p, raw, m[1:len(m)-1])
				return "{}"
			})
			if strings.Count(rest, "{") != strings.Count(rest, "{}") || strings.Count(rest, "}") != strings.Count(rest, "{}") {
				fail(KindInvalid, "%q: unbalanced \"{\" or \"}\"", raw)
			}
			if strings.Contains(rest, "{}{}") {
				// The edge cannot tell where one ends and the next begins.
				fail(KindInvalid, "%q: two parameters need a literal between them", raw)
			}
			shape.WriteString(rest)
		}
	}
	if r.catchAll {
		shape.WriteString("/*")
	}
	r.shape = shape.String()
	return r
}

func isWholeParam(seg string) bool {
	return len(seg) >= 2 && seg[0] == '{' && seg[len(seg)-1] == '}' && !strings.ContainsAny(seg[1:len(seg)-1], "{}")
}

func (r *route) addParam(v *validator, p path, raw, name string) {
	switch {
	case !paramName.MatchString(name):
		v.vs.add(p, KindInvalid, "%q: parameter name {%s} must match [a-zA-Z0-9_-]+", raw, name)
		r.ok = false
	case r.hasParam(name):
		v.vs.add(p, KindDuplicate, "%q: parameter {%s} appears more than once", raw, name)
		r.ok = false
	default:
		r.params = append(r.params, name)
	}
}

// routeTable detects endpoints that would match the same requests.
type routeTable struct {
	// first maps "<METHOD> <shape>" to the index of the first endpoint.
	first map[string]int
}

// conflict returns the index of an earlier endpoint with the same method
// and shape, and records this one otherwise. Parameters are compared by
// position, not name: /a/{id} and /a/{name} conflict. Routes that differ
// in any segment do not (a static segment beats a parameter, a parameter
// beats the catch-all), so /a/{id}, /a/search and /a/* can coexist.
func (t *routeTable) conflict(method string, r route, index int) (int, bool) {
	if t.first == nil {
		t.first = make(map[string]int)
	}
	key := method + " " + r.shape
	if prev, ok := t.first[key]; ok {
		return prev, true
	}
	t.first[key] = index
	return 0, false
}
