package httpcache

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/qos/clock"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/test/leak"
)

func TestMain(m *testing.M) { leak.VerifyTestMain(m) }

// fasthttp's request header is what edge/proxy will pass.
var _ RequestHeader = (*fasthttp.RequestHeader)(nil)

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newCache(t *testing.T, cfg Config) (*Cache, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(start)
	cfg.Clock = clk
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, clk
}

// hdr builds headers from "Key: value" lines.
func hdr(lines ...string) []Header {
	var hs []Header
	for _, l := range lines {
		k, v, _ := strings.Cut(l, ":")
		hs = append(hs, Header{Key: []byte(k), Value: []byte(strings.TrimSpace(v))})
	}
	return hs
}

func req(lines ...string) RequestHeader {
	h := http.Header{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, ":")
		h.Add(k, strings.TrimSpace(v))
	}
	return HTTPHeader(h)
}

var httpDate = func(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

func TestFreshness(t *testing.T) {
	t.Parallel()
	const url = "http://10.0.0.1:8080/users/1"
	tests := []struct {
		name   string
		method string
		status int
		req    RequestHeader
		header []Header
		// fresh is how long a stored response is served (0: never stored).
		fresh time.Duration
		age   time.Duration // Age reported at the first Get
	}{
		{name: "max-age", header: hdr("Cache-Control: max-age=60"), fresh: 60 * time.Second},
		{name: "s-maxage wins for a shared cache", header: hdr("Cache-Control: max-age=60, s-maxage=10"), fresh: 10 * time.Second},
		{name: "case and spaces", header: hdr("cache-control:  Public ,MAX-AGE=\"30\""), fresh: 30 * time.Second},
		{name: "expires minus date", header: hdr("Date: "+httpDate(start), "Expires: "+httpDate(start.Add(30*time.Second))), fresh: 30 * time.Second},
		{name: "max-age beats expires", header: hdr("Expires: "+httpDate(start.Add(time.Hour)), "Cache-Control: max-age=5"), fresh: 5 * time.Second},
		{name: "age header counts", header: hdr("Cache-Control: max-age=60", "Age: 50"), fresh: 10 * time.Second, age: 50 * time.Second},
		{name: "old date counts", header: hdr("Cache-Control: max-age=60", "Date: "+httpDate(start.Add(-20*time.Second))), fresh: 40 * time.Second, age: 20 * time.Second},
		{name: "404 is cacheable", status: 404, header: hdr("Cache-Control: max-age=60"), fresh: 60 * time.Second},
		{name: "HEAD", method: "HEAD", header: hdr("Cache-Control: max-age=60"), fresh: 60 * time.Second},
		{name: "authorization with public", req: req("Authorization: Bearer x"), header: hdr("Cache-Control: public, max-age=60"), fresh: 60 * time.Second},
		{name: "authorization with s-maxage", req: req("Authorization: Bearer x"), header: hdr("Cache-Control: s-maxage=60"), fresh: 60 * time.Second},
		{name: "request no-cache ignored", req: req("Cache-Control: no-cache"), header: hdr("Cache-Control: max-age=60"), fresh: 60 * time.Second},

		{name: "no freshness info", header: hdr("Content-Type: application/json")},
		{name: "no-store", header: hdr("Cache-Control: max-age=60, no-store")},
		{name: "private", header: hdr("Cache-Control: private, max-age=60")},
		{name: "no-cache", header: hdr("Cache-Control: no-cache, max-age=60")},
		{name: "no-cache with field names", header: hdr(`Cache-Control: no-cache="Set-Cookie", max-age=60`)},
		{name: "pragma no-cache without cache-control", header: hdr("Pragma: no-cache", "Expires: "+httpDate(start.Add(time.Hour)))},
		{name: "max-age=0", header: hdr("Cache-Control: max-age=0")},
		{name: "invalid max-age", header: hdr("Cache-Control: max-age=abc")},
		{name: "conflicting max-age", header: hdr("Cache-Control: max-age=60", "Cache-Control: max-age=30")},
		{name: "invalid expires", header: hdr("Expires: 0")},
		{name: "expires in the past", header: hdr("Expires: " + httpDate(start.Add(-time.Minute)))},
		{name: "age beyond max-age", header: hdr("Cache-Control: max-age=60", "Age: 61")},
		{name: "vary star", header: hdr("Cache-Control: max-age=60", "Vary: *")},
		{name: "set-cookie", header: hdr("Cache-Control: max-age=60", "Set-Cookie: sid=1")},
		{name: "status 500", status: 500, header: hdr("Cache-Control: max-age=60")},
		{name: "status 206", status: 206, header: hdr("Cache-Control: max-age=60")},
		{name: "POST", method: "POST", header: hdr("Cache-Control: max-age=60")},
		{name: "authorization without public", req: req("Authorization: Bearer x"), header: hdr("Cache-Control: max-age=60")},
		{name: "request no-store", req: req("Cache-Control: no-store"), header: hdr("Cache-Control: max-age=60")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, clk := newCache(t, Config{})
			method, status := tc.method, tc.status
			if method == "" {
				method = "GET"
			}
			if status == 0 {
				status = 200
			}
			stored := c.Put([]byte(method), []byte(url), tc.req, Response{Status: status, Header: tc.header, Body: []byte(`{"id":1}`)})
			if stored != (tc.fresh > 0) {
				t.Fatalf("Put stored = %v, want %v", stored, tc.fresh > 0)
			}
			if !stored {
				if e, _ := c.Get([]byte(method), []byte(url), tc.req); e != nil {
					t.Fatal("Get hit an unstored response")
				}
				return
			}
			e, age := c.Get([]byte(method), []byte(url), tc.req)
			if e == nil || e.Status != status || string(e.Body) != `{"id":1}` {
				t.Fatalf("Get = %+v, want the stored response", e)
			}
			if age != tc.age {
				t.Errorf("age = %v, want %v", age, tc.age)
			}
			clk.Advance(tc.fresh - time.Nanosecond)
			if e, age := c.Get([]byte(method), []byte(url), tc.req); e == nil || age != tc.age+tc.fresh-time.Nanosecond {
				t.Fatalf("just before expiry: entry %v age %v, want a hit aged %v", e != nil, age, tc.age+tc.fresh-time.Nanosecond)
			}
			clk.Advance(time.Nanosecond)
			if e, _ := c.Get([]byte(method), []byte(url), tc.req); e != nil {
				t.Fatal("stale entry served")
			}
			if s := c.Stats(); s.Items != 0 || s.Bytes != 0 {
				t.Errorf("after the stale Get: %+v, want the entry dropped", s)
			}
		})
	}
}

