package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"

	"github.com/apigw/gateway/controlplane/pki"
	"github.com/apigw/gateway/controlplane/store"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/proto/sign"
)

// Defaults for Config fields left zero.
const (
	DefaultKeepalive  = 10 * time.Second
	DefaultAckTimeout = time.Minute
	// DefaultMaxSnapshotBytes keeps a SyncResponse under gRPC's default 4 MiB
	// receive limit of an edge, with room for the envelope.
	DefaultMaxSnapshotBytes = 4<<20 - 64<<10
	// DefaultRevocationTTL is how long a revocation given without an expiry
	// lasts when the current config has no auth/revoker ttl.
	DefaultRevocationTTL = 24 * time.Hour
	// DefaultMaxRevocationTTL caps how far ahead a revocation may expire:
	// further than that is almost certainly a unit mistake, and entries
	// only leave the log by expiring.
	DefaultMaxRevocationTTL = 365 * 24 * time.Hour
	// DefaultRevocationResetThreshold is how many entries an edge may be
	// behind and still get a delta (Kong resyncs after 512 changes; our
	// entries are small and edges apply them in bulk).
	DefaultRevocationResetThreshold = 4096
	// DefaultRevocationGrace is how long an expired revocation stays in
	// the log, so edges with a slow clock still hold it until it expired
	// for them too.
	DefaultRevocationGrace = time.Hour
	// DefaultRevocationCompactInterval is how often expired revocations
	// are deleted from the log.
	DefaultRevocationCompactInterval = time.Minute
	// DefaultCertWarnBefore is how long before a certificate expires the
	// control plane starts warning about it.
	DefaultCertWarnBefore = 30 * 24 * time.Hour
	// minRecvTimeout is the floor of the default RecvTimeout, so a control
	// plane with a short keepalive (tests) does not drop edges that use the
	// standard 10s one.
	minRecvTimeout = 30 * time.Second
)

