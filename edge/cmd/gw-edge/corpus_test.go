package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/apigw/gateway/controlplane/config"
	"github.com/apigw/gateway/edge/auth"
	"github.com/apigw/gateway/edge/plan"
)

// buildsPlan compiles file as gw-edge run -c does (with getenv's FC_*
// variables) and builds the edge's plan (servable); it skips files the
// validator rejects or that need files of another machine, and fails when
// a file that validated does not build.
func buildsPlan(t *testing.T, f string, getenv func(string) string) bool {
	t.Helper()
	c, err := compileFile(f, getenv, nil)
	var ve *config.ValidationError
	if errors.As(err, &ve) {
		t.Skipf("rejected by the validator (%d violations)", len(ve.Violations))
	}
	if err != nil {
		t.Fatal(err)
	}
	servable(t, c)
	return true
}

// servable builds c's plan with the registries of a real edge process and
// fails the test when it does not build; it skips when c needs node-local
// files this machine lacks.
func servable(t *testing.T, c *config.Compiled) {
	t.Helper()
	// The registries of a real edge process (revocation set included).
	reg, err := newRegistries(prometheus.NewRegistry(), zerolog.Nop(), nil, auth.NewRevocations(auth.RevocationsConfig{Logger: zerolog.Nop()}))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.close()
	deps := reg.deps
	deps.JWKSWait = time.Millisecond
	// sd: dns names are not looked up off this machine: every lookup
	// fails at once (the backend then has no host yet, which is not a
	// build error).
	deps.Resolver = &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no DNS in this test")
	}}
	p, err := plan.Build(c.Snapshot, deps)
	var be *plan.BuildError
	if errors.As(err, &be) && onlyMissingFiles(be) {
		// A node-local file (a JWKS on disk) absent from this machine:
		// the edge's environment, not a rule.
		t.Skipf("needs local files: %v", err)
	}
	if err != nil {
		t.Fatalf("validated but not servable: %v", err)
	}
	p.Release()
}

// TestValidatedConfigsBuild: the validator and the edge share one set of
// rules. Every configuration of the test corpus that `gwctl validate`
// (config.CompileFile) accepts must build into a plan on this edge; one
// that it rejects is skipped. No network: JWKS fetches, if any, fail fast
// on loopback and are not build errors. Flexible Config template sets
// (testdata/fc-*, the flexible package's) render first, as with FC_ENABLE.
func TestValidatedConfigsBuild(t *testing.T) {
	var files []string
	for _, pattern := range []string{
		"testdata/*.json",
		"../../../controlplane/config/testdata/*.json",
		"../../../controlplane/config/testdata/*.yaml",
		"../../../controlplane/config/testdata/formats/*", // YAML anchors, TOML, comment keys
		"../../../examples/*.yaml",
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	built := 0
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if buildsPlan(t, f, func(string) string { return "" }) {
				built++
			}
		})
	}
	// Flexible Config template sets (FC_ENABLE with settings, partials
	// and sub-templates), rendered as gw-edge run -c renders them.
	dirs, err := filepath.Glob("testdata/fc-*")
	if err != nil {
		t.Fatal(err)
	}
	dirs = append(dirs, "../../../controlplane/config/flexible/testdata/fc")
	templates := 0
	for _, dir := range dirs {
		t.Run("flexible/"+filepath.Base(dir), func(t *testing.T) {
			env := map[string]string{
				"FC_ENABLE":    "1",
				"FC_SETTINGS":  filepath.Join(dir, "settings"),
				"FC_PARTIALS":  filepath.Join(dir, "partials"),
				"FC_TEMPLATES": filepath.Join(dir, "templates"),
			}
			if buildsPlan(t, filepath.Join(dir, "krakend.tmpl"), func(k string) string { return env[k] }) {
				templates++
			}
		})
	}
	if templates < 2 {
		t.Errorf("only %d Flexible Config template sets built", templates)
	}
	if built < 3 {
		t.Fatalf("only %d configurations built; the corpus went missing?", built)
	}
	if _, err := os.Stat("testdata/noop-in-sequence.json"); err != nil {
		t.Fatal(err)
	}
}

// TestKrakenDCEConfigs: KrakenD CE's own configurations (the sample
// krakend.json at the root of krakend-ce and its integration fixtures,
// tests/fixtures/*.json) validate with no violation and build into a plan.
// They are read from a krakend-ce checkout at KRAKEND_CE_SRC (else
// /work/ref/krakend-ce), never copied into this repository; without one
// the test skips. Files they name (Lua sources) are read relative to the
// directory KrakenD's own tests run from.
func TestKrakenDCEConfigs(t *testing.T) {
	src := os.Getenv("KRAKEND_CE_SRC")
	if src == "" {
		src = "/work/ref/krakend-ce"
	}
	if _, err := os.Stat(filepath.Join(src, "krakend.json")); err != nil {
		t.Skipf("no krakend-ce checkout at %s (set KRAKEND_CE_SRC)", src)
	}
	fixtures, err := filepath.Glob(filepath.Join(src, "tests", "fixtures", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{filepath.Join(src, "krakend.json"): src} // file: the directory it is run from
	for _, f := range fixtures {
		cases[f] = filepath.Join(src, "tests") // KrakenD's Makefile runs them from tests/
	}
	if len(cases) < 2 {
		t.Fatalf("no fixture under %s/tests/fixtures", src)
	}
	for f, dir := range cases {
		t.Run(strings.TrimPrefix(f, src+"/"), func(t *testing.T) {
			c, err := config.CompileFileWith(f, config.Options{ReadFile: func(name string) ([]byte, error) {
				if !filepath.IsAbs(name) {
					name = filepath.Join(dir, name)
				}
				return os.ReadFile(name)
			}})
			if err != nil {
				t.Fatalf("KrakenD CE's own configuration is refused: %v", err)
			}
			if len(c.Snapshot.GetEndpoints()) == 0 {
				t.Fatal("no endpoint compiled")
			}
			servable(t, c)
		})
	}
}

func onlyMissingFiles(be *plan.BuildError) bool {
	for _, v := range be.Violations {
		if !strings.Contains(v.GetDetail(), "no such file or directory") {
			return false
		}
	}
	return len(be.Violations) > 0
}

// TestCompileFileKrakendEnv: gw-edge run -c applies KrakenD's KRAKEND_*
// overrides of top-level keys, to plain files and to rendered templates.
func TestCompileFileKrakendEnv(t *testing.T) {
	env := []string{"KRAKEND_PORT=9090", "KRAKEND_NAME=from-env"}
	dir := "testdata/fc-docs"
	fc := map[string]string{"FC_ENABLE": "1", "FC_SETTINGS": filepath.Join(dir, "settings"),
		"FC_PARTIALS": filepath.Join(dir, "partials"), "FC_TEMPLATES": filepath.Join(dir, "templates")}
	for _, tc := range []struct {
		file   string
		getenv func(string) string
	}{
		{"../../../controlplane/config/testdata/formats/uncommented.json", func(string) string { return "" }},
		{filepath.Join(dir, "krakend.tmpl"), func(k string) string { return fc[k] }},
	} {
		c, err := compileFile(tc.file, tc.getenv, env)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if svc := c.Snapshot.GetService(); svc.GetPort() != 9090 || svc.GetName() != "from-env" {
			t.Errorf("%s: port %d name %q, want KRAKEND_PORT and KRAKEND_NAME applied", tc.file, svc.GetPort(), svc.GetName())
		}
	}
}
