package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/apigw/gateway/controlplane/config"
	"github.com/apigw/gateway/controlplane/store"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Limits of a revocation request.
const (
	defaultRevocationClaim = "jti"
	maxClaimBytes          = 128
	// maxValueBytes bounds one entry, so the log, every edge's exact set and
	// every delta stay small (token ids and subjects are far shorter).
	maxValueBytes  = 1024
	maxAuthorBytes = 256
	// likelySecondsMs: an expiry below this (1973 in milliseconds) was
	// almost certainly given in seconds.
	likelySecondsMs = 100_000_000_000
)

// Violation kinds used here (STYLE §4), from the shared vocabulary.
const (
	kindRequired = config.KindRequired
	kindInvalid  = config.KindInvalid
)

// claimPattern is what a claim name may contain. Edges key the revoked set
// as "<claim>-<value>" (KrakenD's element format), so a claim never holds
// white space or characters that need escaping anywhere.
var claimPattern = regexp.MustCompile(`^[A-Za-z0-9_.:/-]+$`)

// defaultTokenKeys is what edges check when the config has no revoker
// token_keys (edge/auth's default).
var defaultTokenKeys = []string{"jti"}

// Revoke validates a revocation and appends it to the log. It replies once
// the entry is durable; the revocation hub streams it to every connected
// edge at once. Revoking a (claim, value) again appends a new entry: edges
// keep the latest expiry of a key, so a later expiry extends it and an
// earlier one changes nothing.
func (a *adminServer) Revoke(ctx context.Context, req *gatewayv1.RevokeRequest) (_ *gatewayv1.RevokeResponse, err error) {
	req.Author = auditAuthor(ctx, req.GetAuthor())
	svc := a.svc
	ae := &gatewayv1.AuditEntry{Action: "revoke", Who: authorOr(req.GetAuthor()), Revocation: &gatewayv1.RevocationEntry{
		Claim: truncate(cmp.Or(req.GetClaim(), defaultRevocationClaim), maxClaimBytes), Value: truncate(req.GetValue(), maxValueBytes), ExpiresUnixMs: req.GetExpiresUnixMs(),
	}}
	defer func() { svc.record(ctx, ae, err) }()
	revoker, err := svc.revoker(ctx)
	if err != nil {
		return nil, toStatus(svc.log, "revoke", err)
	}
	r, err := svc.revocation(req, revoker, time.Now())
	if err != nil {
		if re := (*requestError)(nil); errors.As(err, &re) {
			ae.Violations = uint32(len(re.violations))
		}
		return nil, toStatus(svc.log, "revoke", err)
	}
	got, err := svc.store.AppendRevocation(ctx, r)
	if err != nil {
		return nil, toStatus(svc.log, "revoke", err)
	}
	svc.metrics.revocationsAppended.Inc()
	ae.Outcome, ae.Revocation = outcomeCreated, toEntry(got)
	svc.log.Info().
		Uint64("seq", got.Seq).
		Str("claim", got.Claim).
		Str("value", got.Value).
		Str("author", got.Author).
		Time("expires", time.UnixMilli(got.ExpiresUnixMs)).
		Msg("revocation appended")
	keys := revoker.GetTokenKeys()
	if len(keys) == 0 {
		keys = defaultTokenKeys
	}
	if !slices.Contains(keys, got.Claim) {
		svc.log.Warn().
			Uint64("seq", got.Seq).
			Str("claim", got.Claim).
			Strs("token_keys", keys).
			Msg("edges of the current config do not check this claim (auth/revoker token_keys); it applies once they do")
	}
	return &gatewayv1.RevokeResponse{Entry: toEntry(got)}, nil
}

