package deploy

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// The Dockerfile is checked by running it without a container engine: it is
// parsed with BuildKit's own parser, the build context is the repository
// filtered by .dockerignore, and each stage's WORKDIR, ENV, ARG, COPY and RUN
// are carried out for real in a directory standing for the stage's root
// file system (absolute paths in the file are rooted there). So the RUN
// lines are the commands that build the images, with the same flags, and a
// wrong path, a file the .dockerignore drops or a changed flag fails here.

// Targets deploy/Dockerfile must have, with the binaries each image holds.
var imageTargets = map[string][]string{
	"gw-controlplane": {"gw-controlplane", "gwctl"},
	"gw-edge":         {"gw-edge"},
	"gwctl":           {"gwctl"},
}

// distroless/static: CA certificates, tzdata and a passwd with nonroot
// (65532), no shell.
const finalBase = "gcr.io/distroless/static-debian12:nonroot"

type image struct {
	root       string // the stage's file system
	entrypoint []string
	user       string
	base       string
}

var (
	imagesOnce sync.Once
	imagesErr  error
	images     map[string]*image
	imagesDir  string // removed by TestMain
)

func TestMain(m *testing.M) {
	code := m.Run()
	if imagesDir != "" {
		os.RemoveAll(imagesDir)
	}
	os.Exit(code)
}

// builtImages builds every stage of deploy/Dockerfile once per test binary.
func builtImages(t *testing.T) map[string]*image {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binaries (-short)")
	}
	imagesOnce.Do(func() {
		dir, err := os.MkdirTemp("", "deploy-images-")
		if err != nil {
			imagesErr = err
			return
		}
		imagesDir = dir // shared by the tests, removed after all of them
		images, imagesErr = buildDockerfile("Dockerfile", "..", dir)
	})
	if imagesErr != nil {
		t.Fatal(imagesErr)
	}
	return images
}

func parseDockerfile(path string) ([]instructions.Stage, []instructions.ArgCommand, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	res, err := parser.Parse(bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	return instructions.Parse(res.AST, nil)
}

// buildDockerfile runs the Dockerfile's stages with contextDir as the build
// context, each stage's root under work/<stage>.
func buildDockerfile(dockerfile, contextDir, work string) (map[string]*image, error) {
	stages, metaArgs, err := parseDockerfile(dockerfile)
	if err != nil {
		return nil, err
	}
	ctxDir := filepath.Join(work, "context")
	if err := copyContext(contextDir, ctxDir); err != nil {
		return nil, err
	}
	global := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				global[kv.Key] = *kv.Value
			}
		}
	}
	out := map[string]*image{}
	for i, st := range stages {
		name := st.Name
		if name == "" {
			name = strconv.Itoa(i)
		}
		img := &image{root: filepath.Join(work, "stage-"+name), base: expand(st.BaseName, global)}
		if prev, ok := out[img.base]; ok { // FROM an earlier stage
			if err := copyPath(prev.root, img.root, false); err != nil {
				return nil, err
			}
			img.user = prev.user
		} else if err := os.MkdirAll(img.root, 0o755); err != nil {
			return nil, err
		}
		env := map[string]string{}
		workdir := "/"
		for _, c := range st.Commands {
			if err := runInstruction(c, img, env, global, &workdir, ctxDir, out); err != nil {
				return nil, fmt.Errorf("stage %s: %s: %w", name, c.Name(), err)
			}
		}
		out[name] = img
	}
	return out, nil
}

func runInstruction(c instructions.Command, img *image, env, global map[string]string, workdir *string, ctxDir string, stages map[string]*image) error {
	vars := func() map[string]string {
		m := map[string]string{}
		for k, v := range global {
			m[k] = v
		}
		for k, v := range env {
			m[k] = v
		}
		return m
	}
	in := func(p string) string { // container path → host path
		if !filepath.IsAbs(p) {
			p = filepath.Join(*workdir, p)
		}
		return filepath.Join(img.root, p)
	}
	switch c := c.(type) {
	case *instructions.WorkdirCommand:
		*workdir = expand(c.Path, vars())
		return os.MkdirAll(in(*workdir), 0o755)
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			env[kv.Key] = expand(kv.Value, vars())
		}
	case *instructions.ArgCommand:
		for _, kv := range c.Args {
			if v, ok := global[kv.Key]; ok && kv.Value == nil {
				env[kv.Key] = v
			} else if kv.Value != nil {
				env[kv.Key] = *kv.Value
			}
		}
	case *instructions.UserCommand:
		img.user = c.User
	case *instructions.EntrypointCommand:
		if c.PrependShell {
			return errors.New("shell form: the final images have no shell, use the exec form")
		}
		img.entrypoint = c.CmdLine
	case *instructions.CopyCommand:
		from := ctxDir
		if c.From != "" {
			src, ok := stages[c.From]
			if !ok {
				return fmt.Errorf("--from=%s: no such stage before this one", c.From)
			}
			from = src.root
		}
		dest := in(expand(c.DestPath, vars()))
		for _, s := range c.SourcePaths {
			src := filepath.Join(from, expand(s, vars()))
			if err := copyPath(src, dest, len(c.SourcePaths) > 1 || strings.HasSuffix(c.DestPath, "/")); err != nil {
				return err
			}
		}
	case *instructions.RunCommand:
		if !c.PrependShell || len(c.CmdLine) != 1 {
			return errors.New("only the shell form is run here")
		}
		cmd := exec.Command("sh", "-c", c.CmdLine[0])
		cmd.Dir = in(*workdir)
		cmd.Env = os.Environ()
		for k, v := range vars() {
			if filepath.IsAbs(v) && !strings.ContainsAny(v, " :") {
				v = filepath.Join(img.root, v) // e.g. OUT=/out
			}
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w\n%s", c.CmdLine[0], err, out)
		}
	case *instructions.ExposeCommand, *instructions.LabelCommand:
	default:
		return fmt.Errorf("instruction %s is not carried out by this test; teach it", c.Name())
	}
	return nil
}

