package deploy

import (
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
