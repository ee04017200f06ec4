package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// Every flag the manifests and the units pass to our binaries (and to etcd,
// when it is installed here) must exist: each command line is compared with
// the --help of the binary the Dockerfile builds, so a renamed or removed
// flag fails here instead of at a customer's start.

// invocation is one command line found in a deployment file.
type invocation struct {
	where  string
	binary string   // gw-controlplane, gw-edge, gwctl, etcd
	sub    []string // subcommand words (ca init)
	flags  []string // flag names without dashes
}

// goFlag matches a flag line of Go's flag.PrintDefaults ("  -name type"),
// etcdFlag etcd's help ("  --name 'default'").
var (
	goFlag   = regexp.MustCompile(`(?m)^\s+-([a-zA-Z0-9][a-zA-Z0-9-]*)\b`)
	etcdFlag = regexp.MustCompile(`(?m)^\s+--([a-z0-9][a-z0-9-]*)\b`)
)

// splitArgs sorts a command line (binary excluded) into subcommand words
// and flag names. Values of "--flag value" are skipped: they follow a flag,
// and subcommands only come first.
func splitArgs(args []string) (sub, flags []string) {
	i := 0
	for ; i < len(args) && !strings.HasPrefix(args[i], "-"); i++ {
		sub = append(sub, args[i])
	}
	for ; i < len(args); i++ {
		if a, ok := strings.CutPrefix(args[i], "-"); ok {
			a = strings.TrimPrefix(a, "-")
			name, _, _ := strings.Cut(a, "=")
			flags = append(flags, name)
		}
	}
	return sub, flags
}

// manifestInvocations lists the containers' command lines. The binary is
// the command's, else the image's entrypoint (apigw/<binary>).
func manifestInvocations(t *testing.T) []invocation {
	t.Helper()
	var out []invocation
	for _, w := range workloads(readManifests(t)) {
		for _, c := range append(append([]corev1.Container{}, w.pod.Spec.InitContainers...), w.pod.Spec.Containers...) {
			cmdline := append(append([]string{}, c.Command...), c.Args...)
			var bin string
			switch {
			case len(c.Command) > 0:
				bin = filepath.Base(c.Command[0])
				cmdline = cmdline[1:]
			case strings.HasPrefix(c.Image, "apigw/"):
				bin, _, _ = strings.Cut(strings.TrimPrefix(c.Image, "apigw/"), ":")
			default:
				continue
			}
			if bin == "sh" {
				continue // the identity copy: busybox, not ours
			}
			sub, flags := splitArgs(cmdline)
			out = append(out, invocation{where: w.file + " " + w.name + "/" + c.Name, binary: bin, sub: sub, flags: flags})
		}
	}
	return out
}

// unitInvocations lists the Exec*= lines of the systemd units.
func unitInvocations(t *testing.T) []invocation {
	t.Helper()
	files, _ := filepath.Glob("systemd/*.service")
	if len(files) == 0 {
		t.Fatal("no units in systemd/")
	}
	var out []invocation
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		joined := strings.ReplaceAll(string(b), "\\\n", " ")
		for _, line := range strings.Split(joined, "\n") {
			k, v, ok := strings.Cut(line, "=")
			if !ok || !strings.HasPrefix(k, "Exec") {
				continue
			}
			words := strings.Fields(strings.TrimLeft(v, "-@:+!"))
			if len(words) == 0 {
				continue
			}
			sub, flags := splitArgs(words[1:])
			out = append(out, invocation{where: f + " " + k, binary: filepath.Base(words[0]), sub: sub, flags: flags})
		}
	}
	return out
}

// helpFlags returns the flags `binary sub... --help` lists.
func helpFlags(t *testing.T, path string, sub []string, re *regexp.Regexp) map[string]bool {
	t.Helper()
	out, err := exec.Command(path, append(append([]string{}, sub...), "--help")...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s --help: %v\n%s", path, strings.Join(sub, " "), err, out)
	}
	m := map[string]bool{"help": true, "h": true}
	for _, f := range re.FindAllStringSubmatch(string(out), -1) {
		m[f[1]] = true
	}
	if len(m) < 4 {
		t.Fatalf("%s %s --help lists only %v: the help format changed?", path, strings.Join(sub, " "), m)
	}
	return m
}

