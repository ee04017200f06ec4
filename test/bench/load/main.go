// Command load is the load benchmark behind `make bench`: it starts a real
// upstream (test/bench/backend) and a real gw-edge, drives each scenario
// with wrk from a separate process at fixed concurrency for a bounded time,
// and prints req/s, p50/p99 latency and the edge's CPU time per request (read
// from /proc, the least noisy figure on a shared machine). Every scenario is
// also shown as a ratio to the direct-to-backend run measured in the same
// invocation, and each figure is the median of -runs runs, the runs
// interleaved (round i runs every scenario once) so noise hits all alike.
//
// With -krakend PATH the same config is also served by that KrakenD CE
// binary and four scenarios run against it too, each shown as our edge's
// CPU per request over KrakenD's, per round (median and spread). With
// -gateway-cpu N the gateways are pinned to CPU N (taskset), so their
// CPU figures are not shared with wrk and the backend. With -open-rate the
// fixed-rate benchmark of openloop.go runs after the wrk scenarios.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// scenario is one measured workload. base names the direct scenario it is
// compared with; edge says whether traffic goes through gw-edge.
type scenario struct {
	name   string
	path   string
	edge   bool
	base   string
	target string // the goal from the issue, shown next to the figure
	jwt    bool   // send the benchmark's bearer token
	// variant names the edge process that serves it ("" = the main one,
	// which has no access log and no tracing): see variants.
	variant string
	// krakend: served by the KrakenD CE binary (-krakend) instead of our
	// edge; ours names our scenario it is compared with, goal the issue's
	// bound on ours/KrakenD CPU per request.
	krakend bool
	ours    string
	goal    float64
}

// variants are edge processes with one observability feature on, each
// over the same endpoints, so the table shows their cost next to the
// plain proxy: the access log (written to stdout, a pipe this program
// drains, as a log collector would) in KrakenD's format and in JSON, and
// telemetry/opentelemetry tracing with nothing sampled (the trace
// context is still written to the backend). A sampled request's cost is
// BenchmarkTracing/sampled: here its spans would go to an exporter that
// is not there.
var variants = []struct {
	name  string
	extra string // the service's extra_config
	flags []string
}{
	{name: "access-log-krakend", extra: `{}`, flags: []string{"--access-log", "krakend"}},
	{name: "access-log-json", extra: `{}`, flags: []string{"--access-log", "json"}},
	{name: "tracing-unsampled", extra: `{"router": {"disable_access_log": true}, "telemetry/opentelemetry": {"service_name": "bench", "trace_sample_rate": 0, "exporters": {"otlp": [{"name": "none", "host": "127.0.0.1", "port": 9}]}}}`},
}

var scenarios = []scenario{
	{name: "direct (backend, small JSON)", path: "/small"},
	{name: "direct (backend, 20 KB JSON)", path: "/big"},
	{name: "proxy (json)", path: "/proxy-json", edge: true, base: "direct (backend, small JSON)", target: ">= 40% (KrakenD CE: ~12%)"},
	{name: "proxy (no-op)", path: "/proxy-noop", edge: true, base: "direct (backend, small JSON)", target: ">= 40% (KrakenD CE: ~12%)"},
	{name: "aggregate (3 backends)", path: "/agg3", edge: true, base: "direct (backend, small JSON)", target: ">= 20% (KrakenD CE: ~7%)"},
	{name: "allow filter (20 KB body)", path: "/allow20k", edge: true, base: "direct (backend, 20 KB JSON)"},
	{name: "proxy + JWT (RS256)", path: "/jwt", edge: true, jwt: true, base: "direct (backend, small JSON)", target: ">= 35% (KrakenD CE: ~8%)"},
	{name: "proxy + rate limit + breaker", path: "/protected", edge: true, base: "proxy (json)", target: ">= 90% of proxy (json)"},
	{name: "proxy + access log (KrakenD line)", path: "/proxy-json", edge: true, variant: "access-log-krakend", base: "proxy (json)"},
	{name: "proxy + access log (JSON)", path: "/proxy-json", edge: true, variant: "access-log-json", base: "proxy (json)"},
	{name: "proxy + tracing (unsampled)", path: "/proxy-json", edge: true, variant: "tracing-unsampled", base: "proxy (json)"},
	{name: "KrakenD: proxy (json)", path: "/proxy-json", edge: true, krakend: true, base: "direct (backend, small JSON)", ours: "proxy (json)", goal: 1.0 / 3},
	{name: "KrakenD: aggregate (3 backends)", path: "/agg3", edge: true, krakend: true, base: "direct (backend, small JSON)", ours: "aggregate (3 backends)", goal: 1.0 / 3},
	{name: "KrakenD: allow filter (20 KB body)", path: "/allow20k", edge: true, krakend: true, base: "direct (backend, 20 KB JSON)", ours: "allow filter (20 KB body)", goal: 1.0 / 5},
	{name: "KrakenD: proxy + JWT (RS256)", path: "/jwt", edge: true, jwt: true, krakend: true, base: "direct (backend, small JSON)", ours: "proxy + JWT (RS256)", goal: 1.0 / 5},
}

