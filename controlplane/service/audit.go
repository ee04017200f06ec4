package service

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/apigw/gateway/controlplane/config"
	"github.com/apigw/gateway/controlplane/pki"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Audit outcomes.
const (
	outcomeCreated   = "created"
	outcomeUnchanged = "unchanged"
	outcomeRefused   = "refused"
	// outcomeFailed: the call was allowed but did not complete (store
	// error, shutdown, the client gave up).
	outcomeFailed = "failed"
)

// Audit limits: a record stays small whatever the client sent.
const (
	maxAuditReason   = 512
	maxAuditDiffList = 100
	defaultAuditPage = 50
	maxAuditPage     = 1000
	// auditWriteTimeout bounds the store write of a record; it does not
	// inherit the call's deadline (a record of a call the client gave up on
	// is still written).
	auditWriteTimeout = 5 * time.Second
)

// record completes e (time, peer, who, outcome from err), stores it in
// the audit log and writes it as one JSON line to the audit logger. A
// failure to store it is logged (and counted); the call's answer does not
// change, since the change it records is already made.
func (s *Service) record(ctx context.Context, e *gatewayv1.AuditEntry, err error) {
	e.TimeUnixMs = time.Now().UnixMilli()
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		e.Peer = p.Addr.String()
	}
	if e.Who == "" {
		e.Who = auditAuthor(ctx, "")
	}
	if err != nil {
		st := status.Convert(err)
		e.Code = st.Code().String()
		e.Reason = truncate(st.Message(), maxAuditReason)
		switch st.Code() {
		case codes.Internal, codes.Unavailable, codes.Canceled, codes.DeadlineExceeded, codes.Unknown:
			e.Outcome = outcomeFailed
		default:
			e.Outcome = outcomeRefused
		}
	} else if e.Code == "" {
		e.Code = codes.OK.String()
	}
	s.metrics.auditRecords.WithLabelValues(e.GetAction(), e.GetOutcome()).Inc()
	b, merr := proto.Marshal(e)
	if merr == nil {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditWriteTimeout)
		e.Seq, merr = s.store.AppendAudit(wctx, b)
		cancel()
	}
	if merr != nil {
		s.metrics.auditErrors.Inc()
		s.log.Error().Err(merr).Str("action", e.GetAction()).Str("who", e.GetWho()).Msg("audit record not stored")
	}
	logAudit(s.audit, e)
}

// logAudit writes e as one structured line.
func logAudit(l zerolog.Logger, e *gatewayv1.AuditEntry) {
	ev := l.Info().
		Uint64("seq", e.GetSeq()).
		Str("who", e.GetWho()).
		Str("action", e.GetAction()).
		Str("outcome", e.GetOutcome()).
		Str("code", e.GetCode())
	if e.GetReason() != "" {
		ev = ev.Str("reason", e.GetReason())
	}
	if e.GetPeer() != "" {
		ev = ev.Str("peer", e.GetPeer())
	}
	if e.GetVersion() != 0 {
		ev = ev.Uint64("version", e.GetVersion()).Str("sha256", e.GetSha256()).Uint64("previous_version", e.GetPreviousVersion())
	}
	if e.GetRollbackOf() != 0 {
		ev = ev.Uint64("rollback_of", e.GetRollbackOf())
	}
	if e.GetSource() != "" {
		ev = ev.Str("source", e.GetSource())
	}
	if e.GetViolations() != 0 {
		ev = ev.Uint32("violations", e.GetViolations())
	}
	if d := e.GetDiff(); d != nil {
		ev = ev.Dict("diff", zerolog.Dict().
			Strs("added", d.GetAdded()).Strs("removed", d.GetRemoved()).Strs("changed", d.GetChanged()).
			Bool("service_changed", d.GetServiceChanged()).
			Uint32("added_count", d.GetAddedCount()).Uint32("removed_count", d.GetRemovedCount()).Uint32("changed_count", d.GetChangedCount()))
	}
	if r := e.GetRevocation(); r != nil {
		ev = ev.Dict("revocation", zerolog.Dict().Uint64("seq", r.GetSeq()).Str("claim", r.GetClaim()).Str("value", r.GetValue()).Int64("expires_unix_ms", r.GetExpiresUnixMs()))
	}
	if e.GetNodeId() != "" {
		ev = ev.Str("node_id", e.GetNodeId())
	}
	ev.Int64("time_unix_ms", e.GetTimeUnixMs()).Msg("audit")
}

