package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/apigw/gateway/controlplane/config"
	"github.com/apigw/gateway/controlplane/store"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func TestPushIdenticalContentKeepsVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.push(configV1, "alice")
	if !first.GetCreated() || first.GetVersion().GetVersion() != 1 {
		t.Fatalf("first push: %v, want v1 created", first)
	}
	// Same snapshot, different bytes (format and whitespace) and author.
	yaml := "version: 3\nendpoints:\n  - endpoint: /users/{id}\n    backend:\n      - host: [\"http://127.0.0.1:8081\"]\n        url_pattern: /u/{id}\n"
	again, err := e.admin.Push(ctxT(t), &gatewayv1.PushRequest{
		Source: &gatewayv1.ConfigSource{Filename: "gateway.yaml", Content: []byte(yaml)},
		Author: "bob",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &gatewayv1.PushResponse{Version: first.GetVersion(), Created: false}
	if diff := cmp.Diff(want, again, protocmp.Transform()); diff != "" {
		t.Fatalf("identical push (-want +got):\n%s", diff)
	}
	hist, err := e.admin.History(ctxT(t), &gatewayv1.HistoryRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(hist.GetVersions()); n != 1 {
		t.Fatalf("history has %d versions after an identical push, want 1", n)
	}
	if got := gaugeValue(t, e.svc, "gw_controlplane_config_versions_total", nil); got != 1 {
		t.Fatalf("config_versions_total = %v, want 1", got)
	}
}

// TestPushAuthorIsTheToken: the audit author is the authenticated token,
// with what the client said (if anything else) in parentheses.
func TestPushAuthorIsTheToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if got := e.push(configV1, "").GetVersion().GetAuthor(); got != "token:admin" {
		t.Fatalf("author = %q, want token:admin", got)
	}
	if got := e.push(configV2, "token:admin").GetVersion().GetAuthor(); got != "token:admin" {
		t.Fatalf("author = %q, want token:admin (no echo of the same name)", got)
	}
}

func TestHistoryAndRollback(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v1 := e.push(configV1, "alice").GetVersion()
	v2 := e.push(configV2, "bob").GetVersion()

	rb, err := e.admin.Rollback(ctxT(t), &gatewayv1.RollbackRequest{Version: 1, Author: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if !rb.GetCreated() {
		t.Fatal("rollback to an older content did not create a version")
	}
	wantV3 := &gatewayv1.VersionInfo{
		Version:       3,
		Sha256:        v1.GetSha256(),
		Author:        "token:admin (carol)",
		CreatedUnixMs: rb.GetVersion().GetCreatedUnixMs(),
		RollbackOf:    1,
		Endpoints:     v1.GetEndpoints(),
	}
	if diff := cmp.Diff(wantV3, rb.GetVersion(), protocmp.Transform()); diff != "" {
		t.Fatalf("rollback version (-want +got):\n%s", diff)
	}
	// The new version carries v1's source too, so it can be shown or re-pushed.
	r3, err := e.store.Get(ctxT(t), 3)
	if err != nil {
		t.Fatal(err)
	}
	if string(r3.Source) != configV1 || r3.SourceName != "gateway.json" {
		t.Fatalf("rollback source = %q (%q), want v1's", r3.Source, r3.SourceName)
	}

	// Rolling back to what is already current changes nothing.
	again, err := e.admin.Rollback(ctxT(t), &gatewayv1.RollbackRequest{Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	if again.GetCreated() || again.GetVersion().GetVersion() != 3 {
		t.Fatalf("rollback to the current content: %v, want v3 created=false", again)
	}

	hist, err := e.admin.History(ctxT(t), &gatewayv1.HistoryRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := []*gatewayv1.VersionInfo{wantV3, v2, v1}
	if diff := cmp.Diff(want, hist.GetVersions(), protocmp.Transform()); diff != "" {
		t.Fatalf("history (-want +got):\n%s", diff)
	}
	limited, err := e.admin.History(ctxT(t), &gatewayv1.HistoryRequest{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(limited.GetVersions()); n != 1 {
		t.Fatalf("history limit 1 returned %d versions", n)
	}

	tests := []struct {
		name    string
		version uint64
		want    codes.Code
	}{
		{name: "missing version", version: 99, want: codes.NotFound},
		{name: "zero version", version: 0, want: codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.admin.Rollback(ctxT(t), &gatewayv1.RollbackRequest{Version: tc.version})
			wantCode(t, err, tc.want)
		})
	}
}

func TestBadConfigListsEveryViolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := config.Compile("gateway.json", []byte(configBad))
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("config.Compile(configBad) = %v, want a *config.ValidationError", err)
	}
	if len(ve.Violations) < 2 {
		t.Fatalf("configBad has %d violations; the test needs several", len(ve.Violations))
	}

	t.Run("push", func(t *testing.T) {
		_, err := e.admin.Push(ctxT(t), &gatewayv1.PushRequest{Source: source(configBad)})
		wantCode(t, err, codes.InvalidArgument)
		checkViolationDetails(t, err, ve.Violations)
		if _, err := e.store.Latest(ctxT(t)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a rejected push stored something: %v", err)
		}
	})
	t.Run("diff", func(t *testing.T) {
		_, err := e.admin.Diff(ctxT(t), &gatewayv1.DiffRequest{Source: source(configBad)})
		wantCode(t, err, codes.InvalidArgument)
		checkViolationDetails(t, err, ve.Violations)
	})
	t.Run("validate answers with the violations", func(t *testing.T) {
		got, err := e.admin.Validate(ctxT(t), &gatewayv1.ValidateRequest{Source: source(configBad)})
		if err != nil {
			t.Fatal(err)
		}
		want := &gatewayv1.ValidateResponse{Violations: ve.Violations}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Fatalf("Validate (-want +got):\n%s", diff)
		}
	})
	t.Run("validate of a good config", func(t *testing.T) {
		c, err := config.Compile("gateway.json", []byte(configV1))
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.admin.Validate(ctxT(t), &gatewayv1.ValidateRequest{Source: source(configV1)})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&gatewayv1.ValidateResponse{Sha256: c.SHA256}, got, protocmp.Transform()); diff != "" {
			t.Fatalf("Validate (-want +got):\n%s", diff)
		}
	})
}

// checkViolationDetails asserts that a status carries every violation both
// as a google.rpc.BadRequest and as a gateway.v1.ValidateResponse.
func checkViolationDetails(t *testing.T, err error, want []*gatewayv1.FieldViolation) {
	t.Helper()
	st := status.Convert(err)
	var gotBR *errdetails.BadRequest
	var gotVR *gatewayv1.ValidateResponse
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			gotBR = d
		case *gatewayv1.ValidateResponse:
			gotVR = d
		default:
			t.Errorf("unexpected detail %T: %v", d, d)
		}
	}
	wantBR := &errdetails.BadRequest{}
	for _, v := range want {
		wantBR.FieldViolations = append(wantBR.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field: v.GetPath(), Description: v.GetKind() + ": " + v.GetDetail(),
		})
	}
	if diff := cmp.Diff(wantBR, gotBR, protocmp.Transform()); diff != "" {
		t.Errorf("BadRequest detail (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&gatewayv1.ValidateResponse{Violations: want}, gotVR, protocmp.Transform()); diff != "" {
		t.Errorf("ValidateResponse detail (-want +got):\n%s", diff)
	}
}

func TestDiff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c1, err := config.Compile("gateway.json", []byte(configV1))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := config.Compile("gateway.json", []byte(configV2))
	if err != nil {
		t.Fatal(err)
	}

	got, err := e.admin.Diff(ctxT(t), &gatewayv1.DiffRequest{Source: source(configV1)})
	if err != nil {
		t.Fatal(err)
	}
	want := &gatewayv1.DiffResponse{CurrentVersion: 0, Changes: config.Diff(nil, c1.Snapshot)}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Fatalf("diff against an empty store (-want +got):\n%s", diff)
	}

	e.push(configV1, "alice")
	got, err = e.admin.Diff(ctxT(t), &gatewayv1.DiffRequest{Source: source(configV2)})
	if err != nil {
		t.Fatal(err)
	}
	want = &gatewayv1.DiffResponse{CurrentVersion: 1, Changes: config.Diff(c1.Snapshot, c2.Snapshot)}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Fatalf("diff against v1 (-want +got):\n%s", diff)
	}
}

func TestAdminRequiresToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	calls := []struct {
		name string
		call func(ctx context.Context, c gatewayv1.AdminServiceClient) error
	}{
		{"Status", func(ctx context.Context, c gatewayv1.AdminServiceClient) error {
			_, err := c.Status(ctx, &gatewayv1.StatusRequest{})
			return err
		}},
		{"Push", func(ctx context.Context, c gatewayv1.AdminServiceClient) error {
			_, err := c.Push(ctx, &gatewayv1.PushRequest{Source: source(configV1)})
			return err
		}},
	}
	creds := []struct {
		name string
		md   []string // authorization values; nil = none
		want codes.Code
	}{
		{name: "no token", md: nil, want: codes.Unauthenticated},
		{name: "wrong token", md: []string{"Bearer nope"}, want: codes.Unauthenticated},
		{name: "token prefix", md: []string{"Bearer " + testToken[:5]}, want: codes.Unauthenticated},
		{name: "wrong scheme", md: []string{"Basic " + testToken}, want: codes.Unauthenticated},
		{name: "no scheme", md: []string{testToken}, want: codes.Unauthenticated},
		{name: "two values", md: []string{"Bearer " + testToken, "Bearer " + testToken}, want: codes.Unauthenticated},
		{name: "right token", md: []string{"Bearer " + testToken}, want: codes.OK},
		{name: "lowercase scheme", md: []string{"bearer " + testToken}, want: codes.OK},
	}
	for _, call := range calls {
		for _, cr := range creds {
			t.Run(call.name+"/"+cr.name, func(t *testing.T) {
				ctx := ctxT(t)
				for _, v := range cr.md {
					ctx = metadata.AppendToOutgoingContext(ctx, "authorization", v)
				}
				wantCode(t, call.call(ctx, e.noAuth), cr.want)
			})
		}
	}
	if _, err := NewTokenAuth(" "); err == nil {
		t.Fatal("NewTokenAuth accepted an empty token")
	}
}

