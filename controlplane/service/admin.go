package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/apigw/gateway/controlplane/config"
	"github.com/apigw/gateway/controlplane/store"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

const (
	defaultHistoryLimit = 50
	maxHistoryLimit     = 1000
	// commitAttempts bounds the retries of a push or rollback that lost a
	// compare-and-swap race to another writer.
	commitAttempts = 3
)

// adminServer implements gatewayv1.AdminServiceServer on top of a Service.
type adminServer struct {
	gatewayv1.UnimplementedAdminServiceServer
	svc *Service
}

// Validate compiles the configuration without storing it. Violations are a
// normal answer (OK with violations), not an error.
func (a *adminServer) Validate(_ context.Context, req *gatewayv1.ValidateRequest) (*gatewayv1.ValidateResponse, error) {
	c, err := a.svc.compile(req.GetSource())
	if ve := (*config.ValidationError)(nil); errors.As(err, &ve) {
		return &gatewayv1.ValidateResponse{Violations: ve.Violations, Warnings: ve.Warnings}, nil
	}
	if err != nil {
		return nil, toStatus(a.svc.log, "validate", err)
	}
	return &gatewayv1.ValidateResponse{Sha256: c.SHA256, Warnings: c.Warnings}, nil
}

// Push compiles the configuration and stores it as a new version, unless its
// snapshot equals the latest version's, which is then returned with
// created=false.
func (a *adminServer) Push(ctx context.Context, req *gatewayv1.PushRequest) (_ *gatewayv1.PushResponse, err error) {
	req.Author = auditAuthor(ctx, req.GetAuthor())
	ae := &gatewayv1.AuditEntry{Action: "push", Who: authorOr(req.GetAuthor()), Source: req.GetSource().GetFilename()}
	defer func() { a.svc.record(ctx, ae, err) }()
	plan, err := newCanaryPlan(req)
	if err != nil {
		return nil, err
	}
	c, err := a.svc.compile(req.GetSource())
	if ve := (*config.ValidationError)(nil); errors.As(err, &ve) {
		ae.Violations = uint32(len(ve.Violations))
	}
	if err != nil {
		return nil, toStatus(a.svc.log, "push", err)
	}
	rev := &store.Revision{
		SHA256:     c.SHA256,
		Payload:    c.Payload,
		Source:     req.GetSource().GetContent(),
		SourceName: req.GetSource().GetFilename(),
		Author:     authorOr(req.GetAuthor()),
		Endpoints:  uint32(len(c.Snapshot.GetEndpoints())),
		Warnings:   storeWarnings(c.Warnings),
	}
	for _, f := range req.GetSource().GetRenderedFrom() {
		rev.RenderedFrom = append(rev.RenderedFrom, store.SourceFile{Name: f.GetName(), SHA256: f.GetSha256()})
	}
	got, created, err := a.svc.commitUnlessCurrent(ctx, "push", rev, plan)
	if err != nil {
		return nil, toStatus(a.svc.log, "push", err)
	}
	a.svc.auditVersion(ctx, ae, got, created, c.Snapshot)
	resp := &gatewayv1.PushResponse{Version: versionInfo(got), Created: created, Warnings: c.Warnings}
	if plan != nil && plan.record != nil {
		resp.Rollout = plan.record
		ae.Reason = fmt.Sprintf("canary in %s, stable version %d", strings.Join(plan.record.GetRegions(), ","), plan.record.GetStableVersion())
	}
	return resp, nil
}

