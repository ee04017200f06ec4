package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/apigw/gateway/edge/apply"
	"github.com/apigw/gateway/edge/internal/loglevel"
	"github.com/apigw/gateway/edge/internal/snaptest"
	"github.com/apigw/gateway/edge/lkg"
	"github.com/apigw/gateway/edge/plan"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// backend is a real HTTP upstream answering {"path": <path>, "tag": tag}.
// /slow/... paths wait for release (or 5 s).
type backend struct {
	URL     string
	release chan struct{}
	started chan string
}

// waitStarted waits until a /slow request reached the backend.
func (b *backend) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-b.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the request never reached the backend")
	}
}

func startBackend(t *testing.T, tag string) *backend {
	t.Helper()
	b := &backend{release: make(chan struct{}), started: make(chan string, 16)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/slow") {
			b.started <- r.URL.Path
			select {
			case <-b.release:
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"path": r.URL.Path, "tag": tag})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	b.URL = "http://" + ln.Addr().String()
	return b
}

// endpoint is a compiled single-backend GET endpoint, every default resolved
// as controlplane/config would.
func endpoint(path, host, upstream string) *gatewayv1.Endpoint {
	name := "GET " + path
	return &gatewayv1.Endpoint{
		Name:           name,
		Path:           path,
		Method:         "GET",
		TimeoutMs:      3000,
		OutputEncoding: "json",
		Backends: []*gatewayv1.Backend{{
			Name:       name + " backend[0]",
			Hosts:      []string{host},
			UrlPattern: upstream,
			Method:     "GET",
			Encoding:   "json",
		}},
	}
}

func snapshot(eps ...*gatewayv1.Endpoint) *gatewayv1.Snapshot {
	return &gatewayv1.Snapshot{
		SchemaVersion: 1,
		Service:       snaptest.Service("test"),
		Endpoints:     eps,
	}
}

func envelope(t testing.TB, version uint64, snap *gatewayv1.Snapshot) *gatewayv1.SnapshotEnvelope {
	t.Helper()
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(payload)
	return &gatewayv1.SnapshotEnvelope{Version: version, Sha256: hex.EncodeToString(sum[:]), Payload: payload, Author: "test"}
}

type harness struct {
	srv     *Server
	applier *apply.Applier
	logs    *syncBuffer
	url     string
	cancel  context.CancelFunc
	served  chan error
}

// start runs a Server on 127.0.0.1:0 with an Applier; stopped at cleanup.
func start(t testing.TB, mutate func(*Config, *apply.Config)) *harness {
	t.Helper()
	logs := &syncBuffer{}
	log := zerolog.New(logs)
	cfg := Config{Listen: "127.0.0.1:0", Logger: log, BuildVersion: "test", PinLogLevel: true}
	acfg := apply.Config{Logger: log}
	if mutate != nil {
		mutate(&cfg, &acfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	acfg.Target, acfg.Registerer = srv, srv.Registry()
	a, err := apply.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{srv: srv, applier: a, logs: logs, url: "http://" + srv.Addr().String(), cancel: cancel, served: make(chan error, 1)}
	go func() { h.served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-h.served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
		srv.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return h
}

// applies is gw_edge_snapshot_applies_total{result} on the server's registry.
func (h *harness) applies(t *testing.T, result string) float64 {
	t.Helper()
	mfs, err := h.srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "gw_edge_snapshot_applies_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no gw_edge_snapshot_applies_total{result=%q}", result)
	return 0
}

func (h *harness) apply(t testing.TB, env *gatewayv1.SnapshotEnvelope) {
	t.Helper()
	if err := h.applier.Apply(context.Background(), env); err != nil {
		t.Fatalf("apply v%d: %v", env.GetVersion(), err)
	}
}

type reply struct {
	code   int
	header http.Header
	body   string
}

var client = &http.Client{Timeout: 10 * time.Second}

func get(t *testing.T, url string) reply {
	t.Helper()
	return do(t, client, http.MethodGet, url, nil, nil)
}

func do(t *testing.T, c *http.Client, method, url string, header http.Header, body io.Reader) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

func TestNoPlan(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	tests := []struct {
		name     string
		path     string
		wantCode int
		wantBody string
	}{
		{name: "any path", path: "/hello", wantCode: 503, wantBody: `{"error":"service_unavailable"}`},
		{name: "root", path: "/", wantCode: 503, wantBody: `{"error":"service_unavailable"}`},
	}
	r := get(t, h.url+"/__health")
	if r.code != 503 || !healthBody("no_config").MatchString(r.body) || r.header.Get("Content-Type") != "application/json; charset=utf-8" ||
		r.header.Get("X-Apigw-Snapshot-Version") != "0" {
		t.Errorf("health before any plan = %d %v %s", r.code, r.header, r.body)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, h.url+tc.path)
			if r.code != tc.wantCode || r.body != tc.wantBody {
				t.Errorf("GET %s = %d %s, want %d %s", tc.path, r.code, r.body, tc.wantCode, tc.wantBody)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if s := r.header.Get("Server"); s != "" {
				t.Errorf("Server header %q leaks the implementation", s)
			}
		})
	}
}

