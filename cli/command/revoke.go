package command

import (
	"context"
	"fmt"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

var revokeCommand = subcommand{
	name:    "revoke",
	args:    "VALUE [--claim C] [--until T] [--author A]",
	summary: "revoke every token whose claim (jti by default) equals VALUE, fleet-wide",
	remote:  true,
	run:     runRevoke,
}

func runRevoke(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlagSet()
	c.rpcTimeoutFlag(fs)
	claim := fs.String("claim", "jti", "claim to match: jti for one token, or sub, ... for every token of a subject")
	until := fs.String("until", "", "when the revocation lapses: RFC 3339 time or a duration from now (default: the config's revoker TTL)")
	author := fs.String("author", c.defaultAuthor(), "author recorded with the revocation")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return helpOK(err)
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
	resp, err := call(ctx, a, "revoke", a.api.Revoke, &gatewayv1.RevokeRequest{Claim: *claim, Value: pos[0], ExpiresUnixMs: expires, Author: *author})
	if err != nil {
		return err
	}
	e := resp.GetEntry()
	fmt.Fprintf(c.stdout, "revoked %s=%s until %s (seq %d)\n", e.GetClaim(), e.GetValue(),
		time.UnixMilli(e.GetExpiresUnixMs()).Local().Format(time.DateTime), e.GetSeq())
	return nil
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