// auditVersion fills ae with the version a push or rollback produced (or
// returned unchanged) and, for a new one, the summary of its diff against
// the version before it (versions are contiguous, so that is got-1).
func (s *Service) auditVersion(ctx context.Context, ae *gatewayv1.AuditEntry, got *store.Revision, created bool, snap *gatewayv1.Snapshot) {
	ae.Version, ae.Sha256 = got.Version, got.SHA256
	if !created {
		ae.Outcome, ae.PreviousVersion = outcomeUnchanged, got.Version
		return
	}
	ae.Outcome, ae.PreviousVersion = outcomeCreated, got.Version-1
	if snap == nil {
		snap = &gatewayv1.Snapshot{}
		if err := proto.Unmarshal(got.Payload, snap); err != nil {
			s.log.Warn().Err(err).Uint64("version", got.Version).Msg("audit: version undecodable; no diff summary")
			return
		}
	}
	ae.Diff = s.diffSummary(ctx, ae.PreviousVersion, snap)
}

// Diff compiles the configuration and compares its snapshot with the latest
// version's.
func (a *adminServer) Diff(ctx context.Context, req *gatewayv1.DiffRequest) (*gatewayv1.DiffResponse, error) {
	c, err := a.svc.compile(req.GetSource())
	if err != nil {
		return nil, toStatus(a.svc.log, "diff", err)
	}
	latest, err := latestOrNil(ctx, a.svc.store)
	if err != nil {
		return nil, toStatus(a.svc.log, "diff", err)
	}
	resp := &gatewayv1.DiffResponse{}
	var old *gatewayv1.Snapshot
	if latest != nil {
		resp.CurrentVersion = latest.Version
		old = &gatewayv1.Snapshot{}
		if err := proto.Unmarshal(latest.Payload, old); err != nil {
			return nil, toStatus(a.svc.log, "diff", fmt.Errorf("decode version %d: %w", latest.Version, err))
		}
	}
	resp.Changes = config.Diff(old, c.Snapshot)
	return resp, nil
}

// Status page sizes.
const (
	defaultStatusPage = 500
	maxStatusPage     = 1000
)

// Status reports the current version, the revocation log's seq and every
// edge seen since start (with the revocation seq it ACKed).
func (a *adminServer) Status(ctx context.Context, req *gatewayv1.StatusRequest) (*gatewayv1.StatusResponse, error) {
	resp := &gatewayv1.StatusResponse{SyncCertNotAfterUnixMs: a.svc.syncCertNotAfter.Load()}
	latest, err := latestMeta(ctx, a.svc.store)
	if err != nil {
		return nil, toStatus(a.svc.log, "status", err)
	}
	if latest != nil {
		resp.Current = versionInfo(latest)
	}
	resp.Rollout = a.svc.rolloutStatus()
	// Paginated by (region, node id), so a large fleet never meets the
	// gRPC message limit: a page of 1000 edges is well under 1 MiB.
	all := a.svc.fleetList()
	resp.Replica, resp.Replicas = a.svc.replicaName(), a.svc.statusReplicas(time.Now())
	resp.TotalEdges = uint32(len(all))
	size := int(req.GetPageSize())
	if size == 0 {
		size = defaultStatusPage
	}
	size = min(size, maxStatusPage)
	start := 0
	if tok := req.GetPageToken(); tok != "" {
		region, node, ok := strings.Cut(tok, "\x00")
		if !ok {
			return nil, status.Error(codes.InvalidArgument, "status: malformed page_token")
		}
		start, _ = slices.BinarySearchFunc(all, [2]string{region, node}, func(e *gatewayv1.EdgeStatus, k [2]string) int {
			return cmp.Or(cmp.Compare(e.GetRegion(), k[0]), cmp.Compare(e.GetNodeId(), k[1]))
		})
		if start < len(all) && all[start].GetRegion() == region && all[start].GetNodeId() == node {
			start++
		}
	}
	end := min(start+size, len(all))
	resp.Edges = all[start:end]
	if end < len(all) {
		last := all[end-1]
		resp.NextPageToken = last.GetRegion() + "\x00" + last.GetNodeId()
	}
	if resp.RevocationSeq, err = a.svc.store.RevocationSeq(ctx); err != nil {
		return nil, toStatus(a.svc.log, "status", err)
	}
	return resp, nil
}

