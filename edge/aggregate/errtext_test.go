package aggregate

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/proxy"
	"github.com/apigw/gateway/edge/router"
)

// TestErrorTextInArrivalOrder: with return_error_msg the lines of a failed
// fan-out come in the order the calls ended, as lura's merge collects them,
// and the calls the merge deadline cut come last. The last declared
// backend runs inline on the handler goroutine: its line still comes after
// the one of a backend that failed before it.
func TestErrorTextInArrivalOrder(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var wait time.Duration
		switch r.URL.Path {
		case "/hang":
			wait = 5 * time.Second
		case "/slowfail":
			wait = 150 * time.Millisecond
		}
		select {
		case <-time.After(wait):
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	// Merge deadline 85 % of 800ms: well after /slowfail, well before /hang.
	p := newPipe(t, Config{Timeout: 800 * time.Millisecond}, srv.URL, "/hang", "/fail", "/hang", "/slowfail")
	for i := range p.backends {
		p.backends[i].ErrPrefix = "[GET " + p.backends[i].Call.Name() + "]:"
	}
	want := "invalid status code 500 [GET /fail]: " + srv.URL + "/fail\n" +
		"invalid status code 500 [GET /slowfail]: " + srv.URL + "/slowfail\n" +
		"context deadline exceeded\ncontext deadline exceeded"
	for range 2 { // a recycled Exchange numbers its calls afresh
		req := new(fasthttp.Request)
		req.SetRequestURI("/x")
		var ps router.Params
		var in proxy.Inbound
		in.Reset(req, &ps)
		ex := p.Acquire()
		res := ex.Run(&in, time.Now())
		got := string(ex.AppendErrorText(nil))
		failed := res.Failed
		ex.Release()
		if failed != 4 || got != want {
			t.Errorf("%d failed, text:\n%s\nwant 4 failed, text:\n%s", failed, got, want)
		}
	}
	p.Wait()
}