// Config configures a Service. Store is required; the zero value of every
// other field picks the documented default.
type Config struct {
	// Store holds the configuration versions. The Service does not close it.
	Store store.Store
	// Logger receives structured logs; the zero value discards them.
	Logger zerolog.Logger
	// AuditLogger receives one JSON line per audit record (the record is
	// also stored: ListAudit); nil writes them to Logger with log=audit.
	AuditLogger *zerolog.Logger
	// CA, when set, signs edge certificates for IssueCertificate (the
	// built-in PKI); nil answers FailedPrecondition.
	CA *pki.CA
	// MaxEdges caps the fleet registry (default DefaultMaxEdges): a new node
	// beyond it is refused while every entry is connected; disconnected
	// entries make room, oldest first.
	MaxEdges int
	// FleetTTL drops disconnected edges from the registry after this long
	// (default DefaultFleetTTL).
	FleetTTL time.Duration
	// AdmissionRate and AdmissionBurst bound new Sync streams per second
	// (defaults DefaultAdmissionRate, DefaultAdmissionBurst); streams over
	// it are refused with ResourceExhausted and the edge backs off.
	AdmissionRate  int
	AdmissionBurst int
	// CertWarnBefore: an edge whose client certificate expires within this
	// is warned about in the log when it connects (default
	// DefaultCertWarnBefore; the metric and Status report every expiry).
	CertWarnBefore time.Duration
	// Signer signs every snapshot envelope and revocation message sent to
	// edges; nil sends them unsigned (edges then need their explicit
	// insecure flag to accept them).
	Signer *sign.Signer
	// Keepalive is how often a Keepalive is sent on every Sync stream
	// (default 10s).
	Keepalive time.Duration
	// RecvTimeout ends a Sync stream when nothing (hello, ACK, keepalive...)
	// arrived for this long (default max(3*Keepalive, 30s)).
	RecvTimeout time.Duration
	// AckTimeout is how long a stream waits for the ACK or NACK of a sent
	// snapshot before it lets a newer version through (default 1m).
	AckTimeout time.Duration
	// MaxSnapshotBytes rejects pushes whose compiled snapshot is larger
	// (default DefaultMaxSnapshotBytes).
	MaxSnapshotBytes int

	// RevocationTTL is the lifetime of a revocation given without an expiry
	// when the current snapshot has no service.revoker.ttl_ms (default
	// DefaultRevocationTTL).
	RevocationTTL time.Duration
	// MaxRevocationTTL caps how far ahead a revocation may expire (default
	// DefaultMaxRevocationTTL).
	MaxRevocationTTL time.Duration
	// RevocationResetThreshold: an edge more than this many entries behind
	// the log gets a RevocationReset instead of a delta (default
	// DefaultRevocationResetThreshold). The hub keeps about this many
	// entries in memory to serve deltas without reading the store.
	RevocationResetThreshold int
	// RevocationGrace is how long an expired revocation stays in the log
	// before the housekeeping deletes it (default DefaultRevocationGrace).
	RevocationGrace time.Duration
	// MaxStreamAge ends a Sync stream (Unavailable) after this long, with
	// up to 10% jitter either way, so that edges spread again over the
	// replicas after one came back (Istio's max connection age). The edge
	// reconnects at once and is not reconfigured (it holds the version).
	// Zero keeps streams open for as long as they live.
	MaxStreamAge time.Duration
	// RevocationCompactInterval is how often the housekeeping runs (default
	// DefaultRevocationCompactInterval). Negative disables it, for replicas
	// that do not hold the housekeeping lease of a shared store.
	RevocationCompactInterval time.Duration
	// ReplicaName names this replica in Status and on the fleet board, on a
	// store several replicas share (default: the host name).
	ReplicaName string
	// FleetLeaseTTL is the lease this replica's entries on the fleet board
	// live under (default DefaultFleetLeaseTTL): when the replica dies, the
	// others drop its edges this long after its last renewal.
	FleetLeaseTTL time.Duration
	// FleetPublishInterval is how often changed entries are written to the
	// fleet board (default DefaultFleetPublishInterval); changes within
	// one interval coalesce into one write per edge.
	FleetPublishInterval time.Duration
	// FleetRefresh is how old a published entry may grow before it is
	// rewritten for its lazily published fields (last_seen,
	// revocation_seq, counters outside a canary) (default
	// DefaultFleetRefresh).
	FleetRefresh time.Duration
	// RolloutCheckInterval is how often a canary is checked for NACKs, its
	// error rate and the end of its soak period (default
	// DefaultRolloutCheckInterval).
	RolloutCheckInterval time.Duration
}

