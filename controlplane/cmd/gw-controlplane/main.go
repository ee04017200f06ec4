// Command gw-controlplane runs the gateway control plane: it validates and
// stores configuration versions and token revocations (admin gRPC API, used
// by gwctl) and streams snapshots and revocation deltas to edges (sync gRPC
// API).
//
// This is a thin main: flags → Config.Validate → run(ctx). The logic lives in
// controlplane/service and controlplane/store. It must not import anything
// under edge/ or cli/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/apigw/gateway/controlplane/pki"
	"github.com/apigw/gateway/controlplane/service"
	"github.com/apigw/gateway/controlplane/store"
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "ca" {
		return runCA(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "token" {
		return runToken(args[1:], stdout, stderr)
	}
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "gw-controlplane: %v\n", err)
		return exitUsage
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "gw-controlplane: invalid flags:\n%v\n", err)
		return exitUsage
	}
	log := newLogger(cfg, stdout)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error().Err(err).Msg("exiting")
		return exitError
	}
	return exitOK
}

// Config is the control plane's process configuration, filled from flags.
type Config struct {
	DataDir          string
	Store            string // "bolt" or "" (the data dir's file) or etcd[s]://host:port,...[/prefix]
	EtcdCA           string // PEM CA verifying the etcd members (etcds://)
	EtcdCert         string // PEM client certificate for etcd (etcds://)
	EtcdKey          string
	EtcdUser         string // etcd user (etcd authentication); the password from EtcdPasswordFile or $GW_ETCD_PASSWORD
	EtcdPasswordFile string
	MaxStreamAge     time.Duration // 0 = streams are never ended for their age
	ReplicaName      string        // this replica on the fleet board (etcd); "" = host name and sync port
	FleetLeaseTTL    time.Duration // lease of this replica's fleet entries (etcd); 0 = service.DefaultFleetLeaseTTL
	AdminListen      string
	AdminAllowRemote bool
	AdminTokenFile   string // "" = <DataDir>/admin.token
	AdminTLSCert     string
	AdminTLSKey      string
	AdminTLSClientCA string // require admin clients to present a certificate from this CA
	InsecureAdmin    bool   // allow a non-loopback admin listener without TLS
	SyncListen       string
	SyncTLSCert      string
	SyncTLSKey       string
	SyncTLSClientCA  string
	InsecureSync     bool          // allow a non-loopback sync listener without mTLS
	CertWarnBefore   time.Duration // warn while the sync certificate expires within this
	MetricsListen    string        // "" = no metrics listener
	Pprof            bool          // Go's /debug/pprof/ on the metrics listener
	FleetListen      string        // "" = no fleet page
	Keepalive        time.Duration
	ShutdownTimeout  time.Duration
	RevocationTTL    time.Duration // lifetime of a revocation without expiry when the config has no revoker ttl
	RevocationGrace  time.Duration // how long expired revocations stay in the log
	MaxEdges         int           // fleet registry cap
	FleetTTL         time.Duration // disconnected edges are forgotten after this
	AdmissionRate    int           // new sync streams per second (burst twice that)
	LogLevel         string
	LogFormat        string // json or console
	AuditLog         string // "" = the process log, "-" = stdout, else a file appended to
	AuditRetain      int    // audit records kept in the store (0 = store.DefaultAuditRetain)
}

// tokenFile returns the admin token path, defaulting into the data dir.
func (c *Config) tokenFile() string {
	if c.AdminTokenFile != "" {
		return c.AdminTokenFile
	}
	return filepath.Join(c.DataDir, "admin.token")
}

