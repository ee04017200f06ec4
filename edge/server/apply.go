package server

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/apigw/gateway/edge/lkg"
	"github.com/apigw/gateway/edge/plan"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// SchemaVersion is the newest Snapshot schema this edge build understands
// (plan.Build refuses newer ones); the edge announces it in Hello.
const SchemaVersion = plan.SchemaVersion

// ApplierConfig configures an Applier. Server is required.
type ApplierConfig struct {
	Server *Server
	Logger zerolog.Logger
	// Deps is handed to every plan.Build: the process-wide registries that
	// outlive plans (upstream clients, JWKS keys, the revocation set, QoS
	// state, metrics) and DisabledFeatures. Create them once per process:
	// a nil registry makes Build create one owned by the plan, which then
	// does not survive a swap. Deps.Logger is replaced by Logger with the
	// snapshot version.
	Deps plan.Deps
	// Store persists every applied snapshot; nil disables persistence
	// (standalone mode).
	Store *lkg.Store
}

// Validate reports a configuration that NewApplier would refuse.
func (c ApplierConfig) Validate() error {
	if c.Server == nil {
		return errors.New("applier config: server is required")
	}
	return nil
}

// Applier is the one path by which a snapshot becomes the served plan, for
// pushed snapshots, snapshots restored from disk and standalone files alike:
// verify the sha256 of the payload, decode, build the plan off the request
// path (plan.Build checks the schema version and the features), swap it in,
// persist it. It is safe for concurrent use; applies are serialised.
type Applier struct {
	cfg ApplierConfig
	log zerolog.Logger

	mu sync.Mutex // serialises applies
}

// NewApplier returns an Applier feeding cfg.Server.
func NewApplier(cfg ApplierConfig) (*Applier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Applier{cfg: cfg, log: cfg.Logger.With().Str("component", "apply").Logger()}, nil
}

// Current returns the version and sha256 being served.
func (a *Applier) Current() (version uint64, sha string) { return a.cfg.Server.Current() }

// Apply makes env the served snapshot and persists it. On error the plan
// being served is unchanged; the error wraps *plan.BuildError when the
// snapshot cannot be served (its violations belong in a NACK). Applying the
// snapshot already served is a no-op. A failure to persist is logged, not
// returned: the new plan is live by then.
func (a *Applier) Apply(ctx context.Context, env *gatewayv1.SnapshotEnvelope) error {
	return a.apply(ctx, env, "controlplane", true)
}

// Restore makes env (read from the data dir at boot) the served snapshot
// without writing it back.
func (a *Applier) Restore(ctx context.Context, env *gatewayv1.SnapshotEnvelope) error {
	return a.apply(ctx, env, "disk", false)
}

// ApplyLocal makes env (compiled from a local file, standalone mode) the
// served snapshot.
func (a *Applier) ApplyLocal(ctx context.Context, env *gatewayv1.SnapshotEnvelope) error {
	return a.apply(ctx, env, "file", false)
}

func (a *Applier) apply(ctx context.Context, env *gatewayv1.SnapshotEnvelope, source string, persist bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("apply snapshot v%d: %w", env.GetVersion(), err)
	}
	if v, sha := a.Current(); v == env.GetVersion() && sha == env.GetSha256() && sha != "" {
		return nil
	}
	m := a.cfg.Server.m
	start := time.Now()
	p, endpoints, result, err := a.build(env)
	m.applyS.Observe(time.Since(start).Seconds())
	m.applies.WithLabelValues(result).Inc()
	if err != nil {
		err = fmt.Errorf("apply snapshot v%d: %w", env.GetVersion(), err)
		a.log.Error().Uint64("version", env.GetVersion()).Str("sha256", env.GetSha256()).
			Str("source", source).Err(err).Msg("snapshot rejected")
		return err
	}
	a.cfg.Server.Swap(p, env.GetVersion(), env.GetSha256())
	a.log.Info().Uint64("version", env.GetVersion()).Str("sha256", env.GetSha256()).
		Str("source", source).Int("endpoints", endpoints).Dur("took", time.Since(start)).
		Msg("snapshot applied")

	if persist && a.cfg.Store != nil {
		if err := a.cfg.Store.Save(env); err != nil {
			a.log.Error().Uint64("version", env.GetVersion()).Err(err).
				Msg("could not persist snapshot; a restart without the control plane would serve an older one")
		}
	}
	return nil
}

// build verifies, decodes and compiles env. A panic in plan.Build (a bug)
// becomes an error: one poisonous snapshot must not take down every edge of
// the fleet at once.
func (a *Applier) build(env *gatewayv1.SnapshotEnvelope) (p *plan.Plan, endpoints int, result string, err error) {
	if err := lkg.Verify(env); err != nil {
		return nil, 0, resultInvalid, err
	}
	snap := &gatewayv1.Snapshot{}
	if err := proto.Unmarshal(env.GetPayload(), snap); err != nil {
		return nil, 0, resultInvalid, fmt.Errorf("decode snapshot: %w", err)
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
		return nil, 0, resultRejected, fmt.Errorf("build plan: %w", withViolations(err))
	}
	if p == nil {
		return nil, 0, resultRejected, errors.New("build plan: no plan and no error")
	}
	return p, len(snap.GetEndpoints()), resultOK, nil
}

// violationsError keeps a *plan.BuildError reachable with errors.As while its
// message lists the violations, so the NACK detail (and gwctl) can show them
// whatever BuildError.Error says.
type violationsError struct {
	msg string
	err error
}

func (e *violationsError) Error() string { return e.msg }
func (e *violationsError) Unwrap() error { return e.err }

func withViolations(err error) error {
	var be *plan.BuildError
	if !errors.As(err, &be) || len(be.Violations) == 0 {
		return err
	}
	msg := err.Error()
	var missing []string
	for _, v := range be.Violations {
		line := v.GetPath() + ": " + v.GetKind() + ": " + v.GetDetail()
		if !strings.Contains(msg, line) {
			missing = append(missing, line)
		}
	}
	if len(missing) == 0 {
		return err
	}
	return &violationsError{msg: msg + ": " + strings.Join(missing, "; "), err: err}
}