// Validate reports configuration errors.
func (c *Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("store: required"))
	}
	if c.Keepalive < 0 {
		errs = append(errs, fmt.Errorf("keepalive: must not be negative, got %s", c.Keepalive))
	}
	if c.RecvTimeout < 0 {
		errs = append(errs, fmt.Errorf("recv timeout: must not be negative, got %s", c.RecvTimeout))
	}
	if c.RecvTimeout > 0 && c.RecvTimeout <= c.Keepalive {
		errs = append(errs, fmt.Errorf("recv timeout: must be longer than the keepalive (%s), got %s", c.Keepalive, c.RecvTimeout))
	}
	if c.AckTimeout < 0 {
		errs = append(errs, fmt.Errorf("ack timeout: must not be negative, got %s", c.AckTimeout))
	}
	if c.MaxSnapshotBytes < 0 {
		errs = append(errs, fmt.Errorf("max snapshot bytes: must not be negative, got %d", c.MaxSnapshotBytes))
	}
	if c.RevocationTTL < 0 {
		errs = append(errs, fmt.Errorf("revocation ttl: must not be negative, got %s", c.RevocationTTL))
	}
	if c.MaxRevocationTTL < 0 {
		errs = append(errs, fmt.Errorf("max revocation ttl: must not be negative, got %s", c.MaxRevocationTTL))
	}
	maxTTL := cmp.Or(c.MaxRevocationTTL, DefaultMaxRevocationTTL)
	if c.RevocationTTL > maxTTL {
		errs = append(errs, fmt.Errorf("revocation ttl: must not exceed the max revocation ttl (%s), got %s", maxTTL, c.RevocationTTL))
	}
	if c.MaxEdges < 0 || c.FleetTTL < 0 || c.AdmissionRate < 0 || c.AdmissionBurst < 0 {
		errs = append(errs, fmt.Errorf("max edges, fleet ttl, admission rate and burst: must not be negative, got %d, %s, %d, %d", c.MaxEdges, c.FleetTTL, c.AdmissionRate, c.AdmissionBurst))
	}
	if c.RevocationResetThreshold < 0 {
		errs = append(errs, fmt.Errorf("revocation reset threshold: must not be negative, got %d", c.RevocationResetThreshold))
	}
	if c.MaxStreamAge < 0 {
		errs = append(errs, fmt.Errorf("max stream age: must not be negative, got %s", c.MaxStreamAge))
	}
	if c.RolloutCheckInterval < 0 {
		errs = append(errs, fmt.Errorf("rollout check interval: must not be negative, got %s", c.RolloutCheckInterval))
	}
	if c.FleetLeaseTTL < 0 || c.FleetPublishInterval < 0 || c.FleetRefresh < 0 {
		errs = append(errs, fmt.Errorf("fleet lease ttl, publish interval and refresh: must not be negative, got %s, %s, %s", c.FleetLeaseTTL, c.FleetPublishInterval, c.FleetRefresh))
	}
	if c.FleetLeaseTTL > 0 && c.FleetLeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("fleet lease ttl: must be at least 1s (etcd leases count in seconds), got %s", c.FleetLeaseTTL))
	}
	if c.RevocationGrace < 0 {
		errs = append(errs, fmt.Errorf("revocation grace: must not be negative, got %s", c.RevocationGrace))
	}
	return errors.Join(errs...)
}

