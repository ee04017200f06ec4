package response

import (
	"errors"

	"github.com/valyala/fastjson"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Sentinel errors returned (wrapped) by Decode. Callers branch on them with
// errors.Is; every decode failure makes the backend call a failure (KrakenD
// answers 500 for a single backend, partial data for an aggregate).
var (
	// ErrSyntax: the body is not valid JSON (or XML for the xml encoding).
	ErrSyntax = errors.New("invalid body syntax")
	// ErrNotObject: encoding json needs a JSON object (or null) at the top level.
	ErrNotObject = errors.New("body is not a JSON object")
	// ErrNotArray: is_collection needs a JSON array at the top level.
	ErrNotArray = errors.New("body is not a JSON array")
	// ErrNoOp: a no-op backend's body is streamed, never decoded.
	ErrNoOp = errors.New("no-op encoding is never decoded")
)

// Scratch is the per-request workspace every function of this package
// allocates from: one fastjson.Parser and one fastjson.Arena per backend slot,
// a shared Arena for endpoint-level work (Merge, Flatmap, Static) and the
// render buffer.
//
// Lifetime: every *fastjson.Value and []byte returned by this package while
// using s points into s and is valid until ReleaseScratch(s); do not keep any
// of them after that (copy bytes into the fasthttp response first). Decoding
// slot i again (a second Decode on the same slot) invalidates the values of
// the previous Decode of slot i.
//
// Concurrency: different slots may be used concurrently, one goroutine per
// slot, by Formatter.Decode, Formatter.Apply and BackendError (they only
// touch their slot). Slot indexes must be below the nBackends given to
// AcquireScratch (a larger one is tolerated but grows the slot list, which is
// not safe while other slots are in use).
// Merge, Flatmap.Apply, Static.Apply and Scratch.Render use the shared arena
// and must run on one goroutine, after the slot goroutines have finished
// (synchronise with a channel or WaitGroup). A Scratch must not be copied.
type Scratch struct {
	slots []slot
	arena fastjson.Arena // endpoint-level values (Merge, Flatmap, Static)
	fw    flatWork       // endpoint-level flatmap workspace
	out   []byte         // Render output
	// ordered holds objects whose keys render in their stored order
	// (KeepOrder), not sorted.
	ordered []*fastjson.Value
	// shared parses endpoint-level documents (ParseShared).
	shared fastjson.Parser
}

// slot is one backend's private workspace.
type slot struct {
	p   fastjson.Parser
	a   fastjson.Arena
	fw  flatWork // backend-level flatmap workspace
	buf []byte   // JSON text built before parsing (string encoding, xml)
	tap allowTap // decodeAllowed's state in the validator's pass
	big bool     // decoded a body over maxPooledBody: do not pool
	// ordered: objects of this slot's Decode that render in stored key
	// order (encoding rss), merged into the Scratch's list by Render.
	ordered []*fastjson.Value
}

// AcquireScratch returns a pooled Scratch with room for nBackends slots
// (slot indexes 0..nBackends-1). Release it with ReleaseScratch.
func AcquireScratch(nBackends int) *Scratch { return acquireScratch(nBackends) }

// ReleaseScratch returns s to the pool. Every value obtained through s is
// invalid afterwards. s must not be used again; nil is ignored.
func ReleaseScratch(s *Scratch) { releaseScratch(s) }

// Formatter decodes and reshapes one backend's responses, as lura's
// http_response parser + EntityFormatter do. Build it once per backend with
// NewFormatter (plan build time); it is immutable and safe for concurrent use.
type Formatter struct {
	enc          backendEncoding
	isCollection bool
	target       []string   // dotted target, split
	allow        *allowNode // nil when allow is empty
	deny         *denyNode  // nil when deny is empty or allow is set
	mapping      []rename   // sorted by source key: deterministic
	group        string
	flatmap      *Flatmap // when set, replaces allow, deny and mapping
	identity     bool
	// allowScan: decode parses only the top-level members the allow list
	// can keep (decodeAllowed); plain json with allow, no target/flatmap.
	allowScan bool
}

// NewFormatter precompiles a backend's response settings: encoding,
// is_collection, target, allow/deny, mapping, group and flatmap.
func NewFormatter(b *gatewayv1.Backend) (*Formatter, error) { return newFormatter(b) }

// NoOp reports whether the backend encoding is no-op: the body, status and
// headers are passed through and must never be decoded.
func (f *Formatter) NoOp() bool { return f.enc == encNoOp }

// Identity reports whether Apply never changes the decoded value and Decode
// is plain JSON-object decoding (encoding json, no is_collection, no
// target/allow/deny/mapping/group/flatmap). A single-backend endpoint with
// output json may then skip decoding and send the backend body as is once
// ValidObject(body) holds (key order and whitespace are then the backend's).
func (f *Formatter) Identity() bool { return f.identity }

// Decode parses body per the backend encoding into slot's parser, with
// KrakenD's (lura encoding package) semantics:
//   - json: strictly valid JSON (as encoding/json) whose top level is an
//     object; null yields a null Value (KrakenD's nil data: it renders as {}
//     and is skipped by Merge); anything else is ErrNotObject. Numbers keep
//     their exact text. Trailing data after the value is an error (KrakenD
//     ignores it).
//   - json + is_collection: a top-level array (or null) → {"collection":[…]},
//     anything else is ErrNotArray.
//   - safejson: object as is; array → {"collection":[…]}; any other value,
//     null included → {"content":x}. is_collection is ignored, as in lura.
//   - string: {"content":"<body>"}; the body is text, never parsed.
//   - xml: krakend-xml/mxj mapping, all values strings: root element as the
//     only key, attributes as "-name", text next to attributes or children
//     as "#text", repeated siblings as arrays, namespace prefixes dropped;
//     is_collection → {"collection":{root:…}}. XML decoding allocates.
//   - no-op: ErrNoOp (stream the body instead).
//
// The caller gunzips Content-Encoding: gzip bodies first. body is copied:
// it may be reused as soon as Decode returns. The Value is valid until
// ReleaseScratch or the next Decode (or BackendError) of the same slot.
// Errors wrap ErrSyntax, ErrNotObject, ErrNotArray or ErrNoOp.
func (f *Formatter) Decode(s *Scratch, slot int, body []byte) (*fastjson.Value, error) {
	return f.decode(s, slot, body)
}

// Apply reshapes v (a Decode result of the same slot) in KrakenD's order:
// flatmap (if configured it replaces allow/deny/mapping), target, allow else
// deny, mapping, group. It may modify v in place and returns the result,
// which lives in the slot (valid until ReleaseScratch). A nil v is returned
// as is. Safe to call concurrently for different slots.
func (f *Formatter) Apply(s *Scratch, slot int, v *fastjson.Value) *fastjson.Value {
	return f.apply(s, slot, v)
}

// Merge combines the parts shallowly, in slice order: on a key collision the
// later part wins. KrakenD merges in arrival order, so its collisions are
// nondeterministic; ours follow backend declaration order (a documented
// fix). nil parts and parts that are not objects are skipped. The result is
// a new object in s's shared arena (the parts' nested values are shared, not
// copied). With exactly one usable part that part is returned unchanged.
// Merge with no usable part returns an empty object.
func Merge(s *Scratch, parts []*fastjson.Value) *fastjson.Value { return merge(s, parts) }

// Flatmap is a compiled proxy.flatmap_filter list (krakend/flatmap
// semantics: move, del, append; "*" matches any key or index; numeric
// segments index arrays). Immutable and safe for concurrent use.
type Flatmap struct {
	ops []flatOp
}

// NewFlatmap compiles ops. It returns nil, nil when no op is usable (an empty
// list, or only ops with an empty type), which KrakenD treats as "no
// flatmap". Unknown types are errors here (KrakenD skips them silently; the
// config compiler already rejects them).
func NewFlatmap(ops []*gatewayv1.FlatmapOp) (*Flatmap, error) { return newFlatmap(ops) }

// Apply runs the operations over v (endpoint-level flatmap, after Merge) in
// s's shared arena and returns the result. A nil Flatmap returns v. A v that
// is nil or not an object is returned unchanged.
func (fm *Flatmap) Apply(s *Scratch, v *fastjson.Value) *fastjson.Value {
	if fm == nil {
		return v
	}
	return fm.apply(&s.arena, &s.fw, v)
}

// Strategy says when a Static response applies.
type Strategy uint8

// Static strategies (KrakenD proxy/static.go).
const (
	StrategyAlways     Strategy = iota // always
	StrategySuccess                    // no error
	StrategyComplete                   // no error and complete
	StrategyErrored                    // an error
	StrategyIncomplete                 // no response or incomplete
)

// Static is a compiled proxy.static. Immutable and safe for concurrent use.
type Static struct {
	strategy Strategy
	data     *fastjson.Value // object; pre-unescaped so reads never mutate it
}

// NewStatic compiles st. Strategy "" and unknown values mean always, as in
// KrakenD; data must be a JSON object (empty means {}).
func NewStatic(st *gatewayv1.Static) (*Static, error) { return newStatic(st) }

// Strategy returns the compiled strategy.
func (st *Static) Strategy() Strategy { return st.strategy }

// Match reports whether the static data applies to a pipe outcome:
// hasResponse is false when the pipe produced no data at all, errored when
// at least one backend failed, complete when every backend succeeded.
func (st *Static) Match(hasResponse, errored, complete bool) bool {
	return st.match(hasResponse, errored, complete)
}

// Apply merges the static data over v (static keys overwrite) and returns
// the result; v nil or not an object yields a copy of the static data. The
// static nested values are shared by every request and must not be
// modified: run Static.Apply after Flatmap.Apply, as KrakenD does.
func (st *Static) Apply(s *Scratch, v *fastjson.Value) *fastjson.Value { return st.apply(s, v) }

// SplitPath splits a dotted path ("a.b.c") into segments; call it at plan
// build time, never per request.
func SplitPath(p string) []string { return splitPath(p) }

// Lookup appends to dst the value at path in v, stringified like KrakenD's
// sequential proxy placeholders: strings as is (unescaped), numbers as
// written, true/false, null as "<nil>", arrays as their elements joined with
// "," (each stringified the same way; nested objects and arrays as compact
// JSON), objects as compact JSON (lura prints Go's map[k:v] syntax there).
// v is backend N's Apply result: lura's sequential proxy reads the formatted
// response. Numeric segments also index arrays (lura only walks objects).
// ok is false (and dst unchanged) when the path does not resolve; KrakenD
// then leaves the placeholder in the URL. Does not allocate.
func Lookup(dst []byte, v *fastjson.Value, path []string) (out []byte, ok bool) {
	return lookup(dst, v, path)
}

// Output is an endpoint output_encoding, parsed once at plan build time.
type Output uint8

// Output encodings.
const (
	OutputJSON           Output = iota // json: the object; nil → {}
	OutputJSONCollection               // json-collection: Data["collection"]; missing → []
	OutputString                       // string: Data["content"] as text when a string
	OutputNoOp                         // no-op: the caller streams the backend response; Render treats it as json
	OutputNegotiate                    // negotiate: by Accept; json by default
	OutputXML                          // xml
	OutputYAML                         // yaml
)

// Content types returned by Render.
const (
	ContentTypeJSON = "application/json; charset=utf-8"
	ContentTypeText = "text/plain; charset=utf-8"
	ContentTypeXML  = "application/xml"
	ContentTypeYAML = "application/x-yaml; charset=utf-8"
)

// ParseOutput maps an output_encoding name to an Output ("" → json).
func ParseOutput(name string) (Output, error) { return parseOutput(name) }

// Render appends the client body for v to dst per o and returns it with its
// Content-Type. accept (the request's Accept header) matters only for
// OutputNegotiate. Object keys are sorted, the last of duplicates kept, as
// KrakenD's Go maps render (Scratch.Render also honours KeepOrder). Strings are
// escaped like encoding/json (HTML-safe), so string bytes match KrakenD's.
// Render never fails: values built by this package are always renderable.
func Render(dst []byte, o Output, v *fastjson.Value, accept []byte) (out []byte, contentType string) {
	return render(dst, o, v, accept)
}

// Render renders into s's own output buffer; the bytes are valid until the
// next Render on s or ReleaseScratch(s). Copy them into the response (for
// example fasthttp's Response.SetBody) before releasing s.
func (s *Scratch) Render(o Output, v *fastjson.Value, accept []byte) ([]byte, string) {
	var ct string
	ordered := s.ordered
	for i := range s.slots {
		ordered = append(ordered, s.slots[i].ordered...)
	}
	s.out, ct = renderOrdered(s.out[:0], o, v, accept, ordered)
	if len(ordered) > len(s.ordered) {
		clear(ordered[len(s.ordered):]) // keep s.ordered's own length; drop the slots' references
	}
	return s.out, ct
}

// NewString returns a string value holding a copy of b, in s's shared
// arena (valid until ReleaseScratch). Use it on the goroutine that renders,
// like Merge: to replace a field of the merged value (auth/signer's
// tokens).
func (s *Scratch) NewString(b []byte) *fastjson.Value { return s.arena.NewStringBytes(b) }

// KeepOrder makes Render write object v's keys (not its children's) in
// their stored order instead of sorted: where KrakenD renders a Go struct,
// not a map (return_error_details' http_status_code, http_body,
// http_body_encoding). Call it on the goroutine that renders, before
// Render; it holds until ReleaseScratch.
func (s *Scratch) KeepOrder(v *fastjson.Value) {
	if v != nil && v.Type() == fastjson.TypeObject {
		s.ordered = append(s.ordered, v)
	}
}

// ValidObject reports whether body is valid JSON whose top level is an object:
// the condition for passing an Identity backend's body through untouched.
// It does not allocate.
func ValidObject(body []byte) bool { return validObject(body) }

// Canonical reports whether a ValidObject body is already exactly the bytes
// KrakenD would render for it (sorted keys, compact, no newline, strings as
// encoding/json writes them), so that it may be passed through without a
// copy. It does not allocate.
func Canonical(body []byte) bool { return canonicalObject(body) }

// BackendError builds the value KrakenD's backend/http return_error_details
// yields for a failed backend: {key: {"http_status_code":status,
// "http_body":"<body>","http_body_encoding":"<enc>"}}, where key is
// "error_" + alias (prebuilt at plan time) and enc is the backend response's
// Content-Type. It uses slot's parser: call it instead of Decode for that
// slot. The result goes through Merge like any part (no Apply).
func BackendError(s *Scratch, slot int, key string, status int, body, enc []byte) *fastjson.Value {
	return backendError(s, slot, key, status, body, enc)
}

// ParseSlot parses the JSON document body (a value rewritten outside this
// package, such as by a Lua script) into slot's parser. The same rules as
// Decode apply: one goroutine per slot, and the result is valid until
// ReleaseScratch or the next use of the slot.
func (s *Scratch) ParseSlot(slot int, body []byte) (*fastjson.Value, error) {
	sl := s.slot(slot)
	if len(body) > maxPooledBody {
		sl.big = true
	}
	return sl.p.ParseBytes(body)
}

// ParseShared parses body with the endpoint-level parser: on the handler
// goroutine only, like Merge. The result is valid until ReleaseScratch or
// the next ParseShared.
func (s *Scratch) ParseShared(body []byte) (*fastjson.Value, error) {
	return s.shared.ParseBytes(body)
}
