package service

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"

	"github.com/apigw/gateway/controlplane/store"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// fastRollouts checks rollouts often; the test edges send no keepalives.
func fastRollouts(c *Config) {
	c.RolloutCheckInterval = 20 * time.Millisecond
	c.RecvTimeout = time.Minute
}

// twoRegions starts an edge in eu and one in us, both serving v1.
func twoRegions(t *testing.T, e *env) (eu, us *testEdge, v1 *gatewayv1.SnapshotEnvelope) {
	t.Helper()
	e.push(configV1, "alice")
	e.waitPublished(1)
	eu = e.connect(&gatewayv1.Hello{NodeId: "eu-1", Region: "eu"})
	us = e.connect(&gatewayv1.Hello{NodeId: "us-1", Region: "us"})
	v1 = eu.next()
	eu.ack(v1)
	us.ack(us.next())
	e.waitEdgeState("eu-1", stateInSync)
	e.waitEdgeState("us-1", stateInSync)
	return eu, us, v1
}

func (e *env) pushCanary(content string, req *gatewayv1.PushRequest) *gatewayv1.PushResponse {
	e.t.Helper()
	req.Source, req.Author = source(content), "alice"
	resp, err := e.admin.Push(ctxT(e.t), req)
	if err != nil {
		e.t.Fatalf("Push: %v", err)
	}
	return resp
}

func (e *env) waitPhase(want string) *gatewayv1.Rollout {
	e.t.Helper()
	var r *gatewayv1.Rollout
	eventually(e.t, func() bool { r = e.status().GetRollout(); return r.GetPhase() == want }, "rollout phase %q", want)
	return r
}

