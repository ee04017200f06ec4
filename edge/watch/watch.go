// Package watch is the edge's control-plane client: it keeps one
// SyncService.Sync stream open, tells the control plane what the edge holds,
// hands every snapshot it receives to an Applier and answers with an ACK or
// a NACK.
//
// The protocol (one bidirectional stream per edge, the edge dials in):
//
//   - the edge sends Hello{node, region, build, schema version, features,
//     held version and sha256} first;
//   - the control plane sends the newest SnapshotEnvelope only when the edge
//     lacks it; the edge applies it (verify, decode, build, swap, persist)
//     and sends Ack{version, sha256}, or Nack{violations, detail,
//     running_version} while it keeps serving the old plan;
//   - revocation deltas and resets arrive on the same stream, independent of
//     snapshots: each is applied to the Revocations set at once and ACKed with
//     RevocationAck{seq}; a delta that leaves a gap ends the stream so the
//     next Hello (with the held seq) gets what fits; the set is persisted at
//     most once per second while it changes;
//   - keepalives flow both ways; a stream on which nothing arrived for the
//     receive timeout is considered dead and replaced;
//   - the edge reconnects with exponential backoff (200 ms doubling to a
//     10 s cap) and full jitter; a stream on which the control plane
//     answered resets the backoff.
//
// The stream loop only receives, applies revocations, and sends: snapshots
// go to an apply.Worker, which builds on its own goroutine (latest wins) and
// hands back the ACK or NACK for the loop to send. A build held for seconds
// (a JWKS that is slow to answer, ten thousand endpoints) therefore never
// delays a revocation or a keepalive.
//
// watch imports edge/apply (the lifecycle) and edge/plan for the feature
// list, and nothing from the control plane.
package watch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/apigw/gateway/edge/apply"
	"github.com/apigw/gateway/edge/plan"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/proto/sign"
	"github.com/apigw/gateway/proto/tlsfile"
)

// Defaults for Config fields left zero.
const (
	DefaultKeepalive   = 10 * time.Second
	DefaultBackoffBase = 200 * time.Millisecond
	DefaultBackoffMax  = 10 * time.Second
	// minRecvTimeout is the floor of the default receive timeout, so an edge
	// with a short keepalive does not drop a healthy control plane that
	// keeps the standard 10 s one (the control plane applies the same rule).
	minRecvTimeout = 30 * time.Second
	// maxRecvBytes bounds one message from the control plane; it is above
	// the control plane's snapshot limit so that limit is the one that bites.
	maxRecvBytes = 64 << 20
	// syncWindow is the flow-control window of the sync connection and
	// stream; see TransportDialOptions.
	syncWindow = 1 << 20
)

// Revocations is the edge's revocation set, fed by the stream's deltas and
// resets (auth.Revocations with its data dir behind it).
type Revocations interface {
	// Seq is the revocation log position the set holds (0 when empty).
	Seq() uint64
	// ApplyDelta adds the entries with fromSeq < seq <= toSeq; it fails,
	// changing nothing, when fromSeq is not Seq().
	ApplyDelta(entries []*gatewayv1.RevocationEntry, fromSeq, toSeq uint64) error
	// Reset replaces the whole set with entries as of seq.
	Reset(seq uint64, entries []*gatewayv1.RevocationEntry) error
	// Persist saves the set durably.
	Persist() error
	// Confirm says the set is as current as the control plane's log: the
	// control plane sends its revocation catch-up before anything else on
	// a stream, so it is called at the first message of a session that is
	// not a revocation delta or reset (a snapshot or a keepalive).
	Confirm()
}

// SetHasher is implemented by a Revocations that can digest its set (see
// sign.RevocationSetHash); the Hello then carries the digest and the
// control plane resets a set that differs from its log.
type SetHasher interface {
	SetHash(cutoffUnixMs int64) string
}