// History lists stored versions, newest first.
func (a *adminServer) History(ctx context.Context, req *gatewayv1.HistoryRequest) (*gatewayv1.HistoryResponse, error) {
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = defaultHistoryLimit
	}
	limit = min(limit, maxHistoryLimit)
	revs, err := a.svc.store.List(ctx, limit)
	if err != nil {
		return nil, toStatus(a.svc.log, "history", err)
	}
	resp := &gatewayv1.HistoryResponse{Versions: make([]*gatewayv1.VersionInfo, 0, len(revs))}
	for _, r := range revs {
		resp.Versions = append(resp.Versions, versionInfo(r))
	}
	return resp, nil
}

// Rollback stores a new version with the content of version V. When the
// latest version already has that content it is returned with created=false.
func (a *adminServer) Rollback(ctx context.Context, req *gatewayv1.RollbackRequest) (_ *gatewayv1.RollbackResponse, err error) {
	req.Author = auditAuthor(ctx, req.GetAuthor())
	ae := &gatewayv1.AuditEntry{Action: "rollback", Who: authorOr(req.GetAuthor()), RollbackOf: req.GetVersion()}
	defer func() { a.svc.record(ctx, ae, err) }()
	if req.GetVersion() == 0 {
		return nil, toStatus(a.svc.log, "rollback", &config.ValidationError{Violations: []*gatewayv1.FieldViolation{
			{Path: "version", Kind: config.KindRequired, Detail: "name the version to roll back to"},
		}})
	}
	target, err := a.svc.store.Get(ctx, req.GetVersion())
	if err != nil {
		return nil, toStatus(a.svc.log, "rollback", err)
	}
	rev := &store.Revision{
		SHA256:     target.SHA256,
		Payload:    target.Payload,
		Source:     target.Source,
		SourceName: target.SourceName,
		Author:     authorOr(req.GetAuthor()),
		RollbackOf: target.Version,
		Endpoints:  target.Endpoints,
		// The content is the same, and so are where it came from and what
		// it warned about.
		RenderedFrom: target.RenderedFrom,
		Warnings:     target.Warnings,
	}
	got, created, err := a.svc.commitUnlessCurrent(ctx, "rollback", rev, nil)
	if err != nil {
		return nil, toStatus(a.svc.log, "rollback", err)
	}
	ae.Source = target.SourceName
	a.svc.auditVersion(ctx, ae, got, created, nil)
	return &gatewayv1.RollbackResponse{Version: versionInfo(got), Created: created}, nil
}

// commitUnlessCurrent stores rev as the next version unless the latest
// version has the same sha256, which it returns instead (created=false).
// Losing a compare-and-swap race to another writer is retried: the caller
// asked for "this content, on top of whatever is current", not for a
// particular base version.
func (s *Service) commitUnlessCurrent(ctx context.Context, op string, rev *store.Revision, plan *canaryPlan) (*store.Revision, bool, error) {
	var err error
	for range commitAttempts {
		var latest *store.Revision
		latest, err = latestMeta(ctx, s.store)
		if err != nil {
			return nil, false, err
		}
		var r *gatewayv1.Rollout
		r, _, err = s.readRollout(ctx)
		if err != nil {
			return nil, false, err
		}
		if staged(r, latest) && r.GetPhase() == phaseCanary {
			return nil, false, errRolloutInProgress(op, r)
		}
		var prev uint64
		if latest != nil {
			// Content equal to an aborted or halted canary is not current:
			// the fleet serves the stable version, so it makes a new one.
			if latest.SHA256 == rev.SHA256 && stableFor(r, latest) == latest.Version {
				return latest, false, nil
			}
			prev = latest.Version
		}
		if plan != nil {
			stable := stableFor(r, latest)
			if stable == 0 {
				return nil, false, status.Errorf(codes.FailedPrecondition, "%s: there is no version to keep outside the canary; push the first version without --canary", op)
			}
			now := time.Now().UnixMilli()
			plan.record = &gatewayv1.Rollout{
				Version: prev + 1, StableVersion: stable, Regions: plan.regions, Phase: phaseCanary,
				Reason: "pushed by " + plan.author, SoakMs: plan.soak.Milliseconds(), MaxErrorRate: plan.maxErrorRate,
				StartedUnixMs: now, UpdatedUnixMs: now, Author: plan.author,
			}
			rev.Rollout = marshalRollout(plan.record)
		}
		var got *store.Revision
		got, err = s.store.Commit(ctx, prev, rev)
		if errors.Is(err, store.ErrStale) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		s.metrics.versionsCreated.Inc()
		ev := s.log.Info().
			Uint64("version", got.Version).
			Str("sha256", got.SHA256).
			Str("author", got.Author).
			Uint32("endpoints", got.Endpoints)
		if got.RollbackOf != 0 {
			ev = ev.Uint64("rollback_of", got.RollbackOf)
		}
		ev.Msg("version created")
		return got, true, nil
	}
	return nil, false, err
}

