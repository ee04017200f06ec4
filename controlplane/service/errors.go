package service

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/apigw/gateway/controlplane/config"
	"github.com/apigw/gateway/controlplane/store"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// This file is the one place where errors become gRPC status codes (as etcd's
// rpctypes). Handlers return domain errors wrapped with `op: detail`, or one
// of the protocol errors below, and pass them through toStatus.

// Errors of the request itself (not of a configuration). They are created
// here so no other file builds a status.
var (
	errMissingToken  = status.Error(codes.Unauthenticated, "missing bearer token in the authorization metadata")
	errInvalidToken  = status.Error(codes.Unauthenticated, "invalid bearer token")
	errShuttingDown  = status.Error(codes.Unavailable, "control plane is shutting down")
	errStreamAged    = status.Error(codes.Unavailable, "the stream reached the control plane's maximum stream age; reconnect (rebalances edges over the replicas)")
	errStreamReplace = status.Error(codes.Aborted, "a newer stream of the same node_id replaced this one")
)

// protocolError reports a Sync stream that broke the protocol (hello missing,
// sent twice, without node_id...).
func protocolError(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "sync protocol: "+format, args...)
}

// livenessError ends a stream whose edge went silent.
func livenessError(format string, args ...any) error {
	return status.Errorf(codes.DeadlineExceeded, format, args...)
}

// requestError reports fields of an admin request that break the API's
// rules (a revocation without a value, an expiry in the past...), as
// opposed to the violations of a configuration. Handlers return it; toStatus
// maps it like a configuration's violations, so gwctl prints both alike.
type requestError struct {
	violations []*gatewayv1.FieldViolation // sorted by path
}

func (e *requestError) Error() string {
	parts := make([]string, len(e.violations))
	for i, v := range e.violations {
		parts[i] = config.FormatViolation(v)
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// toStatus maps a domain error from operation op to a gRPC status error:
//
//   - *config.ValidationError → InvalidArgument, with a google.rpc.BadRequest
//     detail (one FieldViolation per violation, description "kind: detail")
//     and a gateway.v1.ValidateResponse detail carrying the violations as is,
//     so gwctl can print path, kind and detail exactly;
//   - *requestError → the same, for the fields of a request;
//   - store.ErrStale → FailedPrecondition;
//   - store.ErrNotFound → NotFound;
//   - store.ErrClosed → Unavailable;
//   - context cancellation and deadlines → Canceled and DeadlineExceeded;
//   - errors that already are statuses pass through;
//   - anything else → Internal with a generic message; the error itself is
//     logged with op and never sent to the client.
func toStatus(log zerolog.Logger, op string, err error) error {
	if err == nil {
		return nil
	}
	var (
		ve *config.ValidationError
		re *requestError
	)
	switch {
	case errors.As(err, &ve):
		return violationsStatus(op, "invalid config", ve.Violations)
	case errors.As(err, &re):
		return violationsStatus(op, "invalid request", re.violations)
	case errors.Is(err, store.ErrStale):
		return status.Errorf(codes.FailedPrecondition, "%s: the configuration changed concurrently; retry", op)
	case errors.Is(err, store.ErrNotFound):
		return status.Errorf(codes.NotFound, "%s: %v", op, err)
	case errors.Is(err, store.ErrClosed):
		return errShuttingDown
	case errors.Is(err, context.Canceled):
		return status.Errorf(codes.Canceled, "%s: canceled", op)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "%s: deadline exceeded", op)
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return err
	}
	log.Error().Err(err).Str("op", op).Msg("internal error")
	return status.Errorf(codes.Internal, "%s: internal error (details are in the control plane log)", op)
}

// violationsStatus builds InvalidArgument with the violations as details;
// what says what was invalid ("invalid config", "invalid request").
func violationsStatus(op, what string, violations []*gatewayv1.FieldViolation) error {
	br := &errdetails.BadRequest{}
	for _, v := range violations {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field:       v.GetPath(),
			Description: v.GetKind() + ": " + v.GetDetail(),
		})
	}
	n := len(violations)
	msg := fmt.Sprintf("%s: %s: %d violations", op, what, n)
	if n == 1 {
		msg = fmt.Sprintf("%s: %s: %s", op, what, config.FormatViolation(violations[0]))
	}
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(
		protoadapt.MessageV1Of(br),
		protoadapt.MessageV1Of(&gatewayv1.ValidateResponse{Violations: violations}),
	)
	if err != nil {
		// Only fails when a detail cannot be packed into an Any, which
		// cannot happen for these registered types; keep the code anyway.
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
}
