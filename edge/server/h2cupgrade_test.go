package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// upgradeRequest is what curl --http2 sends (its HTTP2-Settings too).
func upgradeRequest(method, path, host string, extra string, body string) string {
	s := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"+
		"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n%s", method, path, host, extra)
	if body != "" {
		s += "Content-Length: " + strconv.Itoa(len(body)) + "\r\n"
	}
	return s + "\r\n" + body
}

// h2Stream is one answer read off an upgraded connection.
type h2Stream struct {
	status string
	header map[string]string
	body   bytes.Buffer
	done   bool
}

// h2Conn is the client side of an upgraded connection, written with x/net's
// framer as curl's nghttp2 speaks it after a 101.
type h2Conn struct {
	c       net.Conn
	fr      *http2.Framer
	enc     *hpack.Encoder
	hbuf    bytes.Buffer
	streams map[uint32]*h2Stream
	goAway  bool
}

// dialUpgrade sends req, checks the 101 (x/net's bytes exactly) and sends the
// client preface and SETTINGS.
func dialUpgrade(t *testing.T, addr, req string) *h2Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	want := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
		rest, _ := br.Peek(br.Buffered())
		t.Fatalf("upgrade answer %q%s (%v), want %q", got, rest, err, want)
	}
	h := &h2Conn{c: c, streams: map[uint32]*h2Stream{}}
	h.fr = http2.NewFramer(c, br)
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.enc = hpack.NewEncoder(&h.hbuf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := h.fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 0}); err != nil {
		t.Fatal(err)
	}
	return h
}

// get opens stream id with a GET of path.
func (h *h2Conn) get(t *testing.T, id uint32, path string) {
	t.Helper()
	h.hbuf.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "edge"}, {":path", path}} {
		h.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
}

// await reads frames until stream id is complete (or the server closes).
func (h *h2Conn) await(t *testing.T, id uint32) *h2Stream {
	t.Helper()
	for {
		if s := h.streams[id]; s != nil && s.done {
			return s
		}
		f, err := h.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading stream %d: %v", id, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				h.fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			s := &h2Stream{header: map[string]string{}}
			for _, hf := range f.Fields {
				if hf.Name == ":status" {
					s.status = hf.Value
				} else {
					s.header[hf.Name] = hf.Value
				}
			}
			s.done = f.StreamEnded()
			h.streams[f.StreamID] = s
		case *http2.DataFrame:
			s := h.streams[f.StreamID]
			s.body.Write(f.Data())
			s.done = f.StreamEnded()
			if n := len(f.Data()); n > 0 {
				h.fr.WriteWindowUpdate(0, uint32(n))
			}
		case *http2.GoAwayFrame:
			h.goAway = true
		case *http2.RSTStreamFrame:
			t.Fatalf("stream %d reset: %v", f.StreamID, f.ErrCode)
		}
	}
}

