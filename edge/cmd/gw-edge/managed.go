package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/apigw/gateway/edge/agent"
	"github.com/apigw/gateway/edge/apply"
	"github.com/apigw/gateway/edge/auth"
	"github.com/apigw/gateway/edge/internal/loglevel"
	"github.com/apigw/gateway/edge/lkg"
	"github.com/apigw/gateway/edge/plan"
	"github.com/apigw/gateway/edge/server"
	"github.com/apigw/gateway/edge/watch"
	"github.com/apigw/gateway/internal/dirlock"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/proto/sign"
	"github.com/apigw/gateway/proto/tlsfile"
)

// defaultListen is KrakenD's default port, used when neither --listen nor a
// stored snapshot names one.
const defaultListen = ":8080"

// managedFlags are the flags of managed mode.
type managedFlags struct {
	logFlags
	controlplane addrList
	nodeID       string
	region       string
	listen       string
	dataDir      string
	disabled     stringList
	keepalive    time.Duration
	caFile       string
	certFile     string
	keyFile      string
	// publicKey pins the control plane's signing key; insecureUnsigned
	// accepts unsigned snapshots and revocations instead.
	publicKey        string
	insecureUnsigned bool
	// insecureSync allows plaintext to a control plane off loopback.
	insecureSync bool
}

// defaultDataDir is ${XDG_STATE_HOME:-$HOME/.local/state}/apigw/edge.
func defaultDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "apigw", "edge")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "apigw", "edge")
	}
	return ""
}

func (f *managedFlags) validate() error {
	errs := []error{f.logFlags.validate()}
	if len(f.controlplane) == 0 {
		errs = append(errs, errors.New("--controlplane: required (the control plane's sync address; use `gw-edge run -c FILE` to run without one)"))
	}
	if f.nodeID == "" {
		errs = append(errs, errors.New("--node-id: required (the hostname is unknown)"))
	}
	if f.dataDir == "" {
		errs = append(errs, errors.New("--data-dir: required (neither $XDG_STATE_HOME nor $HOME is set)"))
	}
	if f.listen != "" {
		if _, _, err := net.SplitHostPort(f.listen); err != nil {
			errs = append(errs, fmt.Errorf("--listen: %q is not host:port", f.listen))
		}
	}
	if f.keepalive <= 0 {
		errs = append(errs, fmt.Errorf("--keepalive: must be positive, got %s", f.keepalive))
	}
	if (f.certFile == "") != (f.keyFile == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key: give both or neither"))
	}
	if addr := f.plaintextOffLoopback(); addr != "" && !f.insecureSync {
		errs = append(errs, fmt.Errorf("--controlplane %s: not a loopback address, and no TLS: give --controlplane-ca with --tls-cert and --tls-key (gwctl certs issue writes them), or pass --insecure-sync", addr))
	}
	switch {
	case f.publicKey == "" && !f.insecureUnsigned:
		errs = append(errs, errors.New("--snapshot-public-key: required (the control plane's <data-dir>/signing.pub); --insecure-unsigned-snapshots accepts unsigned snapshots instead"))
	case f.publicKey != "" && f.insecureUnsigned:
		errs = append(errs, errors.New("--snapshot-public-key and --insecure-unsigned-snapshots: give one"))
	}
	return errors.Join(errs...)
}

// plaintextOffLoopback returns the first control-plane address that is not
// on this host when the edge would dial it without TLS (snapshots, with
// their backend credentials, would then cross the network in clear), or "".
func (f *managedFlags) plaintextOffLoopback() string {
	if f.caFile != "" || f.certFile != "" {
		return ""
	}
	for _, addr := range f.controlplane {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		if host == "localhost" {
			continue
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return addr
		}
	}
	return ""
}

// addrList is a repeatable flag of addresses, each value also a comma list.
type addrList []string

func (a *addrList) String() string { return strings.Join(*a, ",") }

func (a *addrList) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return fmt.Errorf("empty address in %q", v)
		}
		*a = append(*a, part)
	}
	return nil
}

