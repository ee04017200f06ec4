package command

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

var statusCommand = subcommand{
	name:    "status",
	args:    "",
	summary: "show every edge by region: applied version, state, lag, last seen, last error",
	remote:  true,
	run:     runStatus,
}

func runStatus(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlagSet()
	c.rpcTimeoutFlag(fs)
	if _, err := parse(fs, args, 0); err != nil {
		return helpOK(err)
	}
	a, err := c.dial()
	if err != nil {
		return err
	}
	defer a.close()
	// Pages of edges, so a large fleet never meets the gRPC message limit.
	resp, err := call(ctx, a, "status", a.api.Status, &gatewayv1.StatusRequest{})
	if err != nil {
		return err
	}
	edges := resp.GetEdges()
	for tok, pages := resp.GetNextPageToken(), 1; tok != "" && pages < maxStatusPages; pages++ {
		next, err := call(ctx, a, "status", a.api.Status, &gatewayv1.StatusRequest{PageToken: tok})
		if err != nil {
			return err
		}
		edges = append(edges, next.GetEdges()...)
		tok = next.GetNextPageToken()
	}
	now := c.env.now()
	if na := resp.GetSyncCertNotAfterUnixMs(); na != 0 {
		if left := time.UnixMilli(na).Sub(now); left < certWarnBefore {
			fmt.Fprintf(c.stdout, "WARNING: the control plane's sync certificate %s\n", expiry(left))
		}
	}
	cur := resp.GetCurrent()
	if cur.GetVersion() == 0 {
		fmt.Fprintln(c.stdout, "current: no version pushed yet")
	} else {
		fmt.Fprintf(c.stdout, "current: version %d (sha256 %s, %d endpoint%s)\n",
			cur.GetVersion(), shortSHA(cur.GetSha256()), cur.GetEndpoints(), plural(int(cur.GetEndpoints())))
	}
	if len(edges) == 0 {
		fmt.Fprintln(c.stdout, "no edge has connected since the control plane started")
		return nil
	}
	// The control plane sorts by region then node; group consecutive runs.
	for i := 0; i < len(edges); {
		region := edges[i].GetRegion()
		fmt.Fprintf(c.stdout, "\n%s:\n", regionName(region))
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  NODE\tVERSION\tSTATE\tLAG\tLAST SEEN\tERROR")
		for ; i < len(edges) && edges[i].GetRegion() == region; i++ {
			e := edges[i]
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n",
				printable(e.GetNodeId()), versionCell(e.GetAppliedVersion()), printable(e.GetState()), lag(cur.GetVersion(), e.GetAppliedVersion()),
				lastSeen(now, e.GetLastSeenUnixMs()), errorCell(certNote(now, e.GetCertNotAfterUnixMs())+e.GetLastError()))
		}
		tw.Flush()
	}
	return nil
}

func versionCell(v uint64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatUint(v, 10)
}

// lag is how many versions the edge is behind the current one.
func lag(current, applied uint64) string {
	if current == 0 || applied >= current {
		return "0"
	}
	return strconv.FormatUint(current-applied, 10)
}

func lastSeen(now time.Time, ms int64) string {
	if ms == 0 {
		return "never"
	}
	return ago(now, time.UnixMilli(ms))
}

func errorCell(s string) string {
	if s == "" {
		return "-"
	}
	return oneLine(s, 100)
}

// maxStatusPages bounds the pages one status reads (a million edges).
const maxStatusPages = 1000

// certWarnBefore is how early status warns about an expiring certificate.
const certWarnBefore = 30 * 24 * time.Hour

func expiry(left time.Duration) string {
	if left <= 0 {
		return "has EXPIRED"
	}
	return fmt.Sprintf("expires in %s", left.Round(time.Hour))
}

// certNote warns about an edge certificate that expires soon.
func certNote(now time.Time, notAfterMs int64) string {
	if notAfterMs == 0 {
		return ""
	}
	if left := time.UnixMilli(notAfterMs).Sub(now); left < certWarnBefore {
		return "certificate " + expiry(left) + "; "
	}
	return ""
}