func edgeConfig(backend, validator string) string {
	return edgeConfigWith(backend, validator, `{"router": {"disable_access_log": true}}`)
}

// edgeConfigWith is edgeConfig with another service extra_config.
func edgeConfigWith(backend, validator, extra string) string {
	return fmt.Sprintf(`{
  "version": 3,
  "name": "load benchmark",
  "timeout": "3s",
  "host": ["http://%s"],
  "extra_config": %s,
  "endpoints": [
    {"endpoint": "/proxy-json", "backend": [{"url_pattern": "/small"}]},
    {"endpoint": "/proxy-noop", "output_encoding": "no-op", "backend": [{"url_pattern": "/small"}]},
    {"endpoint": "/agg3", "backend": [
      {"url_pattern": "/users"},
      {"url_pattern": "/orders", "group": "orders"},
      {"url_pattern": "/prefs", "allow": ["theme", "lang"]}
    ]},
    {"endpoint": "/allow20k", "backend": [{"url_pattern": "/big", "allow": ["id", "name", "currency"]}]},
    {"endpoint": "/jwt", "backend": [{"url_pattern": "/small"}],
     "extra_config": {"auth/validator": %s}},
    {"endpoint": "/protected", "backend": [{"url_pattern": "/small",
       "extra_config": {"qos/circuit-breaker": {"interval": 60, "timeout": 10, "max_errors": 100},
                        "qos/ratelimit/proxy": {"max_rate": 100000000}}}],
     "extra_config": {"qos/ratelimit/router": {"max_rate": 100000000, "client_max_rate": 100000000, "strategy": "ip"}}}
  ]
}`, backend, extra, validator)
}

type result struct {
	rps      float64
	p50, p99 time.Duration
	cpuPerRq time.Duration // edge CPU per request; 0 for direct runs
	sysPerRq time.Duration // the kernel (system time) part of cpuPerRq
	errors   int
}

