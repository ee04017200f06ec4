package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func claimsOf(kv ...string) *Claims {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &Claims{m: m}
}

func entry(seq uint64, claim, value string, exp time.Time) *gatewayv1.RevocationEntry {
	return &gatewayv1.RevocationEntry{Seq: seq, Claim: claim, Value: value, ExpiresUnixMs: exp.UnixMilli()}
}

func newTestRevocations(t *testing.T, rv *gatewayv1.Revoker, clock func() time.Time) *Revocations {
	t.Helper()
	r := NewRevocations(RevocationsConfig{Revoker: rv, RebuildPeriod: -1, Clock: clock})
	t.Cleanup(r.Close)
	return r
}

func TestRevocationsDeltaGapReset(t *testing.T) {
	t.Parallel()
	r := newTestRevocations(t, &gatewayv1.Revoker{N: 1000, P: 1e-6, TokenKeys: []string{"jti", "sub"}}, nil)
	later := time.Now().Add(time.Hour)
	if err := r.ApplyDelta([]*gatewayv1.RevocationEntry{entry(1, "jti", "a", later), entry(2, "sub", "bob", later), entry(2, "jti", "12345", later), entry(2, "sub", "true", later)}, 0, 2); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		claims *Claims
		want   bool
	}{
		{"revoked jti", claimsOf("jti", "a", "sub", "x"), true},
		{"revoked sub", claimsOf("jti", "z", "sub", "bob"), true},
		{"clean", claimsOf("jti", "b", "sub", "alice"), false},
		{"claim not a token key", claimsOf("email", "a"), false},
		{"array claim matched by its members joined", &Claims{m: map[string]any{"jti": []any{"a"}}}, true},
		{"numeric claim matched as its integer text", &Claims{m: map[string]any{"jti": json.Number("12345")}}, true},
		{"integral float matched as an integer", &Claims{m: map[string]any{"jti": json.Number("1.2345e4")}}, true},
		{"other number", &Claims{m: map[string]any{"jti": json.Number("12346")}}, false},
		{"boolean claim", &Claims{m: map[string]any{"sub": true}}, true},
		{"value of another claim", claimsOf("sub", "a"), false},
	}
	for _, tc := range tests {
		if got := r.Check(tc.claims); got != tc.want {
			t.Errorf("%s: Check = %v, want %v", tc.name, got, tc.want)
		}
	}
	if r.Seq() != 2 || r.Len() != 4 {
		t.Fatalf("seq %d len %d", r.Seq(), r.Len())
	}

	// A gap is refused and changes nothing.
	err := r.ApplyDelta([]*gatewayv1.RevocationEntry{entry(4, "jti", "c", later)}, 3, 4)
	var gap *SeqGapError
	if !errors.As(err, &gap) || gap.Have != 2 || gap.From != 3 {
		t.Fatalf("gap: err = %v", err)
	}
	if r.Seq() != 2 || r.Revoked("jti", "c") {
		t.Fatal("gap delta changed the set")
	}
	// A delta replayed from an older seq is a gap too.
	if err := r.ApplyDelta(nil, 1, 2); !errors.As(err, &gap) {
		t.Fatalf("stale delta: %v", err)
	}
	// Entries outside (from, to] are refused.
	if err := r.ApplyDelta([]*gatewayv1.RevocationEntry{entry(9, "jti", "c", later)}, 2, 3); err == nil {
		t.Fatal("entry seq outside the range accepted")
	}

	// Reset replaces everything.
	if err := r.Reset(10, []*gatewayv1.RevocationEntry{entry(10, "jti", "new", later)}); err != nil {
		t.Fatal(err)
	}
	if r.Seq() != 10 || r.Revoked("jti", "a") || !r.Revoked("jti", "new") || r.Len() != 1 {
		t.Fatalf("after reset: seq %d len %d", r.Seq(), r.Len())
	}
	if err := r.ApplyDelta([]*gatewayv1.RevocationEntry{entry(11, "jti", "n2", later)}, 10, 11); err != nil {
		t.Fatal(err)
	}
	if !r.Revoked("jti", "n2") {
		t.Fatal("delta after reset not applied")
	}
}

