package main

// The open-loop (fixed-rate) benchmark. wrk is closed-loop: a connection
// sends its next request only after the previous answer, so a slow answer
// also delays the requests that would have been sent meanwhile and their
// latency is never recorded (coordinated omission). Here request i has an
// intended send time start + i/rate fixed in advance; a dispatcher hands
// requests to a pool of workers on that schedule whatever the answers do, and
// each latency is measured from the intended send time, so a stall of the
// gateway shows as the whole queue of requests it delayed, as a client at a
// fixed rate would see it.

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/valyala/fasthttp"
)

// openScenarios are the scenarios of the fixed-rate run, by name from
// scenarios; the first is the baseline the others are compared with. The
// KrakenD one runs only with -krakend.
var openScenarios = []string{"direct (backend, small JSON)", "proxy (json)", "KrakenD: proxy (json)"}

// openResult is the latency distribution of one scenario over all rounds.
type openResult struct {
	lat      []time.Duration // per completed request, from intended send time
	errors   int
	sent     int
	lagMax   time.Duration // how late the dispatcher was at worst: the generator's own delay
	cpuPerRq time.Duration // edge CPU per request; 0 for direct runs
	elapsed  time.Duration
	steal    time.Duration // CPU time the hypervisor took from the machine meanwhile (/proc/stat)
}

func (r *openResult) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(p * float64(len(r.lat)))
	if i >= len(r.lat) {
		i = len(r.lat) - 1
	}
	return r.lat[i]
}

// openLoopWorkers bounds the requests in flight: at the default rate and
// sub-millisecond latencies a handful are busy; the rest absorb a stall (a
// request waiting for a worker still counts from its intended send time).
const openLoopWorkers = 256

