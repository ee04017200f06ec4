package command

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

var historyCommand = subcommand{
	name:    "history",
	args:    "[--limit N]",
	summary: "list stored versions, newest first",
	remote:  true,
	run:     runHistory,
}

func runHistory(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlagSet()
	c.rpcTimeoutFlag(fs)
	limit := fs.Uint("limit", 20, "how many versions to list")
	if _, err := parse(fs, args, 0); err != nil {
		return helpOK(err)
	}
	if *limit == 0 || *limit > 1<<20 {
		return exitf(ExitUsage, "--limit: must be between 1 and %d, got %d", 1<<20, *limit)
	}
	a, err := c.dial()
	if err != nil {
		return err
	}
	defer a.close()
	resp, err := call(ctx, a, "history", a.api.History, &gatewayv1.HistoryRequest{Limit: uint32(*limit)})
	if err != nil {
		return err
	}
	if len(resp.GetVersions()) == 0 {
		fmt.Fprintln(c.stdout, "no version pushed yet")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSHA256\tAUTHOR\tCREATED\tNOTE")
	for _, v := range resp.GetVersions() {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s", v.GetVersion(), shortSHA(v.GetSha256()), oneLine(v.GetAuthor(), 40),
			time.UnixMilli(v.GetCreatedUnixMs()).Local().Format(time.DateTime))
		if v.GetRollbackOf() != 0 {
			// Only rows with a note get the last cell: no trailing blanks.
			fmt.Fprintf(tw, "\trollback of %d", v.GetRollbackOf())
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
