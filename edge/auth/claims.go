package auth

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/internal/zerocopy"
)

// Claims is the verified payload of a token. It is immutable and shared by
// every request that presents the same token: read it, never modify what
// Get returns. Numbers are json.Number, objects map[string]any and arrays
// []any. Safe for concurrent use.
type Claims struct {
	m map[string]any
}

// Map returns the claims as decoded (shared: read only).
func (c *Claims) Map() map[string]any {
	if c == nil {
		return nil
	}
	return c.m
}

// Get returns the top-level claim with this literal name (dots included).
func (c *Claims) Get(name string) (any, bool) {
	if c == nil {
		return nil, false
	}
	v, ok := c.m[name]
	return v, ok
}

// String returns the top-level claim name when it is a JSON string. It does
// not allocate.
func (c *Claims) String(name string) (string, bool) {
	if c == nil {
		return "", false
	}
	s, ok := c.m[name].(string)
	return s, ok
}

// Lookup returns the claim at path. A dotted path ("realm_access.roles")
// walks nested objects unless it starts with "http" (a namespaced claim
// such as "https://example.com/roles" is a literal top-level name), which is
// KrakenD's rule for propagate_claims, roles_key_is_nested and scopes_key. A
// top-level claim named exactly path wins over the nested walk.
func (c *Claims) Lookup(path string) (any, bool) {
	if c == nil {
		return nil, false
	}
	if v, ok := c.m[path]; ok {
		return v, true
	}
	if !isNestedPath(path) {
		return nil, false
	}
	var cur any = c.m
	for part := range strings.SplitSeq(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Names returns the top-level claim names (unordered); for debugging.
func (c *Claims) Names() []string {
	if c == nil {
		return nil
	}
	out := make([]string, 0, len(c.m))
	for k := range c.m {
		out = append(out, k)
	}
	return out
}

func isNestedPath(p string) bool {
	return strings.Contains(p, ".") && !strings.HasPrefix(p, "http")
}

// FormatClaim renders a claim value the way KrakenD renders `{JWT.x}`
// placeholders and propagated headers: strings as is, integral numbers as
// integers ("42", not "42.0" or "4.2e+01"), other numbers in the shortest
// form, booleans "true"/"false", arrays comma-joined (members formatted the
// same way), objects as JSON. ok is false for null.
func FormatClaim(v any) (string, bool) {
	switch t := v.(type) {
	case nil:
		return "", false
	case string:
		return t, true
	case json.Number:
		return formatNumber(t), true
	case float64:
		return formatFloat(t), true
	case bool:
		return strconv.FormatBool(t), true
	case []any:
		parts := make([]string, 0, len(t))
		for _, e := range t {
			if s, ok := FormatClaim(e); ok {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, ","), true
	default:
		b, err := json.Marshal(t)
		if err != nil {
			return "", false
		}
		return string(b), true
	}
}

func formatNumber(n json.Number) string {
	s := n.String()
	if !strings.ContainsAny(s, ".eE") {
		return s // an integer literal, kept exactly however large
	}
	f, err := n.Float64()
	if err != nil {
		return s
	}
	return formatFloat(f)
}

func formatFloat(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// claimStrings reads a roles/scopes style claim: an array of strings or one
// space-separated string. ok is false when the claim has another type.
func claimStrings(v any) ([]string, bool) {
	switch t := v.(type) {
	case string:
		return strings.Fields(t), true
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out, true
	default:
		return nil, false
	}
}

// Token is a verified token as one Validator sees it: its claims, the
// `{JWT.x}` placeholder values and the propagated headers, all computed once
// when the token was first verified. A Token is immutable and shared through
// the verified-token cache: it is safe for concurrent use and may be kept
// after the request (it holds no request memory).
type Token struct {
	claims Claims
	// values holds FormatClaim of every top-level claim, for placeholders.
	values map[string]string
	// headers holds, per propagate_claims entry (same order), the values
	// to set; nil when the claim is missing.
	headers [][]string
	prop    *propagation
	// expires is the exp claim (zero when the token has none).
	expires time.Time
}

// Claims returns the token's claims.
func (t *Token) Claims() *Claims { return &t.claims }

// Expires returns the exp claim, or the zero time when the token has none.
func (t *Token) Expires() time.Time { return t.expires }

// Value returns the `{JWT.name}` placeholder value of a top-level claim
// (literal name, no nesting, as in KrakenD), formatted by FormatClaim. ok is
// false when the claim is missing or null; KrakenD then leaves the
// placeholder in the URL. It does not allocate.
func (t *Token) Value(name string) (string, bool) {
	s, ok := t.values[name]
	return s, ok
}

// Header is one propagated claim: Values are what the request header Name
// gets (one value, or one per array member with
// propagate_claims_preserve_array); Values is nil when the claim is missing.
type Header struct {
	Name   string
	Values []string
}

// Headers returns the propagate_claims headers in configuration order.
func (t *Token) Headers() []Header {
	if t.prop == nil {
		return nil
	}
	out := make([]Header, len(t.prop.names))
	for i, n := range t.prop.names {
		out[i] = Header{Name: n, Values: t.headers[i]}
	}
	return out
}

// SetHeaders applies propagate_claims to an incoming request header: each
// configured header is replaced by the claim's value (one Add per array
// member with propagate_claims_preserve_array). A header whose claim is
// missing is deleted, so a client cannot smuggle its own value in its place
// (KrakenD leaves the client's header; we fix that). Zero allocations once
// the header's buffers have grown. Call it on the request the backends will
// see; it does not retain h.
func (t *Token) SetHeaders(h *fasthttp.RequestHeader) {
	if t.prop == nil {
		return
	}
	for i, name := range t.prop.keys {
		vals := t.headers[i]
		h.DelBytes(name)
		for _, v := range vals {
			h.AddBytesKV(name, zerocopy.Bytes(v))
		}
	}
}

// propagation is a validator's compiled propagate_claims list.
type propagation struct {
	claims        []string
	names         []string
	keys          [][]byte // header names as bytes, built once
	preserveArray bool
}

// headerSafe drops the bytes a header value must not carry: NUL, the other
// C0 controls but tab, and DEL. A claim such as "alice\x00admin" or one
// with CR LF would otherwise reach a backend header (or be refused by it).
// It allocates only when something is dropped.
func headerSafe(s string) string {
	i := strings.IndexFunc(s, unsafeHeaderRune)
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for j := 0; j < len(s); j++ {
		if c := s[j]; c == '\t' || (c >= 0x20 && c != 0x7f) {
			b = append(b, c)
		}
	}
	return string(b)
}

func unsafeHeaderRune(r rune) bool { return r != '\t' && (r < 0x20 || r == 0x7f) }

// values renders each propagated claim, header-safe (headerSafe).
func (p *propagation) values(c *Claims) [][]string {
	out := make([][]string, len(p.claims))
	for i, name := range p.claims {
		v, ok := c.Lookup(name)
		if !ok || v == nil {
			continue
		}
		if arr, isArr := v.([]any); isArr && p.preserveArray {
			vs := make([]string, 0, len(arr))
			for _, e := range arr {
				if s, ok := FormatClaim(e); ok {
					vs = append(vs, headerSafe(s))
				}
			}
			out[i] = vs
			continue
		}
		if s, ok := FormatClaim(v); ok {
			out[i] = []string{headerSafe(s)}
		}
	}
	return out
}
