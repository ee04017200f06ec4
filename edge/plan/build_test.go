package plan_test

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/plan"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func TestBuildErrors(t *testing.T) {
	t.Parallel()
	const h = "127.0.0.1:1"
	type pk struct{ Path, Kind string }
	tests := []struct {
		name     string
		snap     func() *gatewayv1.Snapshot
		disabled []string
		want     []pk
	}{
		{
			name: "unknown and disabled features",
			snap: func() *gatewayv1.Snapshot {
				s := snapshot(endpoint("GET", "/a", backend(h, "/a")))
				s.Features = []string{"proxy.shadow", "websockets"}
				return s
			},
			disabled: []string{"proxy.shadow"},
			want:     []pk{{"features[0]", "unsupported"}, {"features[1]", "unsupported"}},
		},
		{
			name: "newer schema",
			snap: func() *gatewayv1.Snapshot {
				s := snapshot(endpoint("GET", "/a", backend(h, "/a")))
				s.SchemaVersion = plan.SchemaVersion + 1
				return s
			},
			want: []pk{{"schema_version", "unsupported"}},
		},
		{
			name: "bad pattern and duplicate route",
			snap: func() *gatewayv1.Snapshot {
				return snapshot(
					endpoint("GET", "/a/{id}", backend(h, "/a")),
					endpoint("GET", "/a/{other}", backend(h, "/a")),
					endpoint("GET", "/b/file.{ext}", backend(h, "/b")),
				)
			},
			want: []pk{{"endpoints[1].endpoint", "duplicate"}, {"endpoints[2].endpoint", "invalid"}},
		},
		{
			name: "no-op with two backends, unknown output, missing host, bad static",
			snap: func() *gatewayv1.Snapshot {
				noop := endpoint("GET", "/noop", backend(h, "/a"), backend(h, "/b"))
				noop.OutputEncoding = "no-op"
				out := endpoint("GET", "/out", backend(h, "/a"))
				out.OutputEncoding = "html"
				nohost := endpoint("GET", "/nohost", &gatewayv1.Backend{UrlPattern: "/a"})
				static := endpoint("GET", "/static", backend(h, "/a"))
				static.Static = &gatewayv1.Static{Data: []byte(`[1]`)}
				return snapshot(noop, out, nohost, static)
			},
			want: []pk{
				{"endpoints[0].backend", "too_many"},
				{"endpoints[1].output_encoding", "unsupported"},
				{"endpoints[2].backend[0].host", "required"},
				{"endpoints[3].extra_config.proxy.static", "invalid"},
			},
		},
		{
			name: "bad backend encoding and bad trusted proxy",
			snap: func() *gatewayv1.Snapshot {
				s := snapshot(endpoint("GET", "/a", with(backend(h, "/a"), func(b *gatewayv1.Backend) { b.Encoding = "protobuf" })))
				s.Service.Router.TrustedProxies = []string{"not-an-ip"}
				return s
			},
			want: []pk{{"service.router.trusted_proxies", "invalid"}, {"endpoints[0].backend[0]", "invalid"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ups := plan.NewUpstreams()
			defer ups.Close()
			p, err := plan.Build(tc.snap(), plan.Deps{Upstreams: ups, DisabledFeatures: tc.disabled})
			var be *plan.BuildError
			if !errors.As(err, &be) {
				t.Fatalf("Build = %v, %v; want a *BuildError", p, err)
			}
			var got []pk
			for _, v := range be.Violations {
				got = append(got, pk{v.GetPath(), v.GetKind()})
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("violations (-want +got):\n%s\n%v", diff, err)
			}
			if n := ups.Len(); n != 0 {
				t.Errorf("a failed Build keeps %d upstream clients", n)
			}
		})
	}
}

func TestSupportedFeatures(t *testing.T) {
	want := []string{
		"async.amqp", "auth.jwt", "auth.revoker", "auth.signer", "backend.amqp.consumer", "backend.amqp.producer", "backend.graphql", "backend.pubsub", "duration.sub_ms", "encoding.rss", "encoding.xml", "listener.h2c", "modifier.lua", "modifier.lua_service", "modifier.martian", "output.yaml", "proxy.flatmap",
		"proxy.sequential", "proxy.shadow", "proxy.static", "qos.circuit_breaker", "qos.http_cache",
		"qos.ratelimit", "qos.ratelimit.cluster", "route.catch_all", "sd.dns", "security.bot_detector", "security.cors", "security.http",
		"telemetry.gelf", "telemetry.influx", "telemetry.logstash", "telemetry.opencensus", "telemetry.opencensus.prometheus", "telemetry.opentelemetry", "telemetry.opentelemetry.metrics", "tls.client", "tls.listener", "validation.cel", "validation.json_schema",
	}
	if diff := cmp.Diff(want, plan.SupportedFeatures()); diff != "" {
		t.Errorf("SupportedFeatures (-want +got):\n%s", diff)
	}
}

