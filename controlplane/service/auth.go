package service

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/apigw/gateway/controlplane/pki"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Role is what an admin token may do. Every role may read; push adds Push
// and Rollback, revoke adds Revoke, admin may do everything (also issue
// edge certificates).
type Role int

// Roles, from least to most.
const (
	RoleRead Role = iota + 1
	RolePush
	RoleRevoke
	RoleAdmin
)

var roleNames = map[Role]string{RoleRead: "read", RolePush: "push", RoleRevoke: "revoke", RoleAdmin: "admin"}

func (r Role) String() string {
	if s, ok := roleNames[r]; ok {
		return s
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// ParseRole reads "read", "push", "revoke" or "admin".
func ParseRole(s string) (Role, error) {
	for r, name := range roleNames {
		if name == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("role %q: want read, push, revoke or admin", s)
}

// allows reports whether r may call a method that needs need.
func (r Role) allows(need Role) bool {
	return r == RoleAdmin || need == RoleRead || r == need
}

// methodRoles is the role each admin method needs; a method missing here
// (a new one) needs admin.
var methodRoles = map[string]Role{
	gatewayv1.AdminService_Validate_FullMethodName:        RoleRead,
	gatewayv1.AdminService_Diff_FullMethodName:            RoleRead,
	gatewayv1.AdminService_Status_FullMethodName:          RoleRead,
	gatewayv1.AdminService_History_FullMethodName:         RoleRead,
	gatewayv1.AdminService_ListRevocations_FullMethodName: RoleRead,
	gatewayv1.AdminService_ListAudit_FullMethodName:       RoleRead,
	FleetPageMethod: RoleRead,
	gatewayv1.AdminService_Push_FullMethodName:             RolePush,
	gatewayv1.AdminService_Rollback_FullMethodName:         RolePush,
	gatewayv1.AdminService_Promote_FullMethodName:          RolePush,
	gatewayv1.AdminService_Abort_FullMethodName:            RolePush,
	gatewayv1.AdminService_Revoke_FullMethodName:           RoleRevoke,
	gatewayv1.AdminService_IssueCertificate_FullMethodName: RoleAdmin,
}

// Token is one admin credential as the control plane keeps it: a name, a
// role and the sha256 of the secret (the secret itself is not stored; a
// token is 256 random bits, so a fast hash is enough).
type Token struct {
	Name   string
	Role   Role
	SHA256 [sha256.Size]byte
}

// Principal is who an admin call authenticated as: a token, and the
// client certificate the admin listener verified (when it requires one).
type Principal struct {
	Name string
	Role Role
	// Cert is the identity of the verified client certificate (pki.Identity),
	// "" without one.
	Cert string
}

// String is the identity audit records carry: "token:<name>", then
// ", cert:<identity>" when a client certificate was verified.
func (p Principal) String() string {
	if p.Cert != "" {
		return "token:" + p.Name + ", cert:" + p.Cert
	}
	return "token:" + p.Name
}

type principalKey struct{}

// PrincipalFrom returns the principal TokenAuth put in ctx.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// TokenAuth checks the admin API's bearer token: every call must carry the
// metadata "authorization: Bearer <token>" of a known token whose role
// allows the method. Install it on the admin server only (ServerOptions);
// edges authenticate with mTLS on the sync listener. The token set can be
// replaced while serving (SetTokens). It is safe for concurrent use.
type TokenAuth struct {
	tokens atomic.Pointer[[]Token]
	// refused, when set (Service.AuditRefusals), is told about every call
	// refused here; p is nil when no token matched.
	refused atomic.Value // of refusedHook
}

type refusedHook = func(ctx context.Context, method string, p *Principal, err error)

func (a *TokenAuth) refuse(ctx context.Context, method string, p *Principal, err error) error {
	if h, ok := a.refused.Load().(refusedHook); ok && h != nil {
		h(ctx, method, p, err)
	}
	return err
}

// NewTokenAuth returns a TokenAuth accepting token with the admin role,
// under the name "admin". An empty token is an error: the admin API has no
// default credentials.
func NewTokenAuth(token string) (*TokenAuth, error) {
	if strings.TrimSpace(token) == "" {
		return nil, errors.New("new token auth: empty token")
	}
	a := &TokenAuth{}
	a.SetTokens([]Token{{Name: "admin", Role: RoleAdmin, SHA256: sha256.Sum256([]byte(token))}})
	return a, nil
}

// SetTokens replaces the accepted tokens; calls in flight keep the set
// they were checked against.
func (a *TokenAuth) SetTokens(tokens []Token) {
	cp := append([]Token(nil), tokens...)
	a.tokens.Store(&cp)
}

// ServerOptions returns the unary and stream interceptors as server options.
func (a *TokenAuth) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(a.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(a.StreamInterceptor()),
	}
}

// UnaryInterceptor rejects unary calls without a known token with
// Unauthenticated, and calls the token's role does not allow with
// PermissionDenied. The handler's context carries the Principal.
func (a *TokenAuth) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		p, err := a.check(ctx, info.FullMethod)
		if err != nil {
			return nil, a.refuse(ctx, info.FullMethod, p, err)
		}
		return handler(context.WithValue(ctx, principalKey{}, *p), req)
	}
}

