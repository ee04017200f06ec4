package command

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

var auditCommand = subcommand{
	name:    "audit",
	args:    "[--limit N] [--before SEQ] [--action A] [-o text|json|yaml]",
	summary: "list the control plane's audit log, newest first: every push, rollback, revoke and certificate issued, and every refused call, with who, the version, its hash and what it changed",
	remote:  true,
	run:     runAudit,
}

func runAudit(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlagSet()
	c.rpcTimeoutFlag(fs)
	limit := fs.Uint("limit", 20, "how many records to list (at most 1000)")
	before := fs.Uint64("before", 0, "list records older than this seq (the next page: the last SEQ shown)")
	action := fs.String("action", "", "only this action: push, rollback, revoke, issue_certificate, or a refused call's method (status, history...)")
	var out outputFlag
	out.register(fs)
	if _, err := parse(fs, args, 0); err != nil {
		return helpOK(err)
	}
	if err := out.check(); err != nil {
		return err
	}
	if *limit == 0 || *limit > 1000 {
		return exitf(ExitUsage, "--limit: must be between 1 and 1000, got %d", *limit)
	}
	a, err := c.dial()
	if err != nil {
		return err
	}
	defer a.close()
	resp, err := call(ctx, a, "audit", gatewayv1.AdminServiceClient.ListAudit, &gatewayv1.ListAuditRequest{Limit: uint32(*limit), BeforeSeq: *before, Action: *action})
	if err != nil {
		return err
	}
	if !out.text() {
		b, err := out.encode(resp)
		if err != nil {
			return err
		}
		_, err = c.stdout.Write(b)
		return err
	}
	if len(resp.GetEntries()) == 0 {
		fmt.Fprintln(c.stdout, "no audit records")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tWHO\tACTION\tOUTCOME\tDETAIL")
	for _, e := range resp.GetEntries() {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.GetSeq(),
			time.UnixMilli(e.GetTimeUnixMs()).Local().Format(time.DateTime),
			oneLine(e.GetWho(), 40), e.GetAction(), auditOutcome(e), oneLine(auditDetail(e), 100))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n := resp.GetNextBeforeSeq(); n != 0 {
		fmt.Fprintf(c.stdout, "\nmore: gwctl audit --before %d\n", n)
	}
	return nil
}

func auditOutcome(e *gatewayv1.AuditEntry) string {
	if e.GetOutcome() == "refused" || e.GetOutcome() == "failed" {
		return e.GetOutcome() + " (" + e.GetCode() + ")"
	}
	return e.GetOutcome()
}

// auditDetail is the DETAIL cell: the version and what it changed, the
// revocation, or why the call was refused.
func auditDetail(e *gatewayv1.AuditEntry) string {
	var parts []string
	if v := e.GetVersion(); v != 0 {
		parts = append(parts, fmt.Sprintf("v%d %s", v, shortSHA(e.GetSha256())))
	}
	if v := e.GetRollbackOf(); v != 0 {
		parts = append(parts, fmt.Sprintf("rollback of %d", v))
	}
	if d := e.GetDiff(); d != nil {
		var ch []string
		if d.GetAddedCount() > 0 {
			ch = append(ch, fmt.Sprintf("+%d", d.GetAddedCount()))
		}
		if d.GetRemovedCount() > 0 {
			ch = append(ch, fmt.Sprintf("-%d", d.GetRemovedCount()))
		}
		if d.GetChangedCount() > 0 {
			ch = append(ch, fmt.Sprintf("~%d", d.GetChangedCount()))
		}
		if len(ch) > 0 {
			parts = append(parts, strings.Join(ch, " ")+" endpoints")
		}
		if d.GetServiceChanged() {
			parts = append(parts, "service changed")
		}
	}
	if r := e.GetRevocation(); r != nil {
		s := r.GetClaim() + "=" + r.GetValue()
		if r.GetSeq() != 0 {
			s = fmt.Sprintf("seq %d %s", r.GetSeq(), s)
		}
		parts = append(parts, s)
	}
	if n := e.GetNodeId(); n != "" {
		parts = append(parts, "node "+n)
	}
	if n := e.GetViolations(); n > 0 {
		parts = append(parts, fmt.Sprintf("%d violation%s", n, plural(int(n))))
	}
	if r := e.GetReason(); r != "" && e.GetViolations() == 0 {
		parts = append(parts, r)
	}
	return strings.Join(parts, ", ")
}
