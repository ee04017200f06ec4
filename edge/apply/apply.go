// Package apply owns the edge's snapshot lifecycle: the one path by which a
// SnapshotEnvelope becomes the served plan, for pushed snapshots, snapshots
// restored from disk and standalone files alike.
//
//	verify (sha256 of the payload) → decode → plan.Build → swap → persist → ACK/NACK
//
// An Applier runs that path synchronously (Apply, Restore, ApplyLocal). A
// Worker runs it on its own goroutine for the control-plane stream: the
// stream loop offers each snapshot and goes back to receiving, so a build
// that waits for a JWKS or compiles ten thousand endpoints never delays a
// revocation delta or a keepalive. Offers are latest-wins: a snapshot that
// arrives while another builds replaces any one still waiting, so the edge
// never builds a version that is already stale.
//
// apply swaps plans into a Target (the edge's HTTP server), persists them in
// an lkg.Store and answers with the Ack or Nack the stream sends. It imports
// edge/plan and edge/lkg, never edge/server, edge/watch nor anything from the
// control plane.
package apply

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/apigw/gateway/edge/lkg"
	"github.com/apigw/gateway/edge/plan"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/proto/sign"
)

// SchemaVersion is the newest Snapshot schema this edge build understands
// (plan.Build refuses newer ones); the edge announces it in Hello.
const SchemaVersion = plan.SchemaVersion

// Target is what serves the plans an Applier builds: the edge's HTTP server.
type Target interface {
	// Swap publishes p for every request from now on and releases the
	// previous plan.
	Swap(p *plan.Plan, version uint64, sha string)
	// Current returns the version and sha256 being served (0, "" if none).
	Current() (version uint64, sha string)
}

// Config configures an Applier. Target is required; the zero value of every
// other field is usable.
type Config struct {
	Target Target
	Logger zerolog.Logger
	// Deps is handed to every plan.Build: the process-wide registries that
	// outlive plans (upstream clients, JWKS keys, the revocation set, QoS
	// state, metrics) and DisabledFeatures. Create them once per process:
	// a nil registry makes Build create one owned by the plan, which then
	// does not survive a swap. Deps.Logger is replaced by Logger with the
	// snapshot version.
	Deps plan.Deps
	// Store persists every snapshot applied from the control plane; nil
	// disables persistence (standalone mode).
	Store *lkg.Store
	// Verifier checks the control plane's signature of every snapshot from
	// the control plane or the data dir before anything else reads it; a
	// snapshot that does not verify is NACKed, never served or saved. Nil
	// accepts unsigned snapshots: the explicit insecure mode. Snapshots
	// compiled from a local file (ApplyLocal) are not signed.
	Verifier *sign.Verifier
	// Registerer receives gw_edge_snapshot_applies_total and
	// gw_edge_apply_seconds; nil keeps them unregistered.
	Registerer prometheus.Registerer
}

// Validate reports a configuration that New would refuse.
func (c Config) Validate() error {
	if c.Target == nil {
		return errors.New("apply config: target is required")
	}
	return nil
}

// Option is a test hook for New.
type Option func(*Applier)

// WithBuildHook makes every apply call hook after the snapshot is verified
// and decoded and before plan.Build runs, on the goroutine that applies. A
// hook that blocks holds the build (tests use it to show that nothing else
// waits for a build); it must return once ctx is done.
func WithBuildHook(hook func(ctx context.Context, env *gatewayv1.SnapshotEnvelope)) Option {
	return func(a *Applier) { a.buildHook = hook }
}

// Apply results, the values of gw_edge_snapshot_applies_total{result}.
const (
	resultOK       = "ok"       // built, swapped in
	resultInvalid  = "invalid"  // sha256 mismatch, undecodable
	resultRejected = "rejected" // plan.Build refused it
	resultUnsigned = "unsigned" // no signature, or one that no pinned key verifies
)

// sourceFile is the source of a snapshot compiled from a local file.
const sourceFile = "file"

// Applier makes snapshots the served plan. It is safe for concurrent use;
// applies are serialised.
type Applier struct {
	cfg       Config
	log       zerolog.Logger
	applies   *prometheus.CounterVec
	applyS    prometheus.Histogram
	buildHook func(context.Context, *gatewayv1.SnapshotEnvelope)

	mu sync.Mutex // serialises applies and guards the field below
	// rejected is the last NACK answered. A snapshot the edge refused is
	// answered again from here, without a rebuild, if a control plane that
	// forgot the NACK (a restart) offers it once more: plan.Build is
	// deterministic for one edge build.
	rejected *gatewayv1.Nack
	// rejectedID is rejected's version and sha256, readable without mu
	// (which a build holds): the stream's Hello reports it.
	rejectedID atomic.Pointer[SnapshotID]
}

// SnapshotID names a snapshot by version and sha256.
type SnapshotID struct {
	Version uint64
	SHA256  string
}

