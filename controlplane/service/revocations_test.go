package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/apigw/gateway/controlplane/store"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// revQueue is an unbounded FIFO of revocation messages, so a test edge never
// stops reading its stream because the test did not look.
type revQueue struct {
	mu     sync.Mutex
	msgs   []*gatewayv1.SyncResponse
	signal chan struct{} // 1-slot: "msgs may be non-empty"
}

func (q *revQueue) push(m *gatewayv1.SyncResponse) {
	q.mu.Lock()
	q.msgs = append(q.msgs, m)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *revQueue) pop() *gatewayv1.SyncResponse {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.msgs) == 0 {
		return nil
	}
	m := q.msgs[0]
	q.msgs = q.msgs[1:]
	return m
}

// nextRev returns the next revocation message or fails after a timeout.
func (te *testEdge) nextRev() *gatewayv1.SyncResponse {
	te.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		if m := te.revs.pop(); m != nil {
			return m
		}
		select {
		case <-te.revs.signal:
		case <-te.done:
			if m := te.revs.pop(); m != nil {
				return m
			}
			te.t.Fatalf("stream ended while waiting for a revocation message: %v", te.endErr())
		case <-timeout:
			te.t.Fatal("no revocation message within 10s")
		}
	}
}

// nextDelta returns the next message, which must be a delta.
func (te *testEdge) nextDelta() *gatewayv1.RevocationDelta {
	te.t.Helper()
	m := te.nextRev()
	d := m.GetRevocationDelta()
	if d == nil {
		te.t.Fatalf("got %v, want a revocation delta", m)
	}
	return d
}

// noRev asserts that no revocation message arrives before two more
// keepalives (see none: the stream sends in order).
func (te *testEdge) noRev() {
	te.t.Helper()
	te.waitKeepalives(2)
	if m := te.revs.pop(); m != nil {
		te.t.Fatalf("unexpected revocation message %v", m)
	}
}

func (te *testEdge) revAck(seq uint64) {
	te.t.Helper()
	te.send(&gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_RevocationAck{RevocationAck: &gatewayv1.RevocationAck{Seq: seq}}})
}

func helloAt(node string, seq uint64) *gatewayv1.Hello {
	h := hello(node, "eu")
	h.RevocationSeq = seq
	return h
}

func (e *env) revoke(value string) *gatewayv1.RevocationEntry {
	e.t.Helper()
	resp, err := e.admin.Revoke(ctxT(e.t), &gatewayv1.RevokeRequest{Value: value, Author: "alice"})
	if err != nil {
		e.t.Fatalf("Revoke(%q): %v", value, err)
	}
	return resp.GetEntry()
}

// waitRevocationSeq waits until the revocation hub publishes seq.
func (e *env) waitRevocationSeq(seq uint64) {
	e.t.Helper()
	eventually(e.t, func() bool {
		v := e.svc.revHub.current()
		return v != nil && v.seq == seq
	}, "revocation hub publishes seq %d", seq)
}

func delta(from, to uint64, entries ...*gatewayv1.RevocationEntry) *gatewayv1.SyncResponse {
	return &gatewayv1.SyncResponse{Msg: &gatewayv1.SyncResponse_RevocationDelta{
		RevocationDelta: &gatewayv1.RevocationDelta{FromSeq: from, ToSeq: to, Entries: entries},
	}}
}

func reset(seq uint64, entries ...*gatewayv1.RevocationEntry) *gatewayv1.SyncResponse {
	return &gatewayv1.SyncResponse{Msg: &gatewayv1.SyncResponse_RevocationReset{
		RevocationReset: &gatewayv1.RevocationReset{Seq: seq, Entries: entries},
	}}
}

func checkRev(t *testing.T, want, got *gatewayv1.SyncResponse) {
	t.Helper()
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Fatalf("revocation message (-want +got):\n%s", diff)
	}
}

func TestRevokeReachesEveryStreamAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.waitRevocationSeq(0)
	var edges []*testEdge
	for i := range 3 {
		edge := e.connect(helloAt(fmt.Sprint("edge-", i), 0))
		edges = append(edges, edge)
		e.waitEdgeState(fmt.Sprint("edge-", i), stateInSync)
	}
	for _, edge := range edges {
		edge.noRev() // an empty log: nothing to send
	}

	first := e.revoke("token-1")
	if first.GetSeq() != 1 || first.GetClaim() != "jti" || first.GetAuthor() != "token:admin (alice)" {
		t.Fatalf("Revoke returned %v; want seq 1, claim jti, author token:admin (alice)", first)
	}
	for _, edge := range edges {
		checkRev(t, delta(0, 1, first), edge.nextRev())
	}
	second := e.revoke("token-2")
	for _, edge := range edges {
		checkRev(t, delta(1, 2, second), edge.nextRev())
		edge.noRev()
	}
	if got := gaugeValue(t, e.svc, "gw_controlplane_revocation_seq", nil); got != 2 {
		t.Errorf("revocation_seq gauge = %v, want 2", got)
	}
	if got := gaugeValue(t, e.svc, "gw_controlplane_revocations_total", nil); got != 2 {
		t.Errorf("revocations_total = %v, want 2", got)
	}
}

func TestRevocationsDoNotWaitForConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.push(configV1, "alice")
	e.waitPublished(1)

	t.Run("snapshot waiting for its ACK", func(t *testing.T) {
		edge := e.connect(hello("busy", "eu"))
		edge.next() // v1 in flight, never ACKed
		e.push(configV2, "alice")
		e.waitPublished(2)
		edge.none() // v2 waits for the ACK of v1...
		seq := e.revoke("busy-token").GetSeq()
		if got := edge.nextDelta(); got.GetToSeq() != seq { // ...revocations do not
			t.Fatalf("delta to %d, want %d", got.GetToSeq(), seq)
		}
	})
	t.Run("snapshot NACKed", func(t *testing.T) {
		e.waitRevocationSeq(1)
		edge := e.connect(helloAt("rejecting", 1))
		edge.nack(edge.next(), 0, "unsupported feature")
		e.waitEdgeState("rejecting", stateRejected)
		edge.noRev()
		seq := e.revoke("rejecting-token").GetSeq()
		checkRev(t, delta(1, seq, e.svc.revHub.current().entry(seq)), edge.nextRev())
	})
}

func TestRevocationHello(t *testing.T) {
	t.Parallel()
	// Entry 1 is appended already expired (only the store allows that),
	// then 2..6 through the API; the housekeeping (grace 1ms) compacts 1.
	e := newEnv(t, func(c *Config) {
		c.RevocationResetThreshold = 10
		c.RevocationCompactInterval = 20 * time.Millisecond
		c.RevocationGrace = time.Millisecond
	})
	if _, err := e.store.AppendRevocation(ctxT(t), &store.Revocation{Claim: "jti", Value: "old", ExpiresUnixMs: time.Now().Add(-time.Hour).UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	var live []*gatewayv1.RevocationEntry
	for i := 2; i <= 6; i++ {
		live = append(live, e.revoke(fmt.Sprint("token-", i)))
	}
	eventually(t, func() bool {
		_, err := e.store.RevocationsSince(ctxT(t), 0)
		return errors.Is(err, store.ErrCompacted)
	}, "housekeeping compacts entry 1")
	e.waitRevocationSeq(6)
	eventually(t, func() bool { return e.svc.revHub.current().base >= 1 }, "the hub trims its window to the compaction point")

	tests := []struct {
		name string
		seq  uint64
		want *gatewayv1.SyncResponse // nil: nothing is sent
	}{
		{name: "at the head", seq: 6, want: nil},
		{name: "behind", seq: 3, want: delta(3, 6, live[2:]...)},
		{name: "at the compaction point", seq: 1, want: delta(1, 6, live...)},
		{name: "below the compaction point", seq: 0, want: reset(6, live...)},
		{name: "ahead of the log", seq: 9, want: reset(6, live...)},
	}
	t.Run("hello", func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				edge := e.connect(helloAt(strings.ReplaceAll(tc.name, " ", "-"), tc.seq))
				if tc.want == nil {
					edge.noRev()
					return
				}
				checkRev(t, tc.want, edge.nextRev())
				edge.noRev()
			})
		}
	})

	t.Run("restarted control plane", func(t *testing.T) {
		// A second Service on the same store starts with an empty window
		// (the log below its reach is compacted), so these come from the
		// store.
		svc2, edges := startService(t, e.store, Config{RevocationResetThreshold: 10})
		eventually(t, func() bool { v := svc2.revHub.current(); return v != nil && v.seq == 6 }, "restarted service loads seq 6")
		if v := svc2.revHub.current(); len(v.entries) != 0 {
			t.Fatalf("window holds %d entries, want 0 (the log is compacted below its reach)", len(v.entries))
		}
		behind := edges.connect(helloAt("restart-behind", 3))
		checkRev(t, delta(3, 6, live[2:]...), behind.nextRev())
		below := edges.connect(helloAt("restart-below", 0))
		checkRev(t, reset(6, live...), below.nextRev())
	})
	if got := gaugeValue(t, e.svc, "gw_controlplane_revocation_resets_total", nil); got != 2 {
		t.Errorf("resets_total = %v, want 2", got)
	}
	if got := gaugeValue(t, e.svc, "gw_controlplane_revocations_compacted_total", nil); got != 1 {
		t.Errorf("revocations_compacted_total = %v, want 1", got)
	}
}

func TestRevocationTooFarBehindGetsReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.RevocationResetThreshold = 2 })
	var live []*gatewayv1.RevocationEntry
	for i := range 6 {
		live = append(live, e.revoke(fmt.Sprint("token-", i)))
	}
	e.waitRevocationSeq(6)
	// 2 behind: a delta; 3 behind: a reset.
	checkRev(t, delta(4, 6, live[4:]...), e.connect(helloAt("near", 4)).nextRev())
	checkRev(t, reset(6, live...), e.connect(helloAt("far", 3)).nextRev())
}

func TestRevocationDeltasChainUnderConcurrentRevokes(t *testing.T) {
	t.Parallel()
	// A small window and threshold make streams take every path: shared
	// batches, merged deltas, trims of the window and resets.
	e := newEnv(t, func(c *Config) { c.RevocationResetThreshold = 8 })
	e.waitRevocationSeq(0)
	const edges, writers, each = 4, 4, 30
	var tes []*testEdge
	for i := range edges {
		tes = append(tes, e.connect(helloAt(fmt.Sprint("edge-", i), 0)))
		e.waitEdgeState(fmt.Sprint("edge-", i), stateInSync)
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := e.admin.Revoke(ctxT(t), &gatewayv1.RevokeRequest{Value: fmt.Sprint(w, "-", i)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	const head = writers * each
	for i, te := range tes {
		// Apply as an edge does: a delta must start where the edge is.
		held := map[string]bool{}
		var seq uint64
		for seq != head {
			m := te.nextRev()
			switch {
			case m.GetRevocationReset() != nil:
				r := m.GetRevocationReset()
				held = map[string]bool{}
				for _, en := range r.GetEntries() {
					held[en.GetValue()] = true
				}
				seq = r.GetSeq()
			default:
				d := m.GetRevocationDelta()
				if d.GetFromSeq() != seq {
					t.Fatalf("edge %d: delta from %d while holding %d", i, d.GetFromSeq(), seq)
				}
				for _, en := range d.GetEntries() {
					if en.GetSeq() <= d.GetFromSeq() || en.GetSeq() > d.GetToSeq() {
						t.Fatalf("edge %d: entry %d outside the delta (%d, %d]", i, en.GetSeq(), d.GetFromSeq(), d.GetToSeq())
					}
					held[en.GetValue()] = true
				}
				seq = d.GetToSeq()
			}
		}
		if len(held) != head {
			t.Fatalf("edge %d holds %d entries at seq %d, want %d", i, len(held), seq, head)
		}
		te.noRev()
	}
}

func TestRevocationAckInStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.revoke("before")
	e.waitRevocationSeq(1)
	edge := e.connect(helloAt("edge-1", 1))
	e.waitEdgeState("edge-1", stateInSync)
	edgeSeq := func() uint64 {
		for _, ed := range e.status().GetEdges() {
			if ed.GetNodeId() == "edge-1" {
				return ed.GetRevocationSeq()
			}
		}
		return 0
	}
	if got := edgeSeq(); got != 1 {
		t.Fatalf("edge revocation_seq from hello = %d, want 1", got)
	}

	entry := e.revoke("token")
	d := edge.nextDelta()
	if st := e.status(); st.GetRevocationSeq() != 2 || edgeSeq() != 1 {
		t.Fatalf("before the ACK: log seq %d, edge seq %d; want 2 and 1", st.GetRevocationSeq(), edgeSeq())
	}
	edge.revAck(d.GetToSeq())
	eventually(t, func() bool { return edgeSeq() == entry.GetSeq() }, "status shows the ACKed seq")
	if got := histogramCount(t, e.svc, "gw_controlplane_revocation_propagation_seconds"); got != 1 {
		t.Fatalf("propagation samples = %d, want 1", got)
	}
}

func TestListRevocationsLiveOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.store.AppendRevocation(ctxT(t), &store.Revocation{Claim: "jti", Value: "expired", ExpiresUnixMs: time.Now().Add(-time.Minute).UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	a := e.revoke("a")
	b := e.revoke("b")
	got, err := e.admin.ListRevocations(ctxT(t), &gatewayv1.ListRevocationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := &gatewayv1.ListRevocationsResponse{Entries: []*gatewayv1.RevocationEntry{a, b}, Seq: 3}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Fatalf("ListRevocations (-want +got):\n%s", diff)
	}
}

func TestRevokeDefaultsAndRepeats(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.RevocationTTL = 2 * time.Hour })
	expiry := func(req *gatewayv1.RevokeRequest) (*gatewayv1.RevocationEntry, time.Duration) {
		t.Helper()
		before := time.Now()
		resp, err := e.admin.Revoke(ctxT(t), req)
		if err != nil {
			t.Fatal(err)
		}
		en := resp.GetEntry()
		// The ttl the server applied, within the call's duration.
		lo, hi := en.GetExpiresUnixMs()-time.Now().UnixMilli(), en.GetExpiresUnixMs()-before.UnixMilli()
		return en, time.Duration((lo+hi)/2) * time.Millisecond
	}
	near := func(got, want time.Duration) bool { return got > want-time.Minute && got < want+time.Minute }

	en, ttl := expiry(&gatewayv1.RevokeRequest{Value: "t1"})
	if en.GetClaim() != "jti" || en.GetAuthor() != "token:admin" || !near(ttl, 2*time.Hour) {
		t.Fatalf("defaults: claim %q author %q ttl %s; want jti, token:admin (the authenticated token), 2h (the flag, no config)", en.GetClaim(), en.GetAuthor(), ttl)
	}

	// A pushed config with auth/revoker (TTL in seconds, as KrakenD's): its
	// ttl wins.
	e.push(`{"version": 3,
  "extra_config": {"auth/revoker": {"N": 1000, "P": 0.000000001, "TTL": 1800, "token_keys": ["jti", "sub"]}},
  "endpoints": [{"endpoint": "/a", "backend": [{"host": ["http://127.0.0.1:8081"], "url_pattern": "/a"}]}]}`, "alice")
	e.waitPublished(1)
	if ms := e.svc.hub.current().revoker.GetTtlMs(); ms != (30 * time.Minute).Milliseconds() {
		t.Fatalf("published revoker ttl_ms = %d, want 30m", ms)
	}
	en, ttl = expiry(&gatewayv1.RevokeRequest{Claim: "sub", Value: "bob", Author: "carol"})
	if en.GetClaim() != "sub" || en.GetAuthor() != "token:admin (carol)" || !near(ttl, 30*time.Minute) {
		t.Fatalf("with a revoker: claim %q author %q ttl %s; want sub, token:admin (carol), 30m", en.GetClaim(), en.GetAuthor(), ttl)
	}

	// Revoking the same key again with a later expiry appends a new entry.
	later := time.Now().Add(48 * time.Hour).UnixMilli()
	again, _ := expiry(&gatewayv1.RevokeRequest{Claim: "sub", Value: "bob", ExpiresUnixMs: later})
	if again.GetSeq() != en.GetSeq()+1 || again.GetExpiresUnixMs() != later {
		t.Fatalf("second revocation of sub=bob: seq %d expiry %d; want seq %d expiry %d", again.GetSeq(), again.GetExpiresUnixMs(), en.GetSeq()+1, later)
	}
	list, err := e.admin.ListRevocations(ctxT(t), &gatewayv1.ListRevocationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.GetEntries()); n != 3 {
		t.Fatalf("list has %d entries, want 3 (both entries of sub=bob are live)", n)
	}
}

func TestRevokeValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := time.Now()
	type pair struct{ Path, Kind string }
	tests := []struct {
		name string
		req  *gatewayv1.RevokeRequest
		want []pair
	}{
		{name: "no value", req: &gatewayv1.RevokeRequest{}, want: []pair{{"value", "required"}}},
		{name: "white space in value", req: &gatewayv1.RevokeRequest{Value: "abc\n"}, want: []pair{{"value", "invalid"}}},
		{name: "value too long", req: &gatewayv1.RevokeRequest{Value: strings.Repeat("x", maxValueBytes+1)}, want: []pair{{"value", "invalid"}}},
		{name: "claim with a space", req: &gatewayv1.RevokeRequest{Claim: "user id", Value: "a"}, want: []pair{{"claim", "invalid"}}},
		{name: "claim too long", req: &gatewayv1.RevokeRequest{Claim: strings.Repeat("c", maxClaimBytes+1), Value: "a"}, want: []pair{{"claim", "invalid"}}},
		{name: "expiry in the past", req: &gatewayv1.RevokeRequest{Value: "a", ExpiresUnixMs: now.Add(-time.Second).UnixMilli()}, want: []pair{{"expiresUnixMs", "invalid"}}},
		{name: "expiry in seconds", req: &gatewayv1.RevokeRequest{Value: "a", ExpiresUnixMs: now.Add(time.Hour).Unix()}, want: []pair{{"expiresUnixMs", "invalid"}}},
		{name: "negative expiry", req: &gatewayv1.RevokeRequest{Value: "a", ExpiresUnixMs: -5}, want: []pair{{"expiresUnixMs", "invalid"}}},
		{name: "expiry too far", req: &gatewayv1.RevokeRequest{Value: "a", ExpiresUnixMs: now.Add(DefaultMaxRevocationTTL + time.Hour).UnixMilli()}, want: []pair{{"expiresUnixMs", "invalid"}}},
		{name: "author too long", req: &gatewayv1.RevokeRequest{Value: "a", Author: strings.Repeat("a", maxAuthorBytes+1)}, want: []pair{{"author", "invalid"}}},
		{name: "every problem at once, sorted by path", req: &gatewayv1.RevokeRequest{Claim: "a b", ExpiresUnixMs: 1}, want: []pair{
			{"claim", "invalid"}, {"expiresUnixMs", "invalid"}, {"value", "required"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := e.admin.Revoke(ctxT(t), tc.req)
			wantCode(t, err, codes.InvalidArgument)
			var got []pair
			for _, d := range status.Convert(err).Details() {
				if vr, ok := d.(*gatewayv1.ValidateResponse); ok {
					for _, v := range vr.GetViolations() {
						got = append(got, pair{v.GetPath(), v.GetKind()})
					}
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("violations (-want +got):\n%s", diff)
			}
			if msg := status.Convert(err).Message(); !strings.HasPrefix(msg, "revoke: invalid request: ") {
				t.Errorf("message %q, want the prefix %q", msg, "revoke: invalid request: ")
			}
		})
	}
	t.Run("nothing stored", func(t *testing.T) {
		// Runs after the parallel cases above have finished.
		t.Cleanup(func() {
			if seq, err := e.store.RevocationSeq(context.Background()); err != nil || seq != 0 {
				t.Errorf("log seq = %d, %v after rejected revocations; want 0", seq, err)
			}
		})
	})
}

func TestRevocationHousekeeping(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		c.RevocationCompactInterval = 20 * time.Millisecond
		c.RevocationGrace = 50 * time.Millisecond
	})
	ctx := ctxT(t)
	live := e.revoke("live")
	// Expired 10ms ago: kept for the grace period, then deleted.
	if _, err := e.store.AppendRevocation(ctx, &store.Revocation{Claim: "jti", Value: "short", ExpiresUnixMs: time.Now().Add(-10 * time.Millisecond).UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	// Every entry in the log, expired or not.
	all := func() []*store.Revocation {
		got, _, err := e.store.LiveRevocations(ctx, time.UnixMilli(0))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	eventually(t, func() bool { return len(all()) == 1 }, "the expired entry is compacted")
	if diff := cmp.Diff([]*gatewayv1.RevocationEntry{live}, toEntries(all()), protocmp.Transform()); diff != "" {
		t.Fatalf("log after housekeeping (-want +got):\n%s", diff)
	}
	if _, err := e.store.RevocationsSince(ctx, 1); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("RevocationsSince(1) = %v, want ErrCompacted (entry 2 is gone)", err)
	}
	eventually(t, func() bool { return e.svc.revHub.current().base == 2 }, "the hub trims its window to the compaction point")
	if seq, _ := e.store.RevocationSeq(ctx); seq != 2 {
		t.Fatalf("log seq = %d, want 2 (never reused)", seq)
	}
}

func TestRevocationsSurviveServiceRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.revoke("a"), e.revoke("b")
	if err := e.svc.Close(); err != nil {
		t.Fatal(err)
	}
	_, edges := startService(t, e.store, Config{})
	edge := edges.connect(helloAt("edge-1", 0))
	checkRev(t, delta(0, 2, a, b), edge.nextRev())
	st, err := edges.admin.Status(ctxT(t), &gatewayv1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetRevocationSeq() != 2 {
		t.Fatalf("status revocation_seq = %d, want 2", st.GetRevocationSeq())
	}
	c, err := edges.admin.Revoke(ctxT(t), &gatewayv1.RevokeRequest{Value: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if c.GetEntry().GetSeq() != 3 {
		t.Fatalf("seq after restart = %d, want 3", c.GetEntry().GetSeq())
	}
}

func TestRevocationMessagesChunk(t *testing.T) {
	t.Parallel()
	// ~1 KiB entries: 2500 of them need three messages of at most 1 MiB.
	var entries []*gatewayv1.RevocationEntry
	for i := range 2500 {
		entries = append(entries, &gatewayv1.RevocationEntry{Seq: uint64(i + 11), Claim: "jti", Value: fmt.Sprintf("%04d-%s", i, strings.Repeat("v", 1000)), ExpiresUnixMs: 1})
	}
	tests := []struct {
		name string
		msgs []*gatewayv1.SyncResponse
		from uint64 // where the edge starts; the reset starts anywhere
	}{
		{name: "delta shared", msgs: deltaMsgs(nil, 10, 2510, entries, true), from: 10},
		{name: "delta per stream", msgs: deltaMsgs(nil, 10, 2510, entries, false), from: 10},
		{name: "reset", msgs: resetMsgs(nil, 2600, entries, true)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if len(tc.msgs) != 3 {
				t.Fatalf("%d messages, want 3", len(tc.msgs))
			}
			var got []*gatewayv1.RevocationEntry
			seq := tc.from
			for i, m := range tc.msgs {
				b, err := proto.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				if len(b) > maxRevocationMsgBytes+64 {
					t.Errorf("message %d is %d bytes", i, len(b))
				}
				var dec gatewayv1.SyncResponse // what the edge decodes
				if err := proto.Unmarshal(b, &dec); err != nil {
					t.Fatal(err)
				}
				if r := dec.GetRevocationReset(); r != nil {
					if i != 0 {
						t.Fatalf("reset as message %d", i)
					}
					got, seq = r.GetEntries(), r.GetSeq()
					continue
				}
				d := dec.GetRevocationDelta()
				if d.GetFromSeq() != seq {
					t.Fatalf("message %d starts at %d, want %d", i, d.GetFromSeq(), seq)
				}
				got, seq = append(got, d.GetEntries()...), d.GetToSeq()
			}
			wantSeq := uint64(2510)
			if tc.name == "reset" {
				wantSeq = 2600
			}
			if seq != wantSeq {
				t.Fatalf("ends at seq %d, want %d", seq, wantSeq)
			}
			if diff := cmp.Diff(entries, got, protocmp.Transform()); diff != "" {
				t.Fatalf("entries (-want +got):\n%s", diff)
			}
		})
	}
}

// startService runs a second Service on st (a control plane restart) with
// its own sync and admin servers, and returns it with an env to connect
// edges to it. Fields of cfg left zero get the test defaults.
func startService(t *testing.T, st store.Store, cfg Config) (*Service, *env) {
	t.Helper()
	cfg.Store = st
	if cfg.Keepalive == 0 {
		cfg.Keepalive = 50 * time.Millisecond
	}
	if cfg.RecvTimeout == 0 {
		cfg.RecvTimeout = 5 * time.Second
	}
	e := serveEnv(t, cfg)
	return e.svc, e
}
