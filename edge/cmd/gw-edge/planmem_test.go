package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/apigw/gateway/controlplane/config"
	"github.com/apigw/gateway/edge/auth"
	"github.com/apigw/gateway/edge/plan"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// largeConfig is BenchmarkLargeSnapshot's configuration (variant prefixes
// every path) with n endpoints.
func largeConfig(variant, n int) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, `{"version": 3, "host": ["http://127.0.0.1:9"],
  "extra_config": {"router": {"disable_access_log": true}, "auth/revoker": {"N": 100000, "P": 0.000000001, "TTL": 7200, "token_keys": ["jti"]}},
  "endpoints": [{"endpoint": "/stable", "backend": [{"url_pattern": "/stable"}]}`)
	for i := range n {
		fmt.Fprintf(&sb, `,
    {"endpoint": "/v%d/resource%d/{id}", "method": "GET", "backend": [{"url_pattern": "/r%d/{id}", "allow": ["a", "b"]}]}`, variant, i, i)
	}
	sb.WriteString("]}")
	return []byte(sb.String())
}

// heapInuse returns the live heap after two collections.
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// maxPlanBytesPerEndpoint bounds the live heap a built plan holds per
// endpoint of largeConfig (measured 3.4 KB; 6.1 KB while each backend had
// an upstream client of its own, 16 KB before the endpoint and backend
// series became plain atomics).
const maxPlanBytesPerEndpoint = 6_000

// TestPlanMemoryPerEndpoint is the memory guard of a large snapshot: the
// plan of 10,000 endpoints, built with a real edge's registries, holds at
// most maxPlanBytesPerEndpoint of live heap per endpoint (heap after GC,
// never a time). MEMPROF_DIR=dir also writes the heap profile there.
func TestPlanMemoryPerEndpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 10,000 endpoints")
	}
	dir := os.Getenv("MEMPROF_DIR")
	n := 10000
	c, err := config.Compile("large.json", largeConfig(1, n))
	if err != nil {
		t.Fatal(err)
	}
	payload := c.Payload
	c = nil
	reg, err := newRegistries(prometheus.NewRegistry(), zerolog.Nop(), nil, auth.NewRevocations(auth.RevocationsConfig{Logger: zerolog.Nop()}))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.close()
	if dir != "" {
		runtime.MemProfileRate = 4096
	}
	base := heapInuse()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	snap := &gatewayv1.Snapshot{}
	if err := proto.Unmarshal(payload, snap); err != nil {
		t.Fatal(err)
	}
	afterDecode := heapInuse()
	start := time.Now()
	p, err := plan.Build(snap, reg.deps)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	snap = nil
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	after := heapInuse()
	t.Logf("build %v; payload %d B; decoded snapshot %d B (%d/endpoint); plan live %d B (%d/endpoint); build allocated %d B in %d objects",
		took, len(payload), afterDecode-base, (afterDecode-base)/uint64(n), after-base, (after-base)/uint64(n), ms1.TotalAlloc-ms0.TotalAlloc, ms1.Mallocs-ms0.Mallocs)
	if per := (after - base) / uint64(n); after > base && per > maxPlanBytesPerEndpoint {
		t.Errorf("the plan holds %d bytes per endpoint, want at most %d", per, maxPlanBytesPerEndpoint)
	}
	if dir != "" {
		f, err := os.Create(dir + "/heap.pprof")
		if err != nil {
			t.Fatal(err)
		}
		pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	runtime.KeepAlive(p)
	p.Release()
}

// TestReleasedPlansCollectable applies back-to-back snapshots whose
// endpoints all change (as BenchmarkLargeSnapshot's pushes do) with a real
// edge's registries, releasing each replaced plan as the server's Swap
// does, and requires that (1) every released plan is garbage once nothing
// serves it (a weak pointer to it is cleared by a collection: no registry,
// metric or cache keeps a reference), and (2) the live heap after the
// fifth apply is about that after the first: nothing a released plan took
// (upstream clients, series, limiter state) stays behind per push. The
// upstream clients of a released plan do stay for their grace period
// (DefaultUpstreamGrace), which is why they must be per host, not per
// backend name: renamed endpoints used to leave 10,000 clients behind for
// 30 s at every push.
func TestReleasedPlansCollectable(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 5 x 3,000 endpoints")
	}
	const n, applies = 3000, 5
	reg, err := newRegistries(prometheus.NewRegistry(), zerolog.Nop(), nil, auth.NewRevocations(auth.RevocationsConfig{Logger: zerolog.Nop()}))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.close()
	build := func(variant int) *plan.Plan {
		c, err := config.Compile("large.json", largeConfig(variant, n))
		if err != nil {
			t.Fatal(err)
		}
		snap := &gatewayv1.Snapshot{}
		if err := proto.Unmarshal(c.Payload, snap); err != nil {
			t.Fatal(err)
		}
		p, err := plan.Build(snap, reg.deps)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := heapInuse()
	cur := build(0)
	first := heapInuse()
	// swap serves next and releases the plan it replaces, as Server.Swap
	// does; its frame holds the last strong reference to the old plan.
	swap := func(next *plan.Plan) weak.Pointer[plan.Plan] {
		old := cur
		cur = next
		old.Release()
		old.Wait()
		return weak.Make(old)
	}
	var released []weak.Pointer[plan.Plan]
	for i := 1; i < applies; i++ {
		released = append(released, swap(build(i)))
	}
	last := heapInuse()
	for i, w := range released {
		if w.Value() != nil {
			t.Errorf("the plan released at apply %d is still reachable after a collection", i+1)
		}
	}
	grew := int64(last) - int64(first)
	live := int64(first) - int64(base)
	t.Logf("live heap: %d B after the first apply, %d B after apply %d (%+d B)", live, int64(last)-int64(base), applies, grew)
	// 15% of one plan: what one plan holds may fluctuate by that much; the
	// leftovers of released plans do not fit (the 3,000 upstream clients of
	// renamed backends, when clients were per backend: +8 MB per push on a
	// 19 MB plan).
	if grew > live*15/100 {
		t.Errorf("live heap grew by %d B over %d applies of a %d B plan: released plans leave state behind", grew, applies-1, live)
	}
	runtime.KeepAlive(cur)
	cur.Release()
}