func TestDeployFlagsExist(t *testing.T) {
	imgs := builtImages(t)
	binPath := map[string]string{}
	for target, bins := range imageTargets {
		for _, b := range bins {
			binPath[b] = filepath.Join(imgs[target].root, "usr/local/bin", b)
		}
	}
	invs := append(manifestInvocations(t), unitInvocations(t)...)
	seen := map[string]bool{}
	for _, inv := range invs {
		seen[inv.binary] = true
		var known map[string]bool
		switch {
		case binPath[inv.binary] != "":
			known = helpFlags(t, binPath[inv.binary], inv.sub, goFlag)
		case inv.binary == "etcd":
			etcd, err := exec.LookPath("etcd")
			if err != nil {
				t.Logf("%s: etcd not installed, its flags are not checked", inv.where)
				continue
			}
			known = helpFlags(t, etcd, nil, etcdFlag)
		default:
			t.Errorf("%s: runs %q, which this test does not know", inv.where, inv.binary)
			continue
		}
		var missing []string
		for _, f := range inv.flags {
			if !known[f] {
				missing = append(missing, "--"+f)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("%s: %s %s has no flag %v", inv.where, inv.binary, strings.Join(inv.sub, " "), missing)
		}
	}
	for _, b := range []string{"gw-controlplane", "gw-edge", "etcd"} {
		if !seen[b] {
			t.Errorf("no deployment file runs %s: the parsing above lost it", b)
		}
	}
}

// TestSplitArgs: the parser the flag check relies on.
func TestSplitArgs(t *testing.T) {
	sub, flags := splitArgs([]string{"ca", "init", "--if-missing", "--data-dir", "/x", "-host=a,b"})
	if strings.Join(sub, " ") != "ca init" || strings.Join(flags, " ") != "if-missing data-dir host" {
		t.Fatalf("got sub %q flags %q", sub, flags)
	}
}

// helpFlag matches a flag line of Go's flag.PrintDefaults; a second field
// (the value's type) means the flag takes a value.
var helpFlag = regexp.MustCompile(`(?m)^\s+-([a-zA-Z0-9][a-zA-Z0-9-]*)(?: (\S+))?\s*$`)

// flagSet is a --help's flags: name → takes a value.
type flagSet map[string]bool

func readFlagSet(path string, sub []string) (flagSet, error) {
	out, err := exec.Command(path, append(append([]string{}, sub...), "--help")...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s %s --help: %v\n%s", filepath.Base(path), strings.Join(sub, " "), err, out)
	}
	fs := flagSet{"help": false, "h": false}
	for _, m := range helpFlag.FindAllStringSubmatch(string(out), -1) {
		fs[m[1]] = m[2] != ""
	}
	return fs, nil
}

// subWord is a subcommand word (ca, init, certs, issue), not a positional
// argument such as a file name, a version or a placeholder.
var subWord = regexp.MustCompile(`^[a-z]+(-[a-z]+)*$`)

// checkDocCommand checks one command line written in documentation: its
// global flags against `bin --help`, its subcommand's against
// `bin sub... --help`. It returns the unknown flags.
func checkDocCommand(binPath map[string]string, words []string) ([]string, error) {
	path := binPath[words[0]]
	global, err := readFlagSet(path, nil)
	if err != nil {
		return nil, err
	}
	var bad []string
	i := 1
	flag := func(fs flagSet) bool { // consumes one flag at i; false when none
		if i >= len(words) || !strings.HasPrefix(words[i], "-") || words[i] == "-" {
			return false
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(words[i], "-"), "=")
		takes, ok := fs[name]
		if !ok {
			bad = append(bad, "--"+name)
		}
		i++
		if takes && !hasValue {
			i++
		}
		return true
	}
	for flag(global) {
	}
	// Subcommand words: one, and one more while `bin sub... --help` says
	// the group needs it (gw-controlplane ca renew-server, gwctl certs
	// issue). Never more than --help accepts: a positional argument before
	// --help would run the command.
	fs := global
	var sub []string
	for i < len(words) && subWord.MatchString(words[i]) {
		sub = append(sub, words[i])
		i++
		if fs, err = readFlagSet(path, sub); err == nil {
			break
		}
		if i == len(words) || !subWord.MatchString(words[i]) {
			if len(sub) == 1 && i == len(words) {
				return nil, nil // names a command group (`gw-controlplane token`), runs nothing
			}
			return nil, err
		}
	}
	for i < len(words) {
		if !flag(fs) {
			i++ // a positional argument
		}
	}
	return bad, nil
}

// docCommands finds the command lines of our binaries that the deployment
// files' comments and README.md's code tell operators to run: a command
// starts with the binary's name at the start of a comment line, a README
// code span or a line of a README code block, or after "--" or "$ " (as in
// kubectl exec ... -- gwctl), and ends at a shell operator.
func docCommands(t *testing.T) map[string][][]string {
	t.Helper()
	files, _ := filepath.Glob("kubernetes/*.yaml")
	units, _ := filepath.Glob("systemd/*")
	files = append(append(files, units...), "Dockerfile", "../README.md")
	span := regexp.MustCompile("`([^`]+)`")
	out := map[string][][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		fenced := false
		for _, l := range strings.Split(string(b), "\n") {
			switch {
			case !strings.HasSuffix(f, "README.md"):
				if c, ok := strings.CutPrefix(strings.TrimSpace(l), "#"); ok {
					lines = append(lines, c)
				}
			case strings.HasPrefix(l, "```"):
				fenced = !fenced
			case fenced:
				lines = append(lines, l)
			default:
				for _, m := range span.FindAllStringSubmatch(l, -1) {
					lines = append(lines, m[1])
				}
			}
		}
		text := strings.ReplaceAll(strings.Join(lines, "\n"), "\\\n", " ")
		for _, l := range strings.Split(text, "\n") {
			words := strings.Fields(l)
			for j, w := range words {
				if w != "gwctl" && w != "gw-controlplane" && w != "gw-edge" && w != "bin/gwctl" {
					continue
				}
				if j > 0 && words[j-1] != "--" && words[j-1] != "$" {
					continue
				}
				cmd := []string{strings.TrimPrefix(w, "bin/")}
				for _, x := range words[j+1:] {
					if strings.ContainsAny(x, "|;&)<>#") || strings.HasPrefix(x, "[") || strings.HasPrefix(x, "...") {
						break
					}
					cmd = append(cmd, strings.TrimRight(x, ",."))
				}
				out[f] = append(out[f], cmd)
			}
		}
	}
	return out
}

// TestDocumentedCommandsFlagsExist: the commands the manifests' comments,
// the units' comments and the README tell operators to run use flags the
// binaries have.
func TestDocumentedCommandsFlagsExist(t *testing.T) {
	imgs := builtImages(t)
	binPath := map[string]string{}
	for target, bins := range imageTargets {
		for _, b := range bins {
			binPath[b] = filepath.Join(imgs[target].root, "usr/local/bin", b)
		}
	}
	n := 0
	for f, cmds := range docCommands(t) {
		for _, c := range cmds {
			n++
			bad, err := checkDocCommand(binPath, c)
			if err != nil {
				t.Errorf("%s: `%s`: %v", f, strings.Join(c, " "), err)
			} else if len(bad) > 0 {
				t.Errorf("%s: `%s`: unknown flags %v", f, strings.Join(c, " "), bad)
			}
		}
	}
	t.Logf("%d documented commands checked", n)
	if n < 20 {
		t.Errorf("found only %d documented commands: the scan lost them", n)
	}
}
