package command

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"google.golang.org/protobuf/proto"
)

var statusCommand = subcommand{
	name:    "status",
	args:    "[--watch] [-o text|json|yaml]",
	summary: "show every edge by region: applied version, state, lag, last seen, last error (and, with replicas on etcd, the replica each streams from)",
	remote:  true,
	run:     runStatus,
}

func runStatus(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlagSet()
	c.rpcTimeoutFlag(fs)
	var out outputFlag
	out.register(fs)
	watch := fs.Bool("watch", false, "keep watching: print a new frame whenever the fleet's status changes, until Ctrl-C")
	interval := fs.Duration("watch-interval", 2*time.Second, "how often --watch asks the control plane")
	if _, err := parse(fs, args, 0); err != nil {
		return helpOK(err)
	}
	if err := out.check(); err != nil {
		return err
	}
	if *interval < 100*time.Millisecond || *interval > time.Hour {
		return exitf(ExitUsage, "--watch-interval: must be between 100ms and 1h, got %s", *interval)
	}
	a, err := c.dial()
	if err != nil {
		return err
	}
	defer a.close()
	var last []byte
	for frames := 0; ; {
		resp, err := fetchStatus(ctx, a)
		if err != nil {
			if *watch && ctx.Err() != nil {
				return nil // Ctrl-C ends a watch normally
			}
			return err
		}
		var frame []byte
		if out.text() {
			var b bytes.Buffer
			c.renderStatus(&b, resp)
			frame = b.Bytes()
		} else if frame, err = out.encode(resp); err != nil {
			return err
		}
		// A frame is printed when it differs from the last one. The text
		// frame's LAST SEEN column moves on its own, so it is compared
		// without it: on the response, not the rendering.
		key, err := statusKey(resp)
		if err != nil {
			return err
		}
		if frames == 0 || !bytes.Equal(key, last) {
			if frames > 0 && out.text() {
				fmt.Fprintf(c.stdout, "\n--- %s\n", c.env.now().Local().Format(time.DateTime))
			}
			if _, err := c.stdout.Write(frame); err != nil {
				return err
			}
			last = key
			frames++
		}
		if !*watch {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
	}
}

// statusKey is what --watch compares between two polls: the response
// without the last-seen times, which move at every keepalive.
func statusKey(resp *gatewayv1.StatusResponse) ([]byte, error) {
	k := proto.Clone(resp).(*gatewayv1.StatusResponse)
	for _, e := range k.GetEdges() {
		e.LastSeenUnixMs, e.ReportedUnixMs = 0, 0
	}
	for _, r := range k.GetReplicas() {
		r.ReportedUnixMs = 0
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(k)
}

// fetchStatus reads every page of the fleet into one response.
func fetchStatus(ctx context.Context, a *admin) (*gatewayv1.StatusResponse, error) {
	// Pages of edges, so a large fleet never meets the gRPC message limit.
	resp, err := call(ctx, a, "status", gatewayv1.AdminServiceClient.Status, &gatewayv1.StatusRequest{})
	if err != nil {
		return nil, err
	}
	for tok, pages := resp.GetNextPageToken(), 1; tok != "" && pages < maxStatusPages; pages++ {
		next, err := call(ctx, a, "status", gatewayv1.AdminServiceClient.Status, &gatewayv1.StatusRequest{PageToken: tok})
		if err != nil {
			return nil, err
		}
		resp.Edges = append(resp.Edges, next.GetEdges()...)
		tok = next.GetNextPageToken()
	}
	resp.NextPageToken = ""
	return resp, nil
}

func (c *cli) renderStatus(w io.Writer, resp *gatewayv1.StatusResponse) {
	edges := resp.GetEdges()
	now := c.env.now()
	if na := resp.GetSyncCertNotAfterUnixMs(); na != 0 {
		if left := time.UnixMilli(na).Sub(now); left < certWarnBefore {
			fmt.Fprintf(w, "WARNING: the control plane's sync certificate %s\n", expiry(left))
		}
	}
	cur := resp.GetCurrent()
	if cur.GetVersion() == 0 {
		fmt.Fprintln(w, "current: no version pushed yet")
	} else {
		fmt.Fprintf(w, "current: version %d (sha256 %s, %d endpoint%s)\n",
			cur.GetVersion(), shortSHA(cur.GetSha256()), cur.GetEndpoints(), plural(int(cur.GetEndpoints())))
	}
	if r := resp.GetRollout(); r != nil && r.GetVersion() == cur.GetVersion() {
		renderRollout(w, r, now)
	}
	replicas := resp.GetReplicas()
	if len(replicas) > 0 {
		parts := make([]string, 0, len(replicas))
		for i, r := range replicas {
			note := fmt.Sprintf("%d edge%s", r.GetEdges(), plural(int(r.GetEdges())))
			if i == 0 {
				note = "answering, " + note
			} else {
				note += ", reported " + ago(now, time.UnixMilli(r.GetReportedUnixMs()))
			}
			parts = append(parts, fmt.Sprintf("%s (%s)", printable(r.GetName()), note))
		}
		fmt.Fprintf(w, "replicas: %s\n", strings.Join(parts, ", "))
	}
	if len(edges) == 0 {
		fmt.Fprintln(w, "no edge has connected since the control plane started")
		return
	}
	// The control plane sorts by region then node; group consecutive runs.
	for i := 0; i < len(edges); {
		start := i
		region := edges[i].GetRegion()
		fmt.Fprintf(w, "\n%s:\n", regionName(region))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		if len(replicas) > 0 {
			fmt.Fprintln(tw, "  NODE\tVERSION\tSTATE\tLAG\tLAST SEEN\tREPLICA\tREPORTED\tERROR")
		} else {
			fmt.Fprintln(tw, "  NODE\tVERSION\tSTATE\tLAG\tLAST SEEN\tERROR")
		}
		for ; i < len(edges) && edges[i].GetRegion() == region; i++ {
			e := edges[i]
			via := ""
			if len(replicas) > 0 {
				via = printable(e.GetReplica()) + "\t" + lastSeen(now, e.GetReportedUnixMs()) + "\t"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s%s\n",
				printable(e.GetNodeId()), versionCell(e.GetAppliedVersion()), printable(e.GetState()), lag(cur.GetVersion(), e.GetAppliedVersion()),
				lastSeen(now, e.GetLastSeenUnixMs()), via, errorCell(certNote(now, e.GetCertNotAfterUnixMs())+e.GetLastError()))
		}
		tw.Flush()
		renderAgents(w, now, edges[start:i])
	}
}

// renderAgents lists the async agents of edges that report some.
func renderAgents(w io.Writer, now time.Time, edges []*gatewayv1.EdgeStatus) {
	reported := false
	for _, e := range edges {
		reported = reported || len(e.GetAgents()) > 0
	}
	if !reported {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tAGENT\tSTATE\tSINCE\tLAST PING\tRETRIES\tERROR")
	for _, e := range edges {
		for _, a := range e.GetAgents() {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%s\n",
				printable(e.GetNodeId()), printable(a.GetName()), printable(a.GetState()), lastSeen(now, a.GetSinceUnixMs()),
				lastSeen(now, a.GetLastPingUnixMs()), a.GetRetries(), errorCell(a.GetLastError()))
		}
	}
	tw.Flush()
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
