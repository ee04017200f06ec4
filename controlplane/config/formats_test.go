package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func compileFile(t *testing.T, file string, opts Options) *Compiled {
	t.Helper()
	c, err := CompileFileWith(file, opts)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return c
}

// TestFormatsAndCommentsCompileAlike compiles one configuration written as
// KrakenD's docs and playground write it: JSON with "@comment" and
// "$schema"/"_"/"#" keys at every level, YAML with a "_defaults" block of
// anchors, and TOML. All compile to the bytes of the same JSON without any
// comment key.
func TestFormatsAndCommentsCompileAlike(t *testing.T) {
	t.Parallel()
	want := compileFile(t, "testdata/formats/uncommented.json", Options{})
	for _, file := range []string{"commented.json", "anchors.yaml", "krakend.toml"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			got := compileFile(t, filepath.Join("testdata/formats", file), Options{})
			if got.SHA256 != want.SHA256 {
				t.Errorf("sha256 %s, want %s (snapshot differs from uncommented.json)", got.SHA256, want.SHA256)
			}
			if len(got.Warnings) != 0 {
				t.Errorf("warnings: %v", got.Warnings)
			}
		})
	}
}

func TestTOMLViolations(t *testing.T) {
	t.Parallel()
	got := pairsOf(violationsOf(t, "k.toml", "version = 3\nport = \"x\"\nbogus = 1\n"))
	if diff := cmp.Diff([]pair{{"bogus", KindUnsupported}, {"port", KindInvalid}}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	vs := violationsOf(t, "k.toml", "version = 3\nport = \n")
	if len(vs) != 1 || vs[0].GetPath() != "" || !strings.Contains(vs[0].GetDetail(), "line 2") {
		t.Errorf("syntax error: %v", vs)
	}
}

// TestCommentKeysNeverDecoded checks that a comment key holding something
// that would be a violation as a real key is still ignored.
func TestCommentKeysNeverDecoded(t *testing.T) {
	t.Parallel()
	doc := conf(`"@x": {"port": -1}, "_x": [1], "#x": null, "$id": "a"`,
		ep("/a", `"@comment": 1, "extra_config": {"@comment": {"proxy": 1}, "_x": "y"}`))
	if vs := violationsOf(t, "k.json", doc); vs != nil {
		t.Errorf("violations: %v", vs)
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Parallel()
	base, err := os.ReadFile("testdata/formats/uncommented.json")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"KRAKEND_PORT=9090", "KRAKEND_NAME=from-env", "KRAKEND_TIMEOUT=5s",
		"KRAKEND_HOST=http://127.0.0.1:7", "KRAKEND_DISABLE_REST=true", "PATH=/bin", "KRAKEND_NOT_A_KEY=1"}
	for _, file := range []string{"uncommented.json", "anchors.yaml", "krakend.toml"} {
		c := compileFile(t, filepath.Join("testdata/formats", file), Options{Env: env})
		svc := c.Snapshot.GetService()
		if svc.GetPort() != 9090 || svc.GetName() != "from-env" {
			t.Errorf("%s: port %d name %q, want 9090 from-env", file, svc.GetPort(), svc.GetName())
		}
		if got := c.Snapshot.GetEndpoints()[0].GetBackends()[0].GetHosts(); !cmp.Equal(got, []string{"http://127.0.0.1:7"}) {
			t.Errorf("%s: hosts %v", file, got)
		}
		if got := c.Snapshot.GetEndpoints()[0].GetTimeoutMs(); got != 5000 {
			t.Errorf("%s: endpoint timeout %d ms, want the overridden service timeout", file, got)
		}
		if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0].GetDetail(), "KRAKEND_NOT_A_KEY") {
			t.Errorf("%s: warnings %v, want one for KRAKEND_NOT_A_KEY", file, c.Warnings)
		}
	}
	// A bad override is a violation that names the variable.
	_, err = CompileWith("k.json", base, Options{Env: []string{"KRAKEND_PORT=http"}})
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Violations) != 1 || ve.Violations[0].GetPath() != "port" ||
		!strings.Contains(ve.Violations[0].GetDetail(), "$KRAKEND_PORT") {
		t.Errorf("bad override: %v", err)
	}
	_, err = CompileWith("k.json", base, Options{Env: []string{"KRAKEND_ENDPOINTS=[]"}})
	if !errors.As(err, &ve) || len(ve.Violations) != 1 || ve.Violations[0].GetPath() != "endpoints" {
		t.Errorf("object override: %v", err)
	}
}

// TestResolve checks that the resolved document compiles, without the
// environment, to what the original compiles to with it.
func TestResolve(t *testing.T) {
	t.Parallel()
	env := []string{"KRAKEND_PORT=9090", "KRAKEND_NAME=resolved"}
	for _, file := range []string{"commented.json", "anchors.yaml", "krakend.toml"} {
		content, err := os.ReadFile(filepath.Join("testdata/formats", file))
		if err != nil {
			t.Fatal(err)
		}
		name, resolved, err := Resolve(file, content, env)
		if err != nil || !strings.HasSuffix(name, ".json") {
			t.Fatalf("%s: Resolve = %q, %v", file, name, err)
		}
		want := compileFile(t, filepath.Join("testdata/formats", file), Options{Env: env})
		got, err := Compile(name, resolved)
		if err != nil || got.SHA256 != want.SHA256 {
			t.Errorf("%s: resolved compiles to %v (%v), want %s", file, got, err, want.SHA256)
		}
		if same, unchanged, _ := Resolve(file, content, []string{"PATH=/bin"}); same != file || !cmp.Equal(unchanged, content) {
			t.Errorf("%s: no override must leave the file as it is", file)
		}
	}
}
