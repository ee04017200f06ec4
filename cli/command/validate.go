package command

import (
	"context"
	"errors"
	"fmt"

	"github.com/apigw/gateway/controlplane/config"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

var validateCommand = subcommand{
	name:    "validate",
	args:    "FILE [--strict] [-o text|json|yaml]",
	summary: "check a KrakenD config offline with the control plane's own compiler; every violation, one per line, then the warnings (FC_* variables render Flexible Config templates first; KRAKEND_* variables override top-level keys)",
	run:     runValidate,
}

func runValidate(_ context.Context, c *cli, args []string) error {
	fs := c.newFlagSet()
	strict := fs.Bool("strict", false, "treat warnings as violations (exit 1 when there is any)")
	var out outputFlag
	out.register(fs)
	pos, err := parse(fs, args, 1)
	if err != nil {
		return helpOK(err)
	}
	if err := out.check(); err != nil {
		return err
	}
	file := pos[0]
	l, err := c.load(file, false)
	if err != nil {
		return err
	}
	compiled, err := config.CompileWith(l.filename, l.content, config.Options{Env: c.environ(), Strict: *strict, Origin: l.origin, ReadFile: config.OSReadFile})
	var ve *config.ValidationError
	if !out.text() && (err == nil || errors.As(err, &ve)) {
		// The admin API's ValidateResponse, as the control plane would answer.
		resp := &gatewayv1.ValidateResponse{}
		if ve != nil {
			resp.Violations, resp.Warnings = ve.Violations, ve.Warnings
		} else {
			resp.Sha256, resp.Warnings = compiled.SHA256, compiled.Warnings
		}
		b, eerr := out.encode(resp)
		if eerr != nil {
			return eerr
		}
		if _, eerr := c.stdout.Write(b); eerr != nil {
			return eerr
		}
		if ve != nil {
			return exitf(ExitRejected, "validate %s: %d violation%s", file, len(ve.Violations), plural(len(ve.Violations)))
		}
		return nil
	}
	if errors.As(err, &ve) {
		for _, v := range ve.Violations {
			fmt.Fprintln(c.stdout, config.FormatViolation(v))
		}
		c.printWarnings(ve.Warnings)
		return exitf(ExitRejected, "validate %s: %d violation%s", file, len(ve.Violations), plural(len(ve.Violations)))
	}
	if err != nil {
		return exitf(ExitRejected, "validate %s: %v", file, err)
	}
	c.printWarnings(compiled.Warnings)
	n := len(compiled.Snapshot.GetEndpoints())
	fmt.Fprintf(c.stdout, "ok: %d endpoint%s, sha256 %s", n, plural(n), compiled.SHA256)
	if w := len(compiled.Warnings); w > 0 {
		fmt.Fprintf(c.stdout, ", %d warning%s", w, plural(w))
	}
	fmt.Fprintln(c.stdout)
	return nil
}

// printWarnings writes warnings to stdout, each line starting with
// "warning: " so they never read as violations.
func (c *cli) printWarnings(ws []*gatewayv1.FieldViolation) {
	for _, w := range ws {
		fmt.Fprintln(c.stdout, "warning: "+config.FormatViolation(w))
	}
}
