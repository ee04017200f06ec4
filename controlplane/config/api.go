package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// SchemaVersion is the Snapshot schema revision this compiler emits.
const SchemaVersion uint32 = 1

// Compiled is a validated configuration in its snapshot form. It must not
// be modified: Payload and SHA256 describe Snapshot as compiled.
type Compiled struct {
	Snapshot *gatewayv1.Snapshot
	// Payload is the deterministic serialization of Snapshot.
	Payload []byte
	// SHA256 is the lowercase hex sha256 of Payload.
	SHA256 string
	// Warnings lists what was accepted but deserves the operator's
	// attention (kinds KindNoEffect, KindOverridden, KindNormalized), sorted
	// and capped like violations. They never change Snapshot.
	Warnings []*gatewayv1.FieldViolation
}

// Options are the inputs of a compilation besides the document.
type Options struct {
	// Env is the environment as "KEY=value" entries (os.Environ()). As in
	// KrakenD, a KRAKEND_<KEY> entry overrides the top-level key <key>
	// (KRAKEND_PORT=9090). Nil means no overrides; the package never reads
	// the process environment itself.
	Env []string
	// Strict turns every warning into a violation.
	Strict bool
	// Origin, when set, says where the text at a line and column of the
	// document came from (a rendered Flexible Config template names its
	// template file and line); violations and warnings add it to their
	// position.
	Origin func(line, col int) (string, bool)
	// ReadFile reads the files the configuration names (the `sources` of
	// modifier/lua-*), which are embedded in the snapshot. Nil reads none:
	// a configuration naming a file is then rejected. OSReadFile reads
	// them relative to the working directory, as KrakenD does.
	ReadFile ReadFunc
}

// ValidationError lists every violation found in a configuration, sorted by
// path and capped at MaxViolations (plus a final "and N more" entry).
type ValidationError struct {
	Violations []*gatewayv1.FieldViolation
	// Warnings are the warnings found alongside (empty with Options.Strict,
	// which made them violations).
	Warnings []*gatewayv1.FieldViolation
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid config: %d violation", len(e.Violations))
	if len(e.Violations) != 1 {
		b.WriteByte('s')
	}
	for _, v := range e.Violations {
		b.WriteString("\n")
		b.WriteString(FormatViolation(v))
	}
	return b.String()
}

// FormatViolation renders one violation on one line as "path: kind: detail"
// ("kind: detail" for document-level violations, whose path is empty).
func FormatViolation(v *gatewayv1.FieldViolation) string {
	line := v.GetKind() + ": " + v.GetDetail()
	if v.GetPath() != "" {
		line = v.GetPath() + ": " + line
	}
	return strings.ReplaceAll(line, "\n", " ")
}

// Compile decodes content (the format comes from filename: .json, .yaml,
// .yml; otherwise it is sniffed), applies Defaults, validates and compiles
// it into a Snapshot. When the configuration has violations, err is a
// *ValidationError holding all of them and the Compiled is nil. Equal
// configurations (including the same configuration written in JSON and in
// YAML) compile to identical bytes.
func Compile(filename string, content []byte) (*Compiled, error) {
	return CompileWith(filename, content, Options{})
}

// CompileWith is Compile with options: environment overrides and strict
// mode.
func CompileWith(filename string, content []byte, opts Options) (*Compiled, error) {
	s, decoded := decode(filename, content, opts.Env, opts.Origin)
	if s == nil {
		return nil, &ValidationError{Violations: finishAt(decoded, nil, opts.Origin)}
	}
	Defaults(s)
	s.readFile = opts.ReadFile
	vs := mergeStages(decoded, validate(s))
	ws := s.warnings.list
	if opts.Strict {
		vs, ws = append(vs, ws...), nil
	}
	if len(vs) > 0 {
		return nil, &ValidationError{Violations: finishAt(vs, s.positions, opts.Origin), Warnings: finishAt(ws, s.positions, opts.Origin)}
	}
	snap := compile(s)
	payload, sum, err := Marshal(snap)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", filename, err)
	}
	return &Compiled{Snapshot: snap, Payload: payload, SHA256: sum, Warnings: finishAt(ws, s.positions, opts.Origin)}, nil
}

// CompileFile reads the file at path and compiles it (see Compile).
func CompileFile(path string) (*Compiled, error) {
	return CompileFileWith(path, Options{})
}

// CompileFileWith reads the file at path and compiles it with opts.
func CompileFileWith(path string, opts Options) (*Compiled, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return CompileWith(path, content, opts)
}

// Marshal returns the deterministic serialization of s (map entries sorted)
// and the lowercase hex sha256 of it. The control plane stores, hashes and
// ships exactly these bytes.
func Marshal(s *gatewayv1.Snapshot) (payload []byte, sha256hex string, err error) {
	if s == nil {
		return nil, "", errors.New("marshal snapshot: nil snapshot")
	}
	payload, err = proto.MarshalOptions{Deterministic: true}.Marshal(s)
	if err != nil {
		return nil, "", fmt.Errorf("marshal snapshot: %w", err)
	}
	sum := sha256.Sum256(payload)
	return payload, hex.EncodeToString(sum[:]), nil
}
