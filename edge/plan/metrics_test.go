package plan_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apigw/gateway/edge/plan"
)

// seriesWith lists the series of reg whose labels mention value.
func seriesWith(t *testing.T, reg *prometheus.Registry, value string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.HasPrefix(l.GetValue(), value) {
					out = append(out, mf.GetName()+"{"+l.GetName()+"="+l.GetValue()+"}")
				}
			}
		}
	}
	return out
}

// TestRemovedEndpointSeriesDeleted: once the plan that served an endpoint
// is released and no live plan has it, its request, duration and backend
// error series are gone; a kept endpoint's series stay, and a failed
// build leaves no series of its own.
func TestRemovedEndpointSeriesDeleted(t *testing.T) {
	t.Parallel()
	addr := fastBackend(t, nil)
	reg := prometheus.NewRegistry()
	m, err := plan.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	deps := plan.Deps{Metrics: m}
	keep := func() *plan.Plan {
		return mustBuild(t, snapshot(endpoint("GET", "/keep", backend(addr, "/users/1"))), deps)
	}
	p1 := mustBuild(t, snapshot(endpoint("GET", "/keep", backend(addr, "/users/1")), endpoint("GET", "/gone", backend(addr, "/users/1"))), deps)
	for _, path := range []string{"/keep", "/gone"} {
		if st := serveOnce(p1.Serve, newCtx("GET", path, "")); st != 200 {
			t.Fatalf("%s: %d", path, st)
		}
	}
	if got := seriesWith(t, reg, "GET /gone"); len(got) == 0 {
		t.Fatal("no series for GET /gone while its plan is live")
	}
	p2 := keep()
	defer p2.Release()
	if got := seriesWith(t, reg, "GET /gone"); len(got) == 0 {
		t.Fatal("series deleted while the plan serving them is still live")
	}
	p1.Release()
	if got := seriesWith(t, reg, "GET /gone"); len(got) != 0 {
		t.Errorf("series of the removed endpoint after release: %v", got)
	}
	if got := seriesWith(t, reg, "GET /keep"); len(got) == 0 {
		t.Error("series of the kept endpoint deleted")
	}

	// A failed build (an invalid output encoding) creates no lasting series.
	bad := endpoint("GET", "/bad", backend(addr, "/users/1"))
	bad.OutputEncoding = "nope"
	if _, err := plan.Build(snapshot(endpoint("GET", "/keep", backend(addr, "/users/1")), bad), deps); err == nil {
		t.Fatal("bad snapshot built")
	}
	if got := seriesWith(t, reg, "GET /bad"); len(got) != 0 {
		t.Errorf("series left by a failed build: %v", got)
	}
	if got := seriesWith(t, reg, "GET /keep"); len(got) == 0 {
		t.Error("a failed build deleted the series of a live plan")
	}
}
