// Command gw-edge runs an edge of the gateway: the fasthttp data plane that
// serves the API from an immutable snapshot.
//
// Managed mode (the default) takes its snapshots from the control plane:
//
//	gw-edge --controlplane ADDR --node-id ID --region R --listen ADDR --data-dir DIR
//
// It serves the last-known-good snapshot from the data dir at once, before
// and whether or not the control plane answers, then keeps a sync stream
// open. Standalone mode serves a KrakenD file with no control plane:
//
//	gw-edge run -c FILE [-d] [--listen ADDR]
//
// Both modes feed snapshots through the same apply path (edge/apply).
// This is a thin main: flags, wiring, signals. It may import
// controlplane/config (standalone compiles the file in process) and nothing
// else from the control plane.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/apigw/gateway/edge/accesslog"
	"github.com/apigw/gateway/edge/internal/loglevel"
	"github.com/apigw/gateway/edge/internal/logsink"
	"github.com/apigw/gateway/edge/qos/clusterlimit"
	"github.com/apigw/gateway/edge/server"
)

// buildVersion is set by the linker (-X main.buildVersion=...).
var buildVersion = "dev"

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // startup failed (invalid config, port taken...)
	exitUsage = 2 // bad flags
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches on the mode and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "run" {
		return runStandalone(ctx, args[1:], stdout, stderr)
	}
	return runManaged(ctx, args, stdout, stderr)
}

// logFlags are the logging, metrics and front-door flags both modes share.
type logFlags struct {
	format          string
	level           string
	metricsListen   string
	limits          server.Limits
	accessLog       string
	accessLogSample float64
	out             io.Writer // stdout, set by logger
	// sink is under the loggers (set by logger); the server applies the
	// snapshot's telemetry/logging output to it unless pinFormat (an
	// explicit --log-format).
	sink      *logsink.Sink
	pinFormat bool
}

func (l *logFlags) register(fs *flag.FlagSet, stdout io.Writer) {
	defFormat := "console"
	if !isTerminal(stdout) {
		defFormat = "json"
	}
	fs.StringVar(&l.format, "log-format", defFormat, "log format: json or console (default json when stdout is not a terminal)")
	fs.StringVar(&l.level, "log-level", "info", "log level: trace, debug, info, warn, error; when given, it wins over the snapshot's telemetry/logging")
	fs.StringVar(&l.metricsListen, "metrics-listen", "", "serve Prometheus /metrics on this address, whatever the snapshot's telemetry/metrics says")
	fs.StringVar(&l.accessLog, "access-log", "krakend", "access log on stdout: krakend (KrakenD's line), json, or off; a snapshot's router.disable_access_log turns it off too")
	fs.Float64Var(&l.accessLogSample, "access-log-sample", 1, "share of requests answered below 500 that get an access-log line, in (0, 1]; 5xx answers are always logged")
	fs.IntVar(&l.limits.MaxConnsPerIP, "max-conns-per-ip", server.DefaultMaxConnsPerIP, "open connections allowed from one client IP (the TCP peer); more are answered 429 and closed; -1: no limit")
	fs.IntVar(&l.limits.MaxConns, "max-conns", server.DefaultMaxConns, "connections (and so requests) served at once; more are answered 503 and closed; -1: no limit")
}

// serverConfig is the part of the server's settings both modes take from
// their flags; the caller adds what is its own (agent pings, health).
func (l *logFlags) serverConfig(listen string, log zerolog.Logger, lv *loglevel.Var, pinLevel bool) server.Config {
	return server.Config{
		Listen:        listen,
		Logger:        log,
		BuildVersion:  buildVersion,
		MetricsListen: l.metricsListen,
		LogLevel:      l.level,
		Level:         lv,
		PinLogLevel:   pinLevel,
		LogSink:       l.sink,
		PinLogFormat:  l.pinFormat,
		AccessLog:     l.accessLogConfig(),
		Limits:        l.limits,
	}
}

// accessLogConfig is the server's access-log setting from the flags.
func (l *logFlags) accessLogConfig() accesslog.Config {
	if l.accessLog == "off" || l.out == nil {
		return accesslog.Config{}
	}
	f, _ := accesslog.ParseFormat(l.accessLog)
	return accesslog.Config{Out: l.out, Format: f, SampleRate: l.accessLogSample}
}

func (l *logFlags) validate() error {
	var errs []error
	if l.format != "json" && l.format != "console" {
		errs = append(errs, fmt.Errorf("--log-format: unsupported %q (json, console)", l.format))
	}
	if _, err := zerolog.ParseLevel(l.level); err != nil || l.level == "" {
		errs = append(errs, fmt.Errorf("--log-level: unsupported %q (trace, debug, info, warn, error)", l.level))
	}
	if l.accessLog != "off" {
		if _, err := accesslog.ParseFormat(l.accessLog); err != nil || l.accessLog == "" {
			errs = append(errs, fmt.Errorf("--access-log: unsupported %q (krakend, json, off)", l.accessLog))
		}
	}
	if !(l.accessLogSample > 0 && l.accessLogSample <= 1) {
		errs = append(errs, fmt.Errorf("--access-log-sample: %v: must be in (0, 1]", l.accessLogSample))
	}
	if l.limits.MaxConnsPerIP == 0 || l.limits.MaxConnsPerIP < -1 {
		errs = append(errs, fmt.Errorf("--max-conns-per-ip: want a positive count or -1 (no limit), got %d", l.limits.MaxConnsPerIP))
	}
	if l.limits.MaxConns == 0 || l.limits.MaxConns < -1 {
		errs = append(errs, fmt.Errorf("--max-conns: want a positive count or -1 (no limit), got %d", l.limits.MaxConns))
	}
	return errors.Join(errs...)
}

// logger builds the process logger on a level of its own (the server moves
// it to the snapshot's telemetry/logging level unless --log-level pins it)
// and routes go-redis' own log lines to it.
func (l *logFlags) logger(stdout io.Writer) (zerolog.Logger, *loglevel.Var) {
	l.out = stdout
	level, _ := zerolog.ParseLevel(l.level)
	lv := loglevel.New(level)
	var w io.Writer = stdout
	if l.format == "console" {
		w = zerolog.ConsoleWriter{Out: stdout, NoColor: os.Getenv("NO_COLOR") != "" || !isTerminal(stdout)}
	}
	l.sink = logsink.New(w, stdout)
	log := zerolog.New(lv.Writer(l.sink)).With().Timestamp().Str("build", buildVersion).Logger()
	clusterlimit.SetRedisLogger(log)
	return log, lv
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// parseFlags parses args and reports whether to stop with an exit code:
// --help exits 0, errors and stray arguments exit 2.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (exit bool, code int) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, exitOK
		}
		return true, exitUsage // the flag package printed the error and usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments: %s\n", fs.Name(), strings.Join(fs.Args(), " "))
		fs.Usage()
		return true, exitUsage
	}
	return false, exitOK
}

// isSet reports whether the flag name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	*s = append(*s, v)
	return nil
}
