package aggregate

import (
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/proxy"
	"github.com/apigw/gateway/edge/router"
)

// countingCounter is a real counter (the metric's contract is only Inc).
type countingCounter struct{ n int }

func (c *countingCounter) Inc() { c.n++ }

// TestFailureReasons: each way a backend fails reaches the Result and the
// backend's counter for that reason, as the proxy classified it.
func TestFailureReasons(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/status":
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, `{}`)
		case "/large": // small on the wire, over the limit once decompressed
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			io.WriteString(zw, `{"big":"`+strings.Repeat("x", 4096)+`"}`)
			zw.Close()
		case "/decode":
			io.WriteString(w, `{not json`)
		case "/slow":
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(srv.Close)
	// A port nothing listens on: bound, then closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name    string
		url     string
		pattern string
		want    proxy.Reason
	}{
		{name: "status", url: srv.URL, pattern: "/status", want: proxy.ReasonStatus},
		{name: "too large", url: srv.URL, pattern: "/large", want: proxy.ReasonTooLarge},
		{name: "decode", url: srv.URL, pattern: "/decode", want: proxy.ReasonDecode},
		{name: "timeout", url: srv.URL, pattern: "/slow", want: proxy.ReasonTimeout},
		{name: "connect", url: closed, pattern: "/x", want: proxy.ReasonConnect},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var counters [proxy.NumReasons]countingCounter
			p := newPipe(t, Config{Timeout: 200 * time.Millisecond}, tc.url, tc.pattern)
			p.backends[0].MaxBodySize = 1024
			for r := range counters {
				p.backends[0].Errors[r] = &counters[r]
			}
			req := new(fasthttp.Request)
			req.SetRequestURI("/x")
			var ps router.Params
			var in proxy.Inbound
			in.Reset(req, &ps)
			ex := p.Acquire()
			res := ex.Run(&in, time.Now())
			failed, reason := res.Failed, res.Reason
			ex.Release()
			p.Wait()
			if failed != 1 || reason != tc.want {
				t.Errorf("result: %d failed, reason %s; want 1, %s", failed, reason, tc.want)
			}
			for r := range counters {
				want := 0
				if proxy.Reason(r) == tc.want {
					want = 1
				}
				if counters[r].n != want {
					t.Errorf("counter %s = %d, want %d", proxy.Reason(r), counters[r].n, want)
				}
			}
		})
	}
}
