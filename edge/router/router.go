// Package router matches request paths against the endpoint patterns of one
// plan. It is compiled once (New) and then only read, so a *Table is safe
// for concurrent use.
//
// Matching is allocation-free: fully static paths are found in one map
// lookup per method, the others by a depth-first walk of a per-method
// segment tree whose captured values land in the fixed slots of a caller
// supplied Params. At each path segment the alternatives are tried in this
// order, backtracking when a deeper segment does not match:
//
//  1. a static segment ("users"),
//  2. a mixed segment ("file.{ext}", allowed with disable_rest), most literal bytes first,
//  3. a whole-segment parameter ("{id}"),
//  4. a trailing catch-all ("/svc/*", our extension to KrakenD): the rest of the
//     path, from and including its "/", is captured in the last slot.
//
// Route conflicts are compile errors, never panics. Unmatched requests are
// classified like KrakenD's gin engine does: a redirect to the path with or
// without a trailing slash when that exists for the method (301 for GET, 307
// otherwise), 405 with the allowed methods when another method matches, 404
// otherwise; OPTIONS is answered for every matched path when AutoOptions is set.
//
// The package must not import anything from edge/proxy, edge/aggregate,
// edge/server or edge/watch: it only knows paths, methods and route indexes.
package router

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/apigw/gateway/edge/internal/ascii"
)

// Route is one (method, pattern) pair to compile.
type Route struct {
	Method  string
	Pattern string
	// AllowMixed permits parameters inside a segment ("/file.{ext}"),
	// KrakenD's disable_rest.
	AllowMixed bool
	// SlashCatchAll makes a trailing catch-all need its slash, as gin's
	// "/p/*name" does: "/p/*" then matches "/p/" and below but not "/p"
	// (which a trailing-slash redirect sends to "/p/"). KrakenD's own
	// /__debug/ and /__echo/ routes are such routes.
	SlashCatchAll bool
}

// Config lists the routes of a Table and how unmatched requests are
// classified. The zero value describes an empty table with every option off.
type Config struct {
	Routes []Route
	// RedirectTrailingSlash answers a request whose path only matches with
	// (or without) a trailing slash with a redirect (gin's default).
	RedirectTrailingSlash bool
	// HandleMethodNotAllowed answers 405 when another method matches the path.
	HandleMethodNotAllowed bool
	// AutoOptions answers OPTIONS for every path some route matches.
	AutoOptions bool
	// RemoveExtraSlash collapses repeated slashes before matching.
	RemoveExtraSlash bool
	// RedirectFixedPath answers a path that only matches a route
	// case-insensitively, or with its trailing slash toggled, with a
	// redirect to the route's own spelling (GET /StAtic for /static,
	// GET /USERS/AbC/ for /users/{id}: /users/AbC), as gin's
	// RedirectFixedPath does for KrakenD. Parameter values keep the
	// request's spelling. The trailing slash is fixed even when
	// RedirectTrailingSlash is off, as in gin.
	RedirectFixedPath bool
}

// Kind classifies the outcome of a Lookup.
type Kind uint8

const (
	// NotFound means no route of any method matches the path.
	NotFound Kind = iota
	// Found means Result.Route matched; Params hold its values.
	Found
	// MethodNotAllowed means other methods (Result.Allowed) match the path.
	MethodNotAllowed
	// Redirect means the path matches with or without a trailing slash:
	// answer Result.Code with Location Result.Location.
	Redirect
	// Options means an automatic OPTIONS answer with Allow: Result.Allowed.
	Options
)

// Result is the outcome of a Lookup. Location aliases the looked-up path or
// the Params scratch buffer; it must not be retained after the handler returns.
type Result struct {
	Kind     Kind
	Route    int       // index into Config.Routes when Kind is Found
	Allowed  MethodSet // MethodNotAllowed, Options
	Location []byte    // Redirect
	Code     int       // Redirect: 301 (GET) or 307
}

// MethodSet is a set of the methods of one Table (bit i = Table.Methods()[i]).
type MethodSet uint32

// RouteError reports why one route of Config.Routes cannot be compiled.
// New returns them joined (errors.Join).
type RouteError struct {
	Index   int
	Method  string
	Pattern string
	Err     error
}

func (e *RouteError) Error() string {
	return fmt.Sprintf("route %d %s %q: %v", e.Index, e.Method, e.Pattern, e.Err)
}

