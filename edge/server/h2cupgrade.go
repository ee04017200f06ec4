package server

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2/hpack"
)

// The HTTP/1.1 upgrade to h2c (RFC 7540 §3.2), as KrakenD's x/net h2c
// handler takes it: a request whose Upgrade lists "h2c" and whose
// Connection lists "HTTP2-Settings" gets "101 Switching Protocols", and
// the connection goes on in HTTP/2, the request itself answered on stream 1.
//
// net/http's HTTP/2 server has no upgrade entry point, so the bridge is fed
// what a prior-knowledge client would have sent for the same request: the
// client's own preface and first SETTINGS frame, which follow the 101, and
// right after them the request as stream 1 (HEADERS, CONTINUATION when
// large, DATA); the client's later frames (streams 3, 5, ...) pass
// through. The HTTP2-Settings header is checked, not replayed: a SETTINGS
// frame of ours would be acknowledged, and the client would take the
// unexpected ACK for a protocol error (curl does); its SETTINGS frame
// carries the same values, before the server reads stream 1. The
// synthesized header block never indexes (no HPACK dynamic table entry the
// client does not know of).
//
// A request with a body over 64 KiB (HTTP/2's initial flow-control window,
// the most that can be replayed before the server's first WINDOW_UPDATE)
// is served as HTTP/1.1 with its Upgrade header ignored, which RFC 9110
// allows. A malformed HTTP2-Settings header answers 500 with no body, as
// x/net's handler does.

const (
	maxUpgradeBody  = 65535
	maxFramePayload = 16384 // SETTINGS_MAX_FRAME_SIZE's initial value

	frameData         = 0x0
	frameHeaders      = 0x1
	frameSettings     = 0x4
	frameContinuation = 0x9
	flagEndStream     = 0x1
	flagEndHeaders    = 0x4
)

// upgradeResponse is x/net's reply, byte for byte.
const upgradeResponse = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"

var hdrHTTP2Settings = []byte("HTTP2-Settings")

// upgrade takes ctx's request over to HTTP/2 when it asks for h2c; it
// reports whether it did (the handler then returns at once). c is the
// connection the request came on.
func (b *h2Bridge) upgrade(ctx *fasthttp.RequestCtx) bool {
	h := &ctx.Request.Header
	if !headerHasToken(h.PeekAll("Upgrade"), "h2c") || !headerHasToken(h.PeekAll("Connection"), "HTTP2-Settings") {
		return false
	}
	if len(ctx.Request.Body()) > maxUpgradeBody {
		return false
	}
	if _, err := upgradeSettings(h); err != nil {
		ctx.Response.Reset()
		ctx.Response.Header.SetNoDefaultContentType(true)
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		return true
	}
	stream1 := synthesize(&ctx.Request)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(hc net.Conn) {
		if _, err := hc.Write([]byte(upgradeResponse)); err != nil {
			return
		}
		done := make(chan struct{})
		uc := &upgradedConn{Conn: hc, stream1: stream1, done: done}
		if !b.ln.push(uc) {
			return // draining: the connection closes
		}
		// fasthttp closes the connection when this returns (closing hc
		// is a no-op), so wait for the HTTP/2 server to be done with it.
		<-done
	})
	return true
}

// upgradeSettings is the single HTTP2-Settings header, base64url without
// padding, a whole number of 6-byte settings.
func upgradeSettings(h *fasthttp.RequestHeader) ([]byte, error) {
	vs := h.PeekAll(string(hdrHTTP2Settings))
	if len(vs) != 1 {
		return nil, errors.New("h2c: want one HTTP2-Settings header")
	}
	settings, err := base64.RawURLEncoding.DecodeString(string(vs[0]))
	if err != nil {
		return nil, err
	}
	if len(settings)%6 != 0 || len(settings) > maxFramePayload {
		return nil, errors.New("h2c: HTTP2-Settings is not a list of settings")
	}
	return settings, nil
}

// upgradeSkip are the request headers that do not go into stream 1: the
// connection-specific ones HTTP/2 forbids (RFC 9113 §8.2.2), the upgrade's
// own, and Host (sent as :authority).
var upgradeSkip = map[string]bool{
	"Host": true, "Connection": true, "Upgrade": true, "Http2-Settings": true, "Keep-Alive": true,
	"Proxy-Connection": true, "Transfer-Encoding": true, "Te": true,
}

