package service

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/apigw/gateway/controlplane/store"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// A staged rollout: Push with canary regions commits the version together
// with a rollout record (one store transaction), and the hub serves that
// version only to edges of those regions; every other region keeps the
// stable version. The record's phase then moves once, from canary to
// promoted (Promote, or the soak period passed), aborted (Abort) or halted
// (a canary edge NACKed it, or the canary edges' 5xx rate passed the
// threshold). Aborted and halted send the canaries back to the stable
// version; a halted rollout may still be promoted or aborted by hand.
// Every change is a compare-and-swap on the record's generation, so two
// replicas deciding at once never both win, and it is in the store, so a
// restarted control plane carries on where it was.
const (
	phaseCanary   = "canary"
	phasePromoted = "promoted"
	phaseAborted  = "aborted"
	phaseHalted   = "halted"

	// DefaultRolloutCheckInterval is how often the canary's edges are
	// checked for NACKs, the error rate and the end of the soak period.
	DefaultRolloutCheckInterval = time.Second
	// MinErrorRateSample is how many responses the canary edges must have
	// served on the version before its error rate is judged: one 5xx out of
	// three requests is not a rate.
	MinErrorRateSample = 50
	// maxCanaryRegions bounds a push's canary list.
	maxCanaryRegions = 64
	// automaticWho is the audit identity of the control plane's own
	// decisions.
	automaticWho = "control-plane (automatic)"
)

// canaryPlan is what a push asked to stage; record is the rollout the
// commit wrote (nil when nothing was created).
type canaryPlan struct {
	regions      []string
	soak         time.Duration
	maxErrorRate float64
	author       string
	record       *gatewayv1.Rollout
}

// newCanaryPlan checks the rollout fields of a push; nil when it has none.
func newCanaryPlan(req *gatewayv1.PushRequest) (*canaryPlan, error) {
	regions, soak, rate := req.GetCanaryRegions(), req.GetSoakMs(), req.GetMaxErrorRate()
	if len(regions) == 0 {
		if soak != 0 || rate != 0 {
			return nil, status.Error(codes.InvalidArgument, "push: soak and max error rate need canary regions")
		}
		return nil, nil
	}
	var errs []string
	if len(regions) > maxCanaryRegions {
		errs = append(errs, fmt.Sprintf("canary regions: at most %d, got %d", maxCanaryRegions, len(regions)))
	}
	for _, r := range regions {
		if r == "" || len(r) > 128 || strings.ContainsAny(r, ", \t\n") {
			errs = append(errs, fmt.Sprintf("canary region %q: must be a non-empty name without commas or spaces (at most 128 bytes)", r))
		}
	}
	if soak < 0 {
		errs = append(errs, fmt.Sprintf("soak: must not be negative, got %dms", soak))
	}
	if math.IsNaN(rate) || rate < 0 || rate > 1 {
		errs = append(errs, fmt.Sprintf("max error rate: must be between 0 and 1, got %v", rate))
	}
	if len(errs) > 0 {
		return nil, status.Error(codes.InvalidArgument, "push: "+strings.Join(errs, "; "))
	}
	sorted := slices.Clone(regions)
	slices.Sort(sorted)
	return &canaryPlan{regions: slices.Compact(sorted), soak: time.Duration(soak) * time.Millisecond, maxErrorRate: rate, author: authorOr(req.GetAuthor())}, nil
}

// readRollout reads the rollout record from the store (not the hub: a
// decision must see what another replica wrote a moment ago).
func (s *Service) readRollout(ctx context.Context) (*gatewayv1.Rollout, uint64, error) {
	data, gen, err := s.store.Rollout(ctx)
	if err != nil || data == nil {
		return nil, gen, err
	}
	r := &gatewayv1.Rollout{}
	if err := proto.Unmarshal(data, r); err != nil {
		return nil, 0, fmt.Errorf("decode the rollout record: %w", err)
	}
	return r, gen, nil
}

// staged reports whether r stages latest (r is about the newest version).
func staged(r *gatewayv1.Rollout, latest *store.Revision) bool {
	return r != nil && latest != nil && r.GetVersion() == latest.Version
}