// recordRefused is TokenAuth's hook: a call refused before its handler
// (no token, unknown token, a role that does not allow the method).
func (s *Service) recordRefused(ctx context.Context, method string, p *Principal, err error) {
	e := &gatewayv1.AuditEntry{Action: methodAction(method)}
	switch {
	case p != nil:
		e.Who = p.String()
	default:
		e.Who = "anonymous"
		if id := peerCertIdentity(ctx); id != "" {
			e.Who += ", cert:" + id
		}
	}
	s.record(ctx, e, err)
}

// AuditRefusals makes a record of every call a refuses (install it on the
// TokenAuth of the admin server this Service is registered on).
func (s *Service) AuditRefusals(a *TokenAuth) { a.refused.Store(s.recordRefused) }

// peerCertIdentity is the node id of the client certificate the listener
// verified, "" without one.
func peerCertIdentity(ctx context.Context) string {
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	ti, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return ""
	}
	id, _, err := pki.Identity(ti.State.VerifiedChains[0][0])
	if err != nil {
		return ""
	}
	return id
}

// methodAction turns "/gateway.v1.AdminService/IssueCertificate" into
// "issue_certificate".
func methodAction(method string) string {
	name := method
	for i := len(method) - 1; i >= 0; i-- {
		if method[i] == '/' {
			name = method[i+1:]
			break
		}
	}
	out := make([]byte, 0, len(name)+4)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			if i > 0 {
				out = append(out, '_')
			}
			c += 'a' - 'A'
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return "unknown"
	}
	return string(out)
}

// diffSummary summarises what next changes against version prev (zero: an
// empty store). A previous version that cannot be read leaves the summary
// out (and says why in the log): the record itself still matters more.
func (s *Service) diffSummary(ctx context.Context, prev uint64, next *gatewayv1.Snapshot) *gatewayv1.AuditDiff {
	var old *gatewayv1.Snapshot
	if prev != 0 {
		rev, err := s.store.Get(ctx, prev)
		if err != nil {
			s.log.Warn().Err(err).Uint64("version", prev).Msg("audit: previous version unreadable; no diff summary")
			return nil
		}
		old = &gatewayv1.Snapshot{}
		if err := proto.Unmarshal(rev.Payload, old); err != nil {
			s.log.Warn().Err(err).Uint64("version", prev).Msg("audit: previous version undecodable; no diff summary")
			return nil
		}
	}
	return summarize(config.Diff(old, next))
}

func summarize(changes []*gatewayv1.Change) *gatewayv1.AuditDiff {
	d := &gatewayv1.AuditDiff{}
	for _, c := range changes {
		if c.GetSubject() == config.ServiceSubject {
			d.ServiceChanged = true
			continue
		}
		switch c.GetOp() {
		case config.ChangeAdded:
			d.AddedCount++
			if len(d.Added) < maxAuditDiffList {
				d.Added = append(d.Added, c.GetSubject())
			}
		case config.ChangeRemoved:
			d.RemovedCount++
			if len(d.Removed) < maxAuditDiffList {
				d.Removed = append(d.Removed, c.GetSubject())
			}
		default:
			d.ChangedCount++
			if len(d.Changed) < maxAuditDiffList {
				d.Changed = append(d.Changed, c.GetSubject())
			}
		}
	}
	return d
}

// ListAudit lists the audit log, newest first, optionally one action only.
func (a *adminServer) ListAudit(ctx context.Context, req *gatewayv1.ListAuditRequest) (*gatewayv1.ListAuditResponse, error) {
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = defaultAuditPage
	}
	limit = min(limit, maxAuditPage)
	resp := &gatewayv1.ListAuditResponse{}
	var decodeErr error
	var last uint64
	err := a.svc.store.ScanAudit(ctx, req.GetBeforeSeq(), func(seq uint64, data []byte) bool {
		if len(resp.Entries) == limit {
			resp.NextBeforeSeq = last
			return false
		}
		e := &gatewayv1.AuditEntry{}
		if err := proto.Unmarshal(data, e); err != nil {
			decodeErr = fmt.Errorf("decode audit record %d: %w", seq, err)
			return false
		}
		e.Seq = seq
		if req.GetAction() == "" || e.GetAction() == req.GetAction() {
			resp.Entries = append(resp.Entries, e)
			last = seq
		}
		return true
	})
	if err == nil {
		err = decodeErr
	}
	if err != nil {
		return nil, toStatus(a.svc.log, "list audit", err)
	}
	return resp, nil
}
