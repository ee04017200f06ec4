// Package config turns a KrakenD v3 configuration (JSON or YAML) into a
// validated, compiled Snapshot. SKELETON: replaced by the config engineer.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strings"

	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// SchemaVersion is the Snapshot schema revision this compiler emits.
const SchemaVersion uint32 = 1

// Compiled is a validated configuration in its snapshot form.
type Compiled struct {
	Snapshot *gatewayv1.Snapshot
	Payload  []byte
	SHA256   string
}

// ValidationError lists every violation found in a configuration.
type ValidationError struct{ Violations []*gatewayv1.FieldViolation }

func (e *ValidationError) Error() string {
	lines := make([]string, 0, len(e.Violations))
	for _, v := range e.Violations {
		lines = append(lines, FormatViolation(v))
	}
	return "invalid config:\n" + strings.Join(lines, "\n")
}

// FormatViolation renders one violation as "path: kind: detail".
func FormatViolation(v *gatewayv1.FieldViolation) string {
	return v.GetPath() + ": " + v.GetKind() + ": " + v.GetDetail()
}

// Compile is a skeleton.
func Compile(filename string, content []byte) (*Compiled, error) {
	return nil, errors.New("config: not implemented")
}

// CompileFile reads path and compiles it.
func CompileFile(path string) (*Compiled, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Compile(path, b)
}

// Marshal returns the deterministic serialization of s and its sha256.
func Marshal(s *gatewayv1.Snapshot) ([]byte, string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(s)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:]), nil
}

// Diff is a skeleton.
func Diff(old, new *gatewayv1.Snapshot) []*gatewayv1.Change { return nil }