func TestVary(t *testing.T) {
	t.Parallel()
	c, _ := newCache(t, Config{})
	get, url := []byte("GET"), []byte("http://b/items")
	put := func(r RequestHeader, body string) {
		t.Helper()
		if !c.Put(get, url, r, Response{Status: 200, Header: hdr("Cache-Control: max-age=60", "Vary: Accept-Encoding, X-Tenant"), Body: []byte(body)}) {
			t.Fatalf("Put %s not stored", body)
		}
	}
	put(req("Accept-Encoding: gzip", "X-Tenant: a"), "gzip-a")
	put(req("Accept-Encoding: br", "X-Tenant: a"), "br-a")
	put(req("Accept-Encoding: gzip"), "gzip-none")
	put(req("Accept-Encoding: gzip", "X-Tenant: a"), "gzip-a-v2") // replaces gzip-a
	tests := []struct {
		name string
		req  RequestHeader
		want string // "" = miss
	}{
		{"gzip tenant a", req("accept-encoding: gzip", "X-Tenant:  a "), "gzip-a-v2"},
		{"br tenant a", req("Accept-Encoding: br", "X-Tenant: a"), "br-a"},
		{"gzip no tenant", req("Accept-Encoding: gzip"), "gzip-none"},
		{"other tenant", req("Accept-Encoding: gzip", "X-Tenant: b"), ""},
		{"no headers", nil, ""},
	}
	for _, tc := range tests {
		e, _ := c.Get(get, url, tc.req)
		got := ""
		if e != nil {
			got = string(e.Body)
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := c.Stats().Items; got != 3 {
		t.Errorf("Items = %d, want 3 (the duplicate variant replaced)", got)
	}
	if e, _ := c.Get([]byte("HEAD"), url, req("Accept-Encoding: br", "X-Tenant: a")); e != nil {
		t.Error("HEAD hit a GET entry: methods are separate keys")
	}
}

func TestMaxVariants(t *testing.T) {
	t.Parallel()
	c, _ := newCache(t, Config{MaxVariants: 2})
	for _, v := range []string{"1", "2", "3"} {
		c.Put([]byte("GET"), []byte("http://b/x"), req("X-V: "+v), Response{Status: 200, Header: hdr("Cache-Control: max-age=60", "Vary: X-V"), Body: []byte(v)})
	}
	if e, _ := c.Get([]byte("GET"), []byte("http://b/x"), req("X-V: 1")); e != nil {
		t.Error("oldest variant kept beyond MaxVariants")
	}
	if got := c.Stats().Items; got != 2 {
		t.Errorf("Items = %d, want 2", got)
	}
}

func TestStoredHeadersAndCopy(t *testing.T) {
	t.Parallel()
	c, _ := newCache(t, Config{})
	resp := Response{
		Status: 200,
		Header: hdr("Content-Type: application/json", "Connection: keep-alive, X-Internal", "X-Internal: secret",
			"Keep-Alive: timeout=5", "Transfer-Encoding: chunked", "Age: 3", "Cache-Control: max-age=60", "X-Trace: t1"),
		Body: []byte(`{"a":1}`),
	}
	if !c.Put([]byte("GET"), []byte("http://b/a"), nil, resp) {
		t.Fatal("not stored")
	}
	// The caller reuses its buffers: the entry must not change.
	resp.Body[2] = 'X'
	resp.Header[0].Value[0] = 'X'
	e, _ := c.Get([]byte("GET"), []byte("http://b/a"), nil)
	if e == nil {
		t.Fatal("miss")
	}
	var got []string
	for _, h := range e.Header {
		got = append(got, string(h.Key)+": "+string(h.Value))
	}
	want := []string{"Content-Type: application/json", "Cache-Control: max-age=60", "X-Trace: t1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored headers (-want +got):\n%s", diff)
	}
	if string(e.Body) != `{"a":1}` {
		t.Errorf("body = %q, want the bytes as they were at Put", e.Body)
	}
}

func TestByteBoundLRU(t *testing.T) {
	t.Parallel()
	body := make([]byte, 1000)
	c, _ := newCache(t, Config{MaxBytes: 10_000, MaxEntryBytes: 10_000})
	put := func(i int) bool {
		return c.Put([]byte("GET"), fmt.Appendf(nil, "http://b/%d", i), nil, Response{Status: 200, Header: hdr("Cache-Control: max-age=600"), Body: body})
	}
	for i := range 8 {
		put(i)
	}
	s := c.Stats()
	if s.Bytes > 10_000 || s.Items != 7 || s.Evictions != 1 {
		t.Fatalf("after 8 puts of ~1.3 KB into 10 KB: %+v, want 7 items, 1 eviction", s)
	}
	// Touch the oldest survivor (1); the next put evicts 2 instead.
	if e, _ := c.Get([]byte("GET"), []byte("http://b/1"), nil); e == nil {
		t.Fatal("entry 1 missing")
	}
	put(8)
	for i, want := range map[int]bool{0: false, 1: true, 2: false, 3: true, 8: true} {
		if e, _ := c.Get([]byte("GET"), fmt.Appendf(nil, "http://b/%d", i), nil); (e != nil) != want {
			t.Errorf("entry %d present = %v, want %v", i, e != nil, want)
		}
	}
	// Too large for MaxEntryBytes: refused, nothing evicted.
	big, _ := newCache(t, Config{MaxBytes: 10_000})
	if big.Put([]byte("GET"), []byte("http://b/big"), nil, Response{Status: 200, Header: hdr("Cache-Control: max-age=60"), Body: make([]byte, 3000)}) {
		t.Error("entry above MaxBytes/4 stored")
	}
}

func TestMaxItems(t *testing.T) {
	t.Parallel()
	c, _ := newCache(t, Config{MaxItems: 3})
	for i := range 10 {
		c.Put([]byte("GET"), fmt.Appendf(nil, "http://b/%d", i), nil, Response{Status: 200, Header: hdr("Cache-Control: max-age=60")})
	}
	if s := c.Stats(); s.Items != 3 || s.Evictions != 7 {
		t.Errorf("Stats = %+v, want 3 items and 7 evictions", s)
	}
}

func TestConfigFromProto(t *testing.T) {
	t.Parallel()
	if _, ok := ConfigFromProto(nil); ok {
		t.Error("nil: ok = true")
	}
	got, ok := ConfigFromProto(&gatewayv1.HTTPCache{Shared: true, MaxSize: 1 << 20, MaxItems: 100})
	if !ok || got.MaxBytes != 1<<20 || got.MaxItems != 100 {
		t.Errorf("ConfigFromProto = %+v, %v", got, ok)
	}
	var nilCache *Cache
	if e, _ := nilCache.Get([]byte("GET"), []byte("x"), nil); e != nil || nilCache.Put([]byte("GET"), nil, nil, Response{}) {
		t.Error("nil cache must miss and not store")
	}
}

func TestConcurrentGetPut(t *testing.T) {
	t.Parallel()
	c, clk := newCache(t, Config{MaxBytes: 64 << 10})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				url := fmt.Appendf(nil, "http://b/%d", (i*7+g)%300)
				if e, _ := c.Get([]byte("GET"), url, req("X-V: a")); e != nil && string(e.Body) != string(url) {
					t.Errorf("body %q for %s", e.Body, url)
					return
				}
				c.Put([]byte("GET"), url, req("X-V: a"), Response{Status: 200, Header: hdr("Cache-Control: max-age=5", "Vary: X-V"), Body: url})
				if i%100 == 0 {
					clk.Advance(time.Second)
				}
			}
		}()
	}
	wg.Wait()
	if s := c.Stats(); s.Bytes > 64<<10 || s.Bytes < 0 {
		t.Errorf("Stats = %+v, want bytes within bound", s)
	}
}