func runManaged(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f managedFlags
	fs := flag.NewFlagSet("gw-edge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host, _ := os.Hostname()
	fs.Var(&f.controlplane, "controlplane", "control plane sync address (host:port); required. Repeat it or give a comma list for several replicas: the edge starts at a random one and moves to the next when a stream ends")
	fs.StringVar(&f.nodeID, "node-id", host, "this edge's identity in the fleet")
	fs.StringVar(&f.region, "region", "default", "region this edge reports (gwctl status groups by it)")
	fs.StringVar(&f.listen, "listen", "", "HTTP listen address, bound once (default: the stored snapshot's listen_ip:port, else "+defaultListen+")")
	fs.StringVar(&f.dataDir, "data-dir", defaultDataDir(), "directory of the last-known-good snapshots")
	fs.Var(&f.disabled, "disable-feature", "refuse snapshots using this feature (repeatable; test hook for version skew)")
	fs.DurationVar(&f.keepalive, "keepalive", watch.DefaultKeepalive, "interval of the keepalives sent to the control plane")
	fs.StringVar(&f.caFile, "controlplane-ca", "", "PEM CA bundle verifying the control plane; enables TLS")
	fs.StringVar(&f.certFile, "tls-cert", "", "PEM client certificate for mTLS with the control plane; enables TLS")
	fs.StringVar(&f.keyFile, "tls-key", "", "PEM key of --tls-cert")
	fs.StringVar(&f.publicKey, "snapshot-public-key", "", "PEM Ed25519 public key(s) of the control plane (its <data-dir>/signing.pub); every snapshot and revocation message, received or loaded from disk, must be signed by one; required unless --insecure-unsigned-snapshots")
	fs.BoolVar(&f.insecureUnsigned, "insecure-unsigned-snapshots", false, "accept snapshots and revocations without checking a signature (anyone who reaches the edge's control-plane connection can then reconfigure it); warned at every start")
	fs.BoolVar(&f.insecureSync, "insecure-sync", false, "dial a control plane that is not on loopback without TLS (snapshots, backend credentials included, cross the network in clear, and the control plane is not authenticated); warned at every start")
	f.logFlags.register(fs, stdout)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage:\n  gw-edge --controlplane ADDR --node-id ID --region R --listen ADDR --data-dir DIR [flags]\n  gw-edge run -c FILE [-d] [--listen ADDR]   (standalone, see gw-edge run --help)\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if exit, code := parseFlags(fs, args, stderr); exit {
		return code
	}
	if err := f.validate(); err != nil {
		fmt.Fprintf(stderr, "gw-edge: invalid flags:\n%v\n", err)
		return exitUsage
	}
	log, lv := f.logger(stdout)
	f.pinFormat = isSet(fs, "log-format")
	defer f.sink.Close()
	if err := managed(ctx, &f, isSet(fs, "log-level"), log, lv); err != nil {
		log.Error().Err(err).Msg("exiting")
		return exitError
	}
	return exitOK
}

// managed runs the edge until ctx is done: LKG first, then the control plane.
func managed(ctx context.Context, f *managedFlags, pinLevel bool, log zerolog.Logger, lv *loglevel.Var) error {
	var tlsCfg *tls.Config
	var clientCert *tlsfile.Reloader
	if f.caFile != "" || f.certFile != "" {
		c, r, err := watch.LoadTLS(f.caFile, f.certFile, f.keyFile)
		if err != nil {
			return err
		}
		tlsCfg, clientCert = c, r
	}
	if addr := f.plaintextOffLoopback(); addr != "" {
		log.Warn().Str("controlplane", addr).Msg("--insecure-sync: the control-plane connection is plaintext off this host; anyone on the path reads every snapshot")
	}
	var verifier *sign.Verifier
	if f.insecureUnsigned {
		log.Warn().Msg("--insecure-unsigned-snapshots: snapshots and revocations are not verified; whoever answers on the control-plane address controls this edge")
	} else {
		v, err := sign.LoadVerifier(f.publicKey)
		if err != nil {
			return err
		}
		verifier = v
		log.Info().Strs("key_ids", v.KeyIDs()).Msg("snapshots and revocations must be signed by a pinned key")
	}
	dl, err := dirlock.Acquire(f.dataDir)
	if err != nil {
		return err
	}
	defer dl.Release()
	st, err := lkg.New(lkg.Config{Dir: f.dataDir, Logger: log, Verifier: verifier})
	if err != nil {
		return err
	}
	stored, err := st.LoadAll()
	if err != nil {
		return err
	}

	// The revocation set from the last run: a restart without the control
	// plane keeps enforcing it. A missing or corrupt copy leaves an empty
	// set at seq 0 (the control plane then sends it all) marked unknown:
	// protected routes answer 503 and health says degraded until the
	// control plane answers.
	rev := loadRevocations(st, log)
	listen := f.listen
	if listen == "" {
		listen = storedListenAddr(stored, log)
	}
	var agents *agent.Runner
	cfg := f.serverConfig(listen, log, lv, pinLevel)
	cfg.AgentPings = func() map[string]time.Time { return agents.Pings() }
	cfg.Degraded = func(p *plan.Plan) string { return revocationHealth(rev, p) }
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	var reg *registries
	defer func() {
		// Stop serving first: no plan uses the registries afterwards.
		srv.Close()
		if reg != nil {
			reg.close()
		}
	}()
	reg, err = newRegistries(srv.Registry(), log, f.disabled, rev)
	if err != nil {
		return err
	}
	reg.deps.Stats = srv.Stats()
	if agents, err = newAgents(srv.Registry(), log); err != nil {
		return err
	}
	// Runs before the deferred srv.Close: agents stop first.
	defer agents.Close()
	applier, err := apply.New(apply.Config{Target: agentTarget{srv: srv, agents: agents}, Logger: log, Deps: reg.deps, Store: st, Verifier: verifier, Registerer: srv.Registry()})
	if err != nil {
		return err
	}
	restoreNewest(ctx, applier, stored, log)

	wcfg := watch.Config{
		Targets:          f.controlplane,
		NodeID:           f.nodeID,
		Region:           f.region,
		BuildVersion:     buildVersion,
		SchemaVersion:    apply.SchemaVersion,
		DisabledFeatures: f.disabled,
		Applier:          applier,
		Revocations:      revocationStore{set: rev, store: st},
		Logger:           log,
		Keepalive:        f.keepalive,
		Agents:           func() []*gatewayv1.AgentState { return agentStates(agents) },
		Counters:         srv.Counters,
		Registerer:       srv.Registry(),
		TLS:              tlsCfg,
		Verifier:         verifier,
	}
	wc, err := watch.New(wcfg)
	if err != nil {
		return err
	}
	defer wc.Close()

	log.Info().Str("addr", srv.Addr().String()).Msg("listening")
	g, gctx := errgroup.WithContext(ctx)
	if clientCert != nil {
		expiry := prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gw_edge_client_cert_expiry_timestamp_seconds",
			Help: "When the edge's client certificate for the control plane expires (unix seconds).",
		})
		if err := srv.Registry().Register(expiry); err != nil {
			return err
		}
		g.Go(func() error { watchClientCert(gctx, clientCert, expiry, log); return nil })
	}
	g.Go(func() error { return srv.Serve(gctx) })
	g.Go(func() error { return wc.Run(gctx) })
	err = g.Wait()
	log.Info().Msg("stopped")
	return err
}

