package propagation

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/test/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CleanupBuild()
	os.Exit(code)
}

// BenchmarkRevocationPropagation revokes one token per iteration and
// reports p50 and p99 of the time from Revoke's reply to the last of three
// edges answering 401 for it. Pollers hammer every edge with the token
// while the revocation travels, so the resolution is one loopback request
// (about 0.1–0.3 ms on the shared machine).
func BenchmarkRevocationPropagation(b *testing.B) {
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
	cfg := testenv.WriteFile(b, dir, "jwt.json", fmt.Sprintf(`{
  "version": 3,
  "host": [%q],
  "extra_config": {"auth/revoker": {"N": 100000, "P": 0.000000001, "TTL": 7200, "token_keys": ["jti"]}},
  "endpoints": [{"endpoint": "/me", "backend": [{"url_pattern": "/me"}], "extra_config": {"auth/validator": %s}}]
}`, backend.URL, is.ValidatorConfig()))

	cp := testenv.StartControlPlane(b, bins, filepath.Join(dir, "cp"))
	var edges []*testenv.Edge
	for i := 0; i < 3; i++ {
		edges = append(edges, testenv.StartEdge(b, bins, cp, fmt.Sprintf("edge-%d", i), "bench", filepath.Join(dir, fmt.Sprint("e", i))))
	}
	if r := testenv.Gwctl(b, bins, cp, "push", cfg, "--wait", "--timeout", "20s"); r.Code != 0 {
		b.Fatalf("push: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	conn, err := grpc.NewClient(cp.Admin, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	admin := gatewayv1.NewAdminServiceClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+cp.Token)

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	status := func(e *testenv.Edge, tok string) int {
		req, _ := http.NewRequest(http.MethodGet, e.URL()+"/me", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		jti := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
		tok, err := is.Token("user", jti, time.Now().Add(time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range edges { // the token works (and is cached) everywhere first
			if c := status(e, tok); c != http.StatusOK {
				b.Fatalf("%s: fresh token answered %d", e.Name, c)
			}
		}
		rejected := make([]time.Time, len(edges))
		var wg sync.WaitGroup
		deadline := time.Now().Add(10 * time.Second)
		for k, e := range edges {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					if status(e, tok) == http.StatusUnauthorized {
						rejected[k] = time.Now()
						return
					}
				}
			}()
		}
		if _, err := admin.Revoke(ctx, &gatewayv1.RevokeRequest{Claim: "jti", Value: jti, Author: "bench"}); err != nil {
			b.Fatal(err)
		}
		replied := time.Now()
		wg.Wait()
		last := replied
		for k, t := range rejected {
			if t.IsZero() {
				b.Fatalf("%s never rejected the revoked token", edges[k].Name)
			}
			if t.After(last) {
				last = t
			}
		}
		lat = append(lat, last.Sub(replied))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