// Config configures a Client. Target, NodeID, SchemaVersion and Applier are
// required; every other zero value picks the documented default.
type Config struct {
	// Target is the control plane's sync address (host:port or a gRPC
	// target URI).
	Target string
	// Targets are more addresses of the same control plane (its replicas
	// on one etcd store), tried in turn after Target: the client starts at
	// a random one, and moves to the next whenever a stream ends (failed,
	// or ended by the replica's stream age cap), so edges spread over the
	// replicas and fail over without a load balancer. Every replica serves
	// the same versions, so moving never reconfigures the edge.
	Targets []string
	NodeID  string
	Region  string
	// BuildVersion is reported in Hello and in the control plane's status.
	BuildVersion string
	// SchemaVersion is the newest Snapshot schema the edge understands.
	SchemaVersion uint32
	// DisabledFeatures are removed from plan.SupportedFeatures in Hello
	// (test hook for version skew; the Applier must refuse them too).
	DisabledFeatures []string
	// Applier runs the snapshot lifecycle; the Client applies through an
	// apply.Worker of its own, off the stream goroutine.
	Applier *apply.Applier
	// Revocations receives revocation deltas and resets; nil ignores them
	// (Hello then says seq 0).
	Revocations Revocations
	// Verifier checks the control plane's signature of every revocation
	// delta and reset (snapshots are checked by the Applier); one that
	// does not verify is dropped and the stream ends. Nil accepts unsigned
	// messages: the explicit insecure mode.
	Verifier *sign.Verifier
	// RevocationSaveInterval is the most often Persist runs while deltas
	// arrive (default 1s); a change is also persisted when Run returns.
	RevocationSaveInterval time.Duration
	Logger                 zerolog.Logger
	// Keepalive is how often the edge sends a Keepalive (default 10s).
	Keepalive time.Duration
	// Agents, when set, reports the edge's async agents; each Keepalive
	// carries them to the control plane (gwctl status shows them).
	Agents func() []*gatewayv1.AgentState
	// Counters, when set, returns the edge's responses served and 5xx
	// responses since it started; every Keepalive and Ack carries them.
	Counters func() (requests, errors uint64)
	// RecvTimeout replaces a stream on which nothing arrived for this long
	// (default max(3*Keepalive, 30s)).
	RecvTimeout time.Duration
	// TLS, when set, is used to dial (mTLS when it holds a certificate);
	// nil dials without TLS. See LoadTLS.
	TLS *tls.Config
	// BackoffBase and BackoffMax bound the reconnect delay (defaults 200ms
	// and 10s).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Registerer receives gw_edge_controlplane_connected; nil skips it.
	Registerer prometheus.Registerer
	// DialOptions are appended to the client's own (test hook).
	DialOptions []grpc.DialOption
}

// Validate reports a configuration that New would refuse.
func (c Config) Validate() error {
	var errs []error
	if c.Target == "" && len(c.Targets) == 0 {
		errs = append(errs, errors.New("target is required"))
	}
	for _, t := range c.Targets {
		if t == "" {
			errs = append(errs, errors.New("targets: empty address"))
		}
	}
	if c.NodeID == "" {
		errs = append(errs, errors.New("node id is required"))
	}
	if c.SchemaVersion == 0 {
		errs = append(errs, errors.New("schema version is required"))
	}
	if c.Applier == nil {
		errs = append(errs, errors.New("applier is required"))
	}
	for name, d := range map[string]time.Duration{"keepalive": c.Keepalive, "recv timeout": c.RecvTimeout, "revocation save interval": c.RevocationSaveInterval, "backoff base": c.BackoffBase, "backoff max": c.BackoffMax} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %s: must not be negative", name, d))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	return nil
}

