package service

import (
	"context"
	"crypto/sha256"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// TestAdminRoles calls every admin method with a token of every role over
// real gRPC: PermissionDenied exactly where the role does not reach, and
// the audit author is the token that called.
func TestAdminRoles(t *testing.T) {
	e := newEnv(t)
	e.push(configV1, "setup")
	set := []Token{{Name: "admin", Role: RoleAdmin, SHA256: sha256.Sum256([]byte(testToken))}}
	clients := map[Role]gatewayv1.AdminServiceClient{}
	for _, r := range []Role{RoleRead, RolePush, RoleRevoke, RoleAdmin} {
		secret := "secret-of-the-" + r.String() + "-token-0123456789"
		set = append(set, Token{Name: r.String() + "-token", Role: r, SHA256: sha256.Sum256([]byte(secret))})
		clients[r] = gatewayv1.NewAdminServiceClient(dial(t, e.adminAddr, grpc.WithUnaryInterceptor(bearer(secret))))
	}
	e.auth.SetTokens(set)
	src := &gatewayv1.ConfigSource{Filename: "gateway.json", Content: []byte(configV2)}
	calls := []struct {
		method string
		need   Role
		call   func(context.Context, gatewayv1.AdminServiceClient) error
	}{
		{"Validate", RoleRead, func(ctx context.Context, c gatewayv1.AdminServiceClient) error {
			_, err := c.Validate(ctx, &gatewayv1.ValidateRequest{Source: src})
			return err
		}},
		{"Diff", RoleRead, func(ctx context.Context, c gatewayv1.AdminServiceClient) error {
			_, err := c.Diff(ctx, &gatewayv1.DiffRequest{Source: src})
			return err
		}},
		{"Status", RoleRead, func(ctx context.Context, c gatewayv1.AdminServiceClient) error {
			_, err := c.Status(ctx, &gatewayv1.StatusRequest{})
			return err
		}},
		{"History", RoleRead, func(ctx context.Context, c gatewayv1.AdminServiceClient) error {
			_, err := c.History(ctx, &gatewayv1.HistoryRequest{})
			return err
		}},
		{"ListRevocations", RoleRead, func(ctx context.Context, c gatewayv1.AdminServiceClient) error {
			_, err := c.ListRevocations(ctx, &gatewayv1.ListRevocationsRequest{})
			return err
		}},
		{"Push", RolePush, func(ctx context.Context, c gatewayv1.AdminServiceClient) error {
			_, err := c.Push(ctx, &gatewayv1.PushRequest{Source: src})
			return err
		}},
		{"Rollback", RolePush, func(ctx context.Context, c gatewayv1.AdminServiceClient) error {
			_, err := c.Rollback(ctx, &gatewayv1.RollbackRequest{Version: 1})
			return err
		}},
		{"Revoke", RoleRevoke, func(ctx context.Context, c gatewayv1.AdminServiceClient) error {
			_, err := c.Revoke(ctx, &gatewayv1.RevokeRequest{Value: "jti-1"})
			return err
		}},
		{"IssueCertificate", RoleAdmin, func(ctx context.Context, c gatewayv1.AdminServiceClient) error {
			_, err := c.IssueCertificate(ctx, &gatewayv1.IssueCertificateRequest{NodeId: "edge-1", Region: "eu"})
			return err
		}},
	}
	for _, role := range []Role{RoleRead, RolePush, RoleRevoke, RoleAdmin} { // push-token pushes first
		for _, tc := range calls {
			err := tc.call(ctxT(t), clients[role])
			denied := status.Code(err) == codes.PermissionDenied
			if want := !role.allows(tc.need); denied != want {
				t.Errorf("%s token, %s: %v; want denied=%v", role, tc.method, err, want)
			}
		}
	}
	h, err := e.admin.History(ctxT(t), &gatewayv1.HistoryRequest{})
	if err != nil {
		t.Fatal(err)
	}
	authors := map[string]bool{}
	for _, v := range h.GetVersions() {
		authors[v.GetAuthor()] = true
	}
	for _, want := range []string{"token:admin (setup)", "token:push-token"} {
		if !authors[want] {
			t.Errorf("history authors %v lack %q", authors, want)
		}
	}
	if _, err := e.noAuth.Status(ctxT(t), &gatewayv1.StatusRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token: %v, want Unauthenticated", err)
	}
}
