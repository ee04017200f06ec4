package testenv

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// InitPKI runs `gw-controlplane ca init` in dataDir, before the control
// plane starts there: the control plane then serves sync over mTLS with a
// server certificate for localhost, 127.0.0.1 and ::1.
func InitPKI(t testing.TB, bins Bins, dataDir string, extra ...string) {
	t.Helper()
	cmd := exec.Command(bins.ControlPlane, append([]string{"ca", "init", "--data-dir", dataDir}, extra...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gw-controlplane ca init: %v\n%s", err, b)
	}
}

// EdgeCreds are the files `gwctl certs issue` wrote for one edge.
type EdgeCreds struct {
	Dir, Cert, Key, CA, SigningPub string
}

// Args are the gw-edge flags that use the credentials for mTLS.
func (c EdgeCreds) Args() []string {
	return []string{"--controlplane-ca", c.CA, "--tls-cert", c.Cert, "--tls-key", c.Key}
}

// IssueCert runs `gwctl certs issue` for node and region into dir.
func IssueCert(t testing.TB, bins Bins, cp *ControlPlane, node, region, dir string, extra ...string) EdgeCreds {
	t.Helper()
	args := append([]string{"certs", "issue", "--node-id", node, "--region", region, "--out", dir}, extra...)
	if r := Gwctl(t, bins, cp, args...); r.Code != 0 {
		t.Fatalf("gwctl %v: exit %d\n%s%s", args, r.Code, r.Stdout, r.Stderr)
	}
	return EdgeCreds{
		Dir: dir, Cert: filepath.Join(dir, node+".crt"), Key: filepath.Join(dir, node+".key"),
		CA: filepath.Join(dir, "ca.crt"), SigningPub: filepath.Join(dir, "signing.pub"),
	}
}

// Pid is the process id of the running process (0 before it started).
func (p *Proc) Pid() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// RSS returns the resident set size of the process in bytes, from
// /proc/<pid>/status (0 when it cannot be read).
func (p *Proc) RSS() int64 { return p.status("VmRSS:") }

// PeakRSS returns the highest resident set size the process has had
// (VmHWM), in bytes; 0 when it cannot be read.
func (p *Proc) PeakRSS() int64 { return p.status("VmHWM:") }

// status reads one kB field of /proc/<pid>/status in bytes.
func (p *Proc) status(field string) int64 {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(p.Pid()), "status"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