// targets returns Target and Targets, in order, without duplicates.
func (c *Config) targets() []string {
	var out []string
	for _, t := range append([]string{c.Target}, c.Targets...) {
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

func (c *Config) applyDefaults() {
	if c.Keepalive == 0 {
		c.Keepalive = DefaultKeepalive
	}
	if c.RecvTimeout == 0 {
		c.RecvTimeout = max(3*c.Keepalive, minRecvTimeout)
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.RevocationSaveInterval == 0 {
		c.RevocationSaveInterval = time.Second
	}
	c.BackoffMax = max(c.BackoffMax, c.BackoffBase)
}

// Client is the control-plane client of one edge. Run it once; Close stops
// it. It is safe for concurrent use.
type Client struct {
	cfg       Config
	log       zerolog.Logger
	targets   []string // Target then Targets, without duplicates
	features  []string
	dialOpts  []grpc.DialOption
	connected prometheus.Gauge
	revSeq    prometheus.Gauge
	revLag    prometheus.Gauge
	// rejectedRev counts revocation messages whose signature failed.
	rejectedRev prometheus.Counter
	streams     *prometheus.CounterVec // {result}: established, failed
	received    prometheus.Counter     // snapshots the control plane sent
	worker      *apply.Worker

	mu      sync.Mutex         // guards the fields below
	running bool               // Run was called
	closed  bool               // Close was called
	cancel  context.CancelFunc // stops a running Run
	done    chan struct{}      // closed when Run returns

	// revDirty says the revocation set changed since the last Persist;
	// only the Run goroutine touches it.
	revDirty bool
	// revSaved says the set was persisted once this Run after a Confirm,
	// so a data dir holds a revocation record (an empty one too) from the
	// first confirmed session on; a missing record at boot is then damage.
	revSaved bool
}

// New returns a Client; it does not dial until Run.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.applyDefaults()
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	c := &Client{
		cfg:      cfg,
		log:      cfg.Logger.With().Str("component", "watch").Logger(),
		targets:  cfg.targets(),
		features: features(plan.SupportedFeatures(), cfg.DisabledFeatures),
		dialOpts: slices.Concat([]grpc.DialOption{
			grpc.WithTransportCredentials(creds),
			grpc.WithUserAgent("gw-edge/" + cfg.BuildVersion),
		}, TransportDialOptions(), cfg.DialOptions),
		done:   make(chan struct{}),
		worker: apply.NewWorker(cfg.Applier),
	}
	c.connected = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gw_edge_controlplane_connected",
		Help: "1 while the edge has a live sync stream with the control plane.",
	})
	c.revSeq = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gw_edge_revocation_seq",
		Help: "Revocation log position the edge enforces.",
	})
	c.revLag = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gw_edge_revocation_lag_seconds",
		Help: "For the last revocation delta applied: the time from the newest entry's append on the control plane to its enforcement here (the two clocks' skew included; 0 until a delta arrives).",
	})
	c.rejectedRev = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gw_edge_revocation_messages_rejected_total",
		Help: "Revocation deltas and resets dropped because their signature did not verify against a pinned key.",
	})
	c.streams = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gw_edge_controlplane_streams_total",
		Help: "Sync streams opened, by result: established (counted when the control plane first answers) or failed (ended before it answered).",
	}, []string{"result"})
	c.streams.WithLabelValues(streamEstablished)
	c.streams.WithLabelValues(streamFailed)
	c.received = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gw_edge_snapshots_received_total",
		Help: "Snapshots received from the control plane (each is offered to the apply worker, newest pending one wins).",
	})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(c.received); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("watch: register metrics: %w", err)
			}
			if existing, ok := are.ExistingCollector.(prometheus.Counter); ok {
				c.received = existing
			}
		}
		if err := cfg.Registerer.Register(c.streams); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("watch: register metrics: %w", err)
			}
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				c.streams = existing
			}
		}
		if err := cfg.Registerer.Register(c.rejectedRev); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("watch: register metrics: %w", err)
			}
			if existing, ok := are.ExistingCollector.(prometheus.Counter); ok {
				c.rejectedRev = existing
			}
		}
		for _, g := range []*prometheus.Gauge{&c.connected, &c.revSeq, &c.revLag} {
			if err := cfg.Registerer.Register(*g); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, fmt.Errorf("watch: register metrics: %w", err)
				}
				if existing, ok := are.ExistingCollector.(prometheus.Gauge); ok {
					*g = existing
				}
			}
		}
	}
	if cfg.Revocations != nil {
		c.revSeq.Set(float64(cfg.Revocations.Seq()))
	}
	return c, nil
}

// Values of gw_edge_controlplane_streams_total{result}.
const (
	streamEstablished = "established"
	streamFailed      = "failed"
)

