package test

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/apigw/gateway/test/testenv"
)

const module = "github.com/apigw/gateway/"

type pkg struct {
	ImportPath string
	Doc        string
	Deps       []string // transitive, non-test
	Imports    []string // direct, non-test
	Name       string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-json", "./...")
	cmd.Dir = testenv.RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestImportBoundaries enforces STYLE.md §1 over all (transitive) non-test
// dependencies: edge never depends on the control plane (except the
// standalone main on controlplane/config), the control plane never depends
// on the edge, and the edge's inner packages never depend on its outer ones.
func TestImportBoundaries(t *testing.T) {
	inner := []string{"edge/router", "edge/auth", "edge/qos", "edge/security", "edge/modifier", "edge/schema", "edge/response"}
	outer := []string{"edge/proxy", "edge/aggregate", "edge/server", "edge/apply", "edge/watch"}
	// The lifecycle and the HTTP front stay apart: the server is apply's
	// Target and never drives a snapshot; apply never reaches the stream.
	apart := map[string][]string{
		"edge/server": {"edge/apply", "edge/watch", "edge/lkg"},
		"edge/apply":  {"edge/server", "edge/watch"},
	}
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(p.ImportPath, module)
		for _, dep := range p.Deps {
			if !strings.HasPrefix(dep, module) {
				continue
			}
			d := strings.TrimPrefix(dep, module)
			switch {
			case under(rel, "edge") && under(d, "controlplane") && !(rel == "edge/cmd/gw-edge" && under(d, "controlplane/config")):
				t.Errorf("%s imports %s: the edge must not import the control plane", rel, d)
			case under(rel, "controlplane") && under(d, "edge"):
				t.Errorf("%s imports %s: the control plane must not import the edge", rel, d)
			}
			for _, no := range apart[rel] {
				if under(d, no) {
					t.Errorf("%s imports %s: the HTTP front and the snapshot lifecycle are separate", rel, d)
				}
			}
			for _, in := range inner {
				for _, out := range outer {
					if under(rel, in) && under(d, out) {
						t.Errorf("%s imports %s: %s must not depend on %s", rel, d, in, out)
					}
				}
			}
		}
	}
}

// TestCLIImports enforces STYLE.md §1 for the CLI: its packages import,
// directly, only the contract (proto/), controlplane/config and cli.
func TestCLIImports(t *testing.T) {
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(p.ImportPath, module)
		if !under(rel, "cli") {
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			d := strings.TrimPrefix(imp, module)
			if !(under(d, "proto") || under(d, "controlplane/config") || under(d, "cli")) {
				t.Errorf("%s imports %s: the CLI may import only proto/, controlplane/config and cli", rel, d)
			}
		}
	}
}

// TestPackageDocs requires a package doc comment on every package outside
// generated code.
func TestPackageDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(p.ImportPath, module)
		if under(rel, "proto/gen") {
			continue
		}
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment", rel)
		}
	}
}

func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}