// errRolloutInProgress refuses a change while a canary runs.
func errRolloutInProgress(op string, r *gatewayv1.Rollout) error {
	return status.Errorf(codes.FailedPrecondition, "%s: version %d is in canary in %s; promote or abort it first (gwctl promote %d / gwctl abort %d)",
		op, r.GetVersion(), strings.Join(r.GetRegions(), ","), r.GetVersion(), r.GetVersion())
}

// stableFor is the version the regions outside a new canary would keep
// serving: the latest, unless the latest is an aborted or halted canary,
// whose regions went back to its stable version.
func stableFor(r *gatewayv1.Rollout, latest *store.Revision) uint64 {
	if latest == nil {
		return 0
	}
	if staged(r, latest) && (r.GetPhase() == phaseAborted || r.GetPhase() == phaseHalted) {
		return r.GetStableVersion()
	}
	return latest.Version
}

func marshalRollout(r *gatewayv1.Rollout) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("marshal rollout: %v", err)) // a message of scalars cannot fail
	}
	return b
}

// transition moves the rollout of version from one of the phases in from to
// phase to, with reason, and returns the new record. Lost races with
// another writer are retried on the fresh record.
func (s *Service) transition(ctx context.Context, op string, version uint64, from []string, to, reason string) (*gatewayv1.Rollout, error) {
	for range commitAttempts {
		r, gen, err := s.readRollout(ctx)
		if err != nil {
			return nil, err
		}
		latest, err := latestMeta(ctx, s.store)
		if err != nil {
			return nil, err
		}
		if r == nil || r.GetVersion() != version {
			return nil, status.Errorf(codes.FailedPrecondition, "%s: version %d is not in a staged rollout%s", op, version, describeRollout(r))
		}
		if !staged(r, latest) {
			return nil, status.Errorf(codes.FailedPrecondition, "%s: version %d was superseded by version %d", op, version, latest.Version)
		}
		if !slices.Contains(from, r.GetPhase()) {
			return nil, status.Errorf(codes.FailedPrecondition, "%s: the rollout of version %d is already %s (%s)", op, version, r.GetPhase(), r.GetReason())
		}
		next := proto.Clone(r).(*gatewayv1.Rollout)
		next.Phase, next.Reason, next.UpdatedUnixMs = to, truncate(reason, maxAuditReason), time.Now().UnixMilli()
		if _, err := s.store.PutRollout(ctx, gen, marshalRollout(next)); err != nil {
			if errors.Is(err, store.ErrStale) {
				continue
			}
			return nil, err
		}
		s.log.Info().Uint64("version", version).Str("from", r.GetPhase()).Str("phase", to).Str("reason", next.GetReason()).Msg("rollout " + to)
		return next, nil
	}
	return nil, status.Errorf(codes.Aborted, "%s: the rollout changed concurrently; retry", op)
}

func describeRollout(r *gatewayv1.Rollout) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf(" (the latest rollout is version %d, %s)", r.GetVersion(), r.GetPhase())
}

// Promote takes the version in canary (or halted) to every region.
func (a *adminServer) Promote(ctx context.Context, req *gatewayv1.PromoteRequest) (_ *gatewayv1.PromoteResponse, err error) {
	who := auditAuthor(ctx, req.GetAuthor())
	ae := &gatewayv1.AuditEntry{Action: "promote", Who: who, Version: req.GetVersion()}
	defer func() { a.svc.record(ctx, ae, err) }()
	if req.GetVersion() == 0 {
		return nil, status.Error(codes.InvalidArgument, "promote: version is required")
	}
	r, err := a.svc.transition(ctx, "promote", req.GetVersion(), []string{phaseCanary, phaseHalted}, phasePromoted, "promoted by "+who)
	if err != nil {
		return nil, toStatus(a.svc.log, "promote", err)
	}
	ae.Outcome, ae.Reason, ae.PreviousVersion = outcomeCreated, r.GetReason(), r.GetStableVersion()
	return &gatewayv1.PromoteResponse{Rollout: r}, nil
}