func TestApplyServesTraffic(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "b1")
	h := start(t, nil)
	env := envelope(t, 7, snapshot(endpoint("/hello", b.URL, "/v1")))
	h.apply(t, env)

	if v, sha := h.srv.Current(); v != 7 || sha != env.GetSha256() {
		t.Errorf("Current() = %d %s, want 7 %s", v, sha, env.GetSha256())
	}
	r := get(t, h.url+"/__health")
	if r.code != 200 || !healthBody("ok").MatchString(r.body) || r.header.Get("X-Apigw-Snapshot-Version") != "7" ||
		r.header.Get("X-Apigw-Snapshot-Sha256") != env.GetSha256() {
		t.Errorf("health = %d %v %s, want 200, KrakenD's body, version 7 and %s", r.code, r.header, r.body, env.GetSha256())
	}
	r = get(t, h.url+"/hello")
	if r.code != 200 || !strings.Contains(r.body, `"path":"/v1"`) {
		t.Errorf("GET /hello = %d %s, want the backend's /v1 answer", r.code, r.body)
	}
	if r := get(t, h.url+"/nope"); r.code != 404 || r.body != "404 page not found" {
		t.Errorf("GET /nope = %d %s", r.code, r.body)
	}
	if !strings.Contains(h.logs.String(), `"message":"snapshot applied"`) {
		t.Errorf("no 'snapshot applied' log line:\n%s", h.logs.String())
	}

	// The same snapshot again is a no-op (no second build).
	h.apply(t, env)
	if n := h.applies(t, "ok"); n != 1 {
		t.Errorf("gw_edge_snapshot_applies_total{result=\"ok\"} = %v, want 1", n)
	}
}

func TestApplyRejectsAndKeepsOldPlan(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "b1")
	h := start(t, func(_ *Config, a *apply.Config) { a.Deps.DisabledFeatures = []string{"proxy.static"} })
	good := envelope(t, 1, snapshot(endpoint("/hello", b.URL, "/v1")))
	h.apply(t, good)

	corrupt := envelope(t, 2, snapshot(endpoint("/hello", b.URL, "/v2")))
	corrupt.Payload = append([]byte(nil), corrupt.Payload...)
	corrupt.Payload[len(corrupt.Payload)-1] ^= 1

	undecodable := envelope(t, 3, nil)
	undecodable.Payload = []byte{0xff, 0xff, 0xff}
	sum := sha256.Sum256(undecodable.Payload)
	undecodable.Sha256 = hex.EncodeToString(sum[:])

	future := snapshot(endpoint("/hello", b.URL, "/v4"))
	future.SchemaVersion = plan.SchemaVersion + 1

	static := snapshot(endpoint("/hello", b.URL, "/v5"))
	static.Endpoints[0].Static = &gatewayv1.Static{Strategy: "always", Data: []byte(`{"static":true}`)}
	static.Features = []string{"proxy.static"}

	tests := []struct {
		name           string
		env            *gatewayv1.SnapshotEnvelope
		wantViolations []*gatewayv1.FieldViolation // nil: none expected
		wantErr        string
	}{
		{name: "sha256 mismatch", env: corrupt, wantErr: "sha256 of payload"},
		{name: "undecodable payload", env: undecodable, wantErr: "decode snapshot"},
		{
			name:           "newer schema",
			env:            envelope(t, 4, future),
			wantViolations: []*gatewayv1.FieldViolation{{Path: "schema_version", Kind: "unsupported"}},
			wantErr:        "schema_version: unsupported",
		},
		{name: "disabled feature", env: envelope(t, 5, static), wantErr: "proxy.static"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := h.applier.Apply(context.Background(), tc.env)
			if err == nil {
				t.Fatal("Apply accepted it")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q lacks %q", err, tc.wantErr)
			}
			if tc.wantViolations != nil {
				var be *plan.BuildError
				if !errors.As(err, &be) {
					t.Fatalf("error %v is not a *plan.BuildError", err)
				}
				if diff := cmp.Diff(tc.wantViolations, be.Violations, protocmp.Transform(),
					protocmp.IgnoreFields(&gatewayv1.FieldViolation{}, "detail")); diff != "" {
					t.Errorf("violations (-want +got):\n%s", diff)
				}
			}
			if v, _ := h.srv.Current(); v != 1 {
				t.Errorf("serving version %d after a rejected snapshot, want 1", v)
			}
			if r := get(t, h.url+"/hello"); !strings.Contains(r.body, `"path":"/v1"`) {
				t.Errorf("old plan not served: %d %s", r.code, r.body)
			}
		})
	}
	if n := h.applies(t, "rejected") + h.applies(t, "invalid"); n != float64(len(tests)) {
		t.Errorf("gw_edge_snapshot_applies_total{result=~\"rejected|invalid\"} = %v, want %d", n, len(tests))
	}
}

