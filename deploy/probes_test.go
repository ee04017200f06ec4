package deploy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestManifestProbesAnswer starts the control plane and an edge from the
// images' binaries on loopback and runs every probe the manifests declare
// for them against the real processes: each must succeed once they are up.
func TestManifestProbesAnswer(t *testing.T) {
	imgs := builtImages(t)
	dir := t.TempDir()

	// Port name (as the manifests use it) → where this test serves it.
	cpPorts := map[string]string{"metrics": freeAddr(t), "sync": freeAddr(t)}
	start(t, filepath.Join(imgs["gw-controlplane"].root, "usr/local/bin/gw-controlplane"),
		"--data-dir", filepath.Join(dir, "cp"), "--admin-listen", "127.0.0.1:0",
		"--sync-listen", cpPorts["sync"], "--metrics-listen", cpPorts["metrics"], "--log-format", "json")

	cfg := filepath.Join(dir, "krakend.json")
	if err := os.WriteFile(cfg, []byte(`{"version": 3, "endpoints": [{"endpoint": "/x", "backend": [{"host": ["http://127.0.0.1:1"], "url_pattern": "/x"}]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	edgePorts := map[string]string{"http": freeAddr(t)}
	start(t, filepath.Join(imgs["gw-edge"].root, "usr/local/bin/gw-edge"),
		"run", "-c", cfg, "--listen", edgePorts["http"])

	ports := map[string]map[string]string{"gw-controlplane": cpPorts, "gw-edge": edgePorts}
	n := 0
	for _, inv := range manifestContainers(t) {
		p, ok := ports[inv.binary]
		if !ok {
			continue
		}
		for kind, pr := range map[string]*corev1.Probe{"readiness": inv.c.ReadinessProbe, "liveness": inv.c.LivenessProbe} {
			if pr == nil {
				continue
			}
			where := fmt.Sprintf("%s %s probe", inv.where, kind)
			if err := waitProbe(pr, p); err != nil {
				t.Errorf("%s: %v", where, err)
			}
			n++
		}
	}
	if n < 4 {
		t.Fatalf("ran %d probes, want the control plane's and the edge's readiness and liveness", n)
	}
}

type container struct {
	where  string
	binary string
	c      corev1.Container
}

func manifestContainers(t *testing.T) []container {
	t.Helper()
	var out []container
	for _, w := range workloads(readManifests(t)) {
		for _, c := range w.pod.Spec.Containers {
			if bin, ok := strings.CutPrefix(c.Image, "apigw/"); ok {
				bin, _, _ = strings.Cut(bin, ":")
				out = append(out, container{where: w.file + " " + w.name + "/" + c.Name, binary: bin, c: c})
			}
		}
	}
	return out
}

// waitProbe runs the probe until it succeeds, for at most 15 s.
func waitProbe(pr *corev1.Probe, ports map[string]string) error {
	var last error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		switch {
		case pr.HTTPGet != nil:
			addr, ok := ports[pr.HTTPGet.Port.String()]
			if !ok {
				return fmt.Errorf("port %s is not served by this test", pr.HTTPGet.Port.String())
			}
			c := http.Client{Timeout: 2 * time.Second}
			resp, err := c.Get("http://" + addr + pr.HTTPGet.Path)
			if err != nil {
				last = err
				continue
			}
			resp.Body.Close()
			// Kubernetes: 200 to 399 succeeds.
			if resp.StatusCode >= 200 && resp.StatusCode < 400 {
				return nil
			}
			last = fmt.Errorf("GET %s: %s", pr.HTTPGet.Path, resp.Status)
		case pr.TCPSocket != nil:
			addr, ok := ports[pr.TCPSocket.Port.String()]
			if !ok {
				return fmt.Errorf("port %s is not served by this test", pr.TCPSocket.Port.String())
			}
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				last = err
				continue
			}
			c.Close()
			return nil
		default:
			return fmt.Errorf("probe kind not run by this test")
		}
	}
	return fmt.Errorf("no success within 15s: %v", last)
}

// start runs a binary until the test ends (SIGTERM, then kill).
func start(t *testing.T, bin string, args ...string) {
	t.Helper()
	var logs strings.Builder
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		select {
		case <-done:
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), logs.String())
		}
	})
}

// freeAddr returns a loopback address free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
