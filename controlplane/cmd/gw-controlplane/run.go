package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/apigw/gateway/controlplane/pki"
	"github.com/apigw/gateway/controlplane/service"
	"github.com/apigw/gateway/controlplane/store"
	"github.com/apigw/gateway/internal/dirlock"
	"github.com/apigw/gateway/proto/tlsfile"
)

// adminMaxRecvBytes lets operators push configurations larger than gRPC's
// 4 MiB default (the compiled snapshot is limited separately).
const adminMaxRecvBytes = 32 << 20

// storeFile is the bbolt file inside the data dir.
const storeFile = "controlplane.db"

// openStore opens the store --store names.
func openStore(ctx context.Context, cfg *Config, log zerolog.Logger) (store.Store, error) {
	if cfg.Store == "" || cfg.Store == "bolt" {
		return store.OpenBolt(filepath.Join(cfg.DataDir, storeFile), store.WithAuditRetain(cmp.Or(cfg.AuditRetain, store.DefaultAuditRetain)))
	}
	endpoints, prefix, useTLS, err := store.ParseEtcdURL(cfg.Store)
	if err != nil {
		return nil, err
	}
	ecfg := store.EtcdConfig{Endpoints: endpoints, Prefix: prefix, Logger: log, AuditRetain: cmp.Or(cfg.AuditRetain, store.DefaultAuditRetain)}
	if useTLS {
		if ecfg.TLS, err = etcdTLS(cfg); err != nil {
			return nil, err
		}
	}
	if cfg.EtcdUser != "" {
		if ecfg.Password, err = etcdPassword(cfg, os.Getenv); err != nil {
			return nil, err
		}
		ecfg.Username = cfg.EtcdUser
		if !useTLS {
			log.Warn().Str("user", cfg.EtcdUser).Msg("etcd password sent without TLS (etcd://): anyone on the path can read it; use etcds:// outside a trusted network")
		}
	}
	st, err := store.OpenEtcd(ctx, ecfg)
	if err != nil {
		return nil, err
	}
	log.Info().Strs("endpoints", endpoints).Str("prefix", prefix).Bool("tls", useTLS).Msg("store: etcd")
	return st, nil
}

// etcdPasswordEnv holds the etcd password when --etcd-password-file is not
// given.
const etcdPasswordEnv = "GW_ETCD_PASSWORD"

// etcdPassword reads --etcd-user's password: the file's first line, or
// the environment variable.
func etcdPassword(cfg *Config, getenv func(string) string) (string, error) {
	if cfg.EtcdPasswordFile != "" {
		b, err := os.ReadFile(cfg.EtcdPasswordFile)
		if err != nil {
			return "", fmt.Errorf("--etcd-password-file: %w", err)
		}
		pw, _, _ := strings.Cut(string(b), "\n")
		pw = strings.TrimSuffix(pw, "\r")
		if pw == "" {
			return "", fmt.Errorf("--etcd-password-file %s: empty", cfg.EtcdPasswordFile)
		}
		return pw, nil
	}
	if pw := getenv(etcdPasswordEnv); pw != "" {
		return pw, nil
	}
	return "", fmt.Errorf("--etcd-user %s: no password: give --etcd-password-file or set $%s", cfg.EtcdUser, etcdPasswordEnv)
}

// etcdTLS builds the TLS configuration for etcds://.
func etcdTLS(cfg *Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.EtcdCA != "" {
		pem, err := os.ReadFile(cfg.EtcdCA)
		if err != nil {
			return nil, fmt.Errorf("--etcd-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--etcd-ca %s: no PEM certificate", cfg.EtcdCA)
		}
		tc.RootCAs = pool
	}
	if cfg.EtcdCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.EtcdCert, cfg.EtcdKey)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// registerEtcdMetrics exports the etcd watch's resyncs.
func registerEtcdMetrics(reg prometheus.Registerer, st *store.Etcd) {
	for _, reason := range []string{"compacted", "lost"} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "gw_controlplane_store_watch_resyncs_total",
			Help:        "Times the etcd watch was rebuilt from a fresh read, by reason: compacted (it fell behind an etcd compaction) or lost (the member or connection went away). A resync that finds nothing new changes nothing for the edges.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 {
			compacted, lost := st.WatchResyncs()
			if reason == "compacted" {
				return float64(compacted)
			}
			return float64(lost)
		}))
	}
}

