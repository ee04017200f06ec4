// Command gwctl is the operator's CLI for the gateway control plane:
//
//	gwctl [--server ADDR] [--token-file F] <validate|push|diff|status|history|rollback> ...
//
// This is a thin main; everything lives in cli/command. Exit codes: 0 ok,
// 1 rejected (violations, NACK), 2 usage, 3 timeout, 4 control plane
// unreachable or token refused.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/apigw/gateway/cli/command"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := command.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(command.ExitCode(err))
}