func main() {
	var (
		edgeBin    = flag.String("edge", "bin/gw-edge", "gw-edge binary")
		backendBin = flag.String("backend", "bin/bench-backend", "benchmark backend binary")
		krakendBin = flag.String("krakend", "", "KrakenD CE binary: also run the KrakenD scenarios against it (default: skip them)")
		gwCPU      = flag.Int("gateway-cpu", -1, "pin gw-edge and KrakenD to this CPU with taskset (-1: no pinning)")
		duration   = flag.Duration("duration", 5*time.Second, "length of one wrk run")
		conns      = flag.Int("conns", 64, "concurrent connections")
		runs       = flag.Int("runs", 3, "interleaved runs per scenario; the median is reported")
		only       = flag.String("only", "", "comma-separated scenario names to run (default all)")
		closed     = flag.Bool("closed", true, "run the wrk (closed-loop) scenarios")
		openRate   = flag.Int("open-rate", 0, "when > 0, also run the fixed-rate (open-loop) benchmark at this many req/s")
		openDur    = flag.Duration("open-duration", 60*time.Second, "fixed-rate run length per scenario")
		openRounds = flag.Int("open-rounds", 3, "fixed-rate runs are split into this many interleaved rounds")
	)
	flag.Parse()
	o := options{edgeBin: *edgeBin, backendBin: *backendBin, krakendBin: *krakendBin, gatewayCPU: *gwCPU,
		duration: *duration, conns: *conns, runs: *runs, only: *only, closed: *closed,
		openRate: *openRate, openDur: *openDur, openRounds: *openRounds}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

type options struct {
	edgeBin, backendBin, krakendBin string
	gatewayCPU                      int
	duration                        time.Duration
	conns, runs                     int
	only                            string
	closed                          bool
	openRate, openRounds            int
	openDur                         time.Duration
}

// proc is a started gateway: our edge (one per variant) or KrakenD.
type proc struct {
	cmd  *exec.Cmd
	addr string
}

func (o options) selected(sc scenario) bool {
	if sc.krakend && o.krakendBin == "" {
		return false
	}
	return o.only == "" || strings.Contains(","+o.only+",", ","+sc.name+",")
}

// gateway returns the command line that starts bin, under taskset when
// the gateways are pinned.
func (o options) gateway(bin string, args ...string) (string, []string) {
	if o.gatewayCPU < 0 {
		return bin, args
	}
	return "taskset", append([]string{"-c", strconv.Itoa(o.gatewayCPU), bin}, args...)
}

func run(o options) error {
	if _, err := exec.LookPath("wrk"); err != nil && o.closed {
		return errors.New("wrk not found: apt-get install wrk")
	}
	tmp, err := os.MkdirTemp("", "apigw-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	backend, backendAddr, err := startWithAddr(o.backendBin)
	if err != nil {
		return fmt.Errorf("start backend: %w", err)
	}
	defer stop(backend)

	iss, err := testenv.NewIssuer()
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	defer iss.Close()
	token, err := iss.Token("bench-user", "bench-1", time.Now().Add(time.Hour))
	if err != nil {
		return err
	}
	cfg := filepath.Join(tmp, "krakend.json")
	if err := os.WriteFile(cfg, []byte(edgeConfig(backendAddr, iss.ValidatorConfig())), 0o600); err != nil {
		return err
	}
	bin, args := o.gateway(o.edgeBin, "run", "-c", cfg, "--listen", "127.0.0.1:0", "--log-format", "json")
	edge, edgeAddr, err := startWithAddr(bin, args...)
	if err != nil {
		return fmt.Errorf("start edge: %w", err)
	}
	defer stop(edge)
	edges := map[string]proc{"": {edge, edgeAddr}}
	for _, v := range variants {
		used := false
		for _, sc := range scenarios {
			used = used || (sc.variant == v.name && o.closed && o.selected(sc))
		}
		if !used {
			continue
		}
		vcfg := filepath.Join(tmp, v.name+".json")
		if err := os.WriteFile(vcfg, []byte(edgeConfigWith(backendAddr, iss.ValidatorConfig(), v.extra)), 0o600); err != nil {
			return err
		}
		bin, args := o.gateway(o.edgeBin, append([]string{"run", "-c", vcfg, "--listen", "127.0.0.1:0", "--log-format", "json"}, v.flags...)...)
		cmd, addr, err := startWithAddr(bin, args...)
		if err != nil {
			return fmt.Errorf("start edge %s: %w", v.name, err)
		}
		defer stop(cmd)
		edges[v.name] = proc{cmd, addr}
	}
	var krakend *proc
	if o.krakendBin != "" {
		k, err := startKrakenD(o, tmp, edgeConfig(backendAddr, iss.ValidatorConfig()))
		if err != nil {
			return fmt.Errorf("start krakend: %w", err)
		}
		defer stop(k.cmd)
		krakend = &k
	}
	target := func(sc scenario) (url string, pid int) {
		switch {
		case sc.krakend:
			return "http://" + krakend.addr + sc.path, krakend.cmd.Process.Pid
		case sc.edge:
			e := edges[sc.variant]
			return "http://" + e.addr + sc.path, e.cmd.Process.Pid
		}
		return "http://" + backendAddr + sc.path, 0
	}

	if o.closed {
		if err := runClosed(o, token, target); err != nil {
			return err
		}
	}
	if o.openRate > 0 {
		return runOpenLoop(o, target)
	}
	return nil
}

// runClosed runs the wrk scenarios: o.runs rounds, each running every
// selected scenario once, and prints the medians, then (with KrakenD) the
// per-round ratios of our CPU per request to KrakenD's.
func runClosed(o options, token string, target func(scenario) (string, int)) error {
	var selected []scenario
	for _, sc := range scenarios {
		if o.selected(sc) {
			selected = append(selected, sc)
		}
	}
	auth := func(sc scenario) string {
		if sc.jwt {
			return "Authorization: Bearer " + token
		}
		return ""
	}
	for _, sc := range selected {
		url, _ := target(sc)
		if err := check(url, auth(sc)); err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		// Warm up connection pools and caches before measuring.
		if _, err := wrk(url, auth(sc), time.Second, o.conns, 0); err != nil {
			return fmt.Errorf("%s: warm-up: %w", sc.name, err)
		}
	}
	perRun := map[string][]result{}
	for i := 0; i < o.runs; i++ {
		for _, sc := range selected {
			url, pid := target(sc)
			r, err := wrk(url, auth(sc), o.duration, o.conns, pid)
			if err != nil {
				return fmt.Errorf("%s: %w", sc.name, err)
			}
			perRun[sc.name] = append(perRun[sc.name], r)
		}
		fmt.Fprintf(os.Stderr, "  wrk round %d/%d done\n", i+1, o.runs)
	}
	results := map[string]result{}
	for name, rs := range perRun {
		results[name] = median(rs)
	}

	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\treq/s\tvs direct\tp50\tp99\tedge CPU/req\terrors\ttarget\n")
	for _, sc := range selected {
		r := results[sc.name]
		ratio, cpu := "1.00 (baseline)", "-"
		if sc.base != "" {
			if b, ok := results[sc.base]; ok && b.rps > 0 {
				ratio = fmt.Sprintf("%.0f%%", 100*r.rps/b.rps)
			} else {
				ratio = "n/a"
			}
			cpu = fmt.Sprintf("%.1fµs", float64(r.cpuPerRq.Nanoseconds())/1e3)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%d\t%s\n", sc.name, r.rps, ratio, round(r.p50), round(r.p99), cpu, r.errors, sc.target)
	}
	tw.Flush()
	pin := "wrk, edge and backend share this machine's " + cpus()
	if o.gatewayCPU >= 0 {
		pin = fmt.Sprintf("gateways pinned to CPU %d, wrk and backend on the others (%s)", o.gatewayCPU, cpus())
	}
	fmt.Printf("\n%d connections, %d interleaved run(s) of %s per scenario, medians; %s.\n",
		o.conns, o.runs, o.duration, pin)

	// Ours vs KrakenD: each ratio is computed within one round (the two
	// runs minutes apart at most), then the median and range over rounds.
	var kr []scenario
	for _, sc := range selected {
		if sc.krakend && len(perRun[sc.ours]) == len(perRun[sc.name]) {
			kr = append(kr, sc)
		}
	}
	if len(kr) == 0 {
		return nil
	}
	fmt.Printf("\nOurs vs KrakenD CE (same config, same backend; per-round ratios, median [min–max] over %d rounds):\n", o.runs)
	tw = tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "route\tCPU/req ours\tCPU/req KrakenD\tCPU ratio ours/KrakenD\tgoal\treq/s ratio ours/KrakenD\tp99 ours\tp99 KrakenD\tp99 below KrakenD's\n")
	for _, sc := range kr {
		ours, theirs := perRun[sc.ours], perRun[sc.name]
		var cpu, rps []float64
		for i := range ours {
			if theirs[i].cpuPerRq > 0 {
				cpu = append(cpu, float64(ours[i].cpuPerRq)/float64(theirs[i].cpuPerRq))
			}
			if theirs[i].rps > 0 {
				rps = append(rps, ours[i].rps/theirs[i].rps)
			}
		}
		om, km := results[sc.ours], results[sc.name]
		met := "no"
		if c := medianOf(cpu); c > 0 && c <= sc.goal {
			met = "yes"
		}
		p99 := "no"
		if om.p99 < km.p99 {
			p99 = "yes"
		}
		fmt.Fprintf(tw, "%s\t%.1fµs\t%.1fµs\t%s (1/%.1f)\t<= 1/%.0f: %s\t%s\t%s\t%s\t%s\n", sc.ours,
			float64(om.cpuPerRq.Nanoseconds())/1e3, float64(km.cpuPerRq.Nanoseconds())/1e3,
			spread(cpu), 1/medianOf(cpu), 1/sc.goal, met, spread(rps), round(om.p99), round(km.p99), p99)
	}
	tw.Flush()

	// The kernel's share: on loopback each write(2) also runs the peer's TCP
	// receive path and wake-up, so the kernel time per request is set by
	// the syscalls and barely by the gateway's code. "floor" is the CPU
	// ratio ours would have if its user time were zero.
	fmt.Printf("\nUser and kernel (system) CPU per request, medians over rounds; floor = ours kernel / KrakenD total:\n")
	tw = tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "route\tours user\tours kernel\tours kernel share\tKrakenD user\tKrakenD kernel\tKrakenD kernel share\tfloor of the CPU ratio\n")
	for _, sc := range kr {
		ours, theirs := perRun[sc.ours], perRun[sc.name]
		var ou, os_, ku, ks, fl []float64
		for i := range ours {
			ou = append(ou, float64(ours[i].cpuPerRq-ours[i].sysPerRq))
			os_ = append(os_, float64(ours[i].sysPerRq))
			ku = append(ku, float64(theirs[i].cpuPerRq-theirs[i].sysPerRq))
			ks = append(ks, float64(theirs[i].sysPerRq))
			if theirs[i].cpuPerRq > 0 {
				fl = append(fl, float64(ours[i].sysPerRq)/float64(theirs[i].cpuPerRq))
			}
		}
		us := func(v []float64) string { return fmt.Sprintf("%.1fµs", medianOf(v)/1e3) }
		share := func(u, k []float64) string {
			if t := medianOf(u) + medianOf(k); t > 0 {
				return fmt.Sprintf("%.0f%%", 100*medianOf(k)/t)
			}
			return "n/a"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", sc.ours, us(ou), us(os_), share(ou, os_),
			us(ku), us(ks), share(ku, ks), spread(fl))
	}
	tw.Flush()
	for _, sc := range kr {
		ours, theirs := perRun[sc.ours], perRun[sc.name]
		for i := range ours {
			if theirs[i].cpuPerRq > 0 {
				fmt.Printf("BenchmarkVsKrakenD/%s\t1\t%.4f cpu-ratio\t%.3f rps-ratio\n", benchName(sc.ours),
					float64(ours[i].cpuPerRq)/float64(theirs[i].cpuPerRq), ours[i].rps/theirs[i].rps)
			}
		}
	}
	return nil
}

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// spread formats the median and range of v.
func spread(v []float64) string {
	if len(v) == 0 {
		return "n/a"
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return fmt.Sprintf("%.2f [%.2f–%.2f]", s[len(s)/2], s[0], s[len(s)-1])
}

// startKrakenD starts the KrakenD CE binary on a free loopback port with
// the given config (ours is KrakenD's format; only the port is added) and
// waits for its /__health.
func startKrakenD(o options, tmp, config string) (proc, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return proc{}, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	config = strings.Replace(config, `"version": 3,`, fmt.Sprintf(`"version": 3, "port": %d,`, port), 1)
	cfg := filepath.Join(tmp, "krakend-ce.json")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		return proc{}, err
	}
	bin, args := o.gateway(o.krakendBin, "run", "-c", cfg)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return proc{}, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/__health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return proc{cmd, addr}, nil
			}
		}
	}
	stop(cmd)
	return proc{}, fmt.Errorf("%s did not answer /__health on %s", o.krakendBin, addr)
}