// Rejected returns the snapshot the Applier NACKed last (zero when none,
// or when a later snapshot was applied). It never waits for a build.
func (a *Applier) Rejected() SnapshotID {
	if id := a.rejectedID.Load(); id != nil {
		return *id
	}
	return SnapshotID{}
}

// setRejected records n as the last NACK (nil clears it); a.mu is held.
func (a *Applier) setRejected(n *gatewayv1.Nack) {
	a.rejected = n
	if n == nil {
		a.rejectedID.Store(nil)
		return
	}
	a.rejectedID.Store(&SnapshotID{Version: n.GetVersion(), SHA256: n.GetSha256()})
}

// New returns an Applier feeding cfg.Target.
func New(cfg Config, opts ...Option) (*Applier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Applier{
		cfg: cfg,
		log: cfg.Logger.With().Str("component", "apply").Logger(),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gw_edge_snapshot_applies_total",
			Help: "Snapshots the edge tried to apply, by result (ok, invalid, rejected, unsigned).",
		}, []string{"result"}),
		applyS: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gw_edge_apply_seconds",
			Help:    "Time to verify, decode, build and swap in a snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
	}
	for _, r := range []string{resultOK, resultInvalid, resultRejected, resultUnsigned} {
		a.applies.WithLabelValues(r)
	}
	for _, o := range opts {
		o(a)
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{a.applies, a.applyS} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("apply: register metrics: %w", err)
			}
		}
	}
	return a, nil
}

// Current returns the version and sha256 being served.
func (a *Applier) Current() (version uint64, sha string) { return a.cfg.Target.Current() }

// Apply makes env (pushed by the control plane) the served snapshot and
// persists it. On error the plan being served is unchanged; the error wraps
// *plan.BuildError when the snapshot cannot be served (its violations belong
// in a NACK). Applying the snapshot already served is a no-op. A failure to
// persist is logged, not returned: the new plan is live by then.
func (a *Applier) Apply(ctx context.Context, env *gatewayv1.SnapshotEnvelope) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applyLocked(ctx, env, "controlplane", true)
}

// Restore makes env (read from the data dir at boot) the served snapshot
// without writing it back.
func (a *Applier) Restore(ctx context.Context, env *gatewayv1.SnapshotEnvelope) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applyLocked(ctx, env, "disk", false)
}

// ApplyLocal makes env (compiled from a local file, standalone mode) the
// served snapshot.
func (a *Applier) ApplyLocal(ctx context.Context, env *gatewayv1.SnapshotEnvelope) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applyLocked(ctx, env, sourceFile, false)
}

// Answer applies env as Apply does and returns the Ack or Nack the edge
// sends for it. A snapshot already served is ACKed without work; one this
// Applier NACKed last is NACKed again without a rebuild.
func (a *Applier) Answer(ctx context.Context, env *gatewayv1.SnapshotEnvelope) *gatewayv1.SyncRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	if v, sha := a.Current(); v == env.GetVersion() && sha == env.GetSha256() {
		return ack(env)
	}
	if r := a.rejected; r != nil && r.GetVersion() == env.GetVersion() && r.GetSha256() == env.GetSha256() {
		a.log.Info().Uint64("version", env.GetVersion()).Msg("snapshot offered again after a NACK; answering with the same NACK")
		r.RunningVersion, _ = a.Current()
		return &gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Nack{Nack: proto.CloneOf(r)}}
	}
	err := a.applyLocked(ctx, env, "controlplane", true)
	if err == nil {
		a.setRejected(nil)
		return ack(env)
	}
	n := nack(env, err)
	n.RunningVersion, _ = a.Current()
	if ctx.Err() == nil {
		// A failure because the edge is stopping says nothing about the
		// snapshot: do not remember it.
		a.setRejected(proto.CloneOf(n))
	}
	return &gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Nack{Nack: n}}
}

// nack is the NACK for env refused with err. Violations travel on their
// own; the detail then says only what happened, so the control plane does
// not show them twice.
func nack(env *gatewayv1.SnapshotEnvelope, err error) *gatewayv1.Nack {
	n := &gatewayv1.Nack{Version: env.GetVersion(), Sha256: env.GetSha256(), Detail: err.Error()}
	var be *plan.BuildError
	if errors.As(err, &be) && len(be.Violations) > 0 {
		n.Violations = be.Violations
		n.Detail = fmt.Sprintf("snapshot v%d cannot be served by this edge", env.GetVersion())
	}
	return n
}

func ack(env *gatewayv1.SnapshotEnvelope) *gatewayv1.SyncRequest {
	return &gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Ack{Ack: &gatewayv1.Ack{Version: env.GetVersion(), Sha256: env.GetSha256()}}}
}

