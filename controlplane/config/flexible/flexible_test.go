package flexible

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/apigw/gateway/controlplane/config"
	"github.com/apigw/gateway/test/leak"
)

func TestMain(m *testing.M) { leak.VerifyTestMain(m) }

// sample is the fixture under testdata/fc: a config template using sprig
// functions, marshal, include, a sub-template and two settings files.
func sample(dir string) Config {
	return Config{
		Enable:    true,
		Settings:  filepath.Join(dir, "settings"),
		Partials:  filepath.Join(dir, "partials"),
		Templates: filepath.Join(dir, "templates"),
	}
}

// TestRenderMatchesKrakenD compares the render with the file KrakenD CE
// 2.12.1 wrote for the same inputs (FC_OUT=rendered.golden, `krakend check
// -c testdata/fc/krakend.tmpl`, run from testdata): byte for byte.
func TestRenderMatchesKrakenD(t *testing.T) {
	t.Parallel()
	r, err := Render("testdata/fc/krakend.tmpl", sample("testdata/fc"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/fc/rendered.golden")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(r.Content)); diff != "" {
		t.Errorf("render differs from KrakenD's (-krakend +ours):\n%s", diff)
	}
	if r.Filename != "krakend.json" {
		t.Errorf("Filename = %q, want krakend.json (KrakenD parses an unnamed render as JSON)", r.Filename)
	}
	var names []string
	for _, f := range r.Files {
		names = append(names, f.Name)
		b, err := os.ReadFile(f.Name)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Errorf("%s: sha256 %s is not the file's", f.Name, f.SHA256)
		}
	}
	wantNames := []string{
		"testdata/fc/krakend.tmpl",
		"testdata/fc/partials/rate_limit.json",
		"testdata/fc/settings/endpoints.json",
		"testdata/fc/settings/service.json",
		"testdata/fc/templates/backend.tmpl",
	}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}
	if _, err := config.Compile(r.Filename, r.Content); err != nil {
		t.Errorf("the rendered sample does not compile: %v", err)
	}
}

func TestRenderWritesOut(t *testing.T) {
	t.Parallel()
	cfg := sample("testdata/fc")
	cfg.Out = filepath.Join(t.TempDir(), "out.json")
	r, err := Render("testdata/fc/krakend.tmpl", cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, r.Content) || r.Filename != cfg.Out {
		t.Errorf("FC_OUT holds %d bytes named %q; want the %d rendered bytes", len(got), r.Filename, len(r.Content))
	}
}

// copyFixture copies testdata/fc into a temporary folder the test may
// change.
func copyFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	err := filepath.WalkDir("testdata/fc", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("testdata/fc", p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestViolationsNameTemplateLines compiles a render with mistakes in three
// places: a value from a settings file printed by the sub-template, a value
// in a partial and text of the config template itself. Each violation
// names the template file and line that produced it.
func TestViolationsNameTemplateLines(t *testing.T) {
	t.Parallel()
	dir := copyFixture(t)
	write(t, filepath.Join(dir, "settings", "endpoints.json"),
		`{"items": [{"name": "users", "hosts": ["htp://bad"]}]}`)
	write(t, filepath.Join(dir, "partials", "rate_limit.json"),
		"\"qos/ratelimit/router\": {\n  \"max_rate\": 50,\n  \"strategy\": \"nope\"\n}\n")
	tmpl := filepath.Join(dir, "krakend.tmpl")
	b, _ := os.ReadFile(tmpl)
	write(t, tmpl, strings.Replace(string(b), `"version": 3,`, `"version": 3, "colour": 1,`, 1))

	r, err := Render(tmpl, sample(dir))
	if err != nil {
		t.Fatal(err)
	}
	_, err = config.CompileWith(r.Filename, r.Content, config.Options{Origin: r.Origin})
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("compile: %v, want violations", err)
	}
	want := map[string]string{
		"colour":                          "krakend.tmpl line 2",
		"endpoints[0].backend[0].host[0]": "backend.tmpl line 2",
		`endpoints[0].extra_config["qos/ratelimit/router"].strategy`: "rate_limit.json line 3",
	}
	got := map[string]string{}
	for _, v := range ve.Violations {
		_, from, ok := strings.Cut(v.GetDetail(), "; from ")
		if !ok {
			t.Errorf("%s: no template origin in %q", v.GetPath(), v.GetDetail())
			continue
		}
		got[v.GetPath()] = filepath.Base(strings.TrimSuffix(from, ")"))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("origins (-want +got):\n%s\nviolations: %v", diff, ve.Violations)
	}
}

// TestRenderErrors: what KrakenD logs and then ignores (falling back to
// the raw template, or including nothing) is an error here.
func TestRenderErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(dir string)
		want   string
	}{
		{"template does not parse", func(dir string) {
			write(t, filepath.Join(dir, "krakend.tmpl"), "{\n\"version\": {{ .service.port }\n}")
		}, "krakend.tmpl:2"},
		{"template does not execute", func(dir string) {
			write(t, filepath.Join(dir, "krakend.tmpl"), `{"version": {{ .service.port | nosuchfunc }}}`)
		}, "nosuchfunc"},
		{"sub-template fails", func(dir string) {
			write(t, filepath.Join(dir, "templates", "backend.tmpl"), `{{ index .hosts 7 }}`)
		}, "backend.tmpl:1"},
		{"partial missing", func(dir string) {
			if err := os.Remove(filepath.Join(dir, "partials", "rate_limit.json")); err != nil {
				t.Fatal(err)
			}
		}, "rate_limit.json"},
		{"settings not an object", func(dir string) {
			write(t, filepath.Join(dir, "settings", "service.json"), `[1, 2]`)
		}, "service.json"},
		{"settings not json", func(dir string) {
			write(t, filepath.Join(dir, "settings", "service.json"), `{"name": `)
		}, "service.json"},
		{"settings folder missing", func(dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "settings")); err != nil {
				t.Fatal(err)
			}
		}, "FC_SETTINGS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := copyFixture(t)
			tc.change(dir)
			_, err := Render(filepath.Join(dir, "krakend.tmpl"), sample(dir))
			if err == nil || !IsError(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Render: %v, want a flexible config error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestFromEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{EnvEnable: "1", EnvSettings: "s", EnvPartials: "p", EnvTemplates: "t", EnvOut: "o.json"}
	got := FromEnv(func(k string) string { return env[k] })
	want := Config{Enable: true, Settings: "s", Partials: "p", Templates: "t", Out: "o.json"}
	if got != want {
		t.Errorf("FromEnv = %+v, want %+v", got, want)
	}
	if FromEnv(func(string) string { return "" }).Enable {
		t.Error("Enable without FC_ENABLE")
	}
}
