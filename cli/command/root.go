// Package command implements gwctl, the operator's CLI for the control
// plane: validate (offline), push, diff, status, history, rollback, revoke,
// revocations, certs and audit.
//
// Run is the whole program behind a thin main. Every subcommand lives in its
// own file; this file holds the global flags, the connection to the admin
// API (bearer token per call, one timeout per RPC), the mapping of gRPC
// errors to exit codes and the small output helpers they share.
//
// command imports only proto/gen, controlplane/config (validate runs the
// control plane's own compiler offline) and cli.
package command

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	osuser "os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/apigw/gateway/controlplane/config"
	"github.com/apigw/gateway/controlplane/config/flexible"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/proto/violation"
)

// Exit codes of gwctl.
const (
	ExitOK          = 0
	ExitRejected    = 1 // violations, NACK, refused request
	ExitUsage       = 2 // bad flags or arguments
	ExitTimeout     = 3 // an RPC or --wait timed out
	ExitUnavailable = 4 // control plane unreachable, or the token refused
)

// Defaults of the global flags.
const (
	DefaultServer     = "127.0.0.1:9000"
	DefaultRPCTimeout = 10 * time.Second
)

// ExitError is the error Run returns for every non-zero exit. Its message
// has already been written to stderr.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode maps Run's result to a process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitRejected
}

func exitf(code int, format string, args ...any) *ExitError {
	return &ExitError{Code: code, Err: fmt.Errorf(format, args...)}
}

// env is what Run takes from the process; tests replace it.
type env struct {
	getenv func(string) string
	// environ lists the environment as KEY=value (KRAKEND_* overrides).
	environ func() []string
	now     func() time.Time
	// tty reports whether stdout is a terminal (progress is rewritten in
	// place then).
	tty bool
}

func processEnv(stdout io.Writer) env {
	tty := false
	if f, ok := stdout.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return env{getenv: os.Getenv, environ: os.Environ, now: time.Now, tty: tty}
}

// Run runs gwctl with args (without the program name), writing results to
// stdout and errors to stderr. It returns nil on success, or an *ExitError
// carrying the exit code whose message it has already printed.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return run(ctx, args, stdout, stderr, processEnv(stdout))
}

// cli is one invocation.
type cli struct {
	stdout, stderr io.Writer
	env            env
	server         string
	tokenFile      string
	caFile         string // TLS to the admin API, verified by this CA bundle
	useTLS         bool   // TLS to the admin API, verified by the system roots
	certFile       string // client certificate for an admin API that requires one
	keyFile        string
	timeout        time.Duration
	sub            subcommand // the command being run
}

// subcommand is one gwctl verb.
type subcommand struct {
	name    string
	args    string // usage synopsis after the name
	summary string
	remote  bool // talks to the control plane: takes --server and --token-file too
	run     func(ctx context.Context, c *cli, args []string) error
}

var subcommands = []subcommand{
	validateCommand,
	renderCommand,
	pushCommand,
	diffCommand,
	statusCommand,
	historyCommand,
	rollbackCommand,
	promoteCommand,
	abortCommand,
	revokeCommand,
	revocationsCommand,
	certsCommand,
	auditCommand,
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, e env) error {
	c := &cli{stdout: stdout, stderr: stderr, env: e}
	fs := flag.NewFlagSet("gwctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	serverDef := DefaultServer
	if v := e.getenv("GWCTL_SERVER"); v != "" {
		serverDef = v
	}
	fs.StringVar(&c.server, "server", serverDef, serverFlagHelp)
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the admin token (env GWCTL_TOKEN holds the token itself, GWCTL_TOKEN_FILE a file; default "+defaultTokenFile(e.getenv)+")")
	fs.StringVar(&c.caFile, "ca", e.getenv("GWCTL_CA"), caFlagHelp)
	fs.BoolVar(&c.useTLS, "tls", false, tlsFlagHelp)
	fs.StringVar(&c.certFile, "tls-cert", e.getenv("GWCTL_TLS_CERT"), tlsCertFlagHelp)
	fs.StringVar(&c.keyFile, "tls-key", e.getenv("GWCTL_TLS_KEY"), tlsKeyFlagHelp)
	fs.DurationVar(&c.timeout, "timeout", DefaultRPCTimeout, "timeout of each call to the control plane (push and rollback --wait have their own)")
	fs.Usage = func() { usage(fs.Output(), fs) }

	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err} // the flag package printed it
	}
	if fs.NArg() == 0 {
		usage(stderr, fs)
		return c.fail(exitf(ExitUsage, "no command given"))
	}
	if c.timeout <= 0 {
		return c.fail(exitf(ExitUsage, "--timeout: must be positive, got %s", c.timeout))
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	if name == "help" {
		usage(stdout, fs)
		return nil
	}
	for _, sc := range subcommands {
		if sc.name == name {
			c.sub = sc
			return c.fail(sc.run(ctx, c, rest))
		}
	}
	usage(stderr, fs)
	return c.fail(exitf(ExitUsage, "unknown command %q", name))
}