// run starts the control plane and blocks until ctx is done (then shuts down
// gracefully, bounded by cfg.ShutdownTimeout) or a listener fails.
func run(ctx context.Context, cfg *Config, log zerolog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	dl, err := dirlock.Acquire(cfg.DataDir)
	if err != nil {
		return err
	}
	defer dl.Release()
	token, err := loadOrCreateToken(cfg.tokenFile(), log)
	if err != nil {
		return err
	}
	auth, err := service.NewTokenAuth(token)
	if err != nil {
		return err
	}
	tokens, err := loadTokens(cfg.DataDir, token)
	if err != nil {
		return err
	}
	auth.SetTokens(tokens)
	log.Info().Str("tokens", tokenNames(tokens)).Msg("admin tokens loaded")
	syncTLS, err := syncTransportCredentials(cfg)
	if err != nil {
		return err
	}
	if !syncTLS.mtls && !isLoopback(cfg.SyncListen) {
		if !cfg.InsecureSync {
			return fmt.Errorf("--sync-listen %s is not a loopback address and edges are not authenticated by a client certificate: run `gw-controlplane ca init` (or give --sync-tls-cert, --sync-tls-key and --sync-tls-client-ca), or pass --insecure-sync", cfg.SyncListen)
		}
		log.Warn().Str("sync", cfg.SyncListen).Bool("tls", syncTLS.creds != nil).Msg("--insecure-sync: the sync listener is reachable off this host without mTLS; anyone who reaches it can pose as an edge and read every snapshot")
	}
	adminCreds, adminTLSSource, err := adminTransportCredentials(cfg)
	if err != nil {
		return err
	}
	if adminCreds == nil && !isLoopback(cfg.AdminListen) {
		if !cfg.InsecureAdmin {
			return fmt.Errorf("--admin-listen %s is not a loopback address and has no TLS: give --admin-tls-cert and --admin-tls-key, run `gw-controlplane ca init` (its server certificate is then used), or pass --insecure-admin", cfg.AdminListen)
		}
		log.Warn().Str("admin", cfg.AdminListen).Msg("--insecure-admin: the admin API is reachable off this host in plaintext; admin tokens and configurations (with their secrets) cross the network in clear")
	}
	var ca *pki.CA
	if pki.Exists(cfg.DataDir) {
		if ca, err = pki.Load(cfg.DataDir); err != nil {
			return err
		}
	}

	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error().Err(err).Msg("close store")
		}
	}()

	signer, err := loadOrCreateSigner(cfg.DataDir, log)
	if err != nil {
		return err
	}

	auditLog, closeAudit, err := openAuditLog(cfg.AuditLog, log)
	if err != nil {
		return err
	}
	defer closeAudit()

	svc, err := service.New(service.Config{
		Store:           st,
		Logger:          log,
		AuditLogger:     &auditLog,
		Signer:          signer,
		CA:              ca,
		CertWarnBefore:  cfg.CertWarnBefore,
		Keepalive:       cfg.Keepalive,
		RevocationTTL:   cfg.RevocationTTL,
		RevocationGrace: cfg.RevocationGrace,
		MaxEdges:        cfg.MaxEdges,
		FleetTTL:        cfg.FleetTTL,
		AdmissionRate:   cfg.AdmissionRate,
		AdmissionBurst:  2 * cfg.AdmissionRate,
		MaxStreamAge:    cfg.MaxStreamAge,
		ReplicaName:     replicaName(cfg),
		FleetLeaseTTL:   cfg.FleetLeaseTTL,
	})
	if err != nil {
		return err
	}
	// Closed in shutdown; this covers the early returns below.
	defer svc.Close()
	if es, ok := st.(*store.Etcd); ok {
		registerEtcdMetrics(svc.Registry(), es)
	}

	// Edges send keepalives every cfg.Keepalive; HTTP/2 pings catch dead TCP
	// connections below that. MinTime lets edges ping every 10s without
	// being told "too many pings".
	kaEnforce := grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true})
	adminOpts := append(auth.ServerOptions(), grpc.MaxRecvMsgSize(adminMaxRecvBytes), kaEnforce)
	if adminCreds != nil {
		adminOpts = append(adminOpts, grpc.Creds(adminCreds))
	}
	adminSrv := grpc.NewServer(adminOpts...)
	svc.RegisterAdmin(adminSrv)
	svc.AuditRefusals(auth)
	syncOpts := []grpc.ServerOption{
		kaEnforce,
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
	syncOpts = append(syncOpts, service.SyncServerOptions()...)
	syncOpts = append(syncOpts, grpc.InTapHandle(svc.SyncTap)) // admission before the stream is built
	if syncTLS.creds != nil {
		syncOpts = append(syncOpts, grpc.Creds(syncTLS.creds))
	}
	syncSrv := grpc.NewServer(syncOpts...)
	svc.RegisterSync(syncSrv)

	lc := net.ListenConfig{}
	adminLis, err := lc.Listen(ctx, "tcp", cfg.AdminListen)
	if err != nil {
		return fmt.Errorf("listen admin: %w", err)
	}
	defer adminLis.Close() // no-op after Serve closed it
	syncLis, err := lc.Listen(ctx, "tcp", cfg.SyncListen)
	if err != nil {
		return fmt.Errorf("listen sync: %w", err)
	}
	defer syncLis.Close()
	var metricsSrv *http.Server
	var metricsLis net.Listener
	if cfg.MetricsListen != "" {
		if metricsLis, err = lc.Listen(ctx, "tcp", cfg.MetricsListen); err != nil {
			return fmt.Errorf("listen metrics: %w", err)
		}
		defer metricsLis.Close()
		mux := http.NewServeMux()
		mux.Handle("/metrics", svc.MetricsHandler())
		if cfg.Pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		registerHealth(ctx, mux, st)
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}

	var fleetSrv *http.Server
	var fleetLis net.Listener
	if cfg.FleetListen != "" {
		fc := *cfg
		fc.AdminListen = cfg.FleetListen // the admin listener's TLS rules, for this address
		tc, _, err := adminTLSConfig(&fc)
		if err != nil {
			return fmt.Errorf("fleet page tls: %w", err)
		}
		if tc == nil && !isLoopback(cfg.FleetListen) {
			return fmt.Errorf("--fleet-listen %s is not a loopback address and has no TLS: give --admin-tls-cert and --admin-tls-key or run `gw-controlplane ca init`", cfg.FleetListen)
		}
		if fleetLis, err = lc.Listen(ctx, "tcp", cfg.FleetListen); err != nil {
			return fmt.Errorf("listen fleet: %w", err)
		}
		defer fleetLis.Close()
		if tc != nil {
			tc = tc.Clone()
			tc.NextProtos = []string{"h2", "http/1.1"}
			fleetLis = tls.NewListener(fleetLis, tc)
		}
		fleetSrv = &http.Server{Handler: svc.FleetPageHandler(auth), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, MaxHeaderBytes: 64 << 10}
	}

	ev := log.Info().
		Str("admin", adminLis.Addr().String()).
		Str("admin_tls", adminTLSSource).
		Str("sync", syncLis.Addr().String()).
		Bool("sync_tls", syncTLS.creds != nil).
		Bool("sync_mtls", syncTLS.mtls).
		Str("sync_tls_source", syncTLS.source).
		Str("data_dir", cfg.DataDir)
	if metricsLis != nil {
		ev = ev.Str("metrics", metricsLis.Addr().String())
	}
	if fleetLis != nil {
		ev = ev.Str("fleet", fleetLis.Addr().String())
	}
	ev.Msg("listening")

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		// ErrServerStopped: a signal arrived before Serve started.
		if err := adminSrv.Serve(adminLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serve admin: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		// ErrServerStopped: a signal arrived before Serve started.
		if err := syncSrv.Serve(syncLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serve sync: %w", err)
		}
		return nil
	})
	if syncTLS.cert != nil {
		g.Go(func() error {
			watchCertExpiry(gctx, syncTLS.cert, cfg.CertWarnBefore, svc, log)
			return nil
		})
	}
	g.Go(func() error {
		watchTokens(gctx, cfg.DataDir, token, auth, log)
		return nil
	})
	if metricsSrv != nil {
		g.Go(func() error {
			if err := metricsSrv.Serve(metricsLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve metrics: %w", err)
			}
			return nil
		})
	}
	if fleetSrv != nil {
		g.Go(func() error {
			if err := fleetSrv.Serve(fleetLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve fleet: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done() // a signal, or one of the servers failed
		shutdown(cfg.ShutdownTimeout, log, svc, []*http.Server{metricsSrv, fleetSrv}, adminSrv, syncSrv)
		return nil
	})
	return g.Wait()
}

// shutdown stops accepting, ends the edge streams (they reconnect to another
// replica or to us after a restart), lets in-flight admin calls finish within
// timeout, then closes whatever is left.
func shutdown(timeout time.Duration, log zerolog.Logger, svc *service.Service, httpSrvs []*http.Server, servers ...*grpc.Server) {
	log.Info().Dur("timeout", timeout).Msg("shutting down")
	var wg sync.WaitGroup
	// Sync streams never end by themselves; closing the service ends them,
	// which lets GracefulStop finish.
	wg.Go(func() { _ = svc.Close() })
	stopped := make(chan struct{})
	go func() {
		var inner sync.WaitGroup
		for _, s := range servers {
			inner.Go(s.GracefulStop)
		}
		inner.Wait()
		close(stopped)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		log.Warn().Msg("graceful stop timed out; closing connections")
		for _, s := range servers {
			s.Stop()
		}
		<-stopped
	}
	for _, hs := range httpSrvs {
		if hs == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		_ = hs.Shutdown(ctx)
		cancel()
	}
	wg.Wait()
	log.Info().Msg("stopped")
}

// syncTLS is the sync listener's TLS setup.
type syncTLS struct {
	creds  credentials.TransportCredentials // nil: plaintext
	cert   *tlsfile.Reloader                // nil: plaintext
	mtls   bool                             // edges must present a certificate
	source string                           // flags, builtin-pki or none
}

// syncTransportCredentials returns TLS credentials for the sync listener:
// from the --sync-tls-* flags, else from the built-in PKI of the data dir
// (gw-controlplane ca init: its server certificate, and its CA verifying
// the edges), else none. The server certificate is re-read when its files
// change, so it rotates without a restart or a dropped stream.
func syncTransportCredentials(cfg *Config) (*syncTLS, error) {
	certFile, keyFile, clientCA, source := cfg.SyncTLSCert, cfg.SyncTLSKey, cfg.SyncTLSClientCA, "flags"
	if certFile == "" {
		if !pki.Exists(cfg.DataDir) {
			return &syncTLS{source: "none"}, nil
		}
		clientCA, _, certFile, keyFile = pki.Paths(cfg.DataDir)
		source = "builtin-pki"
	}
	cert, err := tlsfile.New(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load sync tls key pair: %w", err)
	}
	tc := &tls.Config{GetCertificate: cert.GetCertificate, MinVersion: tls.VersionTLS12}
	out := &syncTLS{cert: cert, source: source}
	if clientCA != "" {
		pem, err := os.ReadFile(clientCA)
		if err != nil {
			return nil, fmt.Errorf("read sync tls client ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read sync tls client ca %s: no PEM certificate found", clientCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
		out.mtls = true
	}
	out.creds = credentials.NewTLS(tc)
	return out, nil
}

// adminTransportCredentials returns TLS credentials for the admin
// listener: from --admin-tls-cert/--admin-tls-key, else, when the listener
// is not on loopback, the built-in PKI's server certificate; else none
// (plaintext, which is only allowed on loopback or with --insecure-admin).
// The certificate is re-read when its files change. The source is "flags",
// "builtin-pki" or "none".
func adminTransportCredentials(cfg *Config) (credentials.TransportCredentials, string, error) {
	tc, source, err := adminTLSConfig(cfg)
	if tc == nil || err != nil {
		return nil, source, err
	}
	return credentials.NewTLS(tc), source, nil
}

// adminTLSConfig is adminTransportCredentials' TLS configuration (nil:
// plaintext), which the fleet page's listener shares.
func adminTLSConfig(cfg *Config) (*tls.Config, string, error) {
	certFile, keyFile, source := cfg.AdminTLSCert, cfg.AdminTLSKey, "flags"
	if certFile == "" {
		if (isLoopback(cfg.AdminListen) && cfg.AdminTLSClientCA == "") || !pki.Exists(cfg.DataDir) {
			return nil, "none", nil
		}
		_, _, certFile, keyFile = pki.Paths(cfg.DataDir)
		source = "builtin-pki"
	}
	cert, err := tlsfile.New(certFile, keyFile)
	if err != nil {
		return nil, "", fmt.Errorf("load admin tls key pair: %w", err)
	}
	tc := &tls.Config{GetCertificate: cert.GetCertificate, MinVersion: tls.VersionTLS12}
	if cfg.AdminTLSClientCA != "" {
		b, err := os.ReadFile(cfg.AdminTLSClientCA)
		if err != nil {
			return nil, "", fmt.Errorf("read admin tls client ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, "", fmt.Errorf("read admin tls client ca %s: no PEM certificate found", cfg.AdminTLSClientCA)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
		source += "+client-ca"
	}
	return tc, source, nil
}

// watchCertExpiry sets the expiry metric and warns, at start and then
// hourly, while the sync certificate expires within warnBefore.
func watchCertExpiry(ctx context.Context, cert *tlsfile.Reloader, warnBefore time.Duration, svc *service.Service, log zerolog.Logger) {
	cert.WatchExpiry(ctx, time.Hour, func(na, now time.Time) {
		svc.SetSyncCertExpiry(na)
		left := na.Sub(now)
		switch {
		case left <= 0:
			log.Error().Time("not_after", na).Msg("the sync TLS certificate has expired: edges cannot connect (they keep serving their last good snapshot); rotate it")
		case left < warnBefore:
			log.Warn().Time("not_after", na).Dur("left", left.Round(time.Minute)).Msg("the sync TLS certificate expires soon; rotate it (the new files are picked up without a restart)")
		}
	})
}

// openAuditLog returns the logger audit records are written to: the
// process log (at info whatever --log-level, tagged log=audit) for "",
// stdout for "-", else the file at path, appended to (0600) and synced
// after every record. zerolog writes each record in one write(2), which
// O_APPEND keeps whole even if several processes share the file.
func openAuditLog(path string, log zerolog.Logger) (zerolog.Logger, func(), error) {
	switch path {
	case "":
		return log.Level(zerolog.InfoLevel).With().Str("log", "audit").Logger(), func() {}, nil
	case "-":
		return zerolog.New(os.Stdout).With().Timestamp().Str("log", "audit").Logger(), func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return zerolog.Logger{}, nil, fmt.Errorf("open audit log: %w", err)
	}
	closeFn := func() {
		if err := f.Close(); err != nil {
			log.Error().Err(err).Msg("close audit log")
		}
	}
	return zerolog.New(syncedFile{f, log}).With().Timestamp().Str("log", "audit").Logger(), closeFn, nil
}

// syncedFile fsyncs after each write, so an audit record written is on
// disk (the store has it too; this is the stream for log shippers).
type syncedFile struct {
	f   *os.File
	log zerolog.Logger
}

func (s syncedFile) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	if err == nil {
		if serr := s.f.Sync(); serr != nil {
			s.log.Error().Err(serr).Msg("sync audit log")
		}
	}
	return n, err
}

// replicaName is --replica-name, or the host name and the sync port (two
// replicas on one host differ by port).
func replicaName(cfg *Config) string {
	if cfg.ReplicaName != "" {
		return cfg.ReplicaName
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	if _, port, err := net.SplitHostPort(cfg.SyncListen); err == nil && port != "0" {
		return host + ":" + port
	}
	return host + "/" + strconv.Itoa(os.Getpid())
}
