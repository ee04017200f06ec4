package influx

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/apigw/gateway/edge/stats"
)

type fixed struct{ s *stats.Snapshot }

func (f fixed) Latest() *stats.Snapshot { return f.s }

// TestWriteRequest: the write is krakend-influx's: POST /write with its
// query parameters, basic auth, second-precision line protocol with the
// host tag, escaped tag values, count as the increase since the last
// write, and empty histograms left out.
func TestWriteRequest(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	var req *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ping" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies, req = append(bodies, string(b)), r
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	snap := &stats.Snapshot{
		Time: time.Unix(1700000000, 5e8),
		Counters: map[string]int64{
			"krakend.proxy.requests.layer.pipe.name./a b,c.complete.true.error.false": 7,
			"krakend.router.response./a b,c.status.200.count":                         7,
			"krakend.router.connected-total":                                          9,
		},
		Gauges: map[string]int64{"krakend.service.runtime.NumGoroutine": 12},
		Histograms: map[string]stats.HistogramData{
			"krakend.proxy.latency.layer.pipe.name./a b,c.complete.true.error.false": {Max: 30, Min: 10, Mean: 20.5, Stddev: 8.2, Variance: 66.7, Percentiles: [7]float64{10, 10, 20, 30, 30, 30, 30}},
			"krakend.router.response./a b,c.size":                                    {},
		},
	}
	host, _ := os.Hostname()
	w, err := Start(Config{Address: srv.URL, Username: "u", Password: "p", TTL: 20 * time.Millisecond}, fixed{snap}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(bodies)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) < 2 {
		t.Fatalf("%d writes, want 2", len(bodies))
	}
	if q := req.URL.Query(); q.Get("db") != "krakend" || q.Get("precision") != "s" || !q.Has("rp") || !q.Has("consistency") {
		t.Errorf("query %q", req.URL.RawQuery)
	}
	if u, p, ok := req.BasicAuth(); !ok || u != "u" || p != "p" || req.UserAgent() != "InfluxDBClient" {
		t.Errorf("auth %q %q %v, user agent %q", u, p, ok, req.UserAgent())
	}
	for _, want := range []string{
		`requests,complete=true,error=false,host=` + host + `,layer=pipe,name=/a\ b\,c count=7i,total=7i 1700000000` + "\n",
		`responses,host=` + host + `,name=/a\ b\,c,status=200 count=7i,total=7i 1700000000` + "\n",
		`router,direction=in,host=` + host + ` current=0i,total=9i 1700000000` + "\n",
		`router,direction=in,host=` + host + ` gauge=0i 1700000000` + "\n",
		`runtime,host=` + host + ` NumGoroutine=12i 1700000000` + "\n",
		`requests,complete=true,error=false,host=` + host + `,layer=pipe,name=/a\ b\,c max=30i,mean=20i,min=10i,p0.1=10,p0.25=10,p0.5=20,p0.75=30,p0.9=30,p0.95=30,p0.99=30,stddev=8i,variance=66i 1700000000` + "\n",
	} {
		if !strings.Contains(bodies[0], want) {
			t.Errorf("first write lacks %q:\n%s", want, bodies[0])
		}
	}
	if strings.Contains(bodies[0], "router.response-size") {
		t.Errorf("empty histogram sent:\n%s", bodies[0])
	}
	if !strings.Contains(bodies[1], `status=200 count=0i,total=7i`) {
		t.Errorf("second write of the same snapshot: count should be 0:\n%s", bodies[1])
	}
}

// TestBufferBounded: failed batches beyond buffer_size are dropped, the
// newest kept.
func TestBufferBounded(t *testing.T) {
	w := &Writer{cfg: Config{BufferSize: 2}}
	for i := range 5 {
		w.keep(batch{body: []byte{byte('a' + i)}, points: 1})
	}
	if len(w.pending) != 2 || string(w.pending[0].body) != "d" || string(w.pending[1].body) != "e" {
		t.Errorf("pending %v", w.pending)
	}
	w = &Writer{cfg: Config{}}
	w.keep(batch{body: []byte("x")})
	if len(w.pending) != 0 {
		t.Errorf("buffer_size 0 kept %d", len(w.pending))
	}
}