// Validate checks every field and reports all problems at once.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir: required (neither $XDG_STATE_HOME nor $HOME is set)"))
	}
	errs = append(errs, c.validateStore()...)
	if c.MaxStreamAge < 0 {
		errs = append(errs, fmt.Errorf("--max-stream-age: must not be negative, got %s", c.MaxStreamAge))
	}
	if c.FleetLeaseTTL != 0 && c.FleetLeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("--fleet-lease-ttl: must be at least 1s, got %s", c.FleetLeaseTTL))
	}
	if len(c.ReplicaName) > 253 {
		errs = append(errs, fmt.Errorf("--replica-name: at most 253 bytes, got %d", len(c.ReplicaName)))
	}
	if err := checkListen(c.AdminListen); err != nil {
		errs = append(errs, fmt.Errorf("--admin-listen: %w", err))
	} else if !c.AdminAllowRemote && !isLoopback(c.AdminListen) {
		errs = append(errs, fmt.Errorf("--admin-listen: %q is not a loopback address; the admin API changes the whole fleet, pass --admin-allow-remote to expose it", c.AdminListen))
	}
	if err := checkListen(c.SyncListen); err != nil {
		errs = append(errs, fmt.Errorf("--sync-listen: %w", err))
	}
	if c.MetricsListen != "" {
		if err := checkListen(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-listen: %w", err))
		}
	} else if c.Pprof {
		errs = append(errs, errors.New("--pprof: serves on --metrics-listen, which is not set"))
	}
	if c.FleetListen != "" {
		if err := checkListen(c.FleetListen); err != nil {
			errs = append(errs, fmt.Errorf("--fleet-listen: %w", err))
		} else if !c.AdminAllowRemote && !isLoopback(c.FleetListen) {
			errs = append(errs, fmt.Errorf("--fleet-listen: %q is not a loopback address; like the admin API it needs --admin-allow-remote (and TLS) to be exposed", c.FleetListen))
		}
	}
	if (c.AdminTLSCert == "") != (c.AdminTLSKey == "") {
		errs = append(errs, errors.New("--admin-tls-cert and --admin-tls-key: give both or neither"))
	}
	if c.AdminTLSClientCA != "" && c.AdminTLSCert == "" && !pki.Exists(c.DataDir) {
		errs = append(errs, errors.New("--admin-tls-client-ca: needs TLS on the admin API (--admin-tls-cert and --admin-tls-key, or the built-in PKI)"))
	}
	if (c.SyncTLSCert == "") != (c.SyncTLSKey == "") {
		errs = append(errs, errors.New("--sync-tls-cert and --sync-tls-key: give both or neither"))
	}
	if c.SyncTLSClientCA != "" && c.SyncTLSCert == "" {
		errs = append(errs, errors.New("--sync-tls-client-ca: requires --sync-tls-cert and --sync-tls-key"))
	}
	if c.CertWarnBefore < 0 {
		errs = append(errs, fmt.Errorf("--cert-warn-before: must not be negative, got %s", c.CertWarnBefore))
	}
	if c.Keepalive <= 0 {
		errs = append(errs, fmt.Errorf("--keepalive: must be positive, got %s", c.Keepalive))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--shutdown-timeout: must be positive, got %s", c.ShutdownTimeout))
	}
	if c.RevocationTTL <= 0 || c.RevocationTTL > service.DefaultMaxRevocationTTL {
		errs = append(errs, fmt.Errorf("--revocation-ttl: must be positive and at most %s, got %s", service.DefaultMaxRevocationTTL, c.RevocationTTL))
	}
	if c.MaxEdges <= 0 {
		errs = append(errs, fmt.Errorf("--max-edges: must be positive, got %d", c.MaxEdges))
	}
	if c.FleetTTL <= 0 {
		errs = append(errs, fmt.Errorf("--fleet-ttl: must be positive, got %s", c.FleetTTL))
	}
	if c.AdmissionRate <= 0 {
		errs = append(errs, fmt.Errorf("--admission-rate: must be positive, got %d", c.AdmissionRate))
	}
	if c.AuditRetain < 0 {
		errs = append(errs, fmt.Errorf("--audit-retain: must be positive, got %d", c.AuditRetain))
	}
	if c.RevocationGrace <= 0 {
		errs = append(errs, fmt.Errorf("--revocation-grace: must be positive, got %s", c.RevocationGrace))
	}
	if _, err := zerolog.ParseLevel(c.LogLevel); err != nil || c.LogLevel == "" {
		errs = append(errs, fmt.Errorf("--log-level: unsupported %q (trace, debug, info, warn, error)", c.LogLevel))
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		errs = append(errs, fmt.Errorf("--log-format: unsupported %q (json, console)", c.LogFormat))
	}
	return errors.Join(errs...)
}

// validateStore checks --store and the etcd TLS flags.
func (c *Config) validateStore() []error {
	var errs []error
	tlsFlags := c.EtcdCA != "" || c.EtcdCert != "" || c.EtcdKey != ""
	if c.EtcdPasswordFile != "" && c.EtcdUser == "" {
		errs = append(errs, errors.New("--etcd-password-file: needs --etcd-user"))
	}
	if c.Store == "" || c.Store == "bolt" {
		if tlsFlags {
			errs = append(errs, errors.New("--etcd-ca, --etcd-cert, --etcd-key: only apply to --store etcds://HOST:PORT"))
		}
		if c.EtcdUser != "" {
			errs = append(errs, errors.New("--etcd-user: only applies to --store etcd:// or etcds://"))
		}
		if c.ReplicaName != "" || c.FleetLeaseTTL != 0 {
			errs = append(errs, errors.New("--replica-name, --fleet-lease-ttl: only apply to --store etcd:// or etcds:// (with bolt there is one control plane)"))
		}
		return errs
	}
	_, _, useTLS, err := store.ParseEtcdURL(c.Store)
	if err != nil {
		return append(errs, fmt.Errorf("--store: %w (or bolt)", err))
	}
	if tlsFlags && !useTLS {
		errs = append(errs, errors.New("--etcd-ca, --etcd-cert, --etcd-key: need --store etcds://HOST:PORT (TLS to etcd)"))
	}
	if (c.EtcdCert == "") != (c.EtcdKey == "") {
		errs = append(errs, errors.New("--etcd-cert and --etcd-key: give both or neither"))
	}
	return errs
}

