// Package gelf sends log lines to a Graylog input as GELF 1.1 messages, as
// krakend-gelf v2 (go-gelf v2) does: one message per Write, the first line
// as short_message and the whole text as full_message when there are more,
// level 6, the host name and the process name as facility; over UDP
// gzip-compressed and chunked past 1420 bytes, over TCP as JSON ended by a
// NUL byte.
//
// Writes never block the caller: lines are queued (bounded) and sent by
// one goroutine; when the queue is full a line is dropped and counted.
//
// gelf imports nothing from the project.
package gelf

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Chunking, as go-gelf: UDP datagrams of at most chunkSize bytes, a
// 12-byte header each, at most 128 chunks.
const (
	chunkSize   = 1420
	chunkHeader = 12
	chunkData   = chunkSize - chunkHeader
	maxChunks   = 128
	queueLen    = 1024
)

// Writer is one Graylog destination. Safe for concurrent use.
type Writer struct {
	addr     string
	tcp      bool
	host     string
	facility string

	queue   chan []byte
	done    chan struct{}
	closed  atomic.Bool
	dropped atomic.Int64
	errs    atomic.Int64
	once    sync.Once

	conn net.Conn // owned by the sending goroutine
}

// New dials addr (UDP unless tcp) and starts the sender. A TCP input that
// does not accept the connection is an error, as in krakend-gelf.
func New(addr string, tcp bool) (*Writer, error) {
	network := "udp"
	if tcp {
		network = "tcp"
	}
	conn, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("telemetry/gelf: %w", err)
	}
	host, _ := os.Hostname()
	w := &Writer{addr: addr, tcp: tcp, host: host, facility: filepath.Base(os.Args[0]),
		queue: make(chan []byte, queueLen), done: make(chan struct{}), conn: conn}
	go w.run()
	return w, nil
}

// Addr and TCP say where w sends.
func (w *Writer) Addr() string { return w.addr }
func (w *Writer) TCP() bool    { return w.tcp }

// Dropped is the number of lines dropped on a full queue; Errors the
// number that failed to send.
func (w *Writer) Dropped() int64 { return w.dropped.Load() }
func (w *Writer) Errors() int64  { return w.errs.Load() }

// Write queues p as one message. It never blocks and never fails: a full
// queue or a closed Writer drops the line.
func (w *Writer) Write(p []byte) (int, error) { return w.write(p, fromLog) }

// AccessLog is w for the access log's lines: they carry the _file and
// _line KrakenD's access-log lines carry.
func (w *Writer) AccessLog() io.Writer { return accessWriter{w} }

type accessWriter struct{ w *Writer }

func (a accessWriter) Write(p []byte) (int, error) { return a.w.write(p, fromAccessLog) }

// Where a line was written from. go-gelf names the Go frame that called
// its Write, which in KrakenD CE 2.12.1 is always one of two standard
// library lines of the toolchain that built it (the log package for the
// log lines, fmt.Fprintf for gin's access log): the messages carry those
// values so that Graylog streams and extractors keyed on them match.
const (
	fromLog byte = iota
	fromAccessLog
)

var callers = [...]struct {
	file string
	line int
}{
	fromLog:       {"/usr/local/go/src/log/log.go", 244},
	fromAccessLog: {"/usr/local/go/src/fmt/print.go", 263},
}

func (w *Writer) write(p []byte, from byte) (int, error) {
	if w.closed.Load() {
		return len(p), nil
	}
	line := append([]byte{from}, p...)
	line = stamp(line)
	select {
	case w.queue <- line:
	default:
		w.dropped.Add(1)
	}
	return len(p), nil
}

// stamp prepends the time of the write (8 bytes, unix nanoseconds) so the
// message carries it rather than the time it is sent.
func stamp(p []byte) []byte {
	var b [8]byte
	n := time.Now().UnixNano()
	for i := 7; i >= 0; i-- {
		b[i] = byte(n)
		n >>= 8
	}
	return append(b[:], p...)
}

func unstamp(p []byte) (time.Time, []byte) {
	var n int64
	for _, c := range p[:8] {
		n = n<<8 | int64(c)
	}
	return time.Unix(0, n), p[8:]
}

// Close sends what is queued (for at most a second) and closes the
// connection.
func (w *Writer) Close() {
	w.once.Do(func() {
		w.closed.Store(true)
		close(w.queue)
		select {
		case <-w.done:
		case <-time.After(time.Second):
			w.conn.Close()
			<-w.done
		}
	})
}

func (w *Writer) run() {
	defer close(w.done)
	defer w.conn.Close()
	for line := range w.queue {
		at, p := unstamp(line)
		c := callers[p[0]]
		if err := w.send(Message(p[1:], w.host, w.facility, at, c.file, c.line)); err != nil {
			w.errs.Add(1)
		}
	}
}

// Message is the GELF document of one written text; file and line are
// go-gelf's _file and _line extra fields.
func Message(p []byte, host, facility string, at time.Time, file string, line int) []byte {
	p = bytes.TrimSpace(p)
	short, full := p, []byte(nil)
	if i := bytes.IndexByte(p, '\n'); i > 0 {
		short, full = p[:i], p
	}
	m := struct {
		Version  string  `json:"version"`
		Host     string  `json:"host"`
		Short    string  `json:"short_message"`
		Full     string  `json:"full_message,omitempty"`
		Time     float64 `json:"timestamp"`
		Level    int     `json:"level"`
		Facility string  `json:"facility,omitempty"`
		File     string  `json:"_file"`
		Line     int     `json:"_line"`
	}{"1.1", host, string(short), string(full), float64(at.UnixNano()) / float64(time.Second), 6, facility, file, line}
	b, _ := json.Marshal(m)
	return b
}

func (w *Writer) send(msg []byte) error {
	if w.tcp {
		_, err := w.conn.Write(append(msg, 0))
		return err
	}
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, flate.BestSpeed)
	_, _ = zw.Write(msg)
	if err := zw.Close(); err != nil {
		return err
	}
	b := z.Bytes()
	if len(b) <= chunkSize {
		_, err := w.conn.Write(b)
		return err
	}
	n := (len(b) + chunkData - 1) / chunkData
	if n > maxChunks {
		return errors.New("gelf: message too large for 128 chunks")
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	buf := make([]byte, 0, chunkSize)
	for i := range n {
		part := b[i*chunkData : min((i+1)*chunkData, len(b))]
		buf = append(append(append(buf[:0], 0x1e, 0x0f), id[:]...), byte(i), byte(n))
		buf = append(buf, part...)
		if _, err := w.conn.Write(buf); err != nil {
			return err
		}
	}
	return nil
}
