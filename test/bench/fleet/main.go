// Command fleet is the fleet-scale benchmark behind `make bench`: a real
// gw-controlplane process and -edges simulated edges, each with its own gRPC
// connection and Sync stream that ACKs what it receives, as real edges do.
//
// The simulated edges run in a second process (this binary re-executed with
// -sim), so the control plane's memory and CPU are read from /proc and its
// /metrics apart from theirs; the machine's cores are still shared. Steps:
// all edges connect at once to a control plane holding one version (cold
// start); idle memory per stream; -pushes pushes and -revokes revocations,
// each timed from the admin call (request sent) to the last edge receiving it;
// then the control plane is killed and restarted on the same ports and
// data, and every edge reconnects at once (the reconnect storm), which the
// admission limit must absorb; a last push shows the fleet still converges.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/test/etcdtest"
)

func main() {
	sim := flag.Bool("sim", false, "run as the simulated edges (started by the benchmark itself)")
	syncAddr := flag.String("sync", "", "with -sim: the control plane's sync address")
	cpBin := flag.String("controlplane", "bin/gw-controlplane", "the gw-controlplane binary")
	edges := flag.Int("edges", 10000, "simulated edges")
	pushes := flag.Int("pushes", 10, "timed pushes")
	revokes := flag.Int("revokes", 20, "timed revocations")
	storm := flag.Bool("storm", true, "restart the control plane and time the reconnect storm")
	cpFlags := flag.String("controlplane-flags", "", "more gw-controlplane flags, space separated (to try settings)")
	onEtcd := flag.Bool("etcd", false, "run the control plane on a real single-member etcd (started here; $GW_ETCD_BIN or etcd on $PATH) instead of bbolt, and count its writes to the fleet board")
	flag.Parse()
	var err error
	if *sim {
		err = runSim(*syncAddr, *edges)
	} else {
		err = run(&controlPlane{bin: *cpBin, flags: strings.Fields(*cpFlags), etcd: *onEtcd}, *edges, *pushes, *revokes, *storm)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

// controlPlane is the gw-controlplane process under test.
type controlPlane struct {
	bin, dir               string
	flags                  []string
	etcd                   bool // on a real etcd (-etcd)
	admin, sync, metrics   string
	cmd                    *exec.Cmd
	exited                 chan error
	token                  string
	log                    *os.File
	adminConn              *grpc.ClientConn
	adminClient            gatewayv1.AdminServiceClient
	authCtx                context.Context
	pushes, nextRevocation int
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (cp *controlPlane) start(edges int) error {
	cmd := exec.Command(cp.bin, append([]string{
		"--data-dir", filepath.Join(cp.dir, "cp"),
		"--admin-listen", cp.admin, "--sync-listen", cp.sync, "--metrics-listen", cp.metrics,
		"--log-format", "json", "--max-edges", strconv.Itoa(edges), "--pprof"}, cp.flags...)...)
	cmd.Stdout, cmd.Stderr = cp.log, cp.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	cp.cmd, cp.exited = cmd, make(chan error, 1)
	go func() { cp.exited <- cmd.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := cp.metric("gw_controlplane_streams_open"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the control plane did not serve /metrics within 30s (log: " + cp.log.Name() + ")")
		}
	}
	tok, err := os.ReadFile(filepath.Join(cp.dir, "cp", "admin.token"))
	if err != nil {
		return err
	}
	cp.token = strings.TrimSpace(string(tok))
	cp.authCtx = metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+cp.token)
	return nil
}

// alive reports an error when the process has exited.
func (cp *controlPlane) alive() error {
	select {
	case err := <-cp.exited:
		return fmt.Errorf("the control plane exited: %v (log: %s)", err, cp.log.Name())
	default:
		return nil
	}
}

// metric reads one unlabelled (or the sum of a labelled) series from /metrics.
func (cp *controlPlane) metric(name string) (float64, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + cp.metrics + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != ' ' && line[len(name)] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, err
		}
		sum, found = sum+v, true
	}
	if !found {
		return 0, fmt.Errorf("no %s in /metrics", name)
	}
	return sum, sc.Err()
}

// rss is the control plane's resident set from /proc.
func (cp *controlPlane) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cp.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTime is a process's user + system CPU time from /proc.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces): state is
	// field 3, utime 14 and stime 15, in clock ticks (100 per second).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}