// compile compiles a pushed source and enforces the snapshot size limit
// (edges refuse gRPC messages above their receive limit, so an oversized
// snapshot would never arrive).
func (s *Service) compile(src *gatewayv1.ConfigSource) (*config.Compiled, error) {
	// Lua sources come with the push (gwctl read them where it runs): the
	// control plane reads no files of its own.
	c, err := config.CompileWith(src.GetFilename(), src.GetContent(), config.Options{ReadFile: config.SourceFiles(src.GetLuaSources())})
	if err != nil {
		return nil, err
	}
	if n := len(c.Payload); n > s.cfg.MaxSnapshotBytes {
		return nil, &config.ValidationError{Violations: []*gatewayv1.FieldViolation{{
			Path:   "endpoints",
			Kind:   config.KindTooMany,
			Detail: fmt.Sprintf("the compiled snapshot is %d bytes; the limit is %d", n, s.cfg.MaxSnapshotBytes),
		}}}
	}
	return c, nil
}

// latestOrNil returns the newest revision with its content, or nil when the
// store is empty.
func latestOrNil(ctx context.Context, st store.Store) (*store.Revision, error) {
	rev, err := st.Latest(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return rev, err
}

// latestMeta returns the newest revision without Payload and Source, or nil
// when the store is empty. Status is polled (gwctl push --wait) and must not
// read and hash a multi-megabyte payload each time.
func latestMeta(ctx context.Context, st store.Store) (*store.Revision, error) {
	revs, err := st.List(ctx, 1)
	if err != nil || len(revs) == 0 {
		return nil, err
	}
	return revs[0], nil
}

func authorOr(author string) string {
	if author == "" {
		return "unknown"
	}
	return author
}

func versionInfo(r *store.Revision) *gatewayv1.VersionInfo {
	v := &gatewayv1.VersionInfo{
		Version:       r.Version,
		Sha256:        r.SHA256,
		Author:        r.Author,
		CreatedUnixMs: r.CreatedUnixMs,
		RollbackOf:    r.RollbackOf,
		Endpoints:     r.Endpoints,
	}
	for _, f := range r.RenderedFrom {
		v.RenderedFrom = append(v.RenderedFrom, &gatewayv1.SourceFile{Name: f.Name, Sha256: f.SHA256})
	}
	for _, w := range r.Warnings {
		v.Warnings = append(v.Warnings, &gatewayv1.FieldViolation{Path: w.Path, Kind: w.Kind, Detail: w.Detail})
	}
	return v
}

// storeWarnings turns compiler warnings into the store's form.
func storeWarnings(ws []*gatewayv1.FieldViolation) []store.Warning {
	var out []store.Warning
	for _, w := range ws {
		out = append(out, store.Warning{Path: w.GetPath(), Kind: w.GetKind(), Detail: w.GetDetail()})
	}
	return out
}
