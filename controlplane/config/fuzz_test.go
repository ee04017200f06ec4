package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

var violationKinds = map[string]bool{
	KindRequired: true, KindInvalid: true, KindDuplicate: true,
	KindNotFound: true, KindUnsupported: true, KindTooMany: true,
}

// FuzzCompile feeds arbitrary documents through decode, defaults, validate
// and compile. It must never panic; a rejected document must come back as a
// well-formed violation list, an accepted one must compile deterministically
// and round-trip through its payload. Seeds live in testdata/fuzz/FuzzCompile.
func FuzzCompile(f *testing.F) {
	for _, file := range []string{"testdata/krakend.json", "testdata/krakend-security.json", "testdata/small.json", "testdata/bad.json"} {
		content, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(false, content)
	}
	if content, err := os.ReadFile("testdata/small.yaml"); err == nil {
		f.Add(true, content)
	}
	// Minified JSON (one line: positions are counted on along it) and
	// YAML with comment keys and anchors, as KrakenD's docs write them.
	if content, err := os.ReadFile("testdata/formats/commented.json"); err == nil {
		var compact bytes.Buffer
		if json.Compact(&compact, content) == nil {
			f.Add(false, compact.Bytes())
		}
	}
	if content, err := os.ReadFile("testdata/formats/anchors.yaml"); err == nil {
		f.Add(true, content)
	}
	// Every JSON file of the corpus minified too, and every YAML one.
	jsons, _ := filepath.Glob("testdata/*.json")
	for _, file := range jsons {
		content, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		var compact bytes.Buffer
		if json.Compact(&compact, content) == nil {
			f.Add(false, compact.Bytes())
		}
	}
	yamls, _ := filepath.Glob("testdata/*.yaml")
	for _, file := range yamls {
		if content, err := os.ReadFile(file); err == nil {
			f.Add(true, content)
		}
	}
	f.Fuzz(func(t *testing.T, isYAML bool, content []byte) {
		name := "fuzz.json"
		if isYAML {
			name = "fuzz.yaml"
		}
		c, err := Compile(name, content)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Compile returned %T (%v), want *ValidationError", err, err)
			}
			checkViolations(t, ve.Violations)
			return
		}
		again, err := Compile(name, content)
		if err != nil || again.SHA256 != c.SHA256 {
			t.Fatalf("second compile differs: %v", err)
		}
		var decoded gatewayv1.Snapshot
		if err := proto.Unmarshal(c.Payload, &decoded); err != nil {
			t.Fatalf("payload does not unmarshal: %v", err)
		}
		if _, sum, err := Marshal(&decoded); err != nil || sum != c.SHA256 {
			t.Fatalf("payload does not round-trip: %v", err)
		}
		if changes := Diff(c.Snapshot, &decoded); len(changes) != 0 {
			t.Fatalf("Diff of a snapshot with itself: %v", changes)
		}
		_ = Diff(nil, c.Snapshot)
	})
}

func checkViolations(t *testing.T, vs []*gatewayv1.FieldViolation) {
	t.Helper()
	if len(vs) == 0 || len(vs) > MaxViolations+1 {
		t.Fatalf("got %d violations", len(vs))
	}
	for i, v := range vs {
		if !violationKinds[v.GetKind()] {
			t.Fatalf("violation %d has kind %q", i, v.GetKind())
		}
		if strings.Contains(FormatViolation(v), "\n") {
			t.Fatalf("violation %d spans lines: %q", i, FormatViolation(v))
		}
		if i > 0 && i < MaxViolations && comparePaths(vs[i-1].GetPath(), v.GetPath()) > 0 {
			t.Fatalf("violations not sorted: %q before %q", vs[i-1].GetPath(), v.GetPath())
		}
	}
}

// TestMinifiedCompilesAlike: formatting never changes the outcome. Each
// JSON file of the corpus, minified onto one line, compiles to the same
// snapshot (or the same violation paths) as written.
func TestMinifiedCompilesAlike(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) < 5 {
		t.Fatalf("corpus: %v %v", files, err)
	}
	paths := func(err error) []string {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			return nil
		}
		var out []string
		for _, v := range ve.Violations {
			out = append(out, v.GetPath())
		}
		return out
	}
	for _, file := range files {
		content, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, content); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		pretty, perr := Compile(file, content)
		mini, merr := Compile(file, compact.Bytes())
		switch {
		case (perr == nil) != (merr == nil):
			t.Errorf("%s: pretty %v, minified %v", file, perr, merr)
		case perr == nil && pretty.SHA256 != mini.SHA256:
			t.Errorf("%s: minified compiles to another snapshot", file)
		case perr != nil && !slices.Equal(paths(perr), paths(merr)):
			t.Errorf("%s: violations differ:\npretty   %v\nminified %v", file, paths(perr), paths(merr))
		}
	}
}
