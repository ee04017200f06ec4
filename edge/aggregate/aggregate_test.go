package aggregate

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/proxy"
	"github.com/apigw/gateway/edge/response"
	"github.com/apigw/gateway/edge/router"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// flaky answers every odd call after delay and every even call at once.
func flaky(t *testing.T, delay time.Duration) (url string, calls *atomic.Int64) {
	t.Helper()
	calls = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1)%2 == 1 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true,"path":"`+r.URL.Path+`"}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, calls
}

func newPipe(t *testing.T, cfg Config, url string, patterns ...string) *Pipe {
	t.Helper()
	client, err := proxy.NewClient(proxy.ClientConfig{Hosts: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	for i, p := range patterns {
		call, err := proxy.NewBackend(proxy.BackendConfig{Name: p, Client: client, Method: "GET", URLPattern: p})
		if err != nil {
			t.Fatal(err)
		}
		f, err := response.NewFormatter(&gatewayv1.Backend{Encoding: "json", Group: "g" + string(rune('0'+i))})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Backends = append(cfg.Backends, Backend{Call: call, Format: f})
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func run(p *Pipe) (status bool, complete bool, took time.Duration) {
	req := new(fasthttp.Request)
	req.SetRequestURI("/x")
	var ps router.Params
	var in proxy.Inbound
	in.Reset(req, &ps)
	start := time.Now()
	ex := p.Acquire()
	r := ex.Run(&in, start)
	status, complete = r.HasData(), r.Complete
	ex.Release()
	return status, complete, time.Since(start)
}

// TestConcurrentCallsFirstAnswerWins: with one slow copy out of two, the
// answer comes from the fast one, long before the slow one ends.
func TestConcurrentCallsFirstAnswerWins(t *testing.T) {
	url, calls := flaky(t, 500*time.Millisecond)
	p := newPipe(t, Config{ConcurrentCalls: 2, Timeout: 2 * time.Second}, url, "/a")
	ok, complete, took := run(p)
	if !ok || !complete {
		t.Fatalf("got data=%v complete=%v", ok, complete)
	}
	if took > 300*time.Millisecond {
		t.Errorf("took %v: the fast copy should win", took)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("backend saw %d calls, want 2", n)
	}
}

// TestStragglersUnderLoad runs many requests in parallel whose pipes leave
// goroutines behind (concurrent copies still running, merge deadline
// passed): Exchanges must be recycled only once their goroutines are done
// (run with -race).
func TestStragglersUnderLoad(t *testing.T) {
	url, _ := flaky(t, 150*time.Millisecond)
	pipes := []*Pipe{
		newPipe(t, Config{ConcurrentCalls: 2, Timeout: time.Second}, url, "/a", "/b"),
		newPipe(t, Config{Timeout: 100 * time.Millisecond}, url, "/a", "/b", "/c"),
		newPipe(t, Config{Timeout: 100 * time.Millisecond, Sequential: true}, url, "/a", "/b"),
	}
	var wg sync.WaitGroup
	var withData atomic.Int64
	for w := 0; w < 12; w++ {
		wg.Go(func() {
			for i := 0; i < 15; i++ {
				if ok, _, _ := run(pipes[(w+i)%len(pipes)]); ok {
					withData.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if withData.Load() == 0 {
		t.Error("no request produced data")
	}
	for _, p := range pipes {
		p.Wait() // stragglers finish before the servers close
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Config{Timeout: time.Second}); err == nil {
		t.Error("New without backends succeeded")
	}
	if _, err := New(Config{Backends: []Backend{{}}, Timeout: time.Second}); err == nil {
		t.Error("New with an empty backend succeeded")
	}
}
