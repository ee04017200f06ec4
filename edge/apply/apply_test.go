package apply_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/apigw/gateway/edge/apply"
	"github.com/apigw/gateway/edge/internal/snaptest"
	"github.com/apigw/gateway/edge/plan"
	"github.com/apigw/gateway/edge/server"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// snapshot is a compiled config with one static GET endpoint at path.
func snapshot(path string) *gatewayv1.Snapshot {
	return &gatewayv1.Snapshot{
		SchemaVersion: 1,
		Service:       snaptest.Service("apply-test"),
		Endpoints: []*gatewayv1.Endpoint{{
			Name:           "GET " + path,
			Path:           path,
			Method:         "GET",
			TimeoutMs:      3000,
			OutputEncoding: "json",
			Backends: []*gatewayv1.Backend{{
				Name:       "GET " + path + " backend[0]",
				Hosts:      []string{"http://127.0.0.1:1"},
				UrlPattern: "/",
				Method:     "GET",
				Encoding:   "json",
			}},
		}},
	}
}

func envelope(t *testing.T, version uint64, snap *gatewayv1.Snapshot) *gatewayv1.SnapshotEnvelope {
	t.Helper()
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(payload)
	return &gatewayv1.SnapshotEnvelope{Version: version, Sha256: hex.EncodeToString(sum[:]), Payload: payload}
}