// clientCertWarnBefore is how long before its client certificate expires
// the edge starts warning.
const clientCertWarnBefore = 30 * 24 * time.Hour

// watchClientCert sets the expiry gauge and logs, at start and hourly,
// while the client certificate expires within clientCertWarnBefore (an
// expired one: the control plane refuses the edge, which keeps serving its
// last good snapshot).
func watchClientCert(ctx context.Context, cert *tlsfile.Reloader, expiry prometheus.Gauge, log zerolog.Logger) {
	cert.WatchExpiry(ctx, time.Hour, func(na, now time.Time) {
		expiry.Set(float64(na.Unix()))
		switch left := na.Sub(now); {
		case left <= 0:
			log.Error().Time("not_after", na).Msg("the client certificate has expired: the control plane refuses this edge, which keeps serving its last good snapshot; issue a new one (gwctl certs issue)")
		case left < clientCertWarnBefore:
			log.Warn().Time("not_after", na).Dur("left", left.Round(time.Minute)).Msg("the client certificate expires soon; issue a new one (gwctl certs issue), it is picked up without a restart")
		}
	})
}

// restoreNewest serves the newest stored snapshot that builds; an older one
// when the newest cannot be served by this build (a downgrade, for one).
func restoreNewest(ctx context.Context, a *apply.Applier, stored []*gatewayv1.SnapshotEnvelope, log zerolog.Logger) {
	for _, env := range stored {
		if err := a.Restore(ctx, env); err != nil {
			log.Warn().Uint64("version", env.GetVersion()).Err(err).Msg("stored snapshot cannot be served; trying an older one")
			continue
		}
		return
	}
	if len(stored) == 0 {
		log.Info().Msg("no stored snapshot; answering 503 until the control plane sends one")
	} else {
		log.Warn().Msg("no stored snapshot can be served; answering 503 until the control plane sends one")
	}
}