// StreamInterceptor is UnaryInterceptor for streams.
func (a *TokenAuth) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		p, err := a.check(ss.Context(), info.FullMethod)
		if err != nil {
			return a.refuse(ss.Context(), info.FullMethod, p, err)
		}
		return handler(srv, &principalStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), principalKey{}, *p)})
	}
}

type principalStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *principalStream) Context() context.Context { return s.ctx }

// check returns the principal, or an error with the principal the token
// named when it matched (nil when it did not).
func (a *TokenAuth) check(ctx context.Context, method string) (*Principal, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return nil, errMissingToken
	}
	if len(vals) > 1 {
		return nil, errInvalidToken
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, errInvalidToken
	}
	return a.checkSecret(ctx, method, token)
}

// checkSecret checks one token's secret for method; ctx carries the peer
// (its verified client certificate).
func (a *TokenAuth) checkSecret(ctx context.Context, method, token string) (*Principal, error) {
	// Comparing fixed-size digests with subtle.ConstantTimeCompare, over
	// every token, takes the same time whatever the token, its length or
	// which entry it matches.
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	var match *Token
	tokens := *a.tokens.Load()
	for i := range tokens {
		if subtle.ConstantTimeCompare(got[:], tokens[i].SHA256[:]) == 1 {
			match = &tokens[i]
		}
	}
	if match == nil {
		return nil, errInvalidToken
	}
	need, ok := methodRoles[method]
	if !ok {
		need = RoleAdmin
	}
	p := &Principal{Name: match.Name, Role: match.Role, Cert: peerCertIdentity(ctx)}
	if !match.Role.allows(need) {
		return p, status.Errorf(codes.PermissionDenied, "token %q has role %s; %s needs %s", match.Name, match.Role, method[strings.LastIndexByte(method, '/')+1:], need)
	}
	if pr, ok := peer.FromContext(ctx); ok {
		if ti, ok := pr.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
			if _, _, err := pki.Identity(ti.State.VerifiedChains[0][0]); err != nil {
				return p, status.Errorf(codes.PermissionDenied, "client certificate: %v", err)
			}
		}
	}
	return p, nil
}

// auditAuthor is the author an audit record (version, revocation, log)
// carries: the authenticated identity, followed by what the client said in
// parentheses when it said something else (a shared CI token used on
// behalf of a person). Without a principal (a Service used without
// TokenAuth) it is the client's string.
func auditAuthor(ctx context.Context, claimed string) string {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return authorOr(claimed)
	}
	id := p.String()
	if claimed == "" || claimed == id {
		return id
	}
	return id + " (" + claimed + ")"
}