func (e *RouteError) Unwrap() error { return e.Err }

// ErrDuplicate is wrapped by a RouteError for a route whose method and
// pattern shape (parameter names ignored) are already taken.
var ErrDuplicate = errors.New("conflicts with an earlier route of the same method and shape")

// Table is a compiled set of routes. It is immutable and safe for
// concurrent use.
type Table struct {
	trees       []*tree  // one per method, sorted by method name
	methods     []string // method names, sorted; index = MethodSet bit
	optionsBit  MethodSet
	paramNames  [][]string
	redirectTS  bool
	handle405   bool
	autoOptions bool
	removeExtra bool
	fixedPath   bool
}

type tree struct {
	method string
	bit    MethodSet
	exact  map[string]int32  // fully static patterns
	folded map[string][]byte // lower-cased static pattern -> the pattern (RedirectFixedPath)
	root   *node
}

type node struct {
	// static children: a short list is scanned, a long one goes through the map.
	staticKeys  []string
	staticNodes []*node
	staticMap   map[string]*node
	mixed       []mixedChild
	param       *node
	route       int32 // route ending at this node, -1 if none
	catchAll    int32 // catch-all route hanging at this node, -1 if none
	slashOnly   bool  // the catch-all needs its "/" (Route.SlashCatchAll)
}

type mixedChild struct {
	seg  segment
	next *node
}

const staticScanMax = 8

func newNode() *node { return &node{route: -1, catchAll: -1} }