func TestRevocationsCompaction(t *testing.T) {
	t.Parallel()
	r := newTestRevocations(t, &gatewayv1.Revoker{N: 20000, P: 1e-6}, nil)
	later := time.Now().Add(time.Hour)
	seq := uint64(0)
	for batch := range 3 {
		var es []*gatewayv1.RevocationEntry
		for i := range 1500 {
			seq++
			es = append(es, entry(seq, "jti", fmt.Sprintf("b%d-%d", batch, i), later))
		}
		if err := r.ApplyDelta(es, seq-1500, seq); err != nil {
			t.Fatal(err)
		}
	}
	// 4500 entries > compactAt: some are in the filter, some in the overlay.
	st := r.state.Load()
	if len(st.base) == 0 {
		t.Fatal("no compaction happened")
	}
	if r.Len() != 4500 {
		t.Fatalf("len %d", r.Len())
	}
	for batch := range 3 {
		for i := 0; i < 1500; i += 97 {
			if !r.Revoked("jti", fmt.Sprintf("b%d-%d", batch, i)) {
				t.Fatalf("b%d-%d lost", batch, i)
			}
		}
	}
	// A re-revocation with a later expiry keeps the later one and does
	// not count twice.
	seq++
	if err := r.ApplyDelta([]*gatewayv1.RevocationEntry{entry(seq, "jti", "b0-0", later.Add(time.Hour))}, seq-1, seq); err != nil {
		t.Fatal(err)
	}
	if r.Len() != 4500 {
		t.Fatalf("len after re-revoke %d", r.Len())
	}
}

