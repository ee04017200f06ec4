package service

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// TokenAuth checks the admin API's bearer token: every call must carry the
// metadata "authorization: Bearer <token>". Install it on the admin server
// only (ServerOptions); edges authenticate with mTLS on the sync listener.
// It is safe for concurrent use.
type TokenAuth struct {
	// want is the sha256 of the token. Comparing fixed-size digests with
	// subtle.ConstantTimeCompare takes the same time whatever the token
	// length or the position of the first wrong byte.
	want [sha256.Size]byte
}

// NewTokenAuth returns a TokenAuth accepting token. An empty token is an
// error: the admin API has no default credentials.
func NewTokenAuth(token string) (*TokenAuth, error) {
	if strings.TrimSpace(token) == "" {
		return nil, errors.New("new token auth: empty token")
	}
	return &TokenAuth{want: sha256.Sum256([]byte(token))}, nil
}

// ServerOptions returns the unary and stream interceptors as server options.
func (a *TokenAuth) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(a.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(a.StreamInterceptor()),
	}
}

// UnaryInterceptor rejects unary calls without the right token with
// Unauthenticated.
func (a *TokenAuth) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := a.check(ctx); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor rejects streams without the right token with
// Unauthenticated.
func (a *TokenAuth) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := a.check(ss.Context()); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

func (a *TokenAuth) check(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return errMissingToken
	}
	if len(vals) > 1 {
		return errInvalidToken
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return errInvalidToken
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if subtle.ConstantTimeCompare(got[:], a.want[:]) != 1 {
		return errInvalidToken
	}
	return nil
}
