package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"

	"github.com/apigw/gateway/controlplane/store"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Defaults for Config fields left zero.
const (
	DefaultKeepalive  = 10 * time.Second
	DefaultAckTimeout = time.Minute
	// DefaultMaxSnapshotBytes keeps a SyncResponse under gRPC's default 4 MiB
	// receive limit of an edge, with room for the envelope.
	DefaultMaxSnapshotBytes = 4<<20 - 64<<10
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
}

// Service is the control plane's gRPC layer: the admin and sync services, the
// hub that distributes the current snapshot, the fleet registry and the
// metrics. It is safe for concurrent use. Close it after the gRPC servers
// stop accepting (it ends every open Sync stream).
type Service struct {
	cfg     Config
	store   store.Store
	log     zerolog.Logger
	metrics *metrics
	hub     *hub
	fleet   *fleet

	stopHub context.CancelFunc
	done    chan struct{} // closed by Close: streams end

	// mu guards closed; wg counts the hub loop, stream handlers and their
	// receive pumps (Add only while !closed, or from a tracked goroutine).
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// New returns a running Service: it starts following cfg.Store at once.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new service: %w", err)
	}
	cfg.applyDefaults()
	s := &Service{
		cfg:   cfg,
		store: cfg.Store,
		log:   cfg.Logger,
		fleet: newFleet(),
		done:  make(chan struct{}),
	}
	s.metrics = newMetrics(newEdgesCollector(s.edgeCounts))
	s.hub = newHub(cfg.Store, cfg.Logger, s.metrics)

	ctx, cancel := context.WithCancel(context.Background())
	s.stopHub = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.hub.run(ctx)
	}()
	return s, nil
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
	s.mu.Unlock()
	s.stopHub()
	s.wg.Wait()
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

// edgeCounts feeds gw_controlplane_edges with states against the version the
// hub distributes.
func (s *Service) edgeCounts() map[string]int {
	var ver uint64
	var sha string
	if cur := s.hub.current(); cur != nil {
		ver, sha = cur.env.GetVersion(), cur.env.GetSha256()
	}
	return s.fleet.counts(ver, sha)
}

func isClosed(err error) bool { return errors.Is(err, store.ErrClosed) }