func TestInFlightRequestFinishesOnItsPlan(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "b1")
	h := start(t, nil)
	h.apply(t, envelope(t, 1, snapshot(endpoint("/x", b.URL, "/slow/v1"))))

	done := make(chan reply, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, h.url+"/x", nil)
		resp, err := client.Do(req)
		if err != nil {
			done <- reply{code: -1, body: err.Error()}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		done <- reply{code: resp.StatusCode, body: string(body)}
	}()
	b.waitStarted(t)

	h.apply(t, envelope(t, 2, snapshot(endpoint("/x", b.URL, "/v2"))))
	if r := get(t, h.url+"/x"); !strings.Contains(r.body, `"path":"/v2"`) {
		t.Errorf("new request after the swap = %d %s, want /v2", r.code, r.body)
	}
	close(b.release)
	r := <-done
	if r.code != 200 || !strings.Contains(r.body, `"path":"/slow/v1"`) {
		t.Errorf("in-flight request = %d %s, want the old plan's /slow/v1", r.code, r.body)
	}
}

func TestSettingsChangeStartsNewGeneration(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	small := snapshot()
	small.Service.HttpServer.MaxHeaderBytes = 2048
	small.Service.MaxBodyBytes = 100
	h.apply(t, envelope(t, 1, small))

	// One keep-alive connection opened before the change: it must finish its
	// request normally, then the old generation closes it.
	kept := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer kept.CloseIdleConnections()
	if r := do(t, kept, http.MethodGet, h.url+"/__health", nil, nil); r.code != 200 {
		t.Fatalf("health on the first generation = %d", r.code)
	}

	big := http.Header{"X-Big": []string{strings.Repeat("a", 3000)}}
	if r := do(t, client, http.MethodGet, h.url+"/__health", big, nil); r.code != http.StatusRequestHeaderFieldsTooLarge ||
		r.body != "431 Request Header Fields Too Large" {
		t.Errorf("3000-byte header with max_header_bytes 2048 = %d %s", r.code, r.body)
	}
	if r := do(t, client, http.MethodPost, h.url+"/upload", nil, strings.NewReader(strings.Repeat("x", 1000))); r.code != http.StatusRequestEntityTooLarge ||
		r.body != "413 Request Entity Too Large" {
		t.Errorf("1000-byte body with max_body_bytes 100 = %d %s", r.code, r.body)
	}

	large := snapshot()
	large.Service.HttpServer.MaxHeaderBytes = 16 << 10
	large.Service.MaxBodyBytes = 1 << 20
	h.apply(t, envelope(t, 2, large))
	if !strings.Contains(h.logs.String(), "http server settings changed") {
		t.Errorf("no generation change logged:\n%s", h.logs.String())
	}
	if r := do(t, client, http.MethodGet, h.url+"/__health", big, nil); r.code != 200 || r.header.Get("X-Apigw-Snapshot-Version") != "2" {
		t.Errorf("3000-byte header after raising the limit = %d %s", r.code, r.body)
	}
	// The kept connection may have been closed by the drain; the client
	// retries idempotent requests on a fresh one either way.
	if r := do(t, kept, http.MethodGet, h.url+"/__health", nil, nil); r.code != 200 || r.header.Get("X-Apigw-Snapshot-Version") != "2" {
		t.Errorf("health over the kept client = %d %s", r.code, r.body)
	}
}