func TestUpstreamsReusedAcrossPlans(t *testing.T) {
	t.Parallel()
	ups := plan.NewUpstreams()
	defer ups.Close()
	build := func(host string) *plan.Plan {
		p, err := plan.Build(snapshot(endpoint("GET", "/a", backend(host, "/a"))), plan.Deps{Upstreams: ups})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p1 := build("127.0.0.1:1")
	p2 := build("127.0.0.1:1") // unchanged backend: same pools
	if n := ups.Len(); n != 1 {
		t.Fatalf("Len = %d after two plans with the same backend, want 1", n)
	}
	p3 := build("127.0.0.1:2") // changed settings: a new client
	if n := ups.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
	p1.Release()
	p1.Release() // idempotent
	p2.Release()
	p3.Release()
	if n := ups.Len(); n != 2 {
		t.Fatalf("Len = %d right after Release, want 2 (grace period)", n)
	}
}

// TestSwapUnderLoad swaps plans while clients hammer the edge: nothing may
// be dropped or fail.
func TestSwapUnderLoad(t *testing.T) {
	t.Parallel()
	b := startBackends(t)
	ups := plan.NewUpstreams()
	defer ups.Close()
	reg := prometheus.NewRegistry()
	m, err := plan.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	deps := plan.Deps{Upstreams: ups, Metrics: m}
	mk := func(i int) *plan.Plan {
		ep := endpoint("GET", "/x", backend(b.host, "/small"), backend(b.host, "/posts"))
		ep.TimeoutMs = int64(2000 + i) // a different plan each time
		p, err := plan.Build(snapshot(ep), deps)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	e := startEdge(t, mk(0))
	client := &fasthttp.Client{MaxConnsPerHost: 64}
	var ok, bad atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://" + e.addr + "/x")
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := client.DoTimeout(req, resp, 5*time.Second); err != nil || resp.StatusCode() != 200 ||
					string(resp.Header.Peek("X-Krakend-Completed")) != "true" {
					bad.Add(1)
					continue
				}
				ok.Add(1)
			}
		})
	}
	for i := 1; i <= 40; i++ {
		time.Sleep(10 * time.Millisecond)
		old := e.cur.Swap(mk(i))
		old.Release()
	}
	close(stop)
	wg.Wait()
	// Read before the last plan goes: releasing it deletes the series of
	// the endpoints no live plan serves.
	got := counterValue(t, reg, "gw_edge_requests_total", `endpoint="GET /x"`, `code_class="2xx"`)
	e.cur.Load().Release()
	if bad.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d good, %d failed requests across 40 swaps", ok.Load(), bad.Load())
	}
	if n := ups.Len(); n != 1 {
		t.Errorf("Upstreams holds %d clients, want 1: the two backends share their host's client, reused by every plan", n)
	}
	if got != float64(ok.Load()) {
		t.Errorf("gw_edge_requests_total{2xx} = %v, want %d", got, ok.Load())
	}
}

// counterValue finds one counter child by its label pairs.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName()+`="`+lp.GetValue()+`"` == l {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

// TestBackendsShareHostClient: the backends of one host with the same
// transport settings share one upstream client whatever their names (10,000
// endpoints on one host are one pool, not 10,000), while each keeps its own
// circuit breaker and metric series.
func TestBackendsShareHostClient(t *testing.T) {
	t.Parallel()
	a, other := startBackends(t), startBackends(t)
	ups := plan.NewUpstreams()
	defer ups.Close()
	reg := prometheus.NewRegistry()
	m, err := plan.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var eps []*gatewayv1.Endpoint
	for i := range 50 {
		eps = append(eps, endpoint("GET", "/small"+strconv.Itoa(i), backend(a.host, "/small")))
	}
	eps = append(eps,
		endpoint("GET", "/fail", with(backend(a.host, "/fail"), func(be *gatewayv1.Backend) {
			be.CircuitBreaker = &gatewayv1.CircuitBreaker{MaxErrors: 1, TimeoutMs: 60_000, IntervalMs: 60_000}
		})),
		endpoint("GET", "/other", backend(other.host, "/small")))
	p, err := plan.Build(snapshot(eps...), plan.Deps{Upstreams: ups, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	if n := ups.Len(); n != 2 {
		t.Fatalf("Upstreams holds %d clients for 52 backends on 2 hosts, want 2", n)
	}
	e := startEdge(t, p)
	runSteps(t, e.addr, []step{
		{path: "/fail", wantStatus: 500},
		{path: "/fail", wantStatus: 500}, // 2 consecutive failures > max_errors 1: open
		{path: "/fail", wantStatus: 503},
		{path: "/small0", wantStatus: 200}, // same client, its own (closed) breaker
		{path: "/small1", wantStatus: 200},
		{path: "/other", wantStatus: 200},
	})
	if got := counterValue(t, reg, "gw_edge_backend_errors_total", `backend="GET /fail backend[0]"`, `reason="status"`); got != 2 {
		t.Errorf("/fail's backend errors{status} = %v, want 2", got)
	}
	if got := counterValue(t, reg, "gw_edge_backend_errors_total", `backend="GET /small0 backend[0]"`, `reason="status"`); got != 0 {
		t.Errorf("/small0's backend errors{status} = %v, want 0 (its own series)", got)
	}
	p.Release()
	// Another plan with other endpoint names on the same hosts keeps the
	// two clients (no new client per renamed backend).
	p2, err := plan.Build(snapshot(endpoint("GET", "/renamed", backend(a.host, "/small")), endpoint("GET", "/renamed2", backend(other.host, "/small"))),
		plan.Deps{Upstreams: ups, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Release()
	if n := ups.Len(); n != 2 {
		t.Errorf("Upstreams holds %d clients after renaming every endpoint, want the same 2", n)
	}
}
