package command

import (
	"context"

	"github.com/apigw/gateway/controlplane/config"
)

var renderCommand = subcommand{
	name:    "render",
	args:    "FILE",
	summary: "print FILE as it will be compiled: rendered as a Flexible Config template (FC_SETTINGS, FC_PARTIALS, FC_TEMPLATES, FC_OUT; FC_ENABLE is implied) with KRAKEND_* overrides applied",
	run:     runRender,
}

func runRender(_ context.Context, c *cli, args []string) error {
	fs := c.newFlagSet()
	pos, err := parse(fs, args, 1)
	if err != nil {
		return helpOK(err)
	}
	l, err := c.load(pos[0], true)
	if err != nil {
		return err
	}
	_, content, err := config.Resolve(l.filename, l.content, c.environ())
	if err != nil {
		return exitf(ExitRejected, "render %s: %v", pos[0], err)
	}
	_, err = c.stdout.Write(content)
	return err
}