func round(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.0fµs", float64(d.Nanoseconds())/1e3)
	}
	return fmt.Sprintf("%.2fms", float64(d.Nanoseconds())/1e6)
}

func cpus() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "CPUs"
	}
	return fmt.Sprintf("%d CPUs", strings.Count(string(b), "processor\t:"))
}

func median(rs []result) result {
	pick := func(get func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	var errs int
	for _, r := range rs {
		errs += r.errors
	}
	return result{
		rps:      pick(func(r result) float64 { return r.rps }),
		p50:      time.Duration(pick(func(r result) float64 { return float64(r.p50) })),
		p99:      time.Duration(pick(func(r result) float64 { return float64(r.p99) })),
		cpuPerRq: time.Duration(pick(func(r result) float64 { return float64(r.cpuPerRq) })),
		errors:   errs,
	}
}

func check(url, header string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if k, v, ok := strings.Cut(header, ": "); ok {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d: %s", url, resp.StatusCode, body)
	}
	return nil
}

var (
	reqsRe   = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	totalRe  = regexp.MustCompile(`(\d+) requests in`)
	non2xxRe = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	sockRe   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	pctRe    = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// wrk runs one wrk invocation; when pid is non-zero it also measures that
// process's CPU time over the run.
func wrk(url, header string, d time.Duration, conns, pid int) (result, error) {
	var before, sysBefore time.Duration
	if pid != 0 {
		before, sysBefore = cpuSplit(pid)
	}
	secs := int(d / time.Second)
	if secs < 1 {
		secs = 1
	}
	args := []string{"-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(secs) + "s", "--latency"}
	if header != "" {
		args = append(args, "-H", header)
	}
	out, err := exec.Command("wrk", append(args, url)...).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	var r result
	s := string(out)
	if m := reqsRe.FindStringSubmatch(s); m != nil {
		r.rps, _ = strconv.ParseFloat(m[1], 64)
	}
	var total float64
	if m := totalRe.FindStringSubmatch(s); m != nil {
		total, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := non2xxRe.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.errors += n
	}
	if m := sockRe.FindStringSubmatch(s); m != nil {
		for _, g := range m[1:] {
			n, _ := strconv.Atoi(g)
			r.errors += n
		}
	}
	for _, m := range pctRe.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]float64{"us": 1e3, "ms": 1e6, "s": 1e9}[m[3]]
		dur := time.Duration(v * unit)
		if m[1] == "50" {
			r.p50 = dur
		} else {
			r.p99 = dur
		}
	}
	if pid != 0 && total > 0 {
		cpu, sys := cpuSplit(pid)
		r.cpuPerRq = time.Duration(float64(cpu-before) / total)
		r.sysPerRq = time.Duration(float64(sys-sysBefore) / total)
	}
	return r, nil
}

// cpuTime returns user+system CPU time of pid from /proc/<pid>/stat.
func cpuTime(pid int) time.Duration {
	cpu, _ := cpuSplit(pid)
	return cpu
}

// cpuSplit returns user+system CPU time of pid and its system (kernel)
// part, from /proc/<pid>/stat.
func cpuSplit(pid int) (cpu, sys time.Duration) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	s := string(b)
	// Fields after the ")" that closes the command name; utime and stime are
	// fields 14 and 15 of the whole line, i.e. 12 and 13 after it.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clockTick = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clockTick, time.Duration(st) * time.Second / clockTick
}

// startWithAddr starts a binary that prints a JSON line with message
// "listening" and field "addr", and returns that address.
func startWithAddr(bin string, args ...string) (*exec.Cmd, string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			var m map[string]any
			if !sent && json.Unmarshal(sc.Bytes(), &m) == nil && m["message"] == "listening" {
				if a, ok := m["addr"].(string); ok {
					found <- a
					sent = true
				}
			}
		}
	}()
	select {
	case a := <-found:
		return cmd, a, nil
	case <-time.After(15 * time.Second):
		stop(cmd)
		return nil, "", fmt.Errorf("%s did not report its address", bin)
	}
}

func stop(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}