// live is the Go heap in use plus goroutine stacks, from /metrics, after
// two garbage collections (--pprof's heap?gc=1; the second frees what the
// first left in sync.Pool caches), so the cold start's garbage, which an
// idle process may keep for minutes, is not counted as the streams'.
func (cp *controlPlane) live() (heap, stacks, goroutines float64) {
	for range 2 {
		c := http.Client{Timeout: 30 * time.Second}
		if resp, err := c.Get("http://" + cp.metrics + "/debug/pprof/heap?gc=1"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	heap, _ = cp.metric("go_memstats_heap_inuse_bytes")
	stacks, _ = cp.metric("go_memstats_stack_inuse_bytes")
	goroutines, _ = cp.metric("go_goroutines")
	return heap, stacks, goroutines
}

func (cp *controlPlane) push() (uint64, time.Time, error) {
	cp.pushes++
	sent := time.Now()
	cfg := fmt.Sprintf(`{"version": 3, "endpoints": [{"endpoint": "/fleet/%d", "backend": [{"host": ["http://127.0.0.1:9"], "url_pattern": "/x"}]}]}`, cp.pushes)
	ctx, cancel := context.WithTimeout(cp.authCtx, 30*time.Second)
	defer cancel()
	resp, err := cp.adminClient.Push(ctx, &gatewayv1.PushRequest{Source: &gatewayv1.ConfigSource{Filename: "fleet.json", Content: []byte(cfg)}, Author: "bench"})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("push: %w", err)
	}
	return resp.GetVersion().GetVersion(), sent, nil
}

func (cp *controlPlane) revoke() (uint64, time.Time, error) {
	cp.nextRevocation++
	sent := time.Now()
	ctx, cancel := context.WithTimeout(cp.authCtx, 30*time.Second)
	defer cancel()
	resp, err := cp.adminClient.Revoke(ctx, &gatewayv1.RevokeRequest{Value: fmt.Sprintf("fleet-%d-%d", time.Now().UnixNano(), cp.nextRevocation), Author: "bench"})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("revoke: %w", err)
	}
	return resp.GetEntry().GetSeq(), sent, nil
}

// simulator is the process of simulated edges.
type simulator struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// wait asks the simulator to wait for every edge to hold kind (version or
// seq) >= target and returns how many did within timeout, and p50, p99,
// max after ref.
func (s *simulator) wait(kind string, target uint64, ref time.Time, timeout time.Duration) (int, [3]time.Duration, error) {
	if _, err := fmt.Fprintf(s.in, "%s %d %d %s\n", kind, target, ref.UnixNano(), timeout); err != nil {
		return 0, [3]time.Duration{}, err
	}
	if !s.out.Scan() {
		return 0, [3]time.Duration{}, fmt.Errorf("simulator ended: %v", s.out.Err())
	}
	f := strings.Fields(s.out.Text())
	if len(f) != 6 || f[0] != kind {
		return 0, [3]time.Duration{}, fmt.Errorf("simulator said %q", s.out.Text())
	}
	n, _ := strconv.Atoi(f[2])
	var d [3]time.Duration
	for i := range d {
		v, _ := strconv.ParseInt(f[3+i], 10, 64)
		d[i] = time.Duration(v)
	}
	return n, d, nil
}

