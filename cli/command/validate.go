package command

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/apigw/gateway/controlplane/config"
)

var validateCommand = subcommand{
	name:    "validate",
	args:    "FILE",
	summary: "check a KrakenD config offline with the control plane's own compiler; every violation, one per line",
	run:     runValidate,
}

func runValidate(_ context.Context, c *cli, args []string) error {
	fs := c.newFlagSet()
	pos, err := parse(fs, args, 1)
	if err != nil {
		return helpOK(err)
	}
	file := pos[0]
	b, err := os.ReadFile(file)
	if err != nil {
		return exitf(ExitRejected, "validate: %v", err)
	}
	compiled, err := config.Compile(file, b)
	var ve *config.ValidationError
	if errors.As(err, &ve) {
		for _, v := range ve.Violations {
			fmt.Fprintln(c.stdout, config.FormatViolation(v))
		}
		return exitf(ExitRejected, "validate %s: %d violation%s", file, len(ve.Violations), plural(len(ve.Violations)))
	}
	if err != nil {
		return exitf(ExitRejected, "validate %s: %v", file, err)
	}
	n := len(compiled.Snapshot.GetEndpoints())
	fmt.Fprintf(c.stdout, "ok: %d endpoint%s, sha256 %s\n", n, plural(n), compiled.SHA256)
	return nil
}
