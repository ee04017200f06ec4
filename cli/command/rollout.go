package command

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

var promoteCommand = subcommand{
	name:    "promote",
	args:    "VERSION [--author A] [-o text|json|yaml]",
	summary: "take the version in canary (or halted) to every region",
	remote:  true,
	run: func(ctx context.Context, c *cli, args []string) error {
		return runRolloutChange(ctx, c, args, "promote")
	},
}

var abortCommand = subcommand{
	name:    "abort",
	args:    "VERSION [--author A] [-o text|json|yaml]",
	summary: "end the canary of VERSION: its regions go back to the stable version",
	remote:  true,
	run: func(ctx context.Context, c *cli, args []string) error {
		return runRolloutChange(ctx, c, args, "abort")
	},
}

// runRolloutChange is promote and abort: both name a version and print the
// rollout as it is afterwards.
func runRolloutChange(ctx context.Context, c *cli, args []string, op string) error {
	fs := c.newFlagSet()
	c.rpcTimeoutFlag(fs)
	var out outputFlag
	out.register(fs)
	author := fs.String("author", c.defaultAuthor(), "author recorded in the audit log")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return helpOK(err)
	}
	if err := out.check(); err != nil {
		return err
	}
	v, err := strconv.ParseUint(pos[0], 10, 64)
	if err != nil || v == 0 {
		fs.Usage()
		return exitf(ExitUsage, "%s: %q is not a version number", op, pos[0])
	}
	a, err := c.dial()
	if err != nil {
		return err
	}
	defer a.close()
	var r *gatewayv1.Rollout
	if op == "promote" {
		resp, err := call(ctx, a, op, gatewayv1.AdminServiceClient.Promote, &gatewayv1.PromoteRequest{Version: v, Author: *author})
		if err != nil {
			return err
		}
		r = resp.GetRollout()
	} else {
		resp, err := call(ctx, a, op, gatewayv1.AdminServiceClient.Abort, &gatewayv1.AbortRequest{Version: v, Author: *author})
		if err != nil {
			return err
		}
		r = resp.GetRollout()
	}
	if !out.text() {
		b, err := out.encode(r)
		if err != nil {
			return err
		}
		_, err = c.stdout.Write(b)
		return err
	}
	renderRollout(c.stdout, r, c.env.now())
	return nil
}

// parseRegions splits --canary's comma list; empty entries are an error.
func parseRegions(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	for _, p := range parts {
		if strings.TrimSpace(p) == "" || strings.TrimSpace(p) != p {
			return nil, exitf(ExitUsage, "--canary: %q is not a comma-separated list of regions", s)
		}
	}
	return parts, nil
}

// renderRollout prints a rollout in a few lines.
func renderRollout(w io.Writer, r *gatewayv1.Rollout, now time.Time) {
	if r == nil {
		return
	}
	fmt.Fprintf(w, "rollout: version %d %s in %s (stable version %d elsewhere)\n",
		r.GetVersion(), r.GetPhase(), strings.Join(r.GetRegions(), ","), r.GetStableVersion())
	if r.GetReason() != "" {
		fmt.Fprintf(w, "  %s, %s\n", oneLine(r.GetReason(), 400), ago(now, time.UnixMilli(r.GetUpdatedUnixMs())))
	}
	if r.GetPhase() == "canary" {
		var parts []string
		if soak := r.GetSoakMs(); soak > 0 {
			at := time.UnixMilli(r.GetStartedUnixMs() + soak)
			if left := at.Sub(now); left > 0 {
				parts = append(parts, fmt.Sprintf("promoted automatically in %s", left.Round(time.Second)))
			} else {
				parts = append(parts, "soak period over: promoted once a canary edge serves it")
			}
		}
		if m := r.GetMaxErrorRate(); m > 0 {
			parts = append(parts, fmt.Sprintf("halts above %v 5xx", m))
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "  %s\n", strings.Join(parts, "; "))
		}
	}
	if r.GetCanaryEdges() > 0 || r.GetCanaryRequests() > 0 {
		rate := ""
		if n := r.GetCanaryRequests(); n > 0 {
			rate = fmt.Sprintf(", %.4f 5xx", float64(r.GetCanaryErrors())/float64(n))
		}
		fmt.Fprintf(w, "  canary edges: %d/%d on v%d; %d responses since%s\n",
			r.GetCanaryApplied(), r.GetCanaryEdges(), r.GetVersion(), r.GetCanaryRequests(), rate)
	}
}