func auditActions(t *testing.T, e *env) []string {
	t.Helper()
	resp, err := e.admin.ListAudit(ctxT(t), &gatewayv1.ListAuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range resp.GetEntries() {
		out = append(out, a.GetAction()+":"+a.GetOutcome()+":"+a.GetWho())
	}
	return out
}

func TestRolloutCanaryThenPromote(t *testing.T) {
	e := newEnv(t, fastRollouts)
	eu, us, _ := twoRegions(t, e)

	resp := e.pushCanary(configV2, &gatewayv1.PushRequest{CanaryRegions: []string{"eu"}})
	if r := resp.GetRollout(); r.GetVersion() != 2 || r.GetStableVersion() != 1 || r.GetPhase() != phaseCanary {
		t.Fatalf("push rollout = %v, want v2 canary over stable v1", r)
	}
	v2 := eu.next()
	if v2.GetVersion() != 2 {
		t.Fatalf("canary edge got v%d, want v2", v2.GetVersion())
	}
	eu.ack(v2)
	us.none() // us keeps v1
	e.waitEdgeState("eu-1", stateInSync)
	if got := e.edgeState("us-1"); got != stateInSync {
		t.Errorf("us edge on the stable version: state %q, want in_sync", got)
	}
	r := e.waitPhase(phaseCanary)
	if r.GetCanaryEdges() != 1 || r.GetCanaryApplied() != 1 {
		t.Errorf("status rollout: %d/%d canary edges on it, want 1/1", r.GetCanaryApplied(), r.GetCanaryEdges())
	}

	// Nothing else goes out while the canary runs.
	_, err := e.admin.Push(ctxT(t), &gatewayv1.PushRequest{Source: source(configV3)})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = e.admin.Rollback(ctxT(t), &gatewayv1.RollbackRequest{Version: 1})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = e.admin.Promote(ctxT(t), &gatewayv1.PromoteRequest{Version: 1})
	wantCode(t, err, codes.FailedPrecondition)

	if _, err := e.admin.Promote(ctxT(t), &gatewayv1.PromoteRequest{Version: 2, Author: "bob"}); err != nil {
		t.Fatal(err)
	}
	promoted := us.next()
	if promoted.GetVersion() != 2 {
		t.Fatalf("after promote us got v%d, want v2", promoted.GetVersion())
	}
	us.ack(promoted)
	e.waitPhase(phasePromoted)
	_, err = e.admin.Abort(ctxT(t), &gatewayv1.AbortRequest{Version: 2})
	wantCode(t, err, codes.FailedPrecondition)
	// And pushes go everywhere again.
	e.push(configV3, "alice")
	if got := us.next(); got.GetVersion() != 3 {
		t.Fatalf("next push: us got v%d, want v3", got.GetVersion())
	}
	acts := strings.Join(auditActions(t, e), " ")
	for _, want := range []string{"promote:created:token:admin (bob)", "push:refused", "abort:refused"} {
		if !strings.Contains(acts, want) {
			t.Errorf("audit %q lacks %q", acts, want)
		}
	}
}

func TestRolloutAbort(t *testing.T) {
	e := newEnv(t, fastRollouts)
	eu, us, _ := twoRegions(t, e)
	e.pushCanary(configV2, &gatewayv1.PushRequest{CanaryRegions: []string{"eu"}})
	eu.ack(eu.next())
	if _, err := e.admin.Abort(ctxT(t), &gatewayv1.AbortRequest{Version: 2}); err != nil {
		t.Fatal(err)
	}
	back := eu.next()
	if back.GetVersion() != 1 {
		t.Fatalf("after abort the canary got v%d, want v1", back.GetVersion())
	}
	eu.ack(back)
	us.none()
	e.waitPhase(phaseAborted)
	e.waitEdgeState("eu-1", stateInSync)
	_, err := e.admin.Promote(ctxT(t), &gatewayv1.PromoteRequest{Version: 2})
	wantCode(t, err, codes.FailedPrecondition)
	// The aborted content pushed again is a new version, for everyone.
	if resp := e.push(configV2, "alice"); !resp.GetCreated() || resp.GetVersion().GetVersion() != 3 {
		t.Fatalf("push after abort = %v, want v3 created", resp)
	}
	if got := us.next(); got.GetVersion() != 3 {
		t.Fatalf("us got v%d, want v3", got.GetVersion())
	}
}

func TestRolloutHaltsOnNack(t *testing.T) {
	e := newEnv(t, fastRollouts)
	eu, us, _ := twoRegions(t, e)
	e.pushCanary(configV2, &gatewayv1.PushRequest{CanaryRegions: []string{"eu"}, SoakMs: 60_000})
	eu.nack(eu.next(), 1, "feature lua not supported by this edge")
	r := e.waitPhase(phaseHalted)
	if !strings.Contains(r.GetReason(), "eu-1") || !strings.Contains(r.GetReason(), "lua") {
		t.Errorf("halt reason %q does not name the edge and its error", r.GetReason())
	}
	us.none()
	if acts := strings.Join(auditActions(t, e), " "); !strings.Contains(acts, "halt:created:"+automaticWho) {
		t.Errorf("audit %q lacks the automatic halt", acts)
	}
	// A halted canary may still be promoted by hand.
	if _, err := e.admin.Promote(ctxT(t), &gatewayv1.PromoteRequest{Version: 2}); err != nil {
		t.Fatal(err)
	}
	if got := us.next(); got.GetVersion() != 2 {
		t.Fatalf("us got v%d, want v2", got.GetVersion())
	}
}

func TestRolloutHaltsOnErrorRate(t *testing.T) {
	e := newEnv(t, fastRollouts)
	eu, us, _ := twoRegions(t, e)
	e.pushCanary(configV2, &gatewayv1.PushRequest{CanaryRegions: []string{"eu"}, MaxErrorRate: 0.1})
	v2 := eu.next()
	eu.send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Ack{Ack: &gatewayv1.Ack{
		Version: v2.GetVersion(), Sha256: v2.GetSha256(), RequestsTotal: 1000, ErrorsTotal: 400}}})
	// Below the threshold: 2 of 100 since the ACK (the 400 before are v1's).
	eu.send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Keepalive{Keepalive: &gatewayv1.Keepalive{RequestsTotal: 1100, ErrorsTotal: 402}}})
	eventually(t, func() bool { return e.status().GetRollout().GetCanaryRequests() == 100 }, "100 canary requests reported")
	time.Sleep(100 * time.Millisecond) // several checks
	if r := e.status().GetRollout(); r.GetPhase() != phaseCanary || r.GetCanaryErrors() != 2 {
		t.Fatalf("rollout %v, want still canary with 2 errors", r)
	}
	eu.send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Keepalive{Keepalive: &gatewayv1.Keepalive{RequestsTotal: 1200, ErrorsTotal: 452}}})
	r := e.waitPhase(phaseHalted)
	if !strings.Contains(r.GetReason(), "52 of 200") {
		t.Errorf("halt reason %q", r.GetReason())
	}
	if got := eu.next(); got.GetVersion() != 1 {
		t.Fatalf("halted canary got v%d, want the stable v1", got.GetVersion())
	}
	us.none()
}

