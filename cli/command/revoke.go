package command

import (
	"context"
	"fmt"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

var revokeCommand = subcommand{
	name:    "revoke",
	args:    "VALUE [--claim C] [--until T] [--author A] [--wait] [--timeout D]",
	summary: "revoke every token whose claim (jti by default) equals VALUE, fleet-wide",
	remote:  true,
	run:     runRevoke,
}

func runRevoke(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlagSet()
	claim := fs.String("claim", "jti", "claim to match: jti for one token, or sub, ... for every token of a subject")
	until := fs.String("until", "", "when the revocation lapses: RFC 3339 time or a duration from now (default: the config's revoker TTL)")
	author := fs.String("author", c.defaultAuthor(), "author recorded with the revocation")
	var w waitFlags
	w.register(fs)
	pos, err := parse(fs, args, 1)
	if err != nil {
		return helpOK(err)
	}
	if err := w.apply(fs, c); err != nil {
		return err
	}
	var expires int64
	if *until != "" {
		t, err := parseUntil(*until, c.env.now())
		if err != nil {
			return exitf(ExitUsage, "--until: %v", err)
		}
		expires = t.UnixMilli()
	}
	a, err := c.dial()
	if err != nil {
		return err
	}
	defer a.close()
	resp, err := call(ctx, a, "revoke", gatewayv1.AdminServiceClient.Revoke, &gatewayv1.RevokeRequest{Claim: *claim, Value: pos[0], ExpiresUnixMs: expires, Author: *author})
	if err != nil {
		return err
	}
	e := resp.GetEntry()
	fmt.Fprintf(c.stdout, "revoked %s=%s until %s (seq %d)\n", printable(e.GetClaim()), printable(e.GetValue()),
		time.UnixMilli(e.GetExpiresUnixMs()).Local().Format(time.DateTime), e.GetSeq())
	if !w.wait {
		return nil
	}
	return a.waitRevocation(ctx, e.GetSeq(), w.timeout)
}

// waitRevocation polls Status until every connected edge enforces the
// revocation log up to seq, printing "N/M edges at seq S".
func (a *admin) waitRevocation(ctx context.Context, seq uint64, timeout time.Duration) error {
	start := a.c.env.now()
	var lagging []*gatewayv1.EdgeStatus
	var on, connected int
	timedOut, err := a.pollFleet(ctx, "revoke", timeout, func(st *gatewayv1.StatusResponse) (string, bool) {
		lagging, on, connected = lagging[:0], 0, 0
		for _, e := range st.GetEdges() {
			if !e.GetConnected() {
				continue
			}
			connected++
			if e.GetRevocationSeq() >= seq {
				on++
			} else {
				lagging = append(lagging, e)
			}
		}
		return fmt.Sprintf("%d/%d edges at revocation seq %d", on, connected, seq), len(lagging) == 0
	})
	switch {
	case err != nil:
		return err
	case timedOut:
		fmt.Fprintf(a.c.stderr, "%d edge%s not at revocation seq %d after %s:\n", len(lagging), plural(len(lagging)), seq, timeout)
		for _, e := range lagging {
			fmt.Fprintf(a.c.stderr, "  %s (%s): at seq %d\n", printable(e.GetNodeId()), regionName(e.GetRegion()), e.GetRevocationSeq())
		}
		return exitf(ExitTimeout, "revoke: timed out after %s: %d/%d edges at revocation seq %d", timeout, on, connected, seq)
	case connected == 0:
		fmt.Fprintln(a.c.stdout, "no edge is connected")
		return nil
	default:
		fmt.Fprintf(a.c.stdout, "applied by every connected edge in %s\n", a.c.env.now().Sub(start).Round(time.Millisecond))
		return nil
	}
}

// parseUntil reads an RFC 3339 time or a positive duration from now.
func parseUntil(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q: a duration must be positive", s)
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
	}
	return t, nil
}