func TestListenAddressNeverRebinds(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	snap := snapshot()
	snap.Service.Port = 1 // not what we bound
	h.apply(t, envelope(t, 1, snap))
	h.apply(t, envelope(t, 2, proto.CloneOf(snap))) // same wish: warned once
	snap2 := proto.CloneOf(snap)
	snap2.Service.Name = "changed"
	h.apply(t, envelope(t, 3, snap2))
	if n := strings.Count(h.logs.String(), "snapshot asks for another listen address"); n != 1 {
		t.Errorf("warned %d times, want 1:\n%s", n, h.logs.String())
	}
	if r := get(t, h.url+"/__health"); r.code != 200 || r.header.Get("X-Apigw-Snapshot-Version") != "3" {
		t.Errorf("health = %d %s", r.code, r.body)
	}
}

func TestSameListenAddr(t *testing.T) {
	t.Parallel()
	bound := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	tests := []struct {
		want string
		same bool
	}{
		{":8080", true},
		{"0.0.0.0:8080", true},
		{"127.0.0.1:8080", true},
		{"10.0.0.1:8080", false},
		{":8081", false},
	}
	for _, tc := range tests {
		if got := sameListenAddr(tc.want, bound); got != tc.same {
			t.Errorf("sameListenAddr(%q, %v) = %v, want %v", tc.want, bound, got, tc.same)
		}
	}
}

func TestMetricsListenerFollowsSnapshot(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	if h.srv.MetricsAddr() != nil {
		t.Fatal("metrics listener runs before any snapshot asks for it")
	}
	snap := snapshot()
	snap.Service.Metrics = &gatewayv1.Metrics{Enabled: true, ListenAddress: "127.0.0.1:0"}
	h.apply(t, envelope(t, 4, snap))
	addr := h.srv.MetricsAddr()
	if addr == nil {
		t.Fatal("no metrics listener after a snapshot enabling telemetry/metrics")
	}
	r := get(t, "http://"+addr.String()+"/metrics")
	for _, want := range []string{
		"gw_edge_snapshot_version 4",
		"gw_edge_snapshot_applied_timestamp_seconds 1.", // unix seconds, 1.8e+09
		`gw_edge_snapshot_applies_total{result="ok"} 1`,
		"gw_edge_apply_seconds_count 1",
		`gw_edge_build_info{version="test"} 1`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// Same address: the listener is kept.
	snap2 := proto.CloneOf(snap)
	snap2.Service.Name = "other"
	h.apply(t, envelope(t, 5, snap2))
	if got := h.srv.MetricsAddr(); got == nil || got.String() != addr.String() {
		t.Errorf("metrics listener moved from %v to %v without an address change", addr, got)
	}

	// Disabled: the listener stops.
	h.apply(t, envelope(t, 6, snapshot()))
	if got := h.srv.MetricsAddr(); got != nil {
		t.Errorf("metrics listener still at %v after telemetry/metrics was removed", got)
	}
	if _, err := net.DialTimeout("tcp", addr.String(), time.Second); err == nil {
		t.Errorf("%v still accepts connections", addr)
	}
}

func TestMetricsListenFlagOverrides(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *Config, _ *apply.Config) { c.MetricsListen = "127.0.0.1:0" })
	addr := h.srv.MetricsAddr()
	if addr == nil {
		t.Fatal("no metrics listener with MetricsListen set")
	}
	snap := snapshot()
	snap.Service.Metrics = &gatewayv1.Metrics{Enabled: true, ListenAddress: "127.0.0.1:1"}
	h.apply(t, envelope(t, 1, snap))
	if got := h.srv.MetricsAddr(); got == nil || got.String() != addr.String() {
		t.Errorf("snapshot moved the pinned metrics listener from %v to %v", addr, got)
	}
	if r := get(t, "http://"+addr.String()+"/metrics"); !strings.Contains(r.body, "gw_edge_snapshot_version 1") {
		t.Errorf("/metrics = %d, lacks the version", r.code)
	}
}