// features is supported minus disabled, sorted.
func features(supported, disabled []string) []string {
	out := make([]string, 0, len(supported))
	for _, f := range supported {
		if !slices.Contains(disabled, f) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Run keeps a sync stream open until ctx is done or Close is called,
// reconnecting with backoff. It returns nil then; it can be called once.
func (c *Client) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	if c.running || c.closed {
		c.mu.Unlock()
		return errors.New("watch: run after run or close")
	}
	c.running, c.cancel = true, cancel
	c.mu.Unlock()
	defer close(c.done)
	defer c.persistRevocations()
	// The worker applies snapshots for every session of this Run; a reply
	// it produces while no stream is up goes out on the next one.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { c.worker.Run(ctx) })

	// attempt counts the sessions that failed in a row; the backoff grows
	// once per round over every target, so a dead replica costs the next
	// one only the base delay.
	attempt := 0
	next := rand.N(len(c.targets))
	for {
		target := c.targets[next]
		next = (next + 1) % len(c.targets)
		established, err := c.session(ctx, target)
		if !established && ctx.Err() == nil {
			c.streams.WithLabelValues(streamFailed).Inc()
		}
		if ctx.Err() != nil {
			return nil
		}
		if established {
			attempt = 0
		}
		delay := c.backoff(attempt / len(c.targets))
		attempt++
		c.log.Warn().Err(err).Str("controlplane", target).Str("next", c.targets[next]).Dur("retry_in", delay).Msg("control plane stream ended")
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Close stops Run and waits for it to return. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	running, cancel := c.running, c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if running {
		<-c.done
	}
	return nil
}

// backoff is the full-jitter delay before reconnect attempt n (0-based):
// uniform in [0, min(max, base*2^n)].
func (c *Client) backoff(n int) time.Duration {
	ceiling := c.cfg.BackoffMax
	if n < 32 {
		ceiling = min(c.cfg.BackoffBase<<n, c.cfg.BackoffMax)
	}
	return rand.N(ceiling + 1)
}

// session runs one stream. established reports whether the control plane
// answered on it (any message after Hello), which resets the backoff.
func (c *Client) session(ctx context.Context, target string) (established bool, err error) {
	conn, err := grpc.NewClient(target, c.dialOpts...)
	if err != nil {
		return false, fmt.Errorf("dial %s: %w", target, err)
	}
	defer conn.Close()

	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// Cancel first, then wait: the cancelled stream makes Recv return.
	defer wg.Wait()
	defer cancel()

	stream, err := gatewayv1.NewSyncServiceClient(conn).Sync(sctx)
	if err != nil {
		return false, fmt.Errorf("open sync stream: %w", err)
	}
	held, heldSHA := c.cfg.Applier.Current()
	hello := &gatewayv1.Hello{
		NodeId:        c.cfg.NodeID,
		Region:        c.cfg.Region,
		BuildVersion:  c.cfg.BuildVersion,
		SchemaVersion: c.cfg.SchemaVersion,
		Features:      c.features,
		ConfigVersion: held,
		ConfigSha256:  heldSHA,
	}
	if rej := c.cfg.Applier.Rejected(); rej.Version != 0 {
		hello.RejectedVersion, hello.RejectedSha256 = rej.Version, rej.SHA256
	}
	if c.cfg.Revocations != nil {
		hello.RevocationSeq = c.cfg.Revocations.Seq()
		if h, ok := c.cfg.Revocations.(SetHasher); ok {
			hello.RevocationSetCutoffUnixMs = time.Now().UnixMilli()
			hello.RevocationSetSha256 = h.SetHash(hello.RevocationSetCutoffUnixMs)
		}
	}
	if err := stream.Send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Hello{Hello: hello}}); err != nil {
		if errors.Is(err, io.EOF) {
			// Send reports a broken stream as io.EOF; Recv has the status.
			if _, rerr := stream.Recv(); rerr != nil {
				err = rerr
			}
		}
		return false, fmt.Errorf("send hello: %w", err)
	}

	msgs := make(chan *gatewayv1.SyncResponse)
	recvErr := make(chan error, 1)
	wg.Go(func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case msgs <- m:
			case <-sctx.Done():
				return
			}
		}
	})

	defer func() {
		if established {
			c.connected.Set(0)
		}
	}()
	ticker := time.NewTicker(c.cfg.Keepalive)
	defer ticker.Stop()
	saveTicker := time.NewTicker(c.cfg.RevocationSaveInterval)
	defer saveTicker.Stop()
	defer c.persistRevocations()
	lastRecv := time.Now()
	confirmed := false
	for {
		select {
		case <-sctx.Done():
			return established, sctx.Err()
		case err := <-recvErr:
			return established, fmt.Errorf("receive: %w", err)
		case m := <-msgs:
			lastRecv = time.Now()
			if !established {
				established = true
				c.connected.Set(1)
				c.streams.WithLabelValues(streamEstablished).Inc()
				c.log.Info().Str("controlplane", target).Uint64("held_version", held).Str("held_sha256", heldSHA).Msg("connected to control plane")
			}
			if err := c.handle(stream, m); err != nil {
				return established, streamCause(err, recvErr)
			}
			if !confirmed && c.cfg.Revocations != nil && !isRevocationMsg(m) {
				confirmed = true
				c.cfg.Revocations.Confirm()
				if !c.revSaved {
					c.revSaved, c.revDirty = true, true
					c.persistRevocations()
				}
			}
		case reply := <-c.worker.Replies():
			if a := reply.GetAck(); a != nil && c.cfg.Counters != nil {
				a.RequestsTotal, a.ErrorsTotal = c.cfg.Counters()
			}
			if err := stream.Send(reply); err != nil {
				return established, fmt.Errorf("send snapshot reply: %w", streamCause(err, recvErr))
			}
		case <-saveTicker.C:
			c.persistRevocations()
		case now := <-ticker.C:
			if idle := now.Sub(lastRecv); idle > c.cfg.RecvTimeout {
				return established, fmt.Errorf("receive: nothing from the control plane for %s", idle.Round(time.Millisecond))
			}
			kam := &gatewayv1.Keepalive{UnixMs: now.UnixMilli()}
			if c.cfg.Agents != nil {
				kam.Agents = c.cfg.Agents()
			}
			if c.cfg.Counters != nil {
				kam.RequestsTotal, kam.ErrorsTotal = c.cfg.Counters()
			}
			ka := &gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Keepalive{Keepalive: kam}}
			if err := stream.Send(ka); err != nil {
				return established, fmt.Errorf("send keepalive: %w", streamCause(err, recvErr))
			}
		}
	}
}