// expand replaces $VAR and ${VAR} as the Dockerfile does.
func expand(s string, vars map[string]string) string {
	return os.Expand(s, func(k string) string { return vars[k] })
}

// copyContext copies the repository into dst minus what .dockerignore drops.
func copyContext(src, dst string) error {
	f, err := os.Open(filepath.Join(src, ".dockerignore"))
	if err != nil {
		return err
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		return err
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return err
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		skip, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		if skip {
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(p, filepath.Join(dst, rel))
	})
}

// copyPath copies a file or a directory's contents as COPY does.
func copyPath(src, dest string, intoDir bool) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			rel, err := filepath.Rel(src, p)
			if err != nil {
				return err
			}
			return copyFile(p, filepath.Join(dest, rel))
		})
	}
	if intoDir {
		dest = filepath.Join(dest, filepath.Base(src))
	}
	return copyFile(src, dest)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// staticELF fails unless path is an ELF executable with no dynamic loader
// and no shared libraries.
func staticELF(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			return fmt.Errorf("%s is dynamically linked (program header %s)", path, p.Type)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return err
	}
	if len(libs) > 0 {
		return fmt.Errorf("%s needs shared libraries %v", path, libs)
	}
	return nil
}

// TestDockerfileImages builds the images' file systems from the Dockerfile
// and checks each target: its binaries are there and static, the
// entrypoint is one of them, the base is distroless/static and the user is
// numeric and not root (Kubernetes' runAsNonRoot needs a numeric USER).
func TestDockerfileImages(t *testing.T) {
	imgs := builtImages(t)
	for target, bins := range imageTargets {
		img, ok := imgs[target]
		if !ok {
			t.Errorf("no stage %q in deploy/Dockerfile", target)
			continue
		}
		if img.base != finalBase {
			t.Errorf("%s: FROM %s, want %s", target, img.base, finalBase)
		}
		uid, _, _ := strings.Cut(img.user, ":")
		if n, err := strconv.Atoi(uid); err != nil || n == 0 {
			t.Errorf("%s: USER %q, want a numeric non-root uid", target, img.user)
		}
		for _, b := range bins {
			p := filepath.Join(img.root, "usr/local/bin", b)
			if err := staticELF(p); err != nil {
				t.Errorf("%s: %v", target, err)
			}
		}
		if len(img.entrypoint) == 0 || img.entrypoint[0] != "/usr/local/bin/"+bins[0] {
			t.Errorf("%s: ENTRYPOINT %q, want [/usr/local/bin/%s]", target, img.entrypoint, bins[0])
		}
		// The binary starts: --help exits 0.
		if out, err := exec.Command(filepath.Join(img.root, "usr/local/bin", bins[0]), "--help").CombinedOutput(); err != nil {
			t.Errorf("%s --help: %v\n%s", bins[0], err, out)
		}
	}
}

// TestDockerignoreKeepsTheBuild: the context the build sees has every Go
// file the three binaries compile (a pattern dropping one would fail in
// the image build only), and none of the heavy folders.
func TestDockerignoreKeepsTheBuild(t *testing.T) {
	ctx := t.TempDir()
	if err := copyContext("..", ctx); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{".git", "bin", "test", "deploy", "examples"} {
		if _, err := os.Stat(filepath.Join(ctx, gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is in the build context", gone)
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "./controlplane/cmd/gw-controlplane", "./edge/cmd/gw-edge", "./cli/gwctl")
	cmd.Dir = ctx
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go list in the filtered context: %v\n%s", err, out)
	}
}
