package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"time"

	"github.com/apigw/gateway/controlplane/config"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// DefaultWaitTimeout bounds push --wait and rollback --wait.
const DefaultWaitTimeout = time.Minute

// pollInterval is how often --wait asks for the fleet's status.
const pollInterval = 100 * time.Millisecond

var pushCommand = subcommand{
	name:    "push",
	args:    "FILE [--canary REGION[,REGION] [--soak D] [--max-error-rate R]] [--wait] [--timeout D] [--author A] [--strict]",
	summary: "validate FILE and store it as a new version (identical content keeps the current version)",
	remote:  true,
	run:     runPush,
}

// waitFlags are --wait and --timeout, shared by push and rollback.
type waitFlags struct {
	wait    bool
	timeout time.Duration
}

func (w *waitFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&w.wait, "wait", false, "follow the fleet until every connected edge serves the version (exit 1 on a NACK, 3 on timeout)")
	fs.DurationVar(&w.timeout, "timeout", DefaultWaitTimeout, "with --wait, how long to wait for the fleet; without it, the timeout of the call")
}

// apply makes --timeout the call timeout when there is nothing to wait for.
func (w *waitFlags) apply(fs *flag.FlagSet, c *cli) error {
	if w.timeout <= 0 {
		return exitf(ExitUsage, "--timeout: must be positive, got %s", w.timeout)
	}
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "timeout" })
	if set && !w.wait {
		c.timeout = w.timeout
	}
	return nil
}

func runPush(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlagSet()
	var w waitFlags
	w.register(fs)
	author := fs.String("author", c.defaultAuthor(), "author recorded with the version")
	strict := fs.Bool("strict", false, "refuse to push a configuration with warnings (they are listed as violations)")
	canary := fs.String("canary", "", "stage the version: only edges of these regions (comma-separated) get it until gwctl promote; --wait then waits for them only")
	soak := fs.Duration("soak", 0, "with --canary, promote by itself after this long unless halted (0: only gwctl promote)")
	maxErr := fs.Float64("max-error-rate", 0, "with --canary, halt (the canaries go back to the stable version) when the canary edges' share of 5xx responses on it exceeds this, 0 < R <= 1 (0: no check); a NACK always halts")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return helpOK(err)
	}
	if err := w.apply(fs, c); err != nil {
		return err
	}
	regions, err := parseRegions(*canary)
	if err != nil {
		return err
	}
	switch {
	case len(regions) == 0 && (*soak != 0 || *maxErr != 0):
		return exitf(ExitUsage, "--soak and --max-error-rate need --canary")
	case *soak < 0:
		return exitf(ExitUsage, "--soak: must not be negative, got %s", *soak)
	case !(*maxErr >= 0 && *maxErr <= 1):
		return exitf(ExitUsage, "--max-error-rate: must be between 0 and 1, got %v", *maxErr)
	}
	src, err := c.readSource(pos[0])
	if err != nil {
		return err
	}
	if *strict {
		// The control plane's compiler is this one: a strict check here
		// is the check it would make.
		_, err := config.CompileWith(src.GetFilename(), src.GetContent(), config.Options{Strict: true, ReadFile: config.SourceFiles(src.GetLuaSources())})
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			for _, v := range ve.Violations {
				fmt.Fprintln(c.stderr, config.FormatViolation(v))
			}
			return exitf(ExitRejected, "push: rejected (--strict): %d violation%s", len(ve.Violations), plural(len(ve.Violations)))
		}
	}
	a, err := c.dial()
	if err != nil {
		return err
	}
	defer a.close()
	resp, err := call(ctx, a, "push", gatewayv1.AdminServiceClient.Push, &gatewayv1.PushRequest{
		Source: src, Author: *author, CanaryRegions: regions, SoakMs: soak.Milliseconds(), MaxErrorRate: *maxErr,
	})
	if err != nil {
		return err
	}
	v := resp.GetVersion()
	if resp.GetCreated() {
		fmt.Fprintf(c.stdout, "version %d (sha256 %s)\n", v.GetVersion(), v.GetSha256())
	} else {
		fmt.Fprintf(c.stdout, "unchanged: version %d (sha256 %s)\n", v.GetVersion(), v.GetSha256())
	}
	renderRollout(c.stdout, resp.GetRollout(), c.env.now())
	c.printWarnings(resp.GetWarnings())
	if !w.wait {
		return nil
	}
	return a.waitFleet(ctx, "push", v, resp.GetRollout().GetRegions(), w.timeout)
}

// progress is the fleet's state against one version.
type progress struct {
	connected int
	on        int
	rejected  []*gatewayv1.EdgeStatus // NACKed the version
	lagging   []*gatewayv1.EdgeStatus // connected, neither on it nor rejecting it
}

func fleetProgress(edges []*gatewayv1.EdgeStatus, v *gatewayv1.VersionInfo) progress {
	var p progress
	for _, e := range edges {
		// An edge past the version (a newer push) will never apply it: it
		// counts as converged.
		isOn := (e.GetAppliedVersion() == v.GetVersion() && e.GetAppliedSha256() == v.GetSha256()) ||
			e.GetAppliedVersion() > v.GetVersion()
		rejected := !isOn && e.GetRejectedVersion() == v.GetVersion()
		if rejected {
			p.rejected = append(p.rejected, e)
		}
		if !e.GetConnected() {
			continue
		}
		p.connected++
		switch {
		case isOn:
			p.on++
		case !rejected:
			p.lagging = append(p.lagging, e)
		}
	}
	return p
}

