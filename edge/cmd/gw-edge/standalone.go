package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/apigw/gateway/controlplane/config"
	"github.com/apigw/gateway/controlplane/config/flexible"
	"github.com/apigw/gateway/edge/agent"
	"github.com/apigw/gateway/edge/apply"
	"github.com/apigw/gateway/edge/auth"
	"github.com/apigw/gateway/edge/internal/loglevel"
	"github.com/apigw/gateway/edge/plan"
	"github.com/apigw/gateway/edge/server"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// standaloneFlags are the flags of `gw-edge run`.
type standaloneFlags struct {
	logFlags
	file   string
	debug  bool
	listen string
}

func (f *standaloneFlags) validate() error {
	errs := []error{f.logFlags.validate()}
	if f.file == "" {
		errs = append(errs, errors.New("-c: required (the KrakenD configuration file)"))
	}
	if f.listen != "" {
		if _, _, err := net.SplitHostPort(f.listen); err != nil {
			errs = append(errs, fmt.Errorf("--listen: %q is not host:port", f.listen))
		}
	}
	return errors.Join(errs...)
}

func runStandalone(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f standaloneFlags
	fs := flag.NewFlagSet("gw-edge run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.file, "c", "", "KrakenD v3 configuration file (JSON, YAML or TOML; a Flexible Config template with FC_ENABLE); required")
	fs.StringVar(&f.file, "config", "", "alias of -c")
	fs.BoolVar(&f.debug, "d", false, "serve KrakenD's /__debug/ endpoint (as krakend run -d does); the log level is --log-level")
	fs.BoolVar(&f.debug, "debug", false, "alias of -d")
	fs.StringVar(&f.listen, "listen", "", "HTTP listen address (default: the config's listen_ip:port)")
	f.logFlags.register(fs, stdout)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage:\n  gw-edge run -c FILE [-d] [--listen ADDR] [flags]\n\nServes a KrakenD configuration file with no control plane.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if exit, code := parseFlags(fs, args, stderr); exit {
		return code
	}
	if err := f.validate(); err != nil {
		fmt.Fprintf(stderr, "gw-edge run: invalid flags:\n%v\n", err)
		return exitUsage
	}

	// Compile before anything is logged or bound: an invalid file is an
	// operator error, shown as a plain list on stderr.
	compiled, err := compileFile(f.file, os.Getenv, os.Environ())
	if err != nil {
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			fmt.Fprintf(stderr, "gw-edge run: %s: %d violations:\n", f.file, len(ve.Violations))
			for _, v := range ve.Violations {
				fmt.Fprintln(stderr, config.FormatViolation(v))
			}
		} else {
			fmt.Fprintf(stderr, "gw-edge run: %v\n", err)
		}
		return exitError
	}

	for _, w := range compiled.Warnings {
		fmt.Fprintln(stderr, "gw-edge run: warning: "+config.FormatViolation(w))
	}

	log, lv := f.logger(stdout)
	f.pinFormat = isSet(fs, "log-format")
	defer f.sink.Close()
	if err := standalone(ctx, &f, compiled, isSet(fs, "log-level"), log, lv, stderr); err != nil {
		log.Error().Err(err).Msg("exiting")
		return exitError
	}
	return exitOK
}

// compileFile compiles the file as KrakenD's run would read it: rendered
// first when FC_ENABLE is set (a template error is an error, not KrakenD's
// silent fallback to the raw file), then with KRAKEND_* overrides from env.
func compileFile(file string, getenv func(string) string, env []string) (*config.Compiled, error) {
	fc := flexible.FromEnv(getenv)
	if !fc.Enable {
		return config.CompileFileWith(file, config.Options{Env: env, ReadFile: config.OSReadFile})
	}
	r, err := flexible.Render(file, fc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return config.CompileWith(r.Filename, r.Content, config.Options{Env: env, Origin: r.Origin, ReadFile: config.OSReadFile})
}

// standalone serves one compiled file until ctx is done. The file becomes
// version 1 and goes through the same Applier as a pushed snapshot.
func standalone(ctx context.Context, f *standaloneFlags, c *config.Compiled, pinLevel bool, log zerolog.Logger, lv *loglevel.Var, stderr io.Writer) error {
	log.Debug().Str("config", f.file).Str("sha256", c.SHA256).Int("endpoints", len(c.Snapshot.GetEndpoints())).
		Strs("features", c.Snapshot.GetFeatures()).Msg("config compiled")
	listen := f.listen
	if listen == "" {
		listen = server.ListenAddrOf(c.Snapshot)
	}
	if listen == "" {
		listen = defaultListen
	}
	var agents *agent.Runner
	cfg := f.serverConfig(listen, log, lv, pinLevel)
	cfg.AgentPings = func() map[string]time.Time { return agents.Pings() }
	cfg.DebugEndpoint = f.debug
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	// No control plane feeds revocations in standalone mode; the set exists
	// so that a file with auth/revoker builds (and stays empty).
	reg, err := newRegistries(srv.Registry(), log, nil, auth.NewRevocations(auth.RevocationsConfig{Logger: log}))
	if err != nil {
		srv.Close()
		return err
	}
	reg.deps.Stats = srv.Stats()
	reg.deps.DebugEndpoint = f.debug
	defer func() {
		// Stop serving first: no plan uses the registries afterwards.
		srv.Close()
		reg.close()
	}()
	if agents, err = newAgents(srv.Registry(), log); err != nil {
		return err
	}
	defer agents.Close()
	applier, err := apply.New(apply.Config{Target: agentTarget{srv: srv, agents: agents}, Logger: log, Deps: reg.deps, Registerer: srv.Registry()})
	if err != nil {
		return err
	}
	env := &gatewayv1.SnapshotEnvelope{
		Version:       1,
		Sha256:        c.SHA256,
		Payload:       c.Payload,
		Author:        "file:" + f.file,
		CreatedUnixMs: time.Now().UnixMilli(),
	}
	if err := applier.ApplyLocal(ctx, env); err != nil {
		var be *plan.BuildError
		if errors.As(err, &be) {
			// The control plane's validator accepted it but this edge
			// cannot serve it (a disabled or unknown feature).
			fmt.Fprintf(stderr, "gw-edge run: %s cannot be served:\n", f.file)
			for _, v := range be.Violations {
				fmt.Fprintln(stderr, config.FormatViolation(v))
			}
		}
		return err
	}
	log.Info().Str("addr", srv.Addr().String()).Str("config", f.file).Msg("listening")
	return srv.Serve(ctx)
}