func (c *Config) applyDefaults() {
	if c.Keepalive == 0 {
		c.Keepalive = DefaultKeepalive
	}
	if c.RecvTimeout == 0 {
		c.RecvTimeout = max(3*c.Keepalive, minRecvTimeout)
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.MaxSnapshotBytes == 0 {
		c.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	c.MaxEdges = cmp.Or(c.MaxEdges, DefaultMaxEdges)
	c.FleetTTL = cmp.Or(c.FleetTTL, DefaultFleetTTL)
	c.AdmissionRate = cmp.Or(c.AdmissionRate, DefaultAdmissionRate)
	c.AdmissionBurst = cmp.Or(c.AdmissionBurst, DefaultAdmissionBurst)
	c.RevocationTTL = cmp.Or(c.RevocationTTL, DefaultRevocationTTL)
	c.MaxRevocationTTL = cmp.Or(c.MaxRevocationTTL, DefaultMaxRevocationTTL)
	c.RevocationResetThreshold = cmp.Or(c.RevocationResetThreshold, DefaultRevocationResetThreshold)
	c.RevocationGrace = cmp.Or(c.RevocationGrace, DefaultRevocationGrace)
	c.RevocationCompactInterval = cmp.Or(c.RevocationCompactInterval, DefaultRevocationCompactInterval)
	c.CertWarnBefore = cmp.Or(c.CertWarnBefore, DefaultCertWarnBefore)
	c.RolloutCheckInterval = cmp.Or(c.RolloutCheckInterval, DefaultRolloutCheckInterval)
	c.FleetLeaseTTL = cmp.Or(c.FleetLeaseTTL, DefaultFleetLeaseTTL)
	c.FleetPublishInterval = cmp.Or(c.FleetPublishInterval, DefaultFleetPublishInterval)
	c.FleetRefresh = cmp.Or(c.FleetRefresh, DefaultFleetRefresh)
	if c.ReplicaName == "" {
		c.ReplicaName, _ = os.Hostname()
	}
}

// Service is the control plane's gRPC layer: the admin and sync services, the
// hubs that distribute the current snapshot and the revocation log, the
// revocation housekeeping, the fleet registry and the metrics. It is safe for concurrent use. Close it after the gRPC servers
// stop accepting (it ends every open Sync stream).
type Service struct {
	cfg     Config
	store   store.Store
	log     zerolog.Logger
	audit   zerolog.Logger
	metrics *metrics
	hub     *hub
	revHub  *revHub
	fleet   *fleet
	// share is the fleet board session on a store several replicas share
	// (nil otherwise).
	share *fleetShare
	admit *admission
	// converge feeds the fleet page's convergence chart.
	converge convergenceLog

	// syncCertNotAfter is SetSyncCertExpiry's value (unix ms; 0 = no TLS).
	syncCertNotAfter atomic.Int64

	stopHub context.CancelFunc
	done    chan struct{} // closed by Close: streams end
	// closing is done as a context, which a stream's context follows
	// without a select case of its own (context.AfterFunc).
	closing     context.Context
	stopClosing context.CancelFunc

	// mu guards closed; wg counts the hub loops, the housekeeping, stream
	// handlers and their receive pumps (Add only while !closed, or from a
	// tracked goroutine).
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// New returns a running Service: it starts following cfg.Store at once, and
// compacting its revocation log unless cfg.RevocationCompactInterval is
// negative.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new service: %w", err)
	}
	cfg.applyDefaults()
	s := &Service{
		cfg:   cfg,
		store: cfg.Store,
		log:   cfg.Logger,
		audit: cfg.Logger.With().Str("log", "audit").Logger(),
		admit: newAdmission(cfg.AdmissionRate, cfg.AdmissionBurst),
		done:  make(chan struct{}),
	}
	s.closing, s.stopClosing = context.WithCancel(context.Background())
	if cfg.AuditLogger != nil {
		s.audit = *cfg.AuditLogger
	}
	s.metrics = newMetrics(newEdgesCollector(s.edgeRegionCounts))
	s.fleet = newFleet(cfg.MaxEdges, cfg.FleetTTL, s.metrics)
	s.hub = newHub(cfg.Store, cfg.Logger, s.metrics, cfg.Signer)
	s.revHub = newRevHub(cfg.Store, cfg.Logger, s.metrics, cfg.RevocationResetThreshold, cfg.Signer)

	if board, ok := cfg.Store.(store.FleetBoard); ok {
		sh := &fleetShare{name: cfg.ReplicaName, sessions: map[string]*remoteReplica{}}
		jctx, cancel := context.WithTimeout(context.Background(), cfg.FleetLeaseTTL)
		sess, err := board.JoinFleet(jctx, cfg.FleetLeaseTTL, sh.event)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("new service: %w", err)
		}
		sh.sess = sess
		s.share = sh
		s.fleet.trackChanges()
	}

	ctx, cancel := context.WithCancel(context.Background())
	s.stopHub = cancel
	if s.share != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.publishFleet(ctx, time.Now())
			every(ctx, cfg.FleetPublishInterval, func(now time.Time) { s.publishFleet(ctx, now) })
		}()
	}
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		s.hub.run(ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.rolloutChecks(ctx, cfg.RolloutCheckInterval)
	}()
	go func() {
		defer s.wg.Done()
		s.revHub.run(ctx)
	}()
	if cfg.RevocationCompactInterval > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.housekeeping(ctx, cfg.RevocationCompactInterval)
		}()
	}
	return s, nil
}

// housekeeping deletes revocations expired for longer than the grace
// period, and chunks of commits that never happened (etcd), every
// interval, until ctx is done.
func (s *Service) housekeeping(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func(now time.Time) {
		s.compactRevocations(ctx, now)
		s.collectOrphanChunks(ctx)
	})
}