func TestGracefulShutdownWaitsForInFlight(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "b1")
	h := start(t, nil)
	snap := snapshot(endpoint("/x", b.URL, "/slow/a"))
	snap.Service.HttpServer.MaxShutdownWaitMs = 5000
	h.apply(t, envelope(t, 1, snap))

	done := make(chan reply, 1)
	go func() {
		resp, err := client.Get(h.url + "/x")
		if err != nil {
			done <- reply{code: -1, body: err.Error()}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		done <- reply{code: resp.StatusCode, body: string(body)}
	}()
	b.waitStarted(t)
	h.cancel()
	// The listener closes at once...
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", h.srv.Addr().String(), 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting after shutdown began")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// ...and Serve waits for the request in flight.
	select {
	case err := <-h.served:
		t.Errorf("Serve returned (%v) with a request in flight", err)
		h.served <- err
	case <-time.After(200 * time.Millisecond):
	}
	close(b.release)
	if r := <-done; r.code != 200 || !strings.Contains(r.body, "/slow/a") {
		t.Errorf("in-flight request during shutdown = %d %s", r.code, r.body)
	}
}

func TestShutdownWaitBound(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "b1")
	h := start(t, nil)
	snap := snapshot(endpoint("/x", b.URL, "/slow/a"))
	snap.Service.HttpServer.MaxShutdownWaitMs = 200
	h.apply(t, envelope(t, 1, snap))
	go func() {
		resp, err := client.Get(h.url + "/x")
		if err == nil {
			resp.Body.Close()
		}
	}()
	b.waitStarted(t)
	begin := time.Now()
	h.cancel()
	select {
	case err := <-h.served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		h.served <- nil
	case <-time.After(4 * time.Second):
		t.Fatal("Serve ignored max_shutdown_wait")
	}
	if took := time.Since(begin); took < 150*time.Millisecond {
		t.Errorf("Serve returned after %s, before the 200ms wait", took)
	}
	if !strings.Contains(h.logs.String(), "shutdown wait exceeded") {
		t.Errorf("forced close not logged:\n%s", h.logs.String())
	}
	close(b.release)
}