// streamCause replaces the io.EOF that Send returns on a broken stream with
// the stream's status, which the receive pump gets from Recv.
func streamCause(err error, recvErr <-chan error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	select {
	case rerr := <-recvErr:
		return rerr
	case <-time.After(time.Second):
		return err
	}
}

// handle processes one message from the control plane without waiting for
// any build: a snapshot is handed to the worker, whose reply the session
// loop sends when it is ready.
func (c *Client) handle(stream grpc.BidiStreamingClient[gatewayv1.SyncRequest, gatewayv1.SyncResponse], m *gatewayv1.SyncResponse) error {
	var reply *gatewayv1.SyncRequest
	switch msg := m.GetMsg().(type) {
	case *gatewayv1.SyncResponse_Snapshot:
		c.received.Inc()
		c.worker.Offer(msg.Snapshot)
		return nil
	case *gatewayv1.SyncResponse_RevocationDelta:
		r, err := c.revocationDelta(msg.RevocationDelta)
		if err != nil {
			return err
		}
		reply = r
	case *gatewayv1.SyncResponse_RevocationReset:
		r, err := c.revocationReset(msg.RevocationReset)
		if err != nil {
			return err
		}
		reply = r
	default:
		// Keepalive, or a message of a newer protocol: liveness only.
		return nil
	}
	if reply == nil {
		return nil
	}
	if err := stream.Send(reply); err != nil {
		return fmt.Errorf("send reply: %w", err)
	}
	return nil
}

func isRevocationMsg(m *gatewayv1.SyncResponse) bool {
	switch m.GetMsg().(type) {
	case *gatewayv1.SyncResponse_RevocationDelta, *gatewayv1.SyncResponse_RevocationReset:
		return true
	}
	return false
}