// synthesize writes req as the frames of stream 1.
func synthesize(req *fasthttp.Request) []byte {
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	field := func(name, value string) {
		enc.WriteField(hpack.HeaderField{Name: name, Value: value, Sensitive: true})
	}
	h := &req.Header
	field(":method", string(h.Method()))
	field(":scheme", "http")
	field(":authority", string(h.Host()))
	field(":path", string(h.RequestURI()))
	var named [][]byte // headers the Connection header names
	for _, v := range h.PeekAll("Connection") {
		for tok := range bytes.SplitSeq(v, []byte(",")) {
			named = append(named, bytes.TrimSpace(tok))
		}
	}
	for k, v := range h.All() {
		if upgradeSkip[string(k)] || headerListed(named, k) {
			continue
		}
		field(string(bytes.ToLower(k)), string(v))
	}

	out := make([]byte, 0, block.Len()+len(req.Body())+64)
	body := req.Body()
	hb := block.Bytes()
	for first := true; first || len(hb) > 0; first = false {
		n := min(len(hb), maxFramePayload)
		var flags byte
		if n == len(hb) {
			flags |= flagEndHeaders
		}
		typ := byte(frameContinuation)
		if first {
			typ = frameHeaders
			if len(body) == 0 {
				flags |= flagEndStream
			}
		}
		out = appendFrame(out, typ, flags, 1, hb[:n])
		hb = hb[n:]
	}
	for len(body) > 0 {
		n := min(len(body), maxFramePayload)
		var flags byte
		if n == len(body) {
			flags = flagEndStream
		}
		out = appendFrame(out, frameData, flags, 1, body[:n])
		body = body[n:]
	}
	return out
}

func appendFrame(dst []byte, typ, flags byte, stream uint32, payload []byte) []byte {
	n := len(payload)
	dst = append(dst, byte(n>>16), byte(n>>8), byte(n), typ, flags)
	dst = binary.BigEndian.AppendUint32(dst, stream&0x7fffffff)
	return append(dst, payload...)
}

// headerHasToken reports whether a comma-separated header lists token
// (ASCII case-insensitive), as httpguts.HeaderValuesContainsToken.
func headerHasToken(values [][]byte, token string) bool {
	for _, v := range values {
		for tok := range bytes.SplitSeq(v, []byte(",")) {
			if bytes.EqualFold(bytes.TrimSpace(tok), []byte(token)) {
				return true
			}
		}
	}
	return false
}

func headerListed(names [][]byte, k []byte) bool {
	for _, n := range names {
		if bytes.EqualFold(n, k) {
			return true
		}
	}
	return false
}

// upgradedConn is an upgraded connection as the HTTP/2 server reads it:
// the client's preface and first SETTINGS frame, stream 1, then the rest
// of the client's bytes. Close tells the hijack handler the server is done
// with it.
type upgradedConn struct {
	net.Conn
	stream1 []byte // nil once queued
	pending []byte // bytes to give before reading on

	done      chan struct{}
	closeOnce sync.Once
}

var errBadPreface = errors.New("h2c: the upgraded client did not open with the HTTP/2 preface and SETTINGS")

func (c *upgradedConn) Read(p []byte) (int, error) {
	if c.stream1 != nil {
		if err := c.start(); err != nil {
			return 0, err
		}
	}
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// start reads the client's preface and first frame, a SETTINGS frame
// (RFC 9113 §3.4), and queues them with stream 1 behind.
func (c *upgradedConn) start() error {
	head := make([]byte, len(h2cPreface)+9)
	if _, err := io.ReadFull(c.Conn, head); err != nil {
		return err
	}
	fh := head[len(h2cPreface):]
	n := int(fh[0])<<16 | int(fh[1])<<8 | int(fh[2])
	if string(head[:len(h2cPreface)]) != h2cPreface || fh[3] != frameSettings || n > maxFramePayload {
		return errBadPreface
	}
	buf := make([]byte, len(head)+n, len(head)+n+len(c.stream1))
	copy(buf, head)
	if _, err := io.ReadFull(c.Conn, buf[len(head):]); err != nil {
		return err
	}
	c.pending = append(buf, c.stream1...)
	c.stream1 = nil
	return nil
}

func (c *upgradedConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { close(c.done) })
	return err
}