// fail prints err (once) and returns it as an *ExitError.
func (c *cli) fail(err error) error {
	if err == nil {
		return nil
	}
	var ee *ExitError
	if !errors.As(err, &ee) {
		ee = &ExitError{Code: ExitRejected, Err: err}
	}
	if ee.Err != nil && ee.Err.Error() != "" && !errors.Is(ee.Err, errPrinted) {
		fmt.Fprintf(c.stderr, "gwctl: %v\n", ee.Err)
	}
	return ee
}

// errPrinted marks an error whose explanation is already on the screen.
var errPrinted = errors.New("")

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: gwctl [global flags] <command> [flags] [args]\n\nCommands:\n")
	for _, sc := range subcommands {
		fmt.Fprintf(w, "  %-12s %s\n", sc.name, sc.summary)
	}
	fmt.Fprintf(w, "\nRun 'gwctl <command> --help' for a command's flags.\n\nGlobal flags:\n")
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
	fmt.Fprintf(w, "\nExit codes: 0 ok, 1 rejected (violations, NACK), 2 usage, 3 timeout, 4 control plane unreachable or token refused.\n")
}

// newFlagSet returns the flag set of the running subcommand, with --help
// printing its synopsis. Remote commands also take --server and
// --token-file.
func (c *cli) newFlagSet() *flag.FlagSet {
	sc := c.sub
	fs := flag.NewFlagSet("gwctl "+sc.name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	if sc.remote {
		// The global flags are accepted after the command as well.
		fs.StringVar(&c.server, "server", c.server, serverFlagHelp)
		fs.StringVar(&c.tokenFile, "token-file", c.tokenFile, "file holding the admin token (env GWCTL_TOKEN, GWCTL_TOKEN_FILE)")
		fs.StringVar(&c.caFile, "ca", c.caFile, caFlagHelp)
		fs.BoolVar(&c.useTLS, "tls", c.useTLS, tlsFlagHelp)
		fs.StringVar(&c.certFile, "tls-cert", c.certFile, tlsCertFlagHelp)
		fs.StringVar(&c.keyFile, "tls-key", c.keyFile, tlsKeyFlagHelp)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\n%s\n", strings.TrimSpace("gwctl "+sc.name+" "+sc.args), sc.summary)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintf(fs.Output(), "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// rpcTimeoutFlag registers --timeout as the call timeout (commands without
// --wait).
func (c *cli) rpcTimeoutFlag(fs *flag.FlagSet) {
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "timeout of each call to the control plane")
}

// parse parses a subcommand's args, flags and positional arguments mixed
// ("push FILE --wait" as well as "push --wait FILE"), and checks the number
// of positional arguments. errHelp means --help was printed.
func parse(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, &ExitError{Code: ExitUsage, Err: errPrinted}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) != want {
		fs.Usage()
		return nil, exitf(ExitUsage, "%s: want %d argument(s), got %d", fs.Name(), want, len(pos))
	}
	return pos, nil
}

// errHelp is returned by parse after printing --help; the command exits 0.
var errHelp = errors.New("help")

// helpOK turns errHelp into success.
func helpOK(err error) error {
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

// defaultTokenFile is the control plane's default token path:
// ${XDG_STATE_HOME:-$HOME/.local/state}/apigw/controlplane/admin.token.
func defaultTokenFile(getenv func(string) string) string {
	base := getenv("XDG_STATE_HOME")
	if base == "" {
		home := getenv("HOME")
		if home == "" {
			return ""
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "apigw", "controlplane", "admin.token")
}

// token finds the admin token: --token-file, then GWCTL_TOKEN, then
// GWCTL_TOKEN_FILE, then the control plane's default path.
func (c *cli) token() (string, error) {
	file := c.tokenFile
	if file == "" {
		if t := strings.TrimSpace(c.env.getenv("GWCTL_TOKEN")); t != "" {
			return t, nil
		}
		file = c.env.getenv("GWCTL_TOKEN_FILE")
	}
	if file == "" {
		file = defaultTokenFile(c.env.getenv)
	}
	if file == "" {
		return "", exitf(ExitUnavailable, "no admin token: pass --token-file or set GWCTL_TOKEN")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", exitf(ExitUnavailable, "read admin token: %v (pass --token-file or set GWCTL_TOKEN)", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", exitf(ExitUnavailable, "admin token file %s is empty", file)
	}
	return t, nil
}

// bearer sends the admin token with every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false: the admin API listens on loopback.
func (bearer) RequireTransportSecurity() bool { return false }

// admin is a connected admin API client: one connection per --server
// address, cur the one calls go to first.
type admin struct {
	c     *cli
	addrs []string
	conns []*grpc.ClientConn
	apis  []gatewayv1.AdminServiceClient
	cur   int
}

// dial prepares the admin client (gRPC connects on the first call).
func (c *cli) dial() (*admin, error) {
	if c.timeout <= 0 {
		return nil, exitf(ExitUsage, "--timeout: must be positive, got %s", c.timeout)
	}
	tok, err := c.token()
	if err != nil {
		return nil, err
	}
	creds, err := c.transportCredentials()
	if err != nil {
		return nil, err
	}
	a := &admin{c: c}
	for addr := range strings.SplitSeq(c.server, ",") {
		addr = strings.TrimSpace(addr)
		if addr == "" {
			a.close()
			return nil, exitf(ExitUsage, "--server %q: empty address", c.server)
		}
		conn, err := grpc.NewClient(addr,
			grpc.WithTransportCredentials(creds),
			grpc.WithPerRPCCredentials(bearer(tok)),
			grpc.WithUserAgent("gwctl"),
		)
		if err != nil {
			a.close()
			return nil, exitf(ExitUsage, "--server %q: %v", addr, err)
		}
		a.addrs = append(a.addrs, addr)
		a.conns = append(a.conns, conn)
		a.apis = append(a.apis, gatewayv1.NewAdminServiceClient(conn))
	}
	return a, nil
}

const (
	serverFlagHelp  = "control plane admin address host:port, or a comma list of replicas: a call that finds one unavailable is tried on the next (env GWCTL_SERVER)"
	caFlagHelp      = "PEM CA bundle verifying the control plane's admin TLS certificate; enables TLS (env GWCTL_CA; with the built-in PKI: <data-dir>/pki/ca.crt)"
	tlsFlagHelp     = "use TLS to the admin API, verified by the system's roots (implied by --ca)"
	tlsCertFlagHelp = "PEM client certificate for an admin API that requires one (gw-controlplane --admin-tls-client-ca; env GWCTL_TLS_CERT); implies TLS"
	tlsKeyFlagHelp  = "PEM key of --tls-cert (env GWCTL_TLS_KEY)"
)

// transportCredentials is TLS when --ca or --tls asks for it, else
// plaintext (the control plane allows that on loopback only).
func (c *cli) transportCredentials() (credentials.TransportCredentials, error) {
	if (c.certFile == "") != (c.keyFile == "") {
		return nil, exitf(ExitUsage, "--tls-cert and --tls-key: give both or neither")
	}
	if c.caFile == "" && !c.useTLS && c.certFile == "" {
		return insecure.NewCredentials(), nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.certFile != "" {
		pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
		if err != nil {
			return nil, exitf(ExitUsage, "--tls-cert: %v", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	if c.caFile != "" {
		b, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, exitf(ExitUsage, "--ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, exitf(ExitUsage, "--ca %s: no PEM certificate", c.caFile)
		}
		tc.RootCAs = pool
	}
	return credentials.NewTLS(tc), nil
}

func (a *admin) close() {
	for _, conn := range a.conns {
		conn.Close()
	}
}

// call runs one RPC (a method expression of AdminServiceClient) with the
// per-call timeout and maps its error. When the control plane answers
// Unavailable (not running, shutting down, unreachable) the call is made
// again on the next --server address, each address once; later calls start
// at the one that answered. Every admin call can be repeated: a push or
// rollback of content that is already current stores nothing new, and a
// revocation stored twice revokes the same tokens.
func call[Req, Resp any](ctx context.Context, a *admin, op string, rpc func(gatewayv1.AdminServiceClient, context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	var (
		resp Resp
		err  error
	)
	for i := range a.apis {
		cctx, cancel := context.WithTimeout(ctx, a.c.timeout)
		resp, err = rpc(a.apis[a.cur], cctx, req)
		cancel()
		if err == nil {
			return resp, nil
		}
		if status.Code(err) != codes.Unavailable || i == len(a.apis)-1 || ctx.Err() != nil {
			break
		}
		fmt.Fprintf(a.c.stderr, "gwctl: %s: %s unavailable, trying %s\n", op, a.addrs[a.cur], a.addrs[(a.cur+1)%len(a.addrs)])
		a.cur = (a.cur + 1) % len(a.apis)
	}
	return resp, a.c.rpcError(op, err)
}

// rpcError maps a failed call to an exit code and message. Validation
// failures print every violation first.
func (c *cli) rpcError(op string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.DeadlineExceeded) {
			return exitf(ExitTimeout, "%s: timed out after %s", op, c.timeout)
		}
		return exitf(ExitRejected, "%s: %v", op, err)
	}
	switch st.Code() {
	case codes.Unavailable:
		return exitf(ExitUnavailable, "%s: cannot reach the control plane at %s: %s", op, c.server, st.Message())
	case codes.Unauthenticated:
		return exitf(ExitUnavailable, "%s: the control plane refused the admin token: %s", op, st.Message())
	case codes.PermissionDenied:
		return exitf(ExitUnavailable, "%s: not allowed: %s", op, st.Message())
	case codes.DeadlineExceeded:
		return exitf(ExitTimeout, "%s: timed out after %s", op, c.timeout)
	case codes.InvalidArgument:
		if vs := violations(st); len(vs) > 0 {
			for _, v := range vs {
				fmt.Fprintln(c.stderr, config.FormatViolation(v))
			}
			return exitf(ExitRejected, "%s: rejected: %d violation%s", op, len(vs), plural(len(vs)))
		}
	}
	msg := st.Message()
	if !strings.HasPrefix(msg, op+":") {
		msg = op + ": " + msg
	}
	return exitf(ExitRejected, "%s", msg)
}

// violations extracts the field violations of a status: the exact ones of a
// gateway.v1.ValidateResponse detail, else those of a google.rpc.BadRequest
// (whose descriptions are "kind: detail").
func violations(st *status.Status) []*gatewayv1.FieldViolation {
	var fromBadRequest []*gatewayv1.FieldViolation
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *gatewayv1.ValidateResponse:
			if len(d.GetViolations()) > 0 {
				return d.GetViolations()
			}
		case *errdetails.BadRequest:
			for _, fv := range d.GetFieldViolations() {
				kind, detail, ok := strings.Cut(fv.GetDescription(), ": ")
				if !ok {
					kind, detail = violation.Invalid.String(), fv.GetDescription()
				}
				fromBadRequest = append(fromBadRequest, &gatewayv1.FieldViolation{Path: fv.GetField(), Kind: kind, Detail: detail})
			}
		}
	}
	return fromBadRequest
}

// environ returns the process environment (nil in tests that give none).
func (c *cli) environ() []string {
	if c.env.environ == nil {
		return nil
	}
	return c.env.environ()
}

// readSource reads a config file for the admin API. A Flexible Config
// template (FC_ENABLE) is rendered first and checked here, so its
// violations name the template lines, and the control plane stores the
// render with the hashes of the files it came from. KRAKEND_* environment
// overrides are resolved here too, so the control plane stores the
// configuration as it will run: a file they change is sent as the JSON
// document with the overrides applied (gwctl render prints it).
func (c *cli) readSource(path string) (*gatewayv1.ConfigSource, error) {
	l, err := c.load(path, false)
	if err != nil {
		return nil, err
	}
	if l.files != nil {
		_, err := config.CompileWith(l.filename, l.content, config.Options{Env: c.environ(), Origin: l.origin, ReadFile: config.OSReadFile})
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			for _, v := range ve.Violations {
				fmt.Fprintln(c.stderr, config.FormatViolation(v))
			}
			return nil, exitf(ExitRejected, "%s: rejected: %d violation%s", path, len(ve.Violations), plural(len(ve.Violations)))
		}
	}
	name, resolved, err := config.Resolve(filepath.Base(l.filename), l.content, c.environ())
	if err != nil {
		return nil, exitf(ExitRejected, "%s: %v", path, err)
	}
	src := &gatewayv1.ConfigSource{Filename: name, Content: resolved}
	for _, f := range l.files {
		src.RenderedFrom = append(src.RenderedFrom, &gatewayv1.SourceFile{Name: f.Name, Sha256: f.SHA256})
	}
	// The files the configuration names (Lua sources, GraphQL query_path)
	// are read here, relative to gwctl's working directory (as KrakenD
	// reads them relative to its own), and sent along: the control plane
	// compiles them into the snapshot and reads no files. A missing file
	// is left out; the control plane names it.
	for _, name := range config.ReferencedFiles(name, resolved, nil) {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		src.LuaSources = append(src.LuaSources, &gatewayv1.LuaSource{Name: name, Text: string(b)})
	}
	return src, nil
}

// loaded is a config file as the commands compile it.
type loaded struct {
	// filename is the name to compile under (the render's when rendered).
	filename string
	content  []byte
	// origin maps a rendered position to its template line (nil when the
	// file is not a render).
	origin func(line, col int) (string, bool)
	// files are the render's inputs; nil when the file is not a render.
	files []flexible.File
}

// load reads the file at path, rendering it as KrakenD's Flexible Config
// does when FC_ENABLE is set (or render is true). A template error is an
// error: KrakenD would fall back to parsing the raw template.
func (c *cli) load(path string, render bool) (*loaded, error) {
	fc := flexible.FromEnv(c.env.getenv)
	if !fc.Enable && !render {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, exitf(ExitRejected, "read config: %v", err)
		}
		return &loaded{filename: path, content: b}, nil
	}
	r, err := flexible.Render(path, fc)
	if err != nil {
		return nil, exitf(ExitRejected, "%s: %v", path, err)
	}
	files := r.Files
	if files == nil {
		files = []flexible.File{}
	}
	return &loaded{filename: r.Filename, content: r.Content, origin: r.Origin, files: files}, nil
}

// defaultAuthor is $USER@host, or "" (the control plane records "unknown").
func (c *cli) defaultAuthor() string {
	user := c.env.getenv("USER")
	if user == "" {
		// $USER is often unset in containers and cron; the account name
		// still says who pushed.
		if u, err := osuser.Current(); err == nil {
			user = u.Username
		}
	}
	if user == "" {
		return ""
	}
	if host, err := os.Hostname(); err == nil && host != "" {
		return user + "@" + host
	}
	return user
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func shortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// ago renders how long before now t was, coarsely ("3s ago", "5m ago").
func ago(now, t time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

// oneLine makes a message fit a table cell.
func oneLine(s string, max int) string {
	s = printable(strings.Join(strings.Fields(s), " "))
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}

// printable escapes what a terminal would act on in a string that came from
// the control plane or an edge (node ids, regions, errors, authors, claim
// values): C0 and C1 control characters, DEL, invalid UTF-8 and the bidi
// overrides print as Go escapes (\x1b, \u202e) instead of being sent raw.
// Text output only; -o json is escaped by the encoder.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case unsafeRune(r):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return r == utf8.RuneError || unicode.IsControl(r) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}