// Abort sends the canary regions back to the stable version.
func (a *adminServer) Abort(ctx context.Context, req *gatewayv1.AbortRequest) (_ *gatewayv1.AbortResponse, err error) {
	who := auditAuthor(ctx, req.GetAuthor())
	ae := &gatewayv1.AuditEntry{Action: "abort", Who: who, Version: req.GetVersion()}
	defer func() { a.svc.record(ctx, ae, err) }()
	if req.GetVersion() == 0 {
		return nil, status.Error(codes.InvalidArgument, "abort: version is required")
	}
	r, err := a.svc.transition(ctx, "abort", req.GetVersion(), []string{phaseCanary, phaseHalted}, phaseAborted, "aborted by "+who)
	if err != nil {
		return nil, toStatus(a.svc.log, "abort", err)
	}
	ae.Outcome, ae.Reason, ae.PreviousVersion = outcomeCreated, r.GetReason(), r.GetStableVersion()
	return &gatewayv1.AbortResponse{Rollout: r}, nil
}

// rolloutStatus is the hub's rollout record with what the fleet's edges of
// its regions say (every replica's, on a shared store) (nil when there never was a rollout).
func (s *Service) rolloutStatus() *gatewayv1.Rollout {
	r, _ := s.hub.rollout()
	if r == nil {
		return nil
	}
	out := proto.Clone(r).(*gatewayv1.Rollout)
	st := s.canary(r.GetRegions(), r.GetVersion())
	out.CanaryEdges, out.CanaryApplied = uint32(st.edges), uint32(st.applied)
	out.CanaryRequests, out.CanaryErrors = st.requests, st.errors
	return out
}

// rolloutChecks runs checkRollout every interval until ctx is done.
func (s *Service) rolloutChecks(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func(now time.Time) { s.checkRollout(ctx, now) })
}

// checkRollout halts a canary that a canary edge NACKed or whose error rate
// passed its threshold, and promotes one whose soak period passed with at
// least one canary edge serving it. It judges the whole fleet's canary
// edges (on a shared store also those streaming from other replicas, as
// they published them); any replica's decision is final
// (compare-and-swap).
func (s *Service) checkRollout(ctx context.Context, now time.Time) {
	r, _ := s.hub.rollout()
	cur := s.hub.current()
	if r == nil || r.GetPhase() != phaseCanary || cur == nil || cur.env.GetVersion() != r.GetVersion() {
		return
	}
	st := s.canary(r.GetRegions(), r.GetVersion())
	var to, reason string
	switch {
	case len(st.nacked) > 0:
		to, reason = phaseHalted, fmt.Sprintf("canary edge %s NACKed version %d: %s", strings.Join(st.nacked, ", "), r.GetVersion(), oneLine(st.nackText))
	case r.GetMaxErrorRate() > 0 && st.requests >= MinErrorRateSample && float64(st.errors)/float64(st.requests) > r.GetMaxErrorRate():
		to, reason = phaseHalted, fmt.Sprintf("canary error rate %.4f (%d of %d responses 5xx) is above the maximum %v", float64(st.errors)/float64(st.requests), st.errors, st.requests, r.GetMaxErrorRate())
	case r.GetSoakMs() > 0 && now.UnixMilli() >= r.GetStartedUnixMs()+r.GetSoakMs() && st.applied > 0:
		to, reason = phasePromoted, fmt.Sprintf("soaked for %s on %d canary edge%s", time.Duration(r.GetSoakMs())*time.Millisecond, st.applied, plural(st.applied))
	default:
		return
	}
	action := "halt"
	if to == phasePromoted {
		action = "promote"
	}
	ae := &gatewayv1.AuditEntry{Action: action, Who: automaticWho, Version: r.GetVersion(), PreviousVersion: r.GetStableVersion()}
	next, err := s.transition(ctx, action, r.GetVersion(), []string{phaseCanary}, to, reason)
	if err != nil {
		if ctx.Err() != nil || isClosed(err) {
			return
		}
		if status.Code(err) == codes.FailedPrecondition {
			return // another replica (or an operator) decided first
		}
		s.log.Error().Err(err).Uint64("version", r.GetVersion()).Str("phase", to).Msg("rollout: could not record the decision")
		return
	}
	ae.Outcome, ae.Reason = outcomeCreated, next.GetReason()
	s.record(ctx, ae, nil)
	if to == phaseHalted {
		s.log.Warn().Uint64("version", r.GetVersion()).Str("reason", reason).Msg("rollout halted; the canary regions go back to the stable version")
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