func run(cp *controlPlane, edges, pushes, revokes int, storm bool) error {
	dir, err := os.MkdirTemp("", "fleet-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cp.dir = dir
	for _, a := range []*string{&cp.admin, &cp.sync, &cp.metrics} {
		if *a, err = freeAddr(); err != nil {
			return err
		}
	}
	if cp.log, err = os.Create(filepath.Join(dir, "controlplane.log")); err != nil {
		return err
	}
	storeName := "bbolt"
	if cp.etcd {
		c, err := etcdtest.Start(filepath.Join(dir, "etcd"), 1)
		if err != nil {
			return err
		}
		defer c.Close()
		cp.flags = append(cp.flags, "--store", c.URL("bench"), "--replica-name", "bench")
		storeName = "a 1-member etcd"
	}
	// boardWrites reports the fleet-board writes since the last call (etcd).
	var lastWrites float64
	boardWrites := func(window time.Duration) string {
		if !cp.etcd {
			return ""
		}
		n, err := cp.metric("gw_controlplane_fleet_published_entries_total")
		if err != nil {
			return "; fleet board: " + err.Error()
		}
		d := n - lastWrites
		lastWrites = n
		return fmt.Sprintf("; fleet board: %.0f entries written (%.1f/s)", d, d/window.Seconds())
	}
	if err := cp.start(edges); err != nil {
		return err
	}
	defer func() { _ = cp.cmd.Process.Kill() }()
	if cp.adminConn, err = grpc.NewClient(cp.admin, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return err
	}
	defer cp.adminConn.Close()
	cp.adminClient = gatewayv1.NewAdminServiceClient(cp.adminConn)

	v, _, err := cp.push()
	if err != nil {
		return err
	}
	time.Sleep(time.Second)
	rss0 := cp.rss()
	heap0, stack0, g0 := cp.live()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	sim := &simulator{cmd: exec.Command(self, "-sim", "-sync", cp.sync, "-edges", strconv.Itoa(edges))}
	sim.cmd.Stderr = os.Stderr
	sim.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if sim.in, err = sim.cmd.StdinPipe(); err != nil {
		return err
	}
	stdout, err := sim.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	sim.out = bufio.NewScanner(stdout)
	started := time.Now()
	if err := sim.cmd.Start(); err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(sim.in, "quit")
		_ = sim.cmd.Wait()
	}()

	fmt.Printf("control plane: %s (log %s)\n", cp.metrics, cp.log.Name())
	fmt.Printf("fleet: %d simulated edges (own process, one gRPC connection and stream each), gw-controlplane on %s, default flags but --max-edges %d %s\n", edges, storeName, edges, strings.Join(cp.flags, " "))
	n, d, err := sim.wait("version", v, started, 5*time.Minute)
	if err != nil {
		return err
	}
	refused, _ := cp.metric("gw_controlplane_streams_refused_total")
	if cp.etcd {
		time.Sleep(2 * time.Second) // the board catches up (at most 1024 entries a second)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
			if n, _ := cp.metric("gw_controlplane_fleet_published_entries_total"); n >= float64(edges) {
				break
			}
		}
	}
	fmt.Printf("cold start (all dial at once)   %d/%d edges have v%d after %s (p50 %s), %0.f streams refused by the admission limit%s\n",
		n, edges, v, round(d[2]), round(d[0]), refused, boardWrites(time.Since(started)))
	if err := cp.alive(); err != nil {
		return err
	}

	idle := 5 * time.Second
	if cp.etcd {
		idle = 25 * time.Second // two rounds of keepalives (every 10s) from every edge
	}
	time.Sleep(idle) // idle: keepalives only
	rss1 := cp.rss()
	heap1, stack1, g1 := cp.live()
	open, _ := cp.metric("gw_controlplane_streams_open")
	per := func(a, b float64) string { return fmt.Sprintf("%.1f KiB", (b-a)/open/1024) }
	fmt.Printf("idle memory per stream          %s RSS, %s heap after GC + %s stacks (%.0f streams, %.1f goroutines each; RSS %s -> %s)%s\n",
		per(float64(rss0), float64(rss1)), per(heap0, heap1), per(stack0, stack1), open, (g1-g0)/open, mib(rss0), mib(rss1), boardWrites(idle))

	measure := func(kind string, count int, op func() (uint64, time.Time, error)) error {
		var p50s, p99s, maxs, replies []time.Duration
		cpu0, simCPU0 := cpuTime(cp.cmd.Process.Pid), cpuTime(sim.cmd.Process.Pid)
		began := time.Now()
		boardWrites(time.Second)
		for range count {
			target, sent, err := op()
			if err != nil {
				return err
			}
			replies = append(replies, time.Since(sent))
			n, d, err := sim.wait(kind, target, sent, 30*time.Second)
			if err != nil {
				return err
			}
			if n < edges {
				return fmt.Errorf("%s %d reached %d of %d edges within 30s", kind, target, n, edges)
			}
			p50s, p99s, maxs = append(p50s, d[0]), append(p99s, d[1]), append(maxs, d[2])
			time.Sleep(200 * time.Millisecond)
		}
		cpu, simCPU := cpuTime(cp.cmd.Process.Pid)-cpu0, cpuTime(sim.cmd.Process.Pid)-simCPU0
		what := map[string]string{"version": "config push", "seq": "revocation"}[kind]
		if cp.etcd {
			time.Sleep(2 * time.Second) // the last op's entries reach the board
		}
		fmt.Printf("%-31s p50 %s, p99 %s (median of %d), worst p99 %s, worst edge %s after the request (the reply came after %s); CPU per op: control plane %s, simulated edges %s%s\n",
			what+" -> every edge", round(median(p50s)), round(median(p99s)), count, round(slices.Max(p99s)), round(slices.Max(maxs)), round(median(replies)),
			cpu/time.Duration(count), simCPU/time.Duration(count), boardWrites(time.Since(began)))
		return cp.alive()
	}
	if err := measure("version", pushes, cp.push); err != nil {
		return err
	}
	if err := measure("seq", revokes, cp.revoke); err != nil {
		return err
	}
	if !storm {
		return nil
	}

	// The reconnect storm: the control plane dies and comes back on the
	// same addresses; every edge's stream breaks at once and each redials
	// with its backoff.
	_ = cp.cmd.Process.Kill()
	<-cp.exited
	restarted := time.Now()
	if err := cp.start(edges); err != nil {
		return err
	}
	peak := cp.rss()
	var all time.Duration
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if err := cp.alive(); err != nil {
			return err
		}
		peak = max(peak, cp.rss())
		if o, _ := cp.metric("gw_controlplane_streams_open"); int(o) >= edges {
			all = time.Since(restarted)
			break
		}
		if time.Now().After(deadline) {
			o, _ := cp.metric("gw_controlplane_streams_open")
			return fmt.Errorf("reconnect storm: %0.f of %d streams open 3 minutes after the restart", o, edges)
		}
	}
	refused, _ = cp.metric("gw_controlplane_streams_refused_total")
	fmt.Printf("reconnect storm (CP restarted)  all %d streams back %s after the restart, %0.f refused by the admission limit, peak RSS %s\n",
		edges, round(all), refused, mib(peak))
	return measure("version", 3, cp.push)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(10 * time.Microsecond)
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
