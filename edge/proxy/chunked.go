package proxy

import (
	"io"
	"sync"
)

// chunkedBody is a request body of unknown length for fasthttp, which then
// writes it with Transfer-Encoding: chunked. It holds its own copy of the
// bytes: a call may still be writing after the handler returned (a
// straggler cut by the merge deadline) and the inbound request was reused.
// fasthttp closes it once written or when the request is reset, and Close
// returns it to the pool.
type chunkedBody struct {
	b   []byte
	off int
}

var chunkedPool = sync.Pool{New: func() any { return new(chunkedBody) }}

// maxPooledChunked is the largest buffer a pooled chunkedBody keeps.
const maxPooledChunked = 64 << 10

func acquireChunkedBody(body []byte) *chunkedBody {
	c := chunkedPool.Get().(*chunkedBody)
	c.b = append(c.b[:0], body...)
	c.off = 0
	return c
}

func (c *chunkedBody) Read(p []byte) (int, error) {
	if c.off >= len(c.b) {
		return 0, io.EOF
	}
	n := copy(p, c.b[c.off:])
	c.off += n
	return n, nil
}

// Close returns c to the pool; fasthttp calls it exactly once.
func (c *chunkedBody) Close() error {
	if cap(c.b) > maxPooledChunked {
		c.b = nil
	} else {
		c.b = c.b[:0]
	}
	c.off = 0
	chunkedPool.Put(c)
	return nil
}