// ListRevocations returns the live revocations, oldest first, and the seq
// of the log they were read at.
func (a *adminServer) ListRevocations(ctx context.Context, _ *gatewayv1.ListRevocationsRequest) (*gatewayv1.ListRevocationsResponse, error) {
	live, seq, err := a.svc.store.LiveRevocations(ctx, time.Now())
	if err != nil {
		return nil, toStatus(a.svc.log, "list revocations", err)
	}
	return &gatewayv1.ListRevocationsResponse{Entries: toEntries(live), Seq: seq}, nil
}

// revoker returns the current config's auth/revoker (nil when it has none
// or nothing is stored). The hub decoded it once per version; only before
// the hub's first load is the store read.
func (s *Service) revoker(ctx context.Context) (*gatewayv1.Revoker, error) {
	if cur := s.hub.current(); cur != nil {
		return cur.revoker, nil
	}
	latest, err := latestOrNil(ctx, s.store)
	if err != nil || latest == nil {
		return nil, err
	}
	return snapshotRevoker(latest.Payload)
}

// revocation validates req (every problem at once) and returns the entry to
// append. A zero expiry means now plus the config's revoker ttl, or the
// control plane's default when the config has none.
func (s *Service) revocation(req *gatewayv1.RevokeRequest, revoker *gatewayv1.Revoker, now time.Time) (*store.Revocation, error) {
	var vs []*gatewayv1.FieldViolation
	add := func(path, kind, format string, args ...any) {
		vs = append(vs, &gatewayv1.FieldViolation{Path: path, Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}

	claim := cmp.Or(req.GetClaim(), defaultRevocationClaim)
	switch {
	case len(claim) > maxClaimBytes:
		add("claim", kindInvalid, "%d bytes; the limit is %d", len(claim), maxClaimBytes)
	case !claimPattern.MatchString(claim):
		add("claim", kindInvalid, "%q: only letters, digits and _ . : / - are allowed", claim)
	}

	value := req.GetValue()
	switch {
	case value == "":
		add("value", kindRequired, "name the token id (jti) or the claim value to revoke")
	case len(value) > maxValueBytes:
		add("value", kindInvalid, "%d bytes; the limit is %d", len(value), maxValueBytes)
	case strings.TrimSpace(value) != value:
		add("value", kindInvalid, "%q has leading or trailing white space; it would never match a token", value)
	}

	author := authorOr(req.GetAuthor())
	if len(author) > maxAuthorBytes {
		add("author", kindInvalid, "%d bytes; the limit is %d", len(author), maxAuthorBytes)
	}

	exp := req.GetExpiresUnixMs()
	limit := now.Add(s.cfg.MaxRevocationTTL)
	switch {
	case exp == 0:
		ttl := s.cfg.RevocationTTL
		if ms := revoker.GetTtlMs(); ms > 0 {
			ttl = time.Duration(ms) * time.Millisecond
		}
		exp = now.Add(min(ttl, s.cfg.MaxRevocationTTL)).UnixMilli()
	case exp < 0:
		add("expiresUnixMs", kindInvalid, "%d: must be a unix time in milliseconds", exp)
	case exp <= now.UnixMilli():
		hint := ""
		if exp < likelySecondsMs {
			hint = " (seconds instead of milliseconds?)"
		}
		add("expiresUnixMs", kindInvalid, "%s is not in the future%s", formatMs(exp), hint)
	case exp > limit.UnixMilli():
		add("expiresUnixMs", kindInvalid, "%s is more than %s ahead; revocations leave the log only by expiring", formatMs(exp), s.cfg.MaxRevocationTTL)
	}

	if len(vs) > 0 {
		slices.SortFunc(vs, func(a, b *gatewayv1.FieldViolation) int { return strings.Compare(a.GetPath(), b.GetPath()) })
		return nil, &requestError{violations: vs}
	}
	return &store.Revocation{
		Claim:         claim,
		Value:         value,
		ExpiresUnixMs: exp,
		CreatedUnixMs: now.UnixMilli(),
		Author:        author,
	}, nil
}

func formatMs(ms int64) string {
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}
