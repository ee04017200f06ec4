package command

import (
	"context"
	"fmt"
	"strings"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

var diffCommand = subcommand{
	name:    "diff",
	args:    "FILE [-o text|json|yaml]",
	summary: "show what pushing FILE would change against the current version",
	remote:  true,
	run:     runDiff,
}

func runDiff(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlagSet()
	c.rpcTimeoutFlag(fs)
	var out outputFlag
	out.register(fs)
	pos, err := parse(fs, args, 1)
	if err != nil {
		return helpOK(err)
	}
	if err := out.check(); err != nil {
		return err
	}
	src, err := c.readSource(pos[0])
	if err != nil {
		return err
	}
	a, err := c.dial()
	if err != nil {
		return err
	}
	defer a.close()
	resp, err := call(ctx, a, "diff", gatewayv1.AdminServiceClient.Diff, &gatewayv1.DiffRequest{Source: src})
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
	against := fmt.Sprintf("version %d", resp.GetCurrentVersion())
	if resp.GetCurrentVersion() == 0 {
		against = "no version (nothing pushed yet)"
	}
	if len(resp.GetChanges()) == 0 {
		fmt.Fprintf(c.stdout, "no changes against %s\n", against)
		return nil
	}
	fmt.Fprintf(c.stdout, "against %s:\n", against)
	for _, ch := range resp.GetChanges() {
		fmt.Fprintln(c.stdout, changeLine(ch))
	}
	return nil
}

// changeLine renders "+ GET /x", "- GET /y" or "~ GET /z: field, field".
func changeLine(ch *gatewayv1.Change) string {
	switch ch.GetOp() {
	case "added":
		return "+ " + ch.GetSubject()
	case "removed":
		return "- " + ch.GetSubject()
	case "changed":
		line := "~ " + ch.GetSubject()
		if len(ch.GetFields()) > 0 {
			line += ": " + strings.Join(ch.GetFields(), ", ")
		}
		return line
	}
	return "? " + ch.GetSubject() + " (" + ch.GetOp() + ")"
}
