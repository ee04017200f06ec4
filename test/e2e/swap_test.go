package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// TestSwapUnderLoad pushes new versions while clients keep sending
// requests to a real edge: no request may fail, and every answer must come
// from one of the pushed versions.
func TestSwapUnderLoad(t *testing.T) {
	bins := testenv.Build(t)
	backend := echoBackend(t, "b1")
	dir := t.TempDir()
	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	e := testenv.StartEdge(t, bins, cp, "edge-swap", "eu", filepath.Join(dir, "e"))

	const versions = 6
	var files []string
	for v := 1; v <= versions; v++ {
		files = append(files, testenv.WriteFile(t, dir, fmt.Sprintf("v%d.json", v), helloConfig(backend.URL, fmt.Sprintf("/v%d", v))))
	}
	if r := testenv.Gwctl(t, bins, cp, "push", files[0], "--wait", "--timeout", "20s"); r.Code != 0 {
		t.Fatalf("push v1: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var total, failed atomic.Int64
	var mu sync.Mutex // guards firstErr
	var firstErr string
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := client.Get(e.URL() + "/hello")
				total.Add(1)
				if err != nil {
					failed.Add(1)
					mu.Lock()
					if firstErr == "" {
						firstErr = err.Error()
					}
					mu.Unlock()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"path":"/v`) {
					failed.Add(1)
					mu.Lock()
					if firstErr == "" {
						firstErr = fmt.Sprintf("status %d body %s", resp.StatusCode, b)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for v := 2; v <= versions; v++ {
		time.Sleep(150 * time.Millisecond)
		if r := testenv.Gwctl(t, bins, cp, "push", files[v-1], "--wait", "--timeout", "20s"); r.Code != 0 {
			t.Errorf("push v%d: exit %d\n%s%s", v, r.Code, r.Stdout, r.Stderr)
		}
	}
	time.Sleep(150 * time.Millisecond)
	cancel()
	wg.Wait()

	if total.Load() < 100 {
		t.Errorf("only %d requests were sent during the swaps", total.Load())
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during %d swaps; first: %s", n, total.Load(), versions-1, firstErr)
	}
	if got := bodyField(t, e.URL()+"/hello", "path"); got != fmt.Sprintf("/v%d", versions) {
		t.Errorf("after the last push /hello → %q", got)
	}
	t.Logf("%d requests, %d swaps, 0 failures", total.Load(), versions-1)
}