// openLoop sends GET url at rate req/s for d and records every request.
func openLoop(client *fasthttp.HostClient, url string, rate int, d time.Duration, res *openResult) {
	n := int(float64(rate) * d.Seconds())
	lat := make([]time.Duration, n)
	ok := make([]bool, n)
	var errs atomic.Int64
	jobs := make(chan int, n)
	var wg sync.WaitGroup
	start := time.Now().Add(10 * time.Millisecond)
	interval := time.Second / time.Duration(rate)
	for w := 0; w < openLoopWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(url)
			for i := range jobs {
				intended := start.Add(time.Duration(i) * interval)
				err := client.DoTimeout(req, resp, 5*time.Second)
				lat[i] = time.Since(intended)
				if err != nil || resp.StatusCode() != fasthttp.StatusOK {
					errs.Add(1)
					continue
				}
				ok[i] = true
			}
		}()
	}
	var lagMax time.Duration
	for i := 0; i < n; i++ {
		intended := start.Add(time.Duration(i) * interval)
		if wait := time.Until(intended); wait > 0 {
			time.Sleep(wait)
		} else if -wait > lagMax {
			lagMax = -wait
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	res.elapsed += time.Since(start)
	for i, good := range ok {
		if good {
			res.lat = append(res.lat, lat[i])
		}
	}
	res.sent += n
	res.errors += int(errs.Load())
	if lagMax > res.lagMax {
		res.lagMax = lagMax
	}
}

// runOpenLoop runs the fixed-rate scenarios interleaved: rounds rounds, each
// running every scenario for d/rounds, so noise on the shared machine hits
// the baseline and the gateways alike.
func runOpenLoop(o options, target func(scenario) (string, int)) error {
	rate, d, rounds := o.openRate, o.openDur, o.openRounds
	if rate <= 0 || rounds <= 0 || d < time.Duration(rounds)*time.Second {
		return errors.New("open loop: need -open-rate > 0, -open-rounds > 0 and at least 1 s per round")
	}
	byName := map[string]scenario{}
	for _, sc := range scenarios {
		byName[sc.name] = sc
	}
	var names []string
	clients := map[string]*fasthttp.HostClient{}
	urls := map[string]string{}
	pids := map[string]int{}
	for _, name := range openScenarios {
		sc := byName[name]
		if sc.krakend && o.krakendBin == "" {
			continue
		}
		names = append(names, name)
		urls[name], pids[name] = target(sc)
		if err := check(urls[name], ""); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		u, err := url.Parse(urls[name])
		if err != nil {
			return err
		}
		clients[name] = &fasthttp.HostClient{Addr: u.Host, MaxConns: openLoopWorkers, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
		// Warm-up: open connections and fill pools at the measured rate.
		openLoop(clients[name], urls[name], rate, time.Second, &openResult{})
	}
	results := map[string]*openResult{}
	for _, name := range names {
		results[name] = &openResult{}
	}
	slice := d / time.Duration(rounds)
	for r := 0; r < rounds; r++ {
		for _, name := range names {
			var before time.Duration
			if pids[name] != 0 {
				before = cpuTime(pids[name])
			}
			res := results[name]
			st := stealTime()
			openLoop(clients[name], urls[name], rate, slice, res)
			res.steal += stealTime() - st
			if pids[name] != 0 {
				res.cpuPerRq += cpuTime(pids[name]) - before // divided by the request count below
			}
		}
		fmt.Fprintf(os.Stderr, "  open loop: round %d/%d done\n", r+1, rounds)
	}

	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario (fixed rate)\tsent\tachieved req/s\tp50\tp99\tp99.9\tmax\tp99 vs direct\tgateway CPU/req\terrors\tgenerator lag (max)\tsteal\n")
	base := results[names[0]]
	for _, name := range names {
		r := results[name]
		sort.Slice(r.lat, func(i, j int) bool { return r.lat[i] < r.lat[j] })
	}
	for _, name := range names {
		r := results[name]
		cpu, vs := "-", "1.00 (baseline)"
		if pids[name] != 0 {
			if n := len(r.lat) + r.errors; n > 0 {
				r.cpuPerRq /= time.Duration(n)
			}
			cpu = fmt.Sprintf("%.1fµs", float64(r.cpuPerRq.Nanoseconds())/1e3)
			if b := base.pct(0.99); b > 0 {
				vs = fmt.Sprintf("%.2f×", float64(r.pct(0.99))/float64(b))
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", name, r.sent,
			float64(len(r.lat)+r.errors)/r.elapsed.Seconds(),
			round(r.pct(0.50)), round(r.pct(0.99)), round(r.pct(0.999)), round(r.pct(1)), vs, cpu, r.errors, round(r.lagMax), fmt.Sprintf("%.1f%%", 100*r.steal.Seconds()/r.elapsed.Seconds()/float64(runtime.NumCPU())))
	}
	tw.Flush()
	lag := time.Duration(0)
	for _, r := range results {
		lag = max(lag, r.lagMax)
	}
	pin := "generator, gateways and backend share this machine's " + cpus()
	if o.gatewayCPU >= 0 {
		pin = fmt.Sprintf("gateways pinned to CPU %d, generator and backend on the others (%s)", o.gatewayCPU, cpus())
	}
	fmt.Printf("\n%d req/s for %s per scenario (%d interleaved rounds), latency from the intended send time (coordinated-omission safe);\n"+
		"worst generator lag behind schedule %s (a latency up to that much can be the generator's own); %s.\n",
		rate, d, rounds, round(lag), pin)
	// The same figures as benchmark lines, for the summary table and benchstat.
	for _, name := range names {
		r := results[name]
		us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
		fmt.Printf("BenchmarkOpenLoop/%s\t%d\t%.1f p50-µs\t%.1f p99-µs\t%.1f p99.9-µs\t%.1f max-µs\t%d errors\n",
			benchName(name), r.sent, us(r.pct(0.5)), us(r.pct(0.99)), us(r.pct(0.999)), us(r.pct(1)), r.errors)
	}
	return nil
}

// benchName turns a scenario name into a benchmark sub-name without spaces.
func benchName(s string) string {
	b := []byte(s)
	out := b[:0]
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			out = append(out, c)
		case c >= 'A' && c <= 'Z':
			out = append(out, c+'a'-'A')
		case len(out) > 0 && out[len(out)-1] != '-':
			out = append(out, '-')
		}
	}
	for len(out) > 0 && out[len(out)-1] == '-' {
		out = out[:len(out)-1]
	}
	return string(out)
}

// stealTime is the machine's steal time so far (all CPUs, /proc/stat): time
// the hypervisor ran something else while this VM wanted the CPU. A share
// of it during a run means the tail latencies are partly the host's.
func stealTime() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	n, _ := strconv.ParseInt(f[8], 10, 64)
	const clockTick = 100 // USER_HZ on Linux
	return time.Duration(n) * time.Second / clockTick
}