// storedListenAddr is the listen address of the newest stored snapshot, or
// defaultListen.
func storedListenAddr(stored []*gatewayv1.SnapshotEnvelope, log zerolog.Logger) string {
	if len(stored) == 0 {
		return defaultListen
	}
	snap := &gatewayv1.Snapshot{}
	if err := proto.Unmarshal(stored[0].GetPayload(), snap); err != nil {
		log.Warn().Err(err).Msg("stored snapshot undecodable; listening on the default address")
		return defaultListen
	}
	if addr := server.ListenAddrOf(snap); addr != "" {
		return addr
	}
	return defaultListen
}

// loadRevocations returns the revocation set saved in the data dir. When
// there is none, it is unusable, or only an older copy survived a corrupt
// newer one, the set (empty at seq 0, or the older copy) is marked unknown
// until the control plane answers: an edge never enforces a set it cannot
// vouch for as if it were complete. A data dir always holds a record once
// the edge has been confirmed by a control plane (watch persists it, empty
// or not), so "none" at boot means a first start or damage.
func loadRevocations(st *lkg.Store, log zerolog.Logger) *auth.Revocations {
	rev := auth.NewRevocations(auth.RevocationsConfig{Logger: log})
	saved, skipped, err := st.LoadRevocationsReport()
	if err == nil {
		err = rev.Reset(saved.GetSeq(), saved.GetEntries())
	}
	switch {
	case errors.Is(err, lkg.ErrNotFound):
		rev.MarkUnknown()
		log.Warn().Msg("no revocation set on disk; protected routes answer 503 until the control plane answers")
	case err != nil:
		rev.MarkUnknown()
		log.Error().Err(err).Msg("revocation set on disk unusable; protected routes answer 503 until the control plane answers")
	case skipped > 0:
		rev.MarkUnknown()
		log.Error().Int("skipped", skipped).Uint64("seq", saved.GetSeq()).
			Msg("newest revocation record corrupt, an older one loaded; protected routes answer 503 until the control plane answers")
	}
	return rev
}

// revocationHealth is the health check's degraded cause: the plan has
// JWT-protected endpoints and the revocation set is not known to be
// complete (they answer 503).
func revocationHealth(rev *auth.Revocations, p *plan.Plan) string {
	if p.Protected() && !rev.Known() {
		return "revocations_unknown"
	}
	return ""
}

// revocationStore persists the revocation set in the data dir.
type revocationStore struct {
	set   *auth.Revocations
	store *lkg.Store
}

func (r revocationStore) Seq() uint64 { return r.set.Seq() }

func (r revocationStore) ApplyDelta(entries []*gatewayv1.RevocationEntry, fromSeq, toSeq uint64) error {
	return r.set.ApplyDelta(entries, fromSeq, toSeq)
}

func (r revocationStore) Reset(seq uint64, entries []*gatewayv1.RevocationEntry) error {
	return r.set.Reset(seq, entries)
}

func (r revocationStore) Persist() error { return r.store.SaveRevocations(r.set.Export()) }

func (r revocationStore) Confirm() { r.set.Confirm() }

// SetHash digests the set for the Hello (see sign.RevocationSetHash).
func (r revocationStore) SetHash(cutoffUnixMs int64) string {
	return sign.RevocationSetHash(r.set.Entries(), r.set.Seq(), cutoffUnixMs)
}
