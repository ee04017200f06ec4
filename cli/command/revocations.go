package command

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

var revocationsCommand = subcommand{
	name:    "revocations",
	args:    "[-o text|json|yaml]",
	summary: "list the live revocations",
	remote:  true,
	run:     runRevocations,
}

func runRevocations(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlagSet()
	c.rpcTimeoutFlag(fs)
	var out outputFlag
	out.register(fs)
	if _, err := parse(fs, args, 0); err != nil {
		return helpOK(err)
	}
	if err := out.check(); err != nil {
		return err
	}
	a, err := c.dial()
	if err != nil {
		return err
	}
	defer a.close()
	resp, err := call(ctx, a, "revocations", gatewayv1.AdminServiceClient.ListRevocations, &gatewayv1.ListRevocationsRequest{})
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
		fmt.Fprintf(c.stdout, "no live revocation (log at seq %d)\n", resp.GetSeq())
		return nil
	}
	fmt.Fprintf(c.stdout, "log at seq %d\n", resp.GetSeq())
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tCLAIM\tVALUE\tEXPIRES\tAUTHOR")
	for _, e := range resp.GetEntries() {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", e.GetSeq(), printable(e.GetClaim()), oneLine(e.GetValue(), 60),
			time.UnixMilli(e.GetExpiresUnixMs()).Local().Format(time.DateTime), oneLine(e.GetAuthor(), 40))
	}
	return tw.Flush()
}