// newApplier returns an Applier swapping into a real (not serving) server.
func newApplier(t *testing.T, opts ...apply.Option) (*apply.Applier, *server.Server) {
	t.Helper()
	srv, err := server.New(server.Config{Listen: "127.0.0.1:0", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	a, err := apply.New(apply.Config{Target: srv, Logger: zerolog.Nop(), Registerer: srv.Registry()}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a, srv
}

func ackOf(env *gatewayv1.SnapshotEnvelope) *gatewayv1.SyncRequest {
	return &gatewayv1.SyncRequest{Msg: &gatewayv1.SyncRequest_Ack{Ack: &gatewayv1.Ack{Version: env.GetVersion(), Sha256: env.GetSha256()}}}
}

func TestAnswer(t *testing.T) {
	t.Parallel()
	a, srv := newApplier(t)
	ctx := context.Background()

	v1 := envelope(t, 1, snapshot("/a"))
	if diff := cmp.Diff(ackOf(v1), a.Answer(ctx, v1), protocmp.Transform()); diff != "" {
		t.Errorf("answer to v1 (-want +got):\n%s", diff)
	}
	if v, _ := srv.Current(); v != 1 {
		t.Fatalf("serving v%d, want v1", v)
	}

	// Two violations: both travel in the NACK, the detail names the version.
	bad := snapshot("/b")
	bad.SchemaVersion = apply.SchemaVersion + 1
	bad.Features = []string{"no.such.feature"}
	v2 := envelope(t, 2, bad)
	n := a.Answer(ctx, v2).GetNack()
	if n == nil {
		t.Fatal("v2 was not NACKed")
	}
	if n.GetRunningVersion() != 1 || n.GetVersion() != 2 || n.GetDetail() != "snapshot v2 cannot be served by this edge" {
		t.Errorf("nack = %v", n)
	}
	var paths []string
	for _, v := range n.GetViolations() {
		paths = append(paths, v.GetPath()+" "+v.GetKind())
	}
	slices.Sort(paths)
	if diff := cmp.Diff([]string{"features[0] unsupported", "schema_version unsupported"}, paths); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}

	// Offered again: the same NACK, without a rebuild.
	if diff := cmp.Diff(n, a.Answer(ctx, v2).GetNack(), protocmp.Transform()); diff != "" {
		t.Errorf("second NACK differs (-first +second):\n%s", diff)
	}

	// An envelope whose payload does not match its sha256: NACK with the reason.
	corrupt := envelope(t, 3, snapshot("/c"))
	corrupt.Payload = append([]byte(nil), corrupt.Payload...)
	corrupt.Payload[0] ^= 1
	if n := a.Answer(ctx, corrupt).GetNack(); n == nil || !strings.Contains(n.GetDetail(), "sha256") || len(n.GetViolations()) != 0 {
		t.Errorf("corrupt envelope answered %v", n)
	}

	// The served snapshot again: ACK, nothing rebuilt.
	if diff := cmp.Diff(ackOf(v1), a.Answer(ctx, v1), protocmp.Transform()); diff != "" {
		t.Errorf("answer to v1 again (-want +got):\n%s", diff)
	}
}

func TestBuildErrorRendersEveryViolationOnce(t *testing.T) {
	t.Parallel()
	a, _ := newApplier(t)
	bad := snapshot("/b")
	bad.SchemaVersion = apply.SchemaVersion + 1
	bad.Features = []string{"no.such.feature"}
	err := a.Apply(context.Background(), envelope(t, 1, bad))
	if err == nil {
		t.Fatal("Apply accepted an unservable snapshot")
	}
	msg := err.Error()
	if strings.Count(msg, "build plan:") != 1 {
		t.Errorf("error %q names the operation more or less than once", msg)
	}
	for _, want := range []string{"apply snapshot v1: ", "schema_version: unsupported", "features[0]: unsupported"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	var be *plan.BuildError
	if !errors.As(err, &be) || len(be.Violations) != 2 {
		t.Errorf("BuildError = %v, want both violations", be)
	}
}

// TestWorkerLatestWins holds the build of v1 and offers v2 then v3 meanwhile:
// v2 is never built, v3 is served and ACKed after v1.
func TestWorkerLatestWins(t *testing.T) {
	t.Parallel()
	holding := make(chan struct{})
	release := make(chan struct{})
	var built []uint64 // only the worker goroutine appends, before replying
	hook := apply.WithBuildHook(func(ctx context.Context, env *gatewayv1.SnapshotEnvelope) {
		built = append(built, env.GetVersion())
		if env.GetVersion() == 1 {
			close(holding)
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
	})
	a, srv := newApplier(t, hook)
	w := apply.NewWorker(a)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	v1, v2, v3 := envelope(t, 1, snapshot("/1")), envelope(t, 2, snapshot("/2")), envelope(t, 3, snapshot("/3"))
	w.Offer(v1)
	<-holding
	w.Offer(v2)
	w.Offer(v3)
	close(release)
	for _, want := range []*gatewayv1.SnapshotEnvelope{v1, v3} {
		select {
		case got := <-w.Replies():
			if diff := cmp.Diff(ackOf(want), got, protocmp.Transform()); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no reply for v%d", want.GetVersion())
		}
	}
	if diff := cmp.Diff([]uint64{1, 3}, built); diff != "" {
		t.Errorf("builds (-want +got):\n%s", diff)
	}
	if v, _ := srv.Current(); v != 3 {
		t.Errorf("serving v%d, want v3", v)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if _, err := apply.New(apply.Config{}); err == nil || !strings.Contains(err.Error(), "target is required") {
		t.Errorf("New without a target: %v", err)
	}
}

// forcedGCs reads the runtime's count of forced collections.
func forcedGCs() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestApplyReturnsMemory: a successful apply ends with one collection that
// hands the build's garbage and the replaced plan's pages back to the OS
// (debug.FreeOSMemory, a forced GC); a refused one changes nothing. Not
// parallel: another test's forced GC would count.
func TestApplyReturnsMemory(t *testing.T) {
	a, _ := newApplier(t)
	ctx := context.Background()
	before := forcedGCs()
	if err := a.Apply(ctx, envelope(t, 1, snapshot("/a"))); err != nil {
		t.Fatal(err)
	}
	if got := forcedGCs() - before; got != 1 {
		t.Errorf("%d forced collections during a successful apply, want 1", got)
	}
	bad := snapshot("/b")
	bad.Features = []string{"no.such.feature"}
	before = forcedGCs()
	if err := a.Apply(ctx, envelope(t, 2, bad)); err == nil {
		t.Fatal("a snapshot with an unknown feature was applied")
	}
	if got := forcedGCs() - before; got != 0 {
		t.Errorf("%d forced collections during a refused apply, want 0", got)
	}
}

// gcCycles reads the runtime's count of completed collections.
func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestApplyCollectsOnce: decoding and building a snapshot that allocates
// many times the live heap runs no collection on GOGC's pacing (they slowed
// the requests served meanwhile); the apply's only collection is the
// forced one at its end, and GOGC is back afterwards. Not parallel: other
// tests' allocations would start collections.
func TestApplyCollectsOnce(t *testing.T) {
	a, _ := newApplier(t)
	big := snapshot("/r0")
	for i := 1; i < 3000; i++ {
		ep := proto.CloneOf(big.Endpoints[0])
		ep.Path = "/r" + strconv.Itoa(i)
		ep.Name = "GET " + ep.Path
		ep.Backends[0].Name = ep.Name + " backend[0]"
		big.Endpoints = append(big.Endpoints, ep)
	}
	env := envelope(t, 1, big)
	gogc := debug.SetGCPercent(-1)
	debug.SetGCPercent(gogc)
	runtime.GC()
	cycles, forced := gcCycles(), forcedGCs()
	if err := a.Apply(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	if c, f := gcCycles()-cycles, forcedGCs()-forced; c != 1 || f != 1 {
		t.Errorf("%d collections (%d forced) during the apply of 3,000 endpoints, want the 1 forced", c, f)
	}
	if pct := debug.SetGCPercent(gogc); pct != gogc {
		t.Errorf("GOGC after the apply = %d, want %d back", pct, gogc)
	}
}
