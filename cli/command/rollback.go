package command

import (
	"context"
	"fmt"
	"strconv"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

var rollbackCommand = subcommand{
	name:    "rollback",
	args:    "VERSION [--wait] [--timeout D] [--author A]",
	summary: "store a new version whose content is that of VERSION",
	remote:  true,
	run:     runRollback,
}

func runRollback(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlagSet()
	var w waitFlags
	w.register(fs)
	author := fs.String("author", c.defaultAuthor(), "author recorded with the new version")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return helpOK(err)
	}
	if err := w.apply(fs, c); err != nil {
		return err
	}
	target, err := strconv.ParseUint(pos[0], 10, 64)
	if err != nil || target == 0 {
		fs.Usage()
		return exitf(ExitUsage, "rollback: %q is not a version number", pos[0])
	}
	a, err := c.dial()
	if err != nil {
		return err
	}
	defer a.close()
	resp, err := call(ctx, a, "rollback", gatewayv1.AdminServiceClient.Rollback, &gatewayv1.RollbackRequest{Version: target, Author: *author})
	if err != nil {
		return err
	}
	v := resp.GetVersion()
	if resp.GetCreated() {
		fmt.Fprintf(c.stdout, "version %d (sha256 %s): rollback of %d\n", v.GetVersion(), v.GetSha256(), target)
	} else {
		fmt.Fprintf(c.stdout, "unchanged: version %d (sha256 %s) already has the content of version %d\n", v.GetVersion(), v.GetSha256(), target)
	}
	if !w.wait {
		return nil
	}
	return a.waitFleet(ctx, "rollback", v, nil, w.timeout)
}
