package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// maxExposure is the highest `systemd-analyze security` exposure the units
// may have, in tenths as --threshold takes it: 20 is 2.0 on its 0 (fully
// confined) to 10 (unprotected) scale; a unit without hardening is 9.6.
// What is left at 1.2 is mostly the network, which a gateway needs.
const maxExposure = 20

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze not found; .ci/run installs it (Debian package systemd)")
		}
		t.Skip("systemd-analyze not installed")
	}
	return p
}

// TestSystemdUnitsVerify runs `systemd-analyze verify` on the units in a
// root holding the binaries the Dockerfile builds at the units' paths and
// the system's targets, and fails on any complaint about our units (verify
// exits 0 on unknown keys; its messages name the unit).
func TestSystemdUnitsVerify(t *testing.T) {
	sa := systemdAnalyze(t)
	imgs := builtImages(t)
	root := t.TempDir()
	units := filepath.Join(root, "etc/systemd/system")
	lib := filepath.Join(root, "usr/lib/systemd/system")
	bin := filepath.Join(root, "usr/local/bin")
	for _, d := range []string{units, lib, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for target, bins := range imageTargets {
		for _, b := range bins {
			if err := copyFile(filepath.Join(imgs[target].root, "usr/local/bin", b), filepath.Join(bin, b)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The units' dependencies (network-online.target, multi-user.target and
	// what they pull in), as regular files: verify resolves symlinks
	// inside --root.
	sys, _ := filepath.Glob("/usr/lib/systemd/system/*")
	for _, f := range sys {
		if fi, err := os.Lstat(f); err == nil && fi.Mode().IsRegular() && (strings.HasSuffix(f, ".target") || strings.HasSuffix(f, ".slice")) {
			if err := copyFile(f, filepath.Join(lib, filepath.Base(f))); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, _ := filepath.Glob("systemd/*.service")
	var names []string
	for _, f := range files {
		if err := copyFile(f, filepath.Join(units, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Base(f))
	}
	if len(names) != 2 {
		t.Fatalf("want the control plane and edge units, found %v", names)
	}
	out, err := exec.Command(sa, append([]string{"verify", "--root=" + root}, names...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		for _, n := range names {
			if strings.Contains(l, n) {
				t.Errorf("systemd-analyze verify: %s", l)
			}
		}
	}
}

// TestSystemdUnitsHardened: each unit's exposure is at most maxExposure.
func TestSystemdUnitsHardened(t *testing.T) {
	sa := systemdAnalyze(t)
	files, _ := filepath.Glob("systemd/*.service")
	for _, f := range files {
		out, err := exec.Command(sa, "security", "--offline=yes", "--threshold="+strconv.Itoa(maxExposure), f).CombinedOutput()
		if err != nil {
			t.Errorf("%s: exposure above %d/10 (or the check failed): %v\n%s", f, maxExposure, err, out)
		}
	}
}