// New compiles cfg. The error joins one *RouteError per route that cannot
// be compiled (bad pattern, duplicate); the Table is nil then.
func New(cfg Config) (*Table, error) {
	t := &Table{
		redirectTS:  cfg.RedirectTrailingSlash,
		handle405:   cfg.HandleMethodNotAllowed,
		autoOptions: cfg.AutoOptions,
		removeExtra: cfg.RemoveExtraSlash,
		fixedPath:   cfg.RedirectFixedPath,
		paramNames:  make([][]string, len(cfg.Routes)),
	}
	methodSeen := map[string]bool{}
	for _, r := range cfg.Routes {
		methodSeen[r.Method] = true
	}
	if cfg.AutoOptions {
		methodSeen["OPTIONS"] = true
	}
	for m := range methodSeen {
		t.methods = append(t.methods, m)
	}
	sort.Strings(t.methods)
	if len(t.methods) > 32 {
		return nil, errors.New("router: more than 32 distinct methods")
	}
	if i := slices.Index(t.methods, "OPTIONS"); i >= 0 {
		t.optionsBit = 1 << uint(i)
	}
	byMethod := map[string]*tree{}
	var errs []error
	for i, r := range cfg.Routes {
		if err := t.add(byMethod, i, r); err != nil {
			errs = append(errs, &RouteError{Index: i, Method: r.Method, Pattern: r.Pattern, Err: err})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for i, m := range t.methods {
		if tr, ok := byMethod[m]; ok {
			tr.bit = 1 << uint(i)
			t.trees = append(t.trees, tr)
		}
	}
	for _, tr := range t.trees {
		tr.root.finish()
		if t.fixedPath {
			tr.folded = map[string][]byte{}
			for pat := range tr.exact {
				// The smallest spelling wins when two differ only by case.
				if lc := strings.ToLower(pat); tr.folded[lc] == nil || pat < string(tr.folded[lc]) {
					tr.folded[lc] = []byte(pat)
				}
			}
		}
	}
	return t, nil
}

func (t *Table) add(byMethod map[string]*tree, idx int, r Route) error {
	if r.Method == "" || strings.ToUpper(r.Method) != r.Method {
		return errors.New("method must be a non-empty upper-case token")
	}
	pp, err := parsePattern(r.Pattern, r.AllowMixed)
	if err != nil {
		return err
	}
	t.paramNames[idx] = pp.names
	tr := byMethod[r.Method]
	if tr == nil {
		tr = &tree{method: r.Method, exact: map[string]int32{}, root: newNode()}
		byMethod[r.Method] = tr
	}
	if len(pp.names) == 0 {
		if _, dup := tr.exact[r.Pattern]; dup {
			return ErrDuplicate
		}
		tr.exact[r.Pattern] = int32(idx)
		return nil
	}
	n := tr.root
	for i := range pp.segs {
		n = n.child(&pp.segs[i])
	}
	if pp.catchAll {
		if n.catchAll >= 0 {
			return ErrDuplicate
		}
		n.catchAll = int32(idx)
		n.slashOnly = r.SlashCatchAll
		return nil
	}
	if n.route >= 0 {
		return ErrDuplicate
	}
	n.route = int32(idx)
	return nil
}

// child returns (creating it if needed) the child of n for segment s.
func (n *node) child(s *segment) *node {
	switch s.kind {
	case kindStatic:
		// The map serves the build too: scanning the list for each new
		// child made 10,000 siblings (/v1/resource0 ... /v1/resource9999)
		// 50 million comparisons.
		if n.staticMap != nil {
			if c := n.staticMap[s.lit]; c != nil {
				return c
			}
		} else if i := slices.Index(n.staticKeys, s.lit); i >= 0 {
			return n.staticNodes[i]
		}
		c := newNode()
		n.staticKeys = append(n.staticKeys, s.lit)
		n.staticNodes = append(n.staticNodes, c)
		switch {
		case n.staticMap != nil:
			n.staticMap[s.lit] = c
		case len(n.staticKeys) > staticScanMax:
			n.staticMap = make(map[string]*node, 2*len(n.staticKeys))
			for i, k := range n.staticKeys {
				n.staticMap[k] = n.staticNodes[i]
			}
		}
		return c
	case kindMixed:
		for i := range n.mixed {
			if n.mixed[i].seg.shape == s.shape {
				return n.mixed[i].next
			}
		}
		c := newNode()
		n.mixed = append(n.mixed, mixedChild{seg: *s, next: c})
		return c
	default:
		if n.param == nil {
			n.param = newNode()
		}
		return n.param
	}
}

// finish orders mixed children and builds static maps, recursively.
func (n *node) finish() {
	sort.SliceStable(n.mixed, func(i, j int) bool { return mixedBefore(&n.mixed[i].seg, &n.mixed[j].seg) })
	// child keeps staticMap for lists longer than staticScanMax.
	for _, c := range n.staticNodes {
		c.finish()
	}
	for i := range n.mixed {
		n.mixed[i].next.finish()
	}
	if n.param != nil {
		n.param.finish()
	}
}

// RedirectsTrailingSlash reports Config.RedirectTrailingSlash.
func (t *Table) RedirectsTrailingSlash() bool { return t.redirectTS }

// Methods returns the method names of the table, sorted; index i is bit i
// of a MethodSet. The slice must not be modified.
func (t *Table) Methods() []string { return t.methods }

// ParamNames returns the parameter names of route i in slot order (the
// catch-all slot, named CatchAllParam, is last). The slice must not be modified.
func (t *Table) ParamNames(i int) []string { return t.paramNames[i] }

// AppendAllow appends the methods of m as an Allow header value
// ("GET, POST"), in alphabetical order like KrakenD's auto OPTIONS.
func (t *Table) AppendAllow(dst []byte, m MethodSet) []byte {
	first := true
	for i, name := range t.methods {
		if m&(1<<uint(i)) == 0 {
			continue
		}
		if !first {
			dst = append(dst, ", "...)
		}
		first = false
		dst = append(dst, name...)
	}
	return dst
}

// Lookup matches method and path. Captured values go to ps, which Lookup
// resets first. It never allocates once ps' scratch buffer has grown to
// the longest path seen.
func (t *Table) Lookup(method, path []byte, ps *Params) Result {
	ps.Reset()
	orig, cleaned := path, false
	if t.removeExtra && unclean(path) {
		cleaned = true
		// gin's RemoveExtraSlash routes on its cleaned path.
		ps.cleaned = AppendCleanPath(ps.cleaned[:0], path)
		path = ps.cleaned
	}
	tr := t.tree(method)
	if tr != nil {
		if r := tr.find(path, ps); r >= 0 {
			return Result{Kind: Found, Route: int(r)}
		}
		ps.Reset()
		if t.redirectTS && len(path) > 1 {
			if loc, ok := t.trailingSlashTarget(tr, path, ps); ok {
				if cleaned {
					// gin matches the cleaned path but redirects to the
					// request's own path with its last slash toggled:
					// /echo// → /echo/, //echo// → //echo/.
					loc = toggleSlash(ps.alt[:0], orig)
					ps.alt = loc
				}
				code := 307
				if string(method) == "GET" {
					code = 301
				}
				return Result{Kind: Redirect, Location: loc, Code: code}
			}
		}
		if t.fixedPath && len(path) > 1 {
			if loc, ok := t.fixedPathTarget(tr, path, ps); ok {
				code := 307
				if string(method) == "GET" {
					code = 301
				}
				return Result{Kind: Redirect, Location: loc, Code: code}
			}
		}
	}
	isOptions := string(method) == "OPTIONS"
	if isOptions && t.autoOptions {
		if allowed := t.allowed(path, nil, ps); allowed != 0 {
			return Result{Kind: Options, Allowed: allowed &^ t.optionsBit}
		}
	}
	if t.handle405 {
		if allowed := t.allowed(path, tr, ps); allowed != 0 {
			if t.autoOptions && !isOptions {
				allowed |= t.optionsBit
			}
			return Result{Kind: MethodNotAllowed, Allowed: allowed}
		}
	}
	return Result{Kind: NotFound}
}

var (
	doubleSlash = []byte("//")
	slashDot    = []byte("/.")
)

// unclean reports whether path may differ from its AppendCleanPath form:
// it repeats a slash or has an element starting with a dot.
func unclean(path []byte) bool {
	return len(path) == 0 || path[0] != '/' || bytes.Contains(path, doubleSlash) || bytes.Contains(path, slashDot)
}

// AppendCleanPath appends the canonical form of path that gin cleans a
// path to (for RemoveExtraSlash and before a fixed-path redirect): one
// leading slash, repeated slashes collapsed, "." elements dropped, ".."
// dropping the element before it (never climbing above the root), and a
// trailing slash kept, also where the path ends in a "." or ".." element.
func AppendCleanPath(dst, path []byte) []byte {
	start := len(dst)
	dst = append(dst, '/')
	trailing := len(path) > 1 && path[len(path)-1] == '/'
	for i := 0; i < len(path); {
		if path[i] == '/' {
			i++
			continue
		}
		j := i
		for j < len(path) && path[j] != '/' {
			j++
		}
		seg := path[i:j]
		i = j
		switch {
		case len(seg) == 1 && seg[0] == '.':
			trailing = trailing || j == len(path)
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			trailing = trailing || j == len(path)
			if k := bytes.LastIndexByte(dst[start+1:], '/'); k >= 0 {
				dst = dst[:start+1+k]
			} else {
				dst = dst[:start+1]
			}
		default:
			if len(dst)-start > 1 {
				dst = append(dst, '/')
			}
			dst = append(dst, seg...)
		}
	}
	if trailing && len(dst)-start > 1 {
		dst = append(dst, '/')
	}
	return dst
}

func (t *Table) tree(method []byte) *tree {
	for _, tr := range t.trees {
		if tr.method == string(method) {
			return tr
		}
	}
	return nil
}

// allowed returns the methods, other than skip's, whose tree matches path.
func (t *Table) allowed(path []byte, skip *tree, ps *Params) MethodSet {
	var m MethodSet
	for _, tr := range t.trees {
		if tr == skip {
			continue
		}
		if tr.find(path, ps) >= 0 {
			m |= tr.bit
		}
		ps.Reset()
	}
	return m
}

// toggleSlash appends path with its trailing slash removed, or added.
func toggleSlash(dst, path []byte) []byte {
	if n := len(path); n > 1 && path[n-1] == '/' {
		return append(dst, path[:n-1]...)
	}
	return append(append(dst, path...), '/')
}

// trailingSlashTarget returns path with its trailing slash toggled when
// that path matches in tr.
func (t *Table) trailingSlashTarget(tr *tree, path []byte, ps *Params) ([]byte, bool) {
	var alt []byte
	if path[len(path)-1] == '/' {
		alt = path[:len(path)-1]
	} else {
		ps.alt = append(append(ps.alt[:0], path...), '/')
		alt = ps.alt
	}
	ok := tr.find(alt, ps) >= 0
	ps.Reset()
	return alt, ok
}

// fixedPathTarget returns the route spelling of tr that path names
// case-insensitively, also with its trailing slash toggled (gin fixes the
// slash whatever RedirectTrailingSlash says). Static routes come first, then
// the parameter tree; parameter values keep the request's spelling.
func (t *Table) fixedPathTarget(tr *tree, path []byte, ps *Params) ([]byte, bool) {
	if unclean(path) {
		// gin cleans the path first (repeated slashes, dot elements).
		ps.cleaned = AppendCleanPath(ps.cleaned[:0], path)
		path = ps.cleaned
	}
	if loc, ok := t.fixedPathOnce(tr, path, ps); ok {
		return loc, true
	}
	if n := len(path); path[n-1] == '/' {
		return t.fixedPathOnce(tr, path[:n-1], ps)
	}
	ps.clean = append(append(ps.clean[:0], path...), '/')
	return t.fixedPathOnce(tr, ps.clean, ps)
}

func (t *Table) fixedPathOnce(tr *tree, path []byte, ps *Params) ([]byte, bool) {
	if len(path) == 0 || path[0] != '/' {
		return nil, false
	}
	ps.alt = appendLower(ps.alt[:0], path)
	if pat, ok := tr.folded[string(ps.alt)]; ok {
		return pat, true
	}
	var ok bool
	ps.fixed, ok = tr.root.matchFold(path, 0, ps.fixed[:0])
	return ps.fixed, ok
}
func appendLower(dst, s []byte) []byte {
	for _, c := range s {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// find returns the route matching path in tr, or -1.
func (tr *tree) find(path []byte, ps *Params) int32 {
	if r, ok := tr.exact[string(path)]; ok {
		return r
	}
	if len(path) == 0 || path[0] != '/' {
		return -1
	}
	return tr.root.match(path, 0, ps)
}

// match walks from n with path[pos:] left to match; path[pos] is '/' or
// pos == len(path).
func (n *node) match(path []byte, pos int, ps *Params) int32 {
	if pos == len(path) {
		if n.route >= 0 {
			return n.route
		}
		if n.catchAll >= 0 && !n.slashOnly {
			ps.push(path[pos:])
			return n.catchAll
		}
		return -1
	}
	start := pos + 1
	end := bytes.IndexByte(path[start:], '/')
	if end < 0 {
		end = len(path)
	} else {
		end += start
	}
	seg := path[start:end]
	mark := ps.n

	if c := n.staticChild(seg); c != nil {
		if r := c.match(path, end, ps); r >= 0 {
			return r
		}
		ps.truncate(mark)
	}
	for i := range n.mixed {
		mc := &n.mixed[i]
		if matchMixed(mc.seg.parts, seg, ps) {
			if r := mc.next.match(path, end, ps); r >= 0 {
				return r
			}
			ps.truncate(mark)
		}
	}
	if n.param != nil && len(seg) > 0 {
		ps.push(seg)
		if r := n.param.match(path, end, ps); r >= 0 {
			return r
		}
		ps.truncate(mark)
	}
	if n.catchAll >= 0 {
		ps.push(path[pos:])
		return n.catchAll
	}
	return -1
}

// matchFold is match with static segments compared case-insensitively
// (ASCII, as the route patterns are): it appends to dst the path in the
// route's spelling, parameter and catch-all values as the request spells
// them, and reports whether a route ends there. Mixed segments are not
// fixed. It allocates only to grow dst.
func (n *node) matchFold(path []byte, pos int, dst []byte) ([]byte, bool) {
	if pos == len(path) {
		return dst, n.route >= 0 || n.catchAll >= 0 && !n.slashOnly
	}
	start := pos + 1
	end := bytes.IndexByte(path[start:], '/')
	if end < 0 {
		end = len(path)
	} else {
		end += start
	}
	seg := path[start:end]
	mark := len(dst)
	for i, k := range n.staticKeys {
		if len(k) == len(seg) && ascii.EqualFold(seg, k) {
			if out, ok := n.staticNodes[i].matchFold(path, end, append(append(dst, '/'), k...)); ok {
				return out, true
			}
			dst = dst[:mark]
		}
	}
	if n.param != nil && len(seg) > 0 {
		if out, ok := n.param.matchFold(path, end, append(append(dst, '/'), seg...)); ok {
			return out, true
		}
		dst = dst[:mark]
	}
	if n.catchAll >= 0 {
		return append(dst, path[pos:]...), true
	}
	return dst, false
}

func (n *node) staticChild(seg []byte) *node {
	if n.staticMap != nil {
		return n.staticMap[string(seg)]
	}
	for i, k := range n.staticKeys {
		if k == string(seg) {
			return n.staticNodes[i]
		}
	}
	return nil
}