// revocationDelta applies a delta and returns its ACK. A delta that does
// not start where the set is (a gap) ends the stream: the next Hello
// carries the set's seq and the control plane answers with what fits,
// a reset when needed.
func (c *Client) revocationDelta(d *gatewayv1.RevocationDelta) (*gatewayv1.SyncRequest, error) {
	rev := c.cfg.Revocations
	if rev == nil {
		return nil, nil
	}
	if err := c.cfg.Verifier.Delta(d); err != nil {
		c.rejectedRev.Inc()
		return nil, fmt.Errorf("%w; ignored, reconnecting", err)
	}
	if d.GetToSeq() <= rev.Seq() {
		// Already held (a delta that crossed a reconnect): ACK what we have.
		return revAck(rev.Seq()), nil
	}
	if err := rev.ApplyDelta(d.GetEntries(), d.GetFromSeq(), d.GetToSeq()); err != nil {
		return nil, fmt.Errorf("revocation delta %d..%d: %w; reconnecting to resynchronise", d.GetFromSeq(), d.GetToSeq(), err)
	}
	c.revDirty = true
	c.revSeq.Set(float64(rev.Seq()))
	var newest int64
	for _, e := range d.GetEntries() {
		newest = max(newest, e.GetCreatedUnixMs())
	}
	if newest > 0 {
		c.revLag.Set(max(time.Since(time.UnixMilli(newest)), 0).Seconds())
	}
	c.log.Debug().Uint64("from_seq", d.GetFromSeq()).Uint64("to_seq", d.GetToSeq()).Int("entries", len(d.GetEntries())).
		Msg("revocations applied")
	return revAck(rev.Seq()), nil
}

// revocationReset replaces the set and returns the ACK.
func (c *Client) revocationReset(r *gatewayv1.RevocationReset) (*gatewayv1.SyncRequest, error) {
	rev := c.cfg.Revocations
	if rev == nil {
		return nil, nil
	}
	if err := c.cfg.Verifier.Reset(r); err != nil {
		c.rejectedRev.Inc()
		return nil, fmt.Errorf("%w; ignored, reconnecting", err)
	}
	held := rev.Seq()
	if err := rev.Reset(r.GetSeq(), r.GetEntries()); err != nil {
		return nil, fmt.Errorf("revocation reset to %d: %w", r.GetSeq(), err)
	}
	c.revDirty = true
	c.revSeq.Set(float64(rev.Seq()))
	c.log.Info().Uint64("held_seq", held).Uint64("seq", r.GetSeq()).Int("entries", len(r.GetEntries())).
		Msg("revocation set reset")
	return revAck(rev.Seq()), nil
}

func revAck(seq uint64) *gatewayv1.SyncRequest {
	return &gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_RevocationAck{RevocationAck: &gatewayv1.RevocationAck{Seq: seq}}}
}

// persistRevocations saves the set when it changed since the last save. A
// failure is logged and retried at the next tick: the set in memory is
// what is enforced; the copy on disk only matters for a restart without
// the control plane.
func (c *Client) persistRevocations() {
	if !c.revDirty || c.cfg.Revocations == nil {
		return
	}
	if err := c.cfg.Revocations.Persist(); err != nil {
		c.log.Error().Err(err).Msg("could not persist the revocation set; retrying")
		return
	}
	c.revDirty = false
}

// LoadTLS builds the client TLS configuration from PEM files: caFile
// verifies the control plane (empty: the system roots); certFile and keyFile,
// given together, are the edge's client certificate for mTLS, re-read when
// the files change (the returned Reloader; nil without a certificate).
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, *tlsfile.Reloader, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, nil, fmt.Errorf("load tls: read ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("load tls: %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, nil, errors.New("load tls: client certificate and key go together")
	}
	if certFile != "" {
		// Re-read when the files change: a rotated certificate is used
		// from the next connection on, the open stream is untouched.
		r, err := tlsfile.New(certFile, keyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("load tls: client certificate: %w", err)
		}
		cfg.GetClientCertificate = r.GetClientCertificate
		return cfg, r, nil
	}
	return cfg, nil, nil
}

// TransportDialOptions are the sync connection's gRPC settings besides
// credentials (the fleet benchmark's simulated edges use them too): the
// message limit, and fixed 1 MiB windows instead of gRPC's dynamic ones,
// whose bandwidth probing answers the first message after a quiet period
// with a PING, so every revocation delta would cost the control plane a
// read and a write more per edge. 1 MiB in flight is 10 MB/s at a 100 ms
// round trip for a large snapshot.
func TransportDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes)),
		grpc.WithInitialWindowSize(syncWindow),
		grpc.WithInitialConnWindowSize(syncWindow),
	}
}