// echoBackend answers every call with its method, path and body.
func echoBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"method":%q,"path":%q,"body_bytes":%d,"x":%q}`, r.Method, r.URL.Path, len(b), r.Header.Get("X-Test"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestH2CUpgrade: with use_h2c an HTTP/1.1 request with "Upgrade: h2c"
// gets KrakenD's 101 and its answer as HTTP/2 stream 1; the connection
// then carries further streams.
func TestH2CUpgrade(t *testing.T) {
	t.Parallel()
	be := echoBackend(t)
	h := start(t, nil)
	get := endpoint("/hello", be, "/v1")
	get.InputHeaders = []string{"X-Test"}
	get.Backends[0].InputHeaders = []string{"X-Test"}
	post := endpoint("/post", be, "/v2")
	post.Method, post.Name = "POST", "POST /post"
	post.Backends[0].Method = "POST"
	snap := snapshot(get, post)
	snap.Service.H2C = true
	h.apply(t, envelope(t, 1, snap))
	addr := strings.TrimPrefix(h.url, "http://")

	c := dialUpgrade(t, addr, upgradeRequest("GET", "/hello", "edge", "X-Test: one\r\n", ""))
	s := c.await(t, 1)
	if s.status != "200" || !strings.Contains(s.body.String(), `"path":"/v1"`) || !strings.Contains(s.body.String(), `"x":"one"`) {
		t.Fatalf("stream 1 = %s %v %s, want the upgraded request answered", s.status, s.header, s.body.String())
	}
	if s.header["content-type"] != "application/json; charset=utf-8" || s.header["x-krakend-completed"] != "true" {
		t.Errorf("stream 1 headers %v", s.header)
	}
	c.get(t, 3, "/hello")
	if s := c.await(t, 3); s.status != "200" || !strings.Contains(s.body.String(), `"path":"/v1"`) {
		t.Errorf("stream 3 = %s %s", s.status, s.body.String())
	}
	c.get(t, 5, "/nope")
	if s := c.await(t, 5); s.status != "404" {
		t.Errorf("stream 5 (no route) = %s, want 404", s.status)
	}

	// A body is replayed on stream 1.
	c = dialUpgrade(t, addr, upgradeRequest("POST", "/post", "edge", "Content-Type: application/json\r\n", `{"k":"v"}`))
	if s := c.await(t, 1); s.status != "200" || !strings.Contains(s.body.String(), `"method":"POST"`) || !strings.Contains(s.body.String(), `"path":"/v2"`) || !strings.Contains(s.body.String(), `"body_bytes":9`) {
		t.Errorf("POST stream 1 = %s %s", s.status, s.body.String())
	}

	raw := func(req string) string {
		t.Helper()
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, req)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%s %d %s", resp.Proto, resp.StatusCode, b)
	}
	// A bad HTTP2-Settings: 500, no body, as x/net's handler answers.
	bad := strings.Replace(upgradeRequest("GET", "/hello", "edge", "", ""), "AAMAAABkAAQCAAAAAAIAAAAA", "!!", 1)
	if got := raw(bad); got != "HTTP/1.1 500 " {
		t.Errorf("bad HTTP2-Settings = %q, want HTTP/1.1 500 without body", got)
	}
	// Without HTTP2-Settings in Connection it is no h2c upgrade: HTTP/1.1.
	plain := strings.Replace(upgradeRequest("GET", "/hello", "edge", "", ""), "Connection: Upgrade, HTTP2-Settings", "Connection: Upgrade", 1)
	if got := raw(plain); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Errorf("Upgrade without HTTP2-Settings in Connection = %q, want HTTP/1.1 200", got)
	}
	// A body over 64 KiB is not replayed: served as HTTP/1.1.
	if got := raw(upgradeRequest("POST", "/post", "edge", "", strings.Repeat("a", 70_000))); !strings.HasPrefix(got, "HTTP/1.1 200 ") || !strings.Contains(got, `"body_bytes":70000`) {
		t.Errorf("large upgrade body = %.80q, want HTTP/1.1 200", got)
	}

	// With h2c off, the Upgrade header is ignored.
	snap.Service.H2C = false
	h.apply(t, envelope(t, 2, snap))
	if got := raw(upgradeRequest("GET", "/hello", "edge", "", "")); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Errorf("Upgrade with use_h2c off = %q, want HTTP/1.1 200", got)
	}
}

// TestH2CUpgradeDrain: a request in flight on an upgraded connection
// finishes when a new snapshot replaces the generation; the connection then
// gets GOAWAY and closes.
func TestH2CUpgradeDrain(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "b1")
	h := start(t, nil)
	snap := snapshot(endpoint("/slow", b.URL, "/slow/a"), endpoint("/fast", b.URL, "/fast"))
	snap.Service.H2C = true
	snap.Service.HttpServer.MaxShutdownWaitMs = 5000
	h.apply(t, envelope(t, 1, snap))

	c := dialUpgrade(t, strings.TrimPrefix(h.url, "http://"), upgradeRequest("GET", "/fast", "edge", "", ""))
	if s := c.await(t, 1); s.status != "200" {
		t.Fatalf("stream 1 = %s", s.status)
	}
	c.get(t, 3, "/slow")
	b.waitStarted(t)
	snap.Service.H2C = false
	h.apply(t, envelope(t, 2, snap))
	close(b.release)
	if s := c.await(t, 3); s.status != "200" || !strings.Contains(s.body.String(), "/slow/a") {
		t.Fatalf("in-flight stream across the generation change = %s %s", s.status, s.body.String())
	}
	// Then GOAWAY and the end of the connection.
	for !c.goAway {
		f, err := c.fr.ReadFrame()
		if err != nil {
			break
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			c.goAway = g.ErrCode == http2.ErrCodeNo
		}
	}
	if !c.goAway {
		t.Error("no GOAWAY after the generation changed")
	}
	if _, err := io.ReadAll(c.c); err != nil {
		t.Errorf("connection did not close cleanly: %v", err)
	}
}

// TestH2CSynthesize: the replayed stream 1 of a request with a header
// block over one frame (HEADERS then CONTINUATION) and a body over one
// frame decodes to the request, connection-specific headers left out.
func TestH2CSynthesize(t *testing.T) {
	t.Parallel()
	var req fasthttp.Request
	req.Header.SetMethod("PUT")
	req.SetRequestURI("/a/b?x=1")
	req.Header.SetHost("edge:8080")
	big := strings.Repeat("v", 20_000)
	req.Header.Set("X-Big", big)
	req.Header.Set("Connection", "Upgrade, HTTP2-Settings, X-Hop")
	req.Header.Set("X-Hop", "1")
	req.Header.Set("Upgrade", "h2c")
	req.Header.Set("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA")
	body := bytes.Repeat([]byte("b"), 40_000)
	req.SetBody(body)
	req.Header.SetContentLength(len(body))

	fr := http2.NewFramer(io.Discard, bytes.NewReader(synthesize(&req)))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 1 << 20
	fields := map[string]string{}
	var got []byte
	for ended := false; !ended; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID != 1 || f.StreamEnded() {
				t.Errorf("HEADERS stream %d ended %v", f.StreamID, f.StreamEnded())
			}
			for _, hf := range f.Fields {
				fields[hf.Name] = hf.Value
				if !hf.Sensitive {
					t.Errorf("%s is indexed", hf.Name)
				}
			}
		case *http2.DataFrame:
			got = append(got, f.Data()...)
			ended = f.StreamEnded()
		default:
			t.Fatalf("unexpected %T", f)
		}
	}
	for k, v := range map[string]string{":method": "PUT", ":scheme": "http", ":authority": "edge:8080", ":path": "/a/b?x=1", "x-big": big, "content-length": "40000"} {
		if fields[k] != v {
			t.Errorf("%s = %.40q, want %.40q", k, fields[k], v)
		}
	}
	for _, k := range []string{"connection", "upgrade", "http2-settings", "x-hop", "host"} {
		if _, ok := fields[k]; ok {
			t.Errorf("%s was replayed", k)
		}
	}
	if !bytes.Equal(got, body) {
		t.Errorf("body %d bytes, want %d", len(got), len(body))
	}
}