// waitFleet polls Status until every connected edge (of regions, when
// given: a canary) serves v or refused it, printing "N/M edges on vV"
// whenever it changes.
func (a *admin) waitFleet(ctx context.Context, op string, v *gatewayv1.VersionInfo, regions []string, timeout time.Duration) error {
	start := a.c.env.now()
	var p progress
	timedOut, err := a.pollFleet(ctx, op, timeout, func(st *gatewayv1.StatusResponse) (string, bool) {
		edges := st.GetEdges()
		if len(regions) > 0 {
			// A canary: only its regions get the version.
			edges = slices.DeleteFunc(slices.Clone(edges), func(e *gatewayv1.EdgeStatus) bool {
				return !slices.Contains(regions, e.GetRegion())
			})
		}
		p = fleetProgress(edges, v)
		return fmt.Sprintf("%d/%d edges on v%d", p.on, p.connected, v.GetVersion()), len(p.lagging) == 0
	})
	switch {
	case err != nil:
		return err
	case timedOut:
		return a.c.reportTimeout(op, v, p, timeout)
	default:
		return a.c.reportConverged(op, v, p, a.c.env.now().Sub(start))
	}
}

// pollFleet calls Status every pollInterval and hands each answer to eval,
// printing the progress line eval returns whenever it changes (rewritten in
// place on a terminal), until eval reports done or timeout passes.
func (a *admin) pollFleet(ctx context.Context, op string, timeout time.Duration, eval func(*gatewayv1.StatusResponse) (line string, done bool)) (timedOut bool, err error) {
	c := a.c
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()

	var last string
	endLine := func() {
		if c.env.tty && last != "" {
			fmt.Fprintln(c.stdout)
		}
	}
	for {
		st, err := call(ctx, a, "status", gatewayv1.AdminServiceClient.Status, &gatewayv1.StatusRequest{})
		// A call cut short by the wait's own deadline is the timeout below,
		// not a failure (gRPC may see the deadline before ctx.Err does).
		if err != nil && ctx.Err() == nil && time.Now().Before(deadline) {
			endLine()
			return false, err
		}
		if err == nil {
			line, done := eval(st)
			if line != last {
				if c.env.tty {
					fmt.Fprintf(c.stdout, "\r\033[K%s", line)
				} else {
					fmt.Fprintln(c.stdout, line)
				}
				last = line
			}
			if done {
				endLine()
				return false, nil
			}
		}
		select {
		case <-ctx.Done():
			endLine()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return true, nil
			}
			return false, exitf(ExitRejected, "%s: %v", op, ctx.Err())
		case <-ticker.C:
		}
	}
}

func (c *cli) reportConverged(op string, v *gatewayv1.VersionInfo, p progress, took time.Duration) error {
	if len(p.rejected) > 0 {
		fmt.Fprintf(c.stderr, "v%d rejected by %d edge%s:\n", v.GetVersion(), len(p.rejected), plural(len(p.rejected)))
		for _, e := range p.rejected {
			fmt.Fprintf(c.stderr, "  %s (%s): %s\n", printable(e.GetNodeId()), regionName(e.GetRegion()), oneLine(e.GetLastError(), 400))
		}
		return exitf(ExitRejected, "%s: version %d rejected by %d edge%s", op, v.GetVersion(), len(p.rejected), plural(len(p.rejected)))
	}
	if p.connected == 0 {
		fmt.Fprintln(c.stdout, "no edge is connected")
		return nil
	}
	fmt.Fprintf(c.stdout, "converged in %s\n", took.Round(10*time.Millisecond))
	return nil
}

func (c *cli) reportTimeout(op string, v *gatewayv1.VersionInfo, p progress, timeout time.Duration) error {
	n := len(p.lagging) + len(p.rejected)
	fmt.Fprintf(c.stderr, "%d edge%s not on v%d after %s:\n", n, plural(n), v.GetVersion(), timeout)
	for _, e := range p.lagging {
		serving := "serving nothing"
		if e.GetAppliedVersion() != 0 {
			serving = fmt.Sprintf("serving v%d", e.GetAppliedVersion())
		}
		fmt.Fprintf(c.stderr, "  %s (%s): %s, %s\n", printable(e.GetNodeId()), regionName(e.GetRegion()), e.GetState(), serving)
	}
	for _, e := range p.rejected {
		fmt.Fprintf(c.stderr, "  %s (%s): rejected v%d: %s\n", printable(e.GetNodeId()), regionName(e.GetRegion()), v.GetVersion(), oneLine(e.GetLastError(), 400))
	}
	return exitf(ExitTimeout, "%s: timed out after %s: %d/%d edges on v%d", op, timeout, p.on, p.connected, v.GetVersion())
}

func regionName(r string) string {
	if r == "" {
		return "no region"
	}
	return printable(r)
}