// applyLocked runs the lifecycle for env; a.mu is held.
func (a *Applier) applyLocked(ctx context.Context, env *gatewayv1.SnapshotEnvelope, source string, persist bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("apply snapshot v%d: %w", env.GetVersion(), err)
	}
	if v, sha := a.Current(); v == env.GetVersion() && sha == env.GetSha256() && sha != "" {
		return nil
	}
	start := time.Now()
	defer pauseGC(len(env.GetPayload()))()
	p, endpoints, result, err := a.build(ctx, env, source != sourceFile)
	a.applyS.Observe(time.Since(start).Seconds())
	a.applies.WithLabelValues(result).Inc()
	if err != nil {
		err = fmt.Errorf("apply snapshot v%d: %w", env.GetVersion(), err)
		a.log.Error().Uint64("version", env.GetVersion()).Str("sha256", env.GetSha256()).
			Str("source", source).Err(err).Msg("snapshot rejected")
		return err
	}
	a.cfg.Target.Swap(p, env.GetVersion(), env.GetSha256())
	a.log.Info().Uint64("version", env.GetVersion()).Str("sha256", env.GetSha256()).
		Str("source", source).Int("endpoints", endpoints).Dur("took", time.Since(start)).
		Msg("snapshot applied")

	if persist && a.cfg.Store != nil {
		if err := a.cfg.Store.Save(env); err != nil {
			a.log.Error().Uint64("version", env.GetVersion()).Err(err).
				Msg("could not persist snapshot; a restart without the control plane would serve an older one")
		}
	}
	// The build's garbage and the replaced plan are free now, but the
	// runtime hands idle pages back to the OS only slowly: after a
	// 10,000-endpoint apply the edge stayed at about 150 MB resident for
	// 65 MB of heap in use. One collection that returns them brings it
	// back to what the new plan needs: the one GC of the apply (pauseGC
	// held the others off).
	debug.FreeOSMemory()
	return nil
}

// pauseGC stops the collector from running on its GOGC pacing until the
// returned func is called, and bounds the heap meanwhile with a memory
// limit of what the process holds now plus 64 MiB and 64 times the
// payload (decoding and building a 10,000-endpoint snapshot allocate
// about 45 times its 1.7 MB payload). Collections during a build slowed
// the requests served meanwhile: one client's p99 during five
// 10,000-endpoint applies was 11.2 ms with them against 4.0 ms idle, and
// 4.7 ms against 4.8 ms without them (a real gw-edge, same load). A
// build larger than the bound is collected by the limit as it goes. The
// operator's GOGC=off or a lower GOMEMLIMIT are kept.
func pauseGC(payload int) (resume func()) {
	pct := debug.SetGCPercent(-1)
	if pct < 0 {
		return func() {}
	}
	limit := debug.SetMemoryLimit(-1) // reads it
	// What the limit counts: mapped memory not yet returned to the OS.
	held := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(held)
	bound := int64(held[0].Value.Uint64()-held[1].Value.Uint64()) + 64<<20 + 64*int64(payload)
	debug.SetMemoryLimit(min(limit, bound))
	return func() {
		debug.SetMemoryLimit(limit)
		debug.SetGCPercent(pct)
	}
}

// build verifies, decodes and compiles env. A panic in plan.Build (a bug)
// becomes an error: one poisonous snapshot must not take down every edge of
// the fleet at once.
func (a *Applier) build(ctx context.Context, env *gatewayv1.SnapshotEnvelope, signed bool) (p *plan.Plan, endpoints int, result string, err error) {
	if err := lkg.Verify(env); err != nil {
		return nil, 0, resultInvalid, err
	}
	if signed {
		if err := a.cfg.Verifier.Snapshot(env); err != nil {
			return nil, 0, resultUnsigned, err
		}
	}
	snap := &gatewayv1.Snapshot{}
	if err := proto.Unmarshal(env.GetPayload(), snap); err != nil {
		return nil, 0, resultInvalid, fmt.Errorf("decode snapshot: %w", err)
	}
	if a.buildHook != nil {
		a.buildHook(ctx, env)
		if err := ctx.Err(); err != nil {
			return nil, 0, resultRejected, fmt.Errorf("build plan: %w", err)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			a.log.Error().Str("panic", fmt.Sprint(r)).Bytes("stack", debug.Stack()).Msg("plan build panicked")
			p, result, err = nil, resultRejected, fmt.Errorf("build plan: internal error (panic: %v)", r)
		}
	}()
	deps := a.cfg.Deps
	deps.Logger = a.cfg.Logger.With().Str("component", "plan").Uint64("version", env.GetVersion()).Logger()
	p, err = plan.Build(snap, deps)
	if err != nil {
		// BuildError renders every violation and names the operation.
		return nil, 0, resultRejected, err
	}
	if p == nil {
		return nil, 0, resultRejected, errors.New("build plan: no plan and no error")
	}
	return p, len(snap.GetEndpoints()), resultOK, nil
}
