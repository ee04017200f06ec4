package plan_test

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/plan"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// backends is a real net/http server on 127.0.0.1:0 with the routes the
// plan tests call.
type backends struct {
	url  string
	host string // "127.0.0.1:port"
	hits atomic.Int64
	// lastShadow receives the path of every /shadow call.
	shadow chan string
}

func startBackends(t testing.TB) *backends {
	t.Helper()
	b := &backends{shadow: make(chan string, 64)}
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, status int, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
	mux.HandleFunc("/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"id":"`+r.PathValue("id")+`","name":"alice","secret":"s3","address":{"city":"Paris","zip":"75001"}}`)
	})
	mux.HandleFunc("/posts", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"posts":[{"id":1,"title":"a"},{"id":2,"title":"b"}],"name":"posts-name"}`)
	})
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"a":1,"b":"two"}`)
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, `{}`) })
	mux.HandleFunc("/null", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, `null`) })
	mux.HandleFunc("/created", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 201, `{"created":true}`) })
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	mux.HandleFunc("/collection", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, `[1,2,3]`) })
	mux.HandleFunc("/text", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello text")
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(400 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		writeJSON(w, 200, `{"slow":true}`)
	})
	mux.HandleFunc("/bad", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, `{"broken":`) })
	mux.HandleFunc("/notfound", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 404, `{"msg":"nope"}`)
	})
	mux.HandleFunc("/teapot", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(418)
		io.WriteString(w, "short and stout")
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 500, `{"err":1}`) })
	mux.HandleFunc("/gzip", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		io.WriteString(zw, `{"zipped":true,"n":42}`)
		zw.Close()
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"pad":"`+strings.Repeat("x", 1<<20)+`"}`)
	})
	mux.HandleFunc("/noop", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		w.Header().Set("X-Backend", "yes")
		w.Header().Set("X-Hop", "secret")
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Add("Set-Cookie", "a=1")
		w.WriteHeader(202)
		io.WriteString(w, "raw,body\n")
	})
	mux.HandleFunc("/echo/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hdr := map[string]string{}
		for k, v := range r.Header {
			hdr[k] = strings.Join(v, ",")
		}
		out, _ := json.Marshal(map[string]any{
			"method": r.Method, "path": r.URL.EscapedPath(), "query": r.URL.RawQuery,
			"headers": hdr, "body": string(body), "host": r.Host,
		})
		writeJSON(w, 200, string(out))
	})
	mux.HandleFunc("/seq/user", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"user":{"id":7,"team":"core"},"tags":["x","y"]}`)
	})
	mux.HandleFunc("/seq/team/{team}/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"team_name":"`+r.PathValue("team")+`","member":"`+r.PathValue("id")+`","q":"`+r.URL.RawQuery+`"}`)
	})
	mux.HandleFunc("/shadow/", func(w http.ResponseWriter, r *http.Request) {
		b.shadow <- r.URL.Path
		writeJSON(w, 200, `{"shadow":true}`)
	})
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		n := b.hits.Add(1)
		writeJSON(w, 200, `{"n":`+strconv.FormatInt(n, 10)+`}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	b.url = srv.URL
	b.host = strings.TrimPrefix(srv.URL, "http://")
	return b
}

// edge is a real fasthttp server on 127.0.0.1:0 serving the current plan.
type edge struct {
	addr string
	cur  atomic.Pointer[plan.Plan]
	srv  *fasthttp.Server
}

func startEdge(t testing.TB, p *plan.Plan) *edge {
	t.Helper()
	e := &edge{}
	e.cur.Store(p)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	e.srv = &fasthttp.Server{
		Handler:               func(ctx *fasthttp.RequestCtx) { e.cur.Load().Serve(ctx) },
		MaxRequestBodySize:    1 << 20,
		NoDefaultServerHeader: true,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = e.srv.Shutdown()
		<-done
	})
	return e
}

// snapshot builders: every default resolved, like the control plane does.

func snapshot(eps ...*gatewayv1.Endpoint) *gatewayv1.Snapshot {
	return &gatewayv1.Snapshot{
		SchemaVersion: plan.SchemaVersion,
		Service: &gatewayv1.Service{
			Router:       &gatewayv1.Router{HealthPath: "/__health"},
			HttpClient:   &gatewayv1.HTTPClient{},
			MaxBodyBytes: 64 << 10,
		},
		Endpoints: eps,
	}
}

func endpoint(method, path string, backends ...*gatewayv1.Backend) *gatewayv1.Endpoint {
	name := method + " " + path
	for i, b := range backends {
		b.Name = name + " backend[" + strconv.Itoa(i) + "]"
		if b.Method == "" {
			b.Method = method
		}
		if b.Encoding == "" {
			b.Encoding = "json"
		}
	}
	return &gatewayv1.Endpoint{
		Name:           name,
		Path:           path,
		Method:         method,
		Backends:       backends,
		TimeoutMs:      2000,
		OutputEncoding: "json",
		InputHeaders:   []string{"Content-Type"},
		CatchAll:       strings.HasSuffix(path, "/*"),
	}
}

func backend(host, pattern string) *gatewayv1.Backend {
	return &gatewayv1.Backend{Hosts: []string{"http://" + host}, UrlPattern: pattern}
}

// got is what a client observed.
type got struct {
	Status  int
	Headers map[string]string
	Body    string
}

// do sends one request with net/http (no redirect following).
func do(t testing.TB, addr, method, path string, headers map[string]string, body string) got {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	g := got{Status: resp.StatusCode, Headers: map[string]string{}, Body: string(b)}
	for k, v := range resp.Header {
		g.Headers[k] = strings.Join(v, "\n")
	}
	return g
}

// jsonEqual compares JSON texts semantically (object key order is not
// semantic; ours follows backend order, KrakenD's is sorted).
func jsonDiff(want, got string) string {
	var w, g any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		return "bad want JSON: " + err.Error()
	}
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		return "body is not JSON: " + strconv.Quote(got)
	}
	return cmp.Diff(w, g)
}

func mustBuild(t testing.TB, snap *gatewayv1.Snapshot, deps plan.Deps) *plan.Plan {
	t.Helper()
	p, err := plan.Build(snap, deps)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Cleanup(p.Release)
	return p
}