func TestStatusStates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v1 := e.push(configV1, "alice").GetVersion()
	e.waitPublished(1)

	inSync := e.connect(hello("b-node", "us"))
	inSync.ack(inSync.next())

	rejected := e.connect(hello("a-node", "us"))
	rejected.nack(rejected.next(), 0, "missing feature")

	stale := e.connect(hello("z-node", "eu")) // gets v1, never answers
	stale.next()

	gone := e.connect(hello("c-node", "ap"))
	gone.ack(gone.next())
	e.waitEdgeState("c-node", stateInSync)
	gone.closeSend()

	e.waitEdgeState("b-node", stateInSync)
	e.waitEdgeState("a-node", stateRejected)
	e.waitEdgeState("c-node", stateDisconnected)

	st := e.status()
	if diff := cmp.Diff(v1, st.GetCurrent(), protocmp.Transform()); diff != "" {
		t.Fatalf("current (-want +got):\n%s", diff)
	}
	type row struct{ Node, Region, State string }
	var got []row
	for _, ed := range st.GetEdges() {
		got = append(got, row{ed.GetNodeId(), ed.GetRegion(), ed.GetState()})
		if ed.GetLastSeenUnixMs() == 0 || ed.GetPeer() == "" || ed.GetBuildVersion() != "test" {
			t.Errorf("edge %s: last_seen=%d peer=%q build=%q; want all set", ed.GetNodeId(), ed.GetLastSeenUnixMs(), ed.GetPeer(), ed.GetBuildVersion())
		}
		if ed.GetConnected() != (ed.GetConnectedSinceUnixMs() != 0) {
			t.Errorf("edge %s: connected=%v but connected_since=%d", ed.GetNodeId(), ed.GetConnected(), ed.GetConnectedSinceUnixMs())
		}
	}
	// Sorted by region, then node id.
	want := []row{
		{"c-node", "ap", stateDisconnected},
		{"z-node", "eu", stateStale},
		{"a-node", "us", stateRejected},
		{"b-node", "us", stateInSync},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("edges (-want +got):\n%s", diff)
	}
	for _, ed := range st.GetEdges() {
		if ed.GetNodeId() == "b-node" && (ed.GetAppliedVersion() != 1 || ed.GetAppliedSha256() != v1.GetSha256()) {
			t.Errorf("b-node applied v%d %s, want v1 %s", ed.GetAppliedVersion(), ed.GetAppliedSha256(), v1.GetSha256())
		}
	}

	wantGauges := map[string]float64{stateInSync: 1, stateStale: 1, stateRejected: 1, stateDisconnected: 1}
	for s, n := range wantGauges {
		if got := gaugeValue(t, e.svc, "gw_controlplane_edges", map[string]string{"state": s}); got != n {
			t.Errorf("gw_controlplane_edges{state=%q} = %v, want %v", s, got, n)
		}
	}
	for _, w := range []struct {
		region, state string
		n             float64
	}{{"us", stateRejected, 1}, {"us", stateInSync, 1}, {"us", stateStale, 0}, {"eu", stateStale, 1}, {"ap", stateDisconnected, 1}} {
		if got := gaugeValue(t, e.svc, "gw_controlplane_edges_by_region", map[string]string{"region": w.region, "state": w.state}); got != w.n {
			t.Errorf("gw_controlplane_edges_by_region{region=%q,state=%q} = %v, want %v", w.region, w.state, got, w.n)
		}
	}
	if got := gaugeValue(t, e.svc, "gw_controlplane_streams_open", nil); got != 3 {
		t.Errorf("streams_open = %v, want 3", got)
	}
	if got := histogramCount(t, e.svc, "gw_controlplane_config_convergence_seconds"); got != 2 {
		t.Errorf("convergence samples = %d, want 2 (two ACKs of v1)", got)
	}
	if got := gaugeValue(t, e.svc, "gw_controlplane_snapshot_bytes", nil); got <= 0 {
		t.Errorf("snapshot_bytes = %v, want > 0", got)
	}
}