// every calls f with the tick's time every interval until ctx is done.
func every(ctx context.Context, interval time.Duration, f func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f(now)
		}
	}
}

func (s *Service) compactRevocations(ctx context.Context, now time.Time) {
	res, err := s.store.CompactRevocations(ctx, now.Add(-s.cfg.RevocationGrace))
	if err != nil {
		if ctx.Err() == nil && !isClosed(err) {
			s.log.Error().Err(err).Msg("compact revocations")
		}
		// A partial run still deleted whole batches; the point moved with them.
	}
	if res.Removed > 0 {
		s.metrics.revocationsCompacted.Add(float64(res.Removed))
		s.log.Info().Int("removed", res.Removed).Uint64("compacted_seq", res.CompactedSeq).Msg("expired revocations compacted")
	}
	// Also when nothing was removed here: another replica may have compacted.
	s.revHub.trimBelow(res.CompactedSeq)
}

// collectOrphanChunks deletes content chunks whose commit never happened,
// on stores that chunk content (etcd).
func (s *Service) collectOrphanChunks(ctx context.Context) {
	if cc, ok := s.store.(store.ChunkCollector); ok {
		n, err := cc.CollectOrphanChunks(ctx)
		if err != nil && ctx.Err() == nil && !isClosed(err) {
			s.log.Error().Err(err).Msg("collect orphan chunks")
		}
		s.metrics.orphanChunks.Add(float64(n))
	}
}

// RegisterAdmin registers the AdminService on r. Protect r with TokenAuth.
func (s *Service) RegisterAdmin(r grpc.ServiceRegistrar) {
	gatewayv1.RegisterAdminServiceServer(r, &adminServer{svc: s})
}

// RegisterSync registers the SyncService on r.
func (s *Service) RegisterSync(r grpc.ServiceRegistrar) {
	gatewayv1.RegisterSyncServiceServer(r, &syncServer{svc: s})
}

// MetricsHandler serves the Service's Prometheus registry.
func (s *Service) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{Registry: s.metrics.reg})
}

// Registry returns the Service's Prometheus registry (to add collectors or
// gather in tests).
func (s *Service) Registry() *prometheus.Registry { return s.metrics.reg }

// Close ends every Sync stream (Unavailable: the edges reconnect elsewhere or
// later), stops following the store and waits for all of it. A stream
// blocked sending to an edge that does not read ends when its gRPC server
// stops, so call Close concurrently with (or after) grpc.Server.Stop or a
// bounded GracefulStop. Close is idempotent.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	close(s.done)
	s.stopClosing()
	s.mu.Unlock()
	s.stopHub()
	s.wg.Wait()
	if s.share != nil {
		// Revoke the lease: the other replicas drop this one's edges at
		// once (they reconnect to them) instead of after the TTL.
		if err := s.share.sess.Close(); err != nil && !isClosed(err) {
			s.log.Warn().Err(err).Msg("fleet: could not revoke this replica's lease; its entries expire with it")
		}
	}
	return nil
}

// track registers a stream handler; false once the Service is closing.
func (s *Service) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Service) untrack() { s.wg.Done() }

// edgeCounts counts the edges by state against the version each must
// serve.
func (s *Service) edgeCounts() map[string]int { return s.fleet.counts(s.hub.want) }

// edgeRegionCounts is edgeCounts by region, for the edges gauges.
// On a shared store each replica counts its own edges, so the gauges sum
// over the replicas.
func (s *Service) edgeRegionCounts() map[regionState]int {
	var elsewhere func(string) bool
	if s.share != nil {
		elsewhere = s.share.connectedElsewhere
	}
	return s.fleet.regionCounts(s.hub.want, elsewhere)
}

func isClosed(err error) bool { return errors.Is(err, store.ErrClosed) }
