package command

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apigw/gateway/controlplane/config"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

var historyCommand = subcommand{
	name:    "history",
	args:    "[--limit N] [-o text|json|yaml]",
	summary: "list stored versions, newest first, with the Flexible Config files each was rendered from (their sha256) and its warnings",
	remote:  true,
	run:     runHistory,
}

func runHistory(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlagSet()
	c.rpcTimeoutFlag(fs)
	limit := fs.Uint("limit", 20, "how many versions to list")
	var out outputFlag
	out.register(fs)
	if _, err := parse(fs, args, 0); err != nil {
		return helpOK(err)
	}
	if err := out.check(); err != nil {
		return err
	}
	if *limit == 0 || *limit > 1<<20 {
		return exitf(ExitUsage, "--limit: must be between 1 and %d, got %d", 1<<20, *limit)
	}
	a, err := c.dial()
	if err != nil {
		return err
	}
	defer a.close()
	resp, err := call(ctx, a, "history", gatewayv1.AdminServiceClient.History, &gatewayv1.HistoryRequest{Limit: uint32(*limit)})
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
	if len(resp.GetVersions()) == 0 {
		fmt.Fprintln(c.stdout, "no version pushed yet")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSHA256\tAUTHOR\tCREATED\tNOTE")
	for _, v := range resp.GetVersions() {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s", v.GetVersion(), shortSHA(v.GetSha256()), oneLine(v.GetAuthor(), 40),
			time.UnixMilli(v.GetCreatedUnixMs()).Local().Format(time.DateTime))
		// Only rows with a note get the last cell: no trailing blanks.
		if note := versionNote(v); note != "" {
			fmt.Fprintf(tw, "\t%s", note)
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Details follow the table, newest first like it: the files a render
	// read, then the warnings.
	for _, v := range resp.GetVersions() {
		if files := v.GetRenderedFrom(); len(files) > 0 {
			fmt.Fprintf(c.stdout, "\nv%d rendered from:\n", v.GetVersion())
			for _, f := range files {
				fmt.Fprintf(c.stdout, "  %s  %s\n", f.GetSha256(), f.GetName())
			}
		}
		if ws := v.GetWarnings(); len(ws) > 0 {
			fmt.Fprintf(c.stdout, "\nv%d warnings:\n", v.GetVersion())
			for _, w := range ws {
				fmt.Fprintln(c.stdout, "  warning: "+config.FormatViolation(w))
			}
		}
	}
	return nil
}

// versionNote is the NOTE cell of a version: rollback, render, warnings.
func versionNote(v *gatewayv1.VersionInfo) string {
	var notes []string
	if v.GetRollbackOf() != 0 {
		notes = append(notes, fmt.Sprintf("rollback of %d", v.GetRollbackOf()))
	}
	if n := len(v.GetRenderedFrom()); n > 0 {
		notes = append(notes, fmt.Sprintf("rendered from %d file%s", n, plural(n)))
	}
	if n := len(v.GetWarnings()); n > 0 {
		notes = append(notes, fmt.Sprintf("%d warning%s", n, plural(n)))
	}
	return strings.Join(notes, ", ")
}