func TestMetricsHandler(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.push(configV1, "alice")
	srv := httptest.NewServer(e.svc.MetricsHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"gw_controlplane_streams_open", "gw_controlplane_config_versions_total", "gw_controlplane_nacks_total",
		"gw_controlplane_snapshot_bytes", "gw_controlplane_config_convergence_seconds", `gw_controlplane_edges{state="in_sync"}`,
	} {
		if !strings.Contains(string(body), name) {
			t.Errorf("metrics output lacks %s", name)
		}
	}
}

func TestToStatus(t *testing.T) {
	t.Parallel()
	ve := &config.ValidationError{Violations: []*gatewayv1.FieldViolation{{Path: "endpoints[0]", Kind: "required", Detail: "x"}}}
	tests := []struct {
		name    string
		err     error
		want    codes.Code
		wantMsg string // substring; "" = not checked
		notMsg  string // must not appear
	}{
		{name: "validation", err: fmt.Errorf("compile: %w", ve), want: codes.InvalidArgument, wantMsg: "endpoints[0]: required: x"},
		{name: "stale", err: fmt.Errorf("commit: %w", store.ErrStale), want: codes.FailedPrecondition},
		{name: "not found", err: fmt.Errorf("get version 7: %w", store.ErrNotFound), want: codes.NotFound, wantMsg: "version 7"},
		{name: "closed", err: store.ErrClosed, want: codes.Unavailable},
		{name: "canceled", err: context.Canceled, want: codes.Canceled},
		{name: "deadline", err: fmt.Errorf("x: %w", context.DeadlineExceeded), want: codes.DeadlineExceeded},
		{name: "status passes through", err: status.Error(codes.PermissionDenied, "no"), want: codes.PermissionDenied},
		{name: "internal hides detail", err: errors.New("open /var/lib/secret/path: permission denied"), want: codes.Internal, notMsg: "/var/lib"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := toStatus(zerolog.Nop(), "op", tc.err)
			st := status.Convert(err)
			if st.Code() != tc.want {
				t.Fatalf("code = %v, want %v", st.Code(), tc.want)
			}
			if tc.wantMsg != "" && !strings.Contains(st.Message(), tc.wantMsg) {
				t.Errorf("message %q lacks %q", st.Message(), tc.wantMsg)
			}
			if tc.notMsg != "" && strings.Contains(st.Message(), tc.notMsg) {
				t.Errorf("message %q leaks %q", st.Message(), tc.notMsg)
			}
		})
	}
}

// gaugeValue returns the value of a gauge or counter series from the
// Service's registry (0 when absent).
func gaugeValue(t *testing.T, svc *Service, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := svc.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metric
				}
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func histogramCount(t *testing.T, svc *Service, name string) uint64 {
	t.Helper()
	mfs, err := svc.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}
