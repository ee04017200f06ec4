package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxTokenBytes bounds the tokens Verify looks at; a longer token is
// malformed (401) without being decoded.
const MaxTokenBytes = 16 << 10

// b64 is the only base64 flavour a compact JWS may use: URL alphabet, no
// padding, and (Strict) no stray bits in the last character, so one token has
// exactly one spelling.
var b64 = base64.RawURLEncoding.Strict()

// joseHeader holds the protected-header parameters the validator reads.
type joseHeader struct {
	Alg     string          `json:"alg"`
	Kid     string          `json:"kid"`
	X5t     string          `json:"x5t"`
	X5tS256 string          `json:"x5t#S256"`
	Crit    json.RawMessage `json:"crit"`
	B64     json.RawMessage `json:"b64"`
}

// compact is a compact JWS split into its segments (all alias the token).
type compact struct {
	header, payload, sig []byte
}

var errMalformed = errors.New("malformed compact jws")

// splitCompact splits tok into header.payload.signature without copying. It
// accepts only three non-empty segments of base64url characters (no
// padding), which rules out JWE (five parts), the JSON serialization, an
// empty signature (`alg: none`) and anything with whitespace.
func splitCompact(tok []byte) (compact, bool) {
	if len(tok) == 0 || len(tok) > MaxTokenBytes {
		return compact{}, false
	}
	dots := 0
	for _, c := range tok {
		switch {
		case c == '.':
			dots++
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return compact{}, false
		}
	}
	if dots != 2 {
		return compact{}, false
	}
	i := bytes.IndexByte(tok, '.')
	j := i + 1 + bytes.IndexByte(tok[i+1:], '.')
	c := compact{header: tok[:i], payload: tok[i+1 : j], sig: tok[j+1:]}
	if len(c.header) == 0 || len(c.payload) == 0 || len(c.sig) == 0 {
		return compact{}, false
	}
	return c, true
}

// decodeSegment base64url-decodes one segment strictly.
func decodeSegment(seg []byte) ([]byte, error) {
	out := make([]byte, b64.DecodedLen(len(seg)))
	n, err := b64.Decode(out, seg)
	if err != nil {
		return nil, err
	}
	return out[:n], nil
}

// parseHeader decodes and parses the protected header. A header that
// declares "crit" or "b64" is refused: we implement no JWS extension, and
// RFC 7515 §4.1.11 says a recipient must reject what it does not understand.
func parseHeader(seg []byte) (joseHeader, error) {
	raw, err := decodeSegment(seg)
	if err != nil {
		return joseHeader{}, fmt.Errorf("decode header: %w", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 || bytes.TrimSpace(raw)[0] != '{' {
		return joseHeader{}, fmt.Errorf("decode header: %w", errMalformed)
	}
	var h joseHeader
	if err := json.Unmarshal(raw, &h); err != nil {
		return joseHeader{}, fmt.Errorf("decode header: %w", err)
	}
	if h.Crit != nil || h.B64 != nil {
		return joseHeader{}, fmt.Errorf("decode header: crit or b64 present: %w", errMalformed)
	}
	if h.Alg == "" {
		return joseHeader{}, fmt.Errorf("decode header: alg missing: %w", errMalformed)
	}
	return h, nil
}

// parseClaims parses a JWT payload (JSON object) into claims. Numbers are
// kept as json.Number so large integer claims survive exactly. The
// registered claims the validator reads must have their RFC 7519 types.
func parseClaims(payload []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode claims: %w", err)
	}
	if m == nil {
		return nil, fmt.Errorf("decode claims: not an object: %w", errMalformed)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("decode claims: trailing data: %w", errMalformed)
	}
	for _, k := range [...]string{"exp", "nbf", "iat"} {
		if v, ok := m[k]; ok {
			n, isNum := v.(json.Number)
			if !isNum {
				return nil, fmt.Errorf("decode claims: %s is not a number: %w", k, errMalformed)
			}
			if _, err := n.Float64(); err != nil {
				return nil, fmt.Errorf("decode claims: %s: %w", k, err)
			}
		}
	}
	if v, ok := m["iss"]; ok {
		if _, isStr := v.(string); !isStr {
			return nil, fmt.Errorf("decode claims: iss is not a string: %w", errMalformed)
		}
	}
	if v, ok := m["aud"]; ok {
		switch a := v.(type) {
		case string:
		case []any:
			for _, e := range a {
				if _, isStr := e.(string); !isStr {
					return nil, fmt.Errorf("decode claims: aud has a non-string member: %w", errMalformed)
				}
			}
		default:
			return nil, fmt.Errorf("decode claims: aud is neither a string nor an array: %w", errMalformed)
		}
	}
	return m, nil
}
