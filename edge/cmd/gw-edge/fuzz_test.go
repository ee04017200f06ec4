package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apigw/gateway/controlplane/config"
)

// FuzzValidatedBuilds is the property behind TestValidatedConfigsBuild on
// arbitrary documents: whatever the validator accepts, the edge builds
// into a plan (servable), so a config `gwctl validate` passes is never
// NACKed by an edge for a rule the validator does not know. Seeds are the
// test corpus (JSON pretty and minified, YAML, TOML); `go test` runs them,
// `go test -fuzz FuzzValidatedBuilds` mutates them.
func FuzzValidatedBuilds(f *testing.F) {
	var files []string
	for _, pattern := range []string{
		"testdata/*.json",
		"../../../controlplane/config/testdata/*.json",
		"../../../controlplane/config/testdata/*.yaml",
		"../../../controlplane/config/testdata/formats/*",
		"../../../examples/*.yaml",
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 5 {
		f.Fatalf("only %d seed files; the corpus went missing?", len(files))
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		ext := filepath.Ext(file)
		f.Add(ext, b)
		if ext == ".json" {
			var compact bytes.Buffer
			if json.Compact(&compact, b) == nil {
				f.Add(ext, compact.Bytes())
			}
		}
	}
	f.Fuzz(func(t *testing.T, ext string, doc []byte) {
		switch ext {
		case ".json", ".yaml", ".yml", ".toml":
		default:
			return
		}
		c, err := config.CompileWith("fuzz"+ext, doc, config.Options{})
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			return // rejected: nothing to build
		}
		if err != nil {
			// Compile reports every refusal as a ValidationError.
			t.Fatalf("Compile: %T %v", err, err)
		}
		if strings.Count(string(doc), "\n") > 5000 {
			return // keep each input quick
		}
		servable(t, c)
	})
}
