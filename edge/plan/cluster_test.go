package plan_test

import (
	"fmt"
	"github.com/apigw/gateway/proto/feature"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/apigw/gateway/edge/qos/clusterlimit"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// startRedis runs a real redis-server (Debian package) on a free loopback
// port, without persistence, and returns its address and a stop function
// (also run at cleanup).
func startRedis(t *testing.T) (addr string, stop func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed (apt-get install -y redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			fmt.Fprint(c, "PING\r\n")
			buf := make([]byte, 7)
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if string(buf[:n]) == "+PONG\r\n" {
				return addr, stop
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s not ready: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClusterRateLimit: two edges (each with its own process-wide QoS
// registry) share one client limit through Redis; when Redis goes away each
// degrades to its local buckets instead of failing requests.
func TestClusterRateLimit(t *testing.T) {
	t.Parallel()
	clusterlimit.SetRedisLogger(zerolog.Nop()) // dial errors are expected once Redis is stopped
	redisAddr, stopRedis := startRedis(t)
	ctl := startCtlBackend(t)
	mk := func() *gatewayv1.Snapshot {
		ep := endpoint("GET", "/shared", backend(ctl.host, "/shared"))
		ep.RateLimit = &gatewayv1.RouterRateLimit{ClientMaxRate: 4, EveryMs: 60_000, Cluster: true}
		s := snapshot(ep)
		s.Service.ClusterRateLimit = &gatewayv1.ClusterRateLimit{RedisAddress: redisAddr, KeyPrefix: "test:" + t.Name() + ":"}
		s.Features = []string{feature.QoSRateLimit, feature.QoSRateLimitCluster}
		return s
	}
	edges := [2]*edge{}
	for n := range edges {
		edges[n] = startEdge(t, mustBuild(t, mk(), protectDeps(t, nil)))
	}
	statuses := map[int]int{}
	for n := 0; n < 6; n++ {
		g := do(t, edges[n%2].addr, "GET", "/shared", nil, "")
		statuses[g.Status]++
		if g.Status == 429 && g.Headers["Retry-After"] == "" {
			t.Errorf("429 without Retry-After: %v", g.Headers)
		}
	}
	if statuses[200] != 4 || statuses[429] != 2 {
		t.Errorf("statuses across two edges = %v, want 4×200 and 2×429 (one shared limit of 4)", statuses)
	}
	if n := ctl.hits.Load(); n != 4 {
		t.Errorf("backend saw %d calls, want 4", n)
	}

	stopRedis()
	// Degraded: each edge enforces the limit on its own local buckets,
	// which the cluster checks left full.
	for n := 0; n < 4; n++ {
		if g := do(t, edges[0].addr, "GET", "/shared", nil, ""); g.Status != 200 {
			t.Errorf("request %d with Redis down: %d, want 200 (local fallback)", n, g.Status)
		}
	}
	if g := do(t, edges[0].addr, "GET", "/shared", nil, ""); g.Status != 429 {
		t.Errorf("5th request with Redis down: %d, want 429 (local limit)", g.Status)
	}
}
