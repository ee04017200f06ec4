// Package violation is the vocabulary of FieldViolation.kind: why a
// configuration (control plane) or a snapshot (edge) is refused. The
// control plane's validator and the edge's plan builder take the kinds from
// here, beside the contract, so a tool that branches on a kind (gwctl, a
// test comparing (path, kind) pairs) sees one vocabulary from both.
//
// It imports nothing, so the edge, the control plane and the CLI may all
// depend on it.
package violation

// Kind is a FieldViolation.kind value.
type Kind string

// The kinds. Tests and tools compare kinds and paths, never the detail text.
const (
	Required    Kind = "required"    // a mandatory value is missing
	Invalid     Kind = "invalid"     // wrong type, syntax or out-of-range value
	Duplicate   Kind = "duplicate"   // two things that must be unique collide
	NotFound    Kind = "not_found"   // a reference to something that does not exist
	Unsupported Kind = "unsupported" // valid in KrakenD (or unknown) but not accepted here; the detail lists what is
	TooMany     Kind = "too_many"    // more than allowed (also a final "and N more" line)
)

// Kinds returns every kind, in declaration order.
func Kinds() []Kind { return []Kind{Required, Invalid, Duplicate, NotFound, Unsupported, TooMany} }

// String returns the kind as it travels in FieldViolation.kind.
func (k Kind) String() string { return string(k) }
