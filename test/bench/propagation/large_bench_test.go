package propagation

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/test/testenv"
)

// largeEndpoints is the size of the snapshot BenchmarkLargeSnapshot applies.
const largeEndpoints = 10000

// BenchmarkLargeSnapshot pushes a 10,000-endpoint configuration to one real
// gw-edge per iteration (each with other paths, so every push is a full
// rebuild) and reports:
//   - apply-ms: from the Push reply to the edge's /__health naming the new
//     version (transfer, verify, decode, build and swap);
//   - rss-1-MB and rss-MB: the edge's resident memory (VmRSS) after the
//     first and after the last apply (each once the replaced plan is
//     released and traffic idles 500 ms; the last a second later);
//     peak-rss-MB: the most it was resident at any time (VmHWM), during
//     the builds included;
//   - revoke-p50/p99-ms: revocations made while the snapshot is being
//     applied there, from the Revoke reply to the edge answering 401;
//   - traffic-p99-ms and idle-p99-ms: one client's request latency to a
//     route present in every version, during the pushes and when idle;
//     apply-traffic-p99-ms: the same from the push reply to the edge
//     serving the new version (the edge's swap, without the control
//     plane's compile that shares the machine's cores).
func BenchmarkLargeSnapshot(b *testing.B) {
	bins := testenv.Build(b)
	is, err := testenv.NewIssuer()
	if err != nil {
		b.Fatal(err)
	}
	defer is.Close()
	backend := testenv.StartBackend(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}))
	dir := b.TempDir()
	// TTL 7200: the issuer's tokens live 61 min (iat a minute back, exp an
	// hour ahead), and with auth/revoker the edge refuses (401) a token
	// whose exp - iat exceeds TTL - 2 x leeway, so that no revocation lapses
	// before the token does (plan.RevocableLifetime). TTL 3600 refused them
	// by that rule, not by a fault of the revoker.
	config := func(variant, n int) []byte {
		var sb strings.Builder
		fmt.Fprintf(&sb, `{"version": 3, "host": [%q],
  "extra_config": {"router": {"disable_access_log": true}, "auth/revoker": {"N": 100000, "P": 0.000000001, "TTL": 7200, "token_keys": ["jti"]}},
  "endpoints": [{"endpoint": "/me", "backend": [{"url_pattern": "/me"}], "extra_config": {"auth/validator": %s}},
    {"endpoint": "/stable", "backend": [{"url_pattern": "/stable"}]}`, backend.URL, is.ValidatorConfig())
		for i := range n {
			fmt.Fprintf(&sb, `,
    {"endpoint": "/v%d/resource%d/{id}", "method": "GET", "backend": [{"url_pattern": "/r%d/{id}", "allow": ["a", "b"]}]}`, variant, i, i)
		}
		sb.WriteString("]}")
		return []byte(sb.String())
	}

	cp := testenv.StartControlPlane(b, bins, filepath.Join(dir, "cp"))
	edge := testenv.StartEdge(b, bins, cp, "edge-large", "bench", filepath.Join(dir, "edge"))
	conn, err := grpc.NewClient(cp.Admin, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	admin := gatewayv1.NewAdminServiceClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+cp.Token)
	push := func(content []byte) (uint64, time.Time) {
		resp, err := admin.Push(ctx, &gatewayv1.PushRequest{Source: &gatewayv1.ConfigSource{Filename: "large.json", Content: content}, Author: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		return resp.GetVersion().GetVersion(), time.Now()
	}
	v, _ := push(config(0, 0))
	edge.WaitVersion(b, v, 20*time.Second)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	get := func(path, tok string) int {
		req, _ := http.NewRequest(http.MethodGet, edge.URL()+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// traffic: one client on /stable all along; phase says which
	// bucket a request's latency goes to: idle, pushing (the control plane
	// compiles the push on the same cores, then the edge applies it) or,
	// within pushing, applying (from the push reply to the edge serving
	// the new version: the edge's own swap).
	const (
		idlePhase int32 = iota
		pushPhase
		applyPhase
	)
	var phase atomic.Int32
	var mu sync.Mutex
	var during, edgeSide, idle []time.Duration
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			at := phase.Load()
			start := time.Now()
			if c := get("/stable", ""); c != http.StatusOK {
				b.Errorf("/stable answered %d", c)
				return
			}
			d := time.Since(start)
			mu.Lock()
			now := phase.Load()
			switch {
			case at == idlePhase:
				idle = append(idle, d)
			case now != idlePhase:
				during = append(during, d)
				if at == applyPhase && now == applyPhase {
					edgeSide = append(edgeSide, d)
				}
			}
			mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	})
	time.Sleep(time.Second) // idle baseline

	var applies, revocations []time.Duration
	var rss1 int64
	revoked := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		content := config(i+1, largeEndpoints)
		phase.Store(pushPhase)
		v, replied := push(content)
		phase.Store(applyPhase)
		// Revocations while the edge applies v: each from its Revoke reply
		// to the edge's 401, until the edge serves v.
		var applied time.Time
		for deadline := replied.Add(time.Minute); applied.IsZero(); {
			if time.Now().After(deadline) {
				h, _ := edge.Health()
				b.Fatalf("push %d: the edge still serves v%d a minute after v%d was pushed", i+1, h.Version, v)
			}
			revoked++
			jti := fmt.Sprintf("large-%d-%d", time.Now().UnixNano(), revoked)
			tok, err := is.Token("user", jti, time.Now().Add(time.Hour))
			if err != nil {
				b.Fatal(err)
			}
			if c := get("/me", tok); c != http.StatusOK {
				h, _ := edge.Health()
				req, _ := http.NewRequest(http.MethodGet, edge.URL()+"/me", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, _ := client.Do(req)
				body, _ := io.ReadAll(resp.Body)
				b.Logf("headers %v body %s", resp.Header, body)
				b.Fatalf("push %d (v%d, edge serves v%d): a fresh token answered %d", i+1, v, h.Version, c)
			}
			if h, ok := edge.Health(); ok && h.Version == v {
				applied = time.Now()
				break
			}
			if _, err := admin.Revoke(ctx, &gatewayv1.RevokeRequest{Claim: "jti", Value: jti, Author: "bench"}); err != nil {
				b.Fatal(err)
			}
			sent := time.Now()
			for get("/me", tok) != http.StatusUnauthorized {
				if time.Since(sent) > 10*time.Second {
					b.Fatal("the revoked token still works after 10s")
				}
			}
			revocations = append(revocations, time.Since(sent))
			if h, ok := edge.Health(); ok && h.Version == v {
				applied = time.Now()
			}
		}
		phase.Store(idlePhase)
		applies = append(applies, applied.Sub(replied))
		time.Sleep(500 * time.Millisecond) // the old plan drains; idle samples
		if i == 0 {
			rss1 = edge.RSS()
		}
		b.Logf("push %d: applied in %v, edge RSS %.1f MB", i+1, applies[len(applies)-1], float64(edge.RSS())/1e6)
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	time.Sleep(time.Second)
	rss := edge.RSS()

	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	pct := func(ds []time.Duration, p float64) float64 {
		if len(ds) == 0 {
			return -1
		}
		s := slices.Clone(ds)
		slices.Sort(s)
		return ms(s[min(len(s)-1, int(p*float64(len(s))))])
	}
	b.ReportMetric(pct(applies, 0.5), "apply-ms")
	b.ReportMetric(pct(applies, 1), "apply-max-ms")
	b.ReportMetric(float64(rss1)/1e6, "rss-1-MB")
	b.ReportMetric(float64(rss)/1e6, "rss-MB")
	b.ReportMetric(float64(edge.PeakRSS())/1e6, "peak-rss-MB")
	b.ReportMetric(pct(revocations, 0.5), "revoke-p50-ms")
	b.ReportMetric(pct(revocations, 0.99), "revoke-p99-ms")
	b.ReportMetric(float64(len(revocations)), "revocations")
	mu.Lock()
	b.ReportMetric(pct(during, 0.99), "traffic-p99-ms")
	b.ReportMetric(pct(edgeSide, 0.99), "apply-traffic-p99-ms")
	b.ReportMetric(pct(idle, 0.99), "idle-p99-ms")
	mu.Unlock()
}