func TestRevocationsExpiryRebuild(t *testing.T) {
	t.Parallel()
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	r := NewRevocations(RevocationsConfig{Revoker: &gatewayv1.Revoker{N: 1000, P: 1e-6, TtlMs: 3_600_000}, RebuildPeriod: 20 * time.Millisecond, Clock: clock})
	t.Cleanup(r.Close)
	now := time.Now()
	if err := r.Reset(5, []*gatewayv1.RevocationEntry{
		entry(1, "jti", "soon", now.Add(time.Minute)),
		entry(2, "jti", "late", now.Add(time.Hour*2)),
		entry(3, "jti", "already", now.Add(-time.Second)), // dropped at once
		{Seq: 4, Claim: "jti", Value: "ttl"},              // no expiry: now + ttl (1 h)
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.ApplyDelta([]*gatewayv1.RevocationEntry{entry(6, "jti", "overlay-soon", now.Add(time.Minute))}, 5, 6); err != nil {
		t.Fatal(err)
	}
	if r.Len() != 4 || r.Revoked("jti", "already") {
		t.Fatalf("len %d", r.Len())
	}
	offset.Store(int64(2 * time.Minute))
	// Expired entries stop counting at once...
	if r.Revoked("jti", "soon") || r.Revoked("jti", "overlay-soon") {
		t.Fatal("expired entry still revokes")
	}
	// ...and the background rebuild drops them.
	if !eventually(t, 2*time.Second, func() bool { return r.Len() == 2 }) {
		t.Fatalf("rebuild did not drop expired entries: len %d", r.Len())
	}
	if !r.Revoked("jti", "late") || !r.Revoked("jti", "ttl") {
		t.Fatal("live entries lost in the rebuild")
	}
	offset.Store(int64(90 * time.Minute))
	if !eventually(t, 2*time.Second, func() bool { return r.Len() == 1 }) {
		t.Fatalf("ttl entry not dropped: len %d", r.Len())
	}
	if r.Seq() != 6 {
		t.Errorf("rebuild changed seq to %d", r.Seq())
	}
}

// A filter so small that it saturates answers "maybe" for everything; the
// exact set must turn every such false positive into "not revoked".
func TestRevocationsFalsePositiveConfirmedNegative(t *testing.T) {
	t.Parallel()
	r := newTestRevocations(t, &gatewayv1.Revoker{N: 1, P: 0.5}, nil)
	var es []*gatewayv1.RevocationEntry
	later := time.Now().Add(time.Hour)
	for i := range 50 {
		es = append(es, entry(uint64(i+1), "jti", fmt.Sprint("r", i), later))
	}
	if err := r.Reset(50, es); err != nil {
		t.Fatal(err)
	}
	st := r.state.Load()
	fp := 0
	for i := range 200 {
		elem := fmt.Sprint("jti-valid", i)
		if st.filter.TestString(elem) {
			fp++
		}
		if r.Check(claimsOf("jti", fmt.Sprint("valid", i))) {
			t.Fatalf("valid token %d rejected by a false positive", i)
		}
	}
	if fp < 150 {
		t.Fatalf("filter not saturated (%d/200 positives); the test proves nothing", fp)
	}
	if !r.Check(claimsOf("jti", "r7")) {
		t.Fatal("revoked token accepted")
	}
}

func TestRevocationsConfigure(t *testing.T) {
	t.Parallel()
	r := newTestRevocations(t, nil, nil)
	later := time.Now().Add(time.Hour)
	if err := r.ApplyDelta([]*gatewayv1.RevocationEntry{entry(1, "jti", "a", later), entry(1, "sub", "bob", later)}, 0, 1); err != nil {
		t.Fatal(err)
	}
	c := claimsOf("jti", "x", "sub", "bob")
	if r.Check(c) {
		t.Fatal("sub checked although token_keys defaults to jti")
	}
	r.Configure(&gatewayv1.Revoker{N: 5000, P: 1e-7, TokenKeys: []string{"sub"}})
	if !r.Check(c) || r.Check(claimsOf("jti", "a")) {
		t.Fatal("token keys not switched")
	}
	if r.Len() != 2 || r.Seq() != 1 {
		t.Fatalf("configure lost entries: len %d seq %d", r.Len(), r.Seq())
	}
}

func sortedEntries(es []*gatewayv1.RevocationEntry) []*gatewayv1.RevocationEntry {
	sort.Slice(es, func(i, j int) bool { return es[i].GetClaim()+es[i].GetValue() < es[j].GetClaim()+es[j].GetValue() })
	for _, e := range es {
		e.Seq = 0
	}
	return es
}

func TestRevocationsExportReset(t *testing.T) {
	t.Parallel()
	rv := &gatewayv1.Revoker{N: 1000, P: 1e-6, TokenKeys: []string{"jti", "sub"}}
	later := time.Now().Add(time.Hour)
	r := newTestRevocations(t, rv, nil)
	if err := r.ApplyDelta([]*gatewayv1.RevocationEntry{entry(1, "jti", "a", later), entry(1, "sub", "bob-with-dash", later)}, 0, 1); err != nil {
		t.Fatal(err)
	}
	if err := r.ApplyDelta([]*gatewayv1.RevocationEntry{entry(2, "jti", "b", later), entry(2, "jti", "gone", time.Now().Add(-time.Minute))}, 1, 2); err != nil {
		t.Fatal(err)
	}
	exported := r.Export()
	if exported.GetSeq() != 2 {
		t.Fatalf("exported seq %d, want 2", exported.GetSeq())
	}

	// A fresh set restored from the export (a restart) enforces the same
	// live entries; the expired one is not carried over.
	got := newTestRevocations(t, rv, nil)
	if err := got.Reset(exported.GetSeq(), exported.GetEntries()); err != nil {
		t.Fatal(err)
	}
	if got.Seq() != 2 || !got.Check(claimsOf("sub", "bob-with-dash")) || !got.Revoked("jti", "b") || got.Revoked("jti", "gone") {
		t.Fatalf("restored seq %d", got.Seq())
	}
	if d := cmp.Diff(sortedEntries(r.Entries()), sortedEntries(got.Entries()), protocmp.Transform()); d != "" {
		t.Errorf("entries (-want +got):\n%s", d)
	}
}

// Writers, folds (compaction and expiry rebuilds in the background) and
// readers run at once; no entry may be lost and readers never block.
func TestRevocationsConcurrentFolds(t *testing.T) {
	t.Parallel()
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	r := NewRevocations(RevocationsConfig{Revoker: &gatewayv1.Revoker{N: 50_000, P: 1e-6}, RebuildPeriod: 2 * time.Millisecond, Clock: clock})
	t.Cleanup(r.Close)
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			c := claimsOf("jti", "never")
			for {
				select {
				case <-stop:
					return
				default:
					if r.Check(c) {
						t.Error("unrevoked token reported revoked")
						return
					}
				}
			}
		})
	}
	now := time.Now()
	seq := uint64(0)
	const batches, per = 60, 200
	for b := range batches {
		es := make([]*gatewayv1.RevocationEntry, 0, per)
		for i := range per {
			seq++
			exp := now.Add(time.Hour)
			if i%4 == 0 {
				exp = now.Add(time.Duration(b+1) * time.Millisecond) // expires during the run
			}
			es = append(es, entry(seq, "jti", fmt.Sprintf("%d-%d", b, i), exp))
		}
		if err := r.ApplyDelta(es, seq-per, seq); err != nil {
			t.Fatal(err)
		}
		if b%10 == 0 {
			offset.Add(int64(5 * time.Millisecond))
			time.Sleep(3 * time.Millisecond)
		}
	}
	offset.Store(int64(time.Minute))
	want := batches * per * 3 / 4
	if !eventually(t, 5*time.Second, func() bool { return r.Len() == want && len(r.state.Load().overlay) < compactAt }) {
		t.Fatalf("len %d (overlay %d), want %d", r.Len(), len(r.state.Load().overlay), want)
	}
	close(stop)
	readers.Wait()
	for b := range batches {
		for i := range per {
			if got := r.Revoked("jti", fmt.Sprintf("%d-%d", b, i)); got != (i%4 != 0) {
				t.Fatalf("%d-%d: revoked = %v", b, i, got)
			}
		}
	}
	if r.Seq() != seq {
		t.Errorf("seq %d, want %d", r.Seq(), seq)
	}
}