func TestLogLevelFromSnapshot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		pin   bool
		level string
		want  zerolog.Level
	}{
		{name: "krakend name", level: "DEBUG", want: zerolog.DebugLevel},
		{name: "zerolog name", level: "error", want: zerolog.ErrorLevel},
		{name: "unset falls back to the base level", level: "", want: zerolog.WarnLevel},
		{name: "pinned", pin: true, level: "DEBUG", want: zerolog.WarnLevel},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lv := loglevel.New(zerolog.InfoLevel)
			h := start(t, func(c *Config, _ *apply.Config) {
				c.PinLogLevel = tc.pin
				c.LogLevel = "warn"
				c.Level = lv
			})
			snap := snapshot()
			snap.Service.Logging = &gatewayv1.Logging{Level: tc.level}
			h.apply(t, envelope(t, 1, snap))
			if got := lv.Level(); got != tc.want {
				t.Errorf("level = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestPersistsAppliedSnapshots(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := lkg.New(lkg.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, func(_ *Config, a *apply.Config) { a.Store = st })
	env := envelope(t, 3, snapshot())
	h.apply(t, env)
	got, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(env, got, protocmp.Transform()); diff != "" {
		t.Errorf("persisted envelope (-want +got):\n%s", diff)
	}

	// Restore (boot from disk) serves without writing again.
	h2 := start(t, func(_ *Config, a *apply.Config) { a.Store = st })
	if err := h2.applier.Restore(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	if v, _ := h2.srv.Current(); v != 3 {
		t.Errorf("restored version %d", v)
	}
	all, err := st.LoadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Errorf("%d files after a restore, want 1", len(all))
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	srv, err := New(Config{Listen: "127.0.0.1:0", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr().String()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := srv.Serve(context.Background()); err == nil {
		t.Error("Serve after Close succeeded")
	}
	// The port is free again.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listener not released: %v", err)
	}
	ln.Close()

	// Close while serving makes Serve return.
	srv, err = New(Config{Listen: "127.0.0.1:0", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	if r := get(t, "http://"+srv.Addr().String()+"/__health"); r.code != 503 {
		t.Fatalf("health without a plan = %d, want 503", r.code)
	}
	srv.Close()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "ok", cfg: Config{Listen: "127.0.0.1:0"}},
		{name: "no listen", cfg: Config{}, wantErr: true},
		{name: "bad listen", cfg: Config{Listen: "nope"}, wantErr: true},
		{name: "bad metrics listen", cfg: Config{Listen: ":0", MetricsListen: "x"}, wantErr: true},
		{name: "bad level", cfg: Config{Listen: ":0", LogLevel: "loud"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.cfg.Validate(); (err != nil) != tc.wantErr {
				t.Errorf("Validate() = %v, wantErr %v", err, tc.wantErr)
			}
		})
	}
}

func TestSettingsOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		svc  *gatewayv1.Service
		want settings
	}{
		{name: "nil takes the default timeouts", svc: nil, want: settings{
			readHeaderTimeout: DefaultReadHeaderTimeout, readTimeout: DefaultReadTimeout, idleTimeout: DefaultIdleTimeout,
			maxConnsPerIP: DefaultMaxConnsPerIP, maxConns: DefaultMaxConns,
		}},
		{
			name: "all set",
			svc: &gatewayv1.Service{MaxBodyBytes: 1000, HttpServer: &gatewayv1.HTTPServer{
				ReadTimeoutMs: 1000, WriteTimeoutMs: 2000, IdleTimeoutMs: 3000, ReadHeaderTimeoutMs: 500, MaxHeaderBytes: 8192,
			}},
			want: settings{readHeaderTimeout: 500 * time.Millisecond, readTimeout: time.Second, writeTimeout: 2 * time.Second, idleTimeout: 3 * time.Second,
				readBufferSize: 8192, maxRequestBodySize: 1000, maxConnsPerIP: DefaultMaxConnsPerIP, maxConns: DefaultMaxConns},
		},
		{
			name: "sub-millisecond timeouts are exact",
			svc: &gatewayv1.Service{HttpServer: &gatewayv1.HTTPServer{
				ReadTimeoutMs: 2, ReadTimeoutNs: 1_500_000, WriteTimeoutMs: 1, WriteTimeoutNs: 250_000,
				IdleTimeoutMs: 3, IdleTimeoutNs: 2_000_001, ReadHeaderTimeoutMs: 1, ReadHeaderTimeoutNs: 900_000,
			}},
			want: settings{readHeaderTimeout: 900 * time.Microsecond, readTimeout: 1500 * time.Microsecond,
				writeTimeout: 250 * time.Microsecond, idleTimeout: 2_000_001, maxConnsPerIP: DefaultMaxConnsPerIP, maxConns: DefaultMaxConns},
		},
		{
			name: "header timeout alone",
			svc:  &gatewayv1.Service{HttpServer: &gatewayv1.HTTPServer{ReadHeaderTimeoutMs: 500}},
			want: settings{readHeaderTimeout: 500 * time.Millisecond, readTimeout: DefaultReadTimeout, idleTimeout: DefaultIdleTimeout,
				maxConnsPerIP: DefaultMaxConnsPerIP, maxConns: DefaultMaxConns},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, settingsOf(tc.svc, Limits{}.withDefaults()), cmpopts.EquateComparable(settings{})); diff != "" {
				t.Errorf("settingsOf (-want +got):\n%s", diff)
			}
		})
	}
}

// healthBody matches KrakenD's /__health body with the given status.
func healthBody(status string) *regexp.Regexp {
	return regexp.MustCompile(`^\{"agents":\{\},"now":"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \+0000 UTC m=\+\d+\.\d+","status":"` + status + `"\}$`)
}

func TestLimitsDefaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want Limits }{
		{Limits{}, Limits{MaxConnsPerIP: DefaultMaxConnsPerIP, MaxConns: DefaultMaxConns}},
		{Limits{MaxConnsPerIP: 3, MaxConns: 7}, Limits{MaxConnsPerIP: 3, MaxConns: 7}},
		{Limits{MaxConnsPerIP: -1, MaxConns: -1}, Limits{MaxConnsPerIP: 0, MaxConns: math.MaxInt32}},
	} {
		if got := tc.in.withDefaults(); got != tc.want {
			t.Errorf("%+v.withDefaults() = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestHasContentLength(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]bool{
		"Host: a\r\nContent-Length: 4\r\n\r\n":          true,
		"Host: a\r\ncontent-LENGTH:4\r\n":               true,
		"Host: a\r\nX-Content-Length: 4\r\n\r\n":        false,
		"Transfer-Encoding: chunked\r\nHost: a\r\n\r\n": false,
		"": false,
	} {
		if got := hasContentLength([]byte(raw)); got != want {
			t.Errorf("hasContentLength(%q) = %v, want %v", raw, got, want)
		}
	}
}