func TestRolloutSoakPromotes(t *testing.T) {
	e := newEnv(t, fastRollouts)
	eu, us, _ := twoRegions(t, e)
	e.pushCanary(configV2, &gatewayv1.PushRequest{CanaryRegions: []string{"eu"}, SoakMs: 200})
	// No canary edge serves it yet: the soak alone promotes nothing.
	time.Sleep(300 * time.Millisecond)
	if r := e.status().GetRollout(); r.GetPhase() != phaseCanary {
		t.Fatalf("promoted with no canary edge on it: %v", r)
	}
	eu.ack(eu.next())
	r := e.waitPhase(phasePromoted)
	if !strings.Contains(r.GetReason(), "soaked") {
		t.Errorf("reason %q", r.GetReason())
	}
	if got := us.next(); got.GetVersion() != 2 {
		t.Fatalf("us got v%d, want v2", got.GetVersion())
	}
}

func TestRolloutRefusesBadPush(t *testing.T) {
	e := newEnv(t, fastRollouts)
	// The first version has nothing to stage against.
	_, err := e.admin.Push(ctxT(t), &gatewayv1.PushRequest{Source: source(configV1), CanaryRegions: []string{"eu"}})
	wantCode(t, err, codes.FailedPrecondition)
	e.push(configV1, "alice")
	for _, req := range []*gatewayv1.PushRequest{
		{SoakMs: 1000},
		{MaxErrorRate: 0.5},
		{CanaryRegions: []string{""}},
		{CanaryRegions: []string{"eu"}, MaxErrorRate: 2},
		{CanaryRegions: []string{"eu"}, SoakMs: -1},
	} {
		req.Source = source(configV2)
		_, err := e.admin.Push(ctxT(t), req)
		wantCode(t, err, codes.InvalidArgument)
	}
}

// TestRolloutSurvivesRestart: a control plane restarted on the same store
// mid-rollout keeps serving the canary to its region only, and can promote.
func TestRolloutSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	open := func() *store.Bolt {
		st, err := store.OpenBolt(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	cfg := func(st store.Store) Config {
		return Config{Store: st, Logger: zerolog.New(zerolog.NewTestWriter(t)), Keepalive: 50 * time.Millisecond, RecvTimeout: time.Minute, RolloutCheckInterval: 20 * time.Millisecond}
	}
	st := open()
	e := serveEnv(t, cfg(st))
	eu, us, _ := twoRegions(t, e)
	e.pushCanary(configV2, &gatewayv1.PushRequest{CanaryRegions: []string{"eu"}})
	eu.ack(eu.next())
	us.none()
	eu.close()
	us.close()
	e.syncSrv.Stop()
	e.adminSrv.Stop()
	if err := e.svc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	e2 := serveEnv(t, cfg(open()))
	e2.waitPublished(2)
	if r := e2.waitPhase(phaseCanary); r.GetVersion() != 2 || r.GetStableVersion() != 1 {
		t.Fatalf("rollout after restart: %v", r)
	}
	// A new us edge gets the stable version, a new eu edge the canary.
	us2 := e2.connect(&gatewayv1.Hello{NodeId: "us-2", Region: "us"})
	stable := us2.next()
	if stable.GetVersion() != 1 {
		t.Fatalf("us edge after restart got v%d, want v1", stable.GetVersion())
	}
	us2.ack(stable)
	eu2 := e2.connect(&gatewayv1.Hello{NodeId: "eu-2", Region: "eu"})
	if got := eu2.next(); got.GetVersion() != 2 {
		t.Fatalf("eu edge after restart got v%d, want v2", got.GetVersion())
	}
	if _, err := e2.admin.Promote(context.Background(), &gatewayv1.PromoteRequest{Version: 2}); err != nil {
		t.Fatal(err)
	}
	if got := us2.next(); got.GetVersion() != 2 {
		t.Fatalf("us edge after promote got v%d, want v2", got.GetVersion())
	}
}
