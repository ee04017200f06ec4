package service

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// lockedBuffer is an io.Writer safe for the service's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			panic(line)
		}
		out = append(out, m)
	}
	return out
}

// TestAuditRecordsEveryChangeAndRefusal drives every audited outcome
// through the real gRPC server and reads the records back with ListAudit
// and from the audit logger's JSON lines.
func TestAuditRecordsEveryChangeAndRefusal(t *testing.T) {
	t.Parallel()
	var buf lockedBuffer
	al := zerolog.New(&buf)
	e := newEnv(t, func(c *Config) { c.AuditLogger = &al })
	e.auth.SetTokens([]Token{
		{Name: "ci", Role: RoleAdmin, SHA256: sha256.Sum256([]byte(testToken))},
		{Name: "viewer", Role: RoleRead, SHA256: sha256.Sum256([]byte("viewer-token"))},
	})
	ctx := ctxT(t)

	v1 := e.push(configV1, "alice")
	v2 := e.push(configV2, "")
	e.push(configV2, "") // unchanged
	_, err := e.admin.Push(ctx, &gatewayv1.PushRequest{Source: source(configBad)})
	wantCode(t, err, codes.InvalidArgument)
	if _, err := e.admin.Rollback(ctx, &gatewayv1.RollbackRequest{Version: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = e.admin.Rollback(ctx, &gatewayv1.RollbackRequest{Version: 99})
	wantCode(t, err, codes.NotFound)
	rv, err := e.admin.Revoke(ctx, &gatewayv1.RevokeRequest{Value: "tok-1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.admin.Revoke(ctx, &gatewayv1.RevokeRequest{Value: " spaced "})
	wantCode(t, err, codes.InvalidArgument)
	// Refused before the handler: no token, an unknown one, a role that
	// does not allow the method.
	_, err = e.noAuth.Status(ctx, &gatewayv1.StatusRequest{})
	wantCode(t, err, codes.Unauthenticated)
	_, err = e.noAuth.History(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer wrong"), &gatewayv1.HistoryRequest{})
	wantCode(t, err, codes.Unauthenticated)
	_, err = e.noAuth.Push(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer viewer-token"), &gatewayv1.PushRequest{Source: source(configV3)})
	wantCode(t, err, codes.PermissionDenied)
	// Reads are not audited.
	e.status()

	resp, err := e.admin.ListAudit(ctx, &gatewayv1.ListAuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ action, outcome, code, who string }
	var got []row
	for _, a := range slices.Backward(resp.GetEntries()) {
		got = append(got, row{a.GetAction(), a.GetOutcome(), a.GetCode(), a.GetWho()})
	}
	want := []row{
		{"push", "created", "OK", "token:ci (alice)"},
		{"push", "created", "OK", "token:ci"},
		{"push", "unchanged", "OK", "token:ci"},
		{"push", "refused", "InvalidArgument", "token:ci"},
		{"rollback", "created", "OK", "token:ci"},
		{"rollback", "refused", "NotFound", "token:ci"},
		{"revoke", "created", "OK", "token:ci"},
		{"revoke", "refused", "InvalidArgument", "token:ci"},
		{"status", "refused", "Unauthenticated", "anonymous"},
		{"history", "refused", "Unauthenticated", "anonymous"},
		{"push", "refused", "PermissionDenied", "token:viewer"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("audit log:\n got  %v\n want %v", got, want)
	}
	es := resp.GetEntries()
	byIdx := func(i int) *gatewayv1.AuditEntry { return es[len(es)-1-i] } // oldest first
	for i, a := range es {
		if a.GetSeq() != uint64(len(es)-i) || a.GetTimeUnixMs() == 0 || !strings.HasPrefix(a.GetPeer(), "127.0.0.1:") {
			t.Errorf("entry %d: seq %d, time %d, peer %q", i, a.GetSeq(), a.GetTimeUnixMs(), a.GetPeer())
		}
	}
	// The first push: version, hash, everything added.
	if a := byIdx(0); a.GetVersion() != v1.GetVersion().GetVersion() || a.GetSha256() != v1.GetVersion().GetSha256() ||
		a.GetPreviousVersion() != 0 || !slices.Equal(a.GetDiff().GetAdded(), []string{"GET /users/{id}"}) || !a.GetDiff().GetServiceChanged() {
		t.Errorf("first push: %v", a)
	}
	// The second adds /orders to version 1.
	if a := byIdx(1); a.GetVersion() != v2.GetVersion().GetVersion() || a.GetPreviousVersion() != 1 ||
		!slices.Equal(a.GetDiff().GetAdded(), []string{"GET /orders"}) || a.GetDiff().GetAddedCount() != 1 || len(a.GetDiff().GetRemoved()) != 0 {
		t.Errorf("second push: %v", a)
	}
	if a := byIdx(2); a.GetVersion() != 2 || a.GetDiff() != nil {
		t.Errorf("unchanged push: %v", a)
	}
	if a := byIdx(3); a.GetViolations() < 3 || a.GetVersion() != 0 || !strings.Contains(a.GetReason(), "invalid config") {
		t.Errorf("refused push: %v", a)
	}
	// The rollback to 1 removes /orders again.
	if a := byIdx(4); a.GetVersion() != 3 || a.GetRollbackOf() != 1 || a.GetPreviousVersion() != 2 ||
		!slices.Equal(a.GetDiff().GetRemoved(), []string{"GET /orders"}) || a.GetDiff().GetServiceChanged() {
		t.Errorf("rollback: %v", a)
	}
	if a := byIdx(6); a.GetRevocation().GetSeq() != rv.GetEntry().GetSeq() || a.GetRevocation().GetValue() != "tok-1" || a.GetRevocation().GetClaim() != "jti" {
		t.Errorf("revoke: %v", a)
	}
	if a := byIdx(7); a.GetViolations() != 1 || a.GetRevocation().GetValue() != " spaced " {
		t.Errorf("refused revoke: %v", a)
	}
	if a := byIdx(10); !strings.Contains(a.GetReason(), "role read") {
		t.Errorf("permission denied: %v", a)
	}

	// Paging and the action filter.
	page, err := e.admin.ListAudit(ctx, &gatewayv1.ListAuditRequest{Limit: 2, Action: "push"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(page.GetEntries()); n != 2 || page.GetEntries()[0].GetSeq() != 11 || page.GetEntries()[1].GetSeq() != 4 || page.GetNextBeforeSeq() != 4 {
		t.Fatalf("page 1: %v", page)
	}
	page, err = e.admin.ListAudit(ctx, &gatewayv1.ListAuditRequest{Limit: 2, Action: "push", BeforeSeq: page.GetNextBeforeSeq()})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(page.GetEntries()); n != 2 || page.GetEntries()[0].GetSeq() != 3 || page.GetEntries()[1].GetSeq() != 2 || page.GetNextBeforeSeq() != 2 {
		t.Fatalf("page 2: %v", page)
	}
	page, err = e.admin.ListAudit(ctx, &gatewayv1.ListAuditRequest{Limit: 2, Action: "push", BeforeSeq: 2})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(page.GetEntries()); n != 1 || page.GetNextBeforeSeq() != 0 {
		t.Fatalf("last page: %v", page)
	}

	// The JSON lines carry the same records.
	lines := buf.lines()
	if len(lines) != len(want) {
		t.Fatalf("%d audit lines, want %d", len(lines), len(want))
	}
	l := lines[1]
	if l["message"] != "audit" || l["action"] != "push" || l["outcome"] != "created" || l["who"] != "token:ci" ||
		l["version"] != float64(2) || l["sha256"] != v2.GetVersion().GetSha256() || l["seq"] != float64(2) {
		t.Fatalf("audit line: %v", l)
	}
	if d, _ := l["diff"].(map[string]any); d == nil || d["added_count"] != float64(1) {
		t.Fatalf("audit line diff: %v", l["diff"])
	}
	for _, c := range []struct {
		action, outcome string
		want            float64
	}{{"push", "created", 2}, {"push", "unchanged", 1}, {"push", "refused", 2}, {"rollback", "refused", 1}, {"status", "refused", 1}, {"revoke", "created", 1}} {
		if got := gaugeValue(t, e.svc, "gw_controlplane_audit_records_total", map[string]string{"action": c.action, "outcome": c.outcome}); got != c.want {
			t.Errorf("audit records{%s,%s} = %v, want %v", c.action, c.outcome, got, c.want)
		}
	}
}

func TestMethodAction(t *testing.T) {
	for in, want := range map[string]string{
		gatewayv1.AdminService_IssueCertificate_FullMethodName: "issue_certificate",
		gatewayv1.AdminService_Status_FullMethodName:           "status",
		"": "unknown",
	} {
		if got := methodAction(in); got != want {
			t.Errorf("methodAction(%q) = %q, want %q", in, got, want)
		}
	}
}