func checkListen(addr string) error {
	if addr == "" {
		return errors.New("required")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	return nil
}

// isLoopback reports whether addr only listens on the local machine. An empty
// host, 0.0.0.0 and any name other than localhost are not loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// defaultDataDir is ${XDG_STATE_HOME:-$HOME/.local/state}/apigw/controlplane,
// or "" when neither variable is set.
func defaultDataDir() string {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home := os.Getenv("HOME")
		if home == "" {
			return ""
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "apigw", "controlplane")
}

// stdoutIsTerminal picks the default log format.
func stdoutIsTerminal() bool {
	fi, err := os.Stdout.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func parseFlags(args []string, stderr io.Writer) (*Config, error) {
	fs := flag.NewFlagSet("gw-controlplane", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defaultFormat := "json"
	if stdoutIsTerminal() {
		defaultFormat = "console"
	}
	c := &Config{}
	fs.StringVar(&c.DataDir, "data-dir", defaultDataDir(),
		"directory for the version store and the admin token, from ${XDG_STATE_HOME:-$HOME/.local/state}/apigw/controlplane")
	fs.StringVar(&c.Store, "store", "bolt",
		"where versions and revocations are stored: bolt (the embedded file <data-dir>/controlplane.db, one control plane) or etcd://host:port[,host:port...][/prefix] (several replicas share it; prefix default apigw), etcds://... for TLS to etcd")
	fs.StringVar(&c.EtcdCA, "etcd-ca", "", "PEM CA bundle verifying the etcd members (with --store etcds://; default: the system roots)")
	fs.StringVar(&c.EtcdCert, "etcd-cert", "", "PEM client certificate presented to etcd (with --store etcds:// and --etcd-key)")
	fs.StringVar(&c.EtcdKey, "etcd-key", "", "PEM key of --etcd-cert")
	fs.StringVar(&c.EtcdUser, "etcd-user", "", "etcd user, when the cluster has authentication enabled; the password is read from --etcd-password-file or $"+etcdPasswordEnv+" (never a flag: command lines are visible to every local user)")
	fs.StringVar(&c.EtcdPasswordFile, "etcd-password-file", "", "file holding the --etcd-user password (one line; keep it mode 0600)")
	fs.DurationVar(&c.MaxStreamAge, "max-stream-age", 30*time.Minute,
		"end each edge stream after this long (±10% jitter); the edge reconnects at once, possibly to another replica, and is not reconfigured. Rebalances edges after a replica comes back; 0 disables")
	fs.StringVar(&c.ReplicaName, "replica-name", "",
		"with --store etcd://: this replica's name in gwctl status and on the fleet board the replicas share (default: host name and --sync-listen port)")
	fs.DurationVar(&c.FleetLeaseTTL, "fleet-lease-ttl", 0,
		"with --store etcd://: lease of the edge states this replica publishes for the others; when it dies they drop its edges this long after its last renewal (default 15s)")
	fs.StringVar(&c.AdminListen, "admin-listen", "127.0.0.1:9000",
		"host:port of the admin gRPC API (gwctl); must be a loopback address unless --admin-allow-remote")
	fs.BoolVar(&c.AdminAllowRemote, "admin-allow-remote", false,
		"allow --admin-listen on a non-loopback address (the token then crosses the network in clear text: put TLS in front)")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", "",
		"file holding the admin bearer token; default <data-dir>/admin.token. When the file does not exist a random token is generated into it (mode 0600)")
	fs.StringVar(&c.AdminTLSCert, "admin-tls-cert", "",
		"PEM certificate for TLS on the admin API (with --admin-tls-key; gwctl --ca verifies it); default off loopback: the built-in PKI's server certificate. Re-read when the file changes")
	fs.StringVar(&c.AdminTLSKey, "admin-tls-key", "", "PEM key of --admin-tls-cert")
	fs.StringVar(&c.AdminTLSClientCA, "admin-tls-client-ca", "",
		"PEM CA bundle: admin clients must also present a certificate it verifies (gwctl --tls-cert/--tls-key); audit records then name it (token:NAME, cert:ID). Use an operators' CA, not the edges'")
	fs.BoolVar(&c.InsecureAdmin, "insecure-admin", false,
		"allow a non-loopback --admin-listen without TLS (tokens and configurations cross the network in clear); warned at every start")
	fs.StringVar(&c.SyncListen, "sync-listen", "127.0.0.1:9001",
		"host:port of the sync gRPC API that edges dial")
	fs.StringVar(&c.SyncTLSCert, "sync-tls-cert", "",
		"PEM certificate for TLS on the sync listener (with --sync-tls-key); default: the built-in PKI of the data dir (gw-controlplane ca init), else plaintext (loopback only unless --insecure-sync). Re-read when the file changes")
	fs.StringVar(&c.SyncTLSKey, "sync-tls-key", "",
		"PEM private key for --sync-tls-cert")
	fs.StringVar(&c.SyncTLSClientCA, "sync-tls-client-ca", "",
		"PEM CA bundle; when set, edges must present a client certificate signed by it (mTLS), and the certificate names the edge (default with the built-in PKI: its CA)")
	fs.BoolVar(&c.InsecureSync, "insecure-sync", false,
		"allow --sync-listen on a non-loopback address without mTLS (plaintext, or TLS without client certificates): anyone who reaches it can pose as an edge and read every snapshot; warned at every start")
	fs.DurationVar(&c.CertWarnBefore, "cert-warn-before", 30*24*time.Hour,
		"warn (log, gw_controlplane_sync_cert_expiry_timestamp_seconds, gwctl status) while the sync TLS certificate expires within this; also logged when an edge connects with a client certificate expiring within it")
	fs.StringVar(&c.MetricsListen, "metrics-listen", "",
		"host:port serving Prometheus metrics on /metrics and the probes GET /healthz (alive) and GET /readyz (the store answers, not shutting down); off when empty")
	fs.BoolVar(&c.Pprof, "pprof", false,
		"also serve Go's profiles (net/http/pprof: CPU, heap, goroutines; /debug/pprof/heap?gc=1 runs a GC first) under /debug/pprof/ on --metrics-listen; for profiling, keep that listener private")
	fs.StringVar(&c.FleetListen, "fleet-listen", "",
		"host:port serving the read-only fleet page (HTML; any admin token, as the basic-auth password or a bearer token); off when empty. Off loopback it needs --admin-allow-remote and TLS, from the admin TLS flags or the built-in PKI, and --admin-tls-client-ca applies")
	fs.DurationVar(&c.Keepalive, "keepalive", 10*time.Second,
		"interval of keepalive messages on every edge stream")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second,
		"how long SIGINT/SIGTERM waits for in-flight calls before closing connections")
	fs.DurationVar(&c.RevocationTTL, "revocation-ttl", service.DefaultRevocationTTL,
		"how long a revocation without --until lasts when the current config has no auth/revoker ttl (at most a year)")
	fs.IntVar(&c.MaxEdges, "max-edges", service.DefaultMaxEdges,
		"most edges the fleet registry holds: a new node beyond it takes a disconnected entry's place (oldest first), or is refused while all are connected")
	fs.DurationVar(&c.FleetTTL, "fleet-ttl", service.DefaultFleetTTL,
		"a disconnected edge is dropped from the fleet (gwctl status) after this long")
	fs.IntVar(&c.AdmissionRate, "admission-rate", service.DefaultAdmissionRate,
		"new sync streams accepted per second (bursts of twice that); more are refused and the edges retry with backoff")
	fs.DurationVar(&c.RevocationGrace, "revocation-grace", service.DefaultRevocationGrace,
		"how long an expired revocation stays in the log before it is deleted (covers edges with a slow clock)")
	fs.StringVar(&c.AuditLog, "audit-log", "",
		"where audit records (push, rollback, revoke, certificates, refused calls) are written as JSON lines besides the store (gwctl audit): empty for the process log (log=audit, whatever --log-level), - for stdout, else a file appended to and synced per record")
	fs.IntVar(&c.AuditRetain, "audit-retain", store.DefaultAuditRetain,
		"audit records the store keeps (gwctl audit); the oldest are deleted beyond it")
	fs.StringVar(&c.LogLevel, "log-level", "info",
		"log level: trace, debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", defaultFormat,
		"log format on stdout: json or console; console when stdout is a terminal, else json")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: gw-controlplane [flags]

Runs the gateway control plane: the admin API validates and stores
configuration versions (gwctl push/status/history/rollback) and token
revocations (gwctl revoke/revocations), and the sync API streams the newest
snapshot and every revocation to every edge (gw-edge --controlplane).

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return c, nil
}

func newLogger(c *Config, stdout io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(c.LogLevel)
	if err != nil {
		level = zerolog.InfoLevel // unreachable after Validate
	}
	w := stdout
	if c.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: stdout, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}
