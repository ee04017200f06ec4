// Package accesslog writes the edge's access log: one line per request, in
// KrakenD's default format (gin's logger line, "[GIN] 2006/01/02 - 15:04:05
// | 200 |  1.2ms |  127.0.0.1 | GET  "/path"", followed by one "Error #NN:"
// line per backend error) or as a JSON object per line carrying every field
// (method, path, route, status, duration, bytes, client IP, backend count,
// completeness, trace id, errors).
//
// A Log is built once per plan from router.disable_access_log,
// router.logger_skip_paths and the edge's access-log flags, and is
// immutable. A nil *Log is off: the server then takes no time stamp and
// touches no entry, so an edge without an access log pays nothing per
// request (TestOffAllocs, and TestWriteAllocs for a log that is on).
//
// accesslog imports only edge/internal from the project.
package accesslog

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/apigw/gateway/edge/internal/zerocopy"
	"github.com/apigw/gateway/edge/response"
)

// Format is the shape of an access-log line.
type Format uint8

const (
	// FormatKrakenD is gin's default logger line, as KrakenD writes it.
	FormatKrakenD Format = iota
	// FormatJSON is one JSON object per line with every field.
	FormatJSON
)

// ParseFormat reads a format name: "krakend" (or "default") and "json".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "krakend", "default", "":
		return FormatKrakenD, nil
	case "json":
		return FormatJSON, nil
	}
	return 0, fmt.Errorf("access log format %q: unsupported (krakend, json)", s)
}

// String returns the name ParseFormat reads.
func (f Format) String() string {
	if f == FormatJSON {
		return "json"
	}
	return "krakend"
}

// Config configures a Log. The zero value (with Out set) logs every
// request in KrakenD's format.
type Config struct {
	// Out receives one Write per line (with its "Error #NN" lines).
	// Required.
	Out io.Writer
	// Format is the line shape.
	Format Format
	// SkipPaths are request paths never logged (router.logger_skip_paths),
	// compared with the decoded path as gin does.
	SkipPaths []string
	// SampleRate is the share of requests answered with a status below 500
	// that are logged, in (0, 1]; 0 means 1 (every request). Responses with
	// a 5xx status are always logged.
	SampleRate float64
}

// Validate reports a configuration New refuses.
func (c Config) Validate() error {
	var errs []error
	if c.Out == nil {
		errs = append(errs, errors.New("access log: no output"))
	}
	if c.SampleRate < 0 || c.SampleRate > 1 || c.SampleRate != c.SampleRate {
		errs = append(errs, fmt.Errorf("access log: sample rate %v: must be in (0, 1]", c.SampleRate))
	}
	if c.Format > FormatJSON {
		errs = append(errs, fmt.Errorf("access log: unknown format %d", c.Format))
	}
	return errors.Join(errs...)
}

// Log writes access-log lines. It is immutable and safe for concurrent
// use; a nil *Log writes nothing.
type Log struct {
	out    io.Writer
	format Format
	skip   map[string]struct{}
	// threshold: a request below 500 is logged when a uniform uint64 is
	// below it; ^0 logs every one.
	threshold uint64
	pool      sync.Pool // *Entry
}

// New compiles cfg.
func New(cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Log{out: cfg.Out, format: cfg.Format, threshold: ^uint64(0)}
	if cfg.SampleRate > 0 && cfg.SampleRate < 1 {
		l.threshold = uint64(cfg.SampleRate * (1 << 63) * 2)
	}
	if len(cfg.SkipPaths) > 0 {
		l.skip = make(map[string]struct{}, len(cfg.SkipPaths))
		for _, p := range cfg.SkipPaths {
			l.skip[p] = struct{}{}
		}
	}
	l.pool.New = func() any { return &Entry{log: l} }
	return l, nil
}

// Entry gathers what one request's line says. The server fills the
// request's own fields, the plan the route, backend count and errors. An
// Entry is pooled: Log.Finish returns it.
type Entry struct {
	log *Log

	// Start is when the request was read.
	Start time.Time
	// Route is the endpoint pattern that answered ("" when none did).
	Route string
	// Backends is the number of backends of that endpoint.
	Backends int
	// Errors holds the backend error texts, one per line ('\n' between
	// them), as KrakenD's return_error_msg words them.
	Errors []byte
	// ClientIP is the client address the plan resolved (forwarded headers
	// from trusted proxies); empty when no endpoint ran.
	ClientIP []byte
	// TraceID is the request's trace id (32 hex digits) when the plan
	// traced it; empty otherwise.
	TraceID []byte

	buf []byte
}

// Start returns an Entry for a request to path, or nil when the path is
// skipped or the log is off (nil). now is the request's start.
func (l *Log) Start(path []byte, now time.Time) *Entry {
	if l == nil {
		return nil
	}
	if l.skip != nil {
		if _, skip := l.skip[string(path)]; skip {
			return nil
		}
	}
	e := l.pool.Get().(*Entry)
	e.Start = now
	return e
}

// Request is what the server knows of a request once it is answered.
type Request struct {
	Method   []byte
	Path     []byte // decoded path
	Query    []byte // raw query string, without '?'
	ClientIP []byte
	Status   int
	Bytes    int    // response body size
	Complete []byte // X-KrakenD-Completed value, nil when unset
	TraceID  []byte // 32 hex digits, nil when none
}

// Finish writes e's line (unless sampled out) and returns e to the pool.
// end is when the response was ready.
func (e *Entry) Finish(r *Request, end time.Time) {
	l := e.log
	if r.Status < 500 && l.threshold != ^uint64(0) && rand.Uint64() >= l.threshold {
		e.release()
		return
	}
	latency := end.Sub(e.Start)
	b := e.buf[:0]
	if l.format == FormatJSON {
		b = e.appendJSON(b, r, end, latency)
	} else {
		b = e.appendKrakenD(b, r, end, latency)
	}
	_, _ = l.out.Write(b)
	e.buf = b
	e.release()
}

func (e *Entry) release() {
	e.Route, e.Backends, e.Errors, e.ClientIP, e.TraceID = "", 0, e.Errors[:0], e.ClientIP[:0], e.TraceID[:0]
	if cap(e.buf) > 16<<10 {
		e.buf = nil
	}
	if cap(e.Errors) > 16<<10 {
		e.Errors = nil
	}
	e.log.pool.Put(e)
}

// appendKrakenD appends gin's default line: time, status (%3d), latency
// (%13v), client IP (%15s), method (%-7s), the quoted path with its query,
// then "Error #NN: text" lines.
func (e *Entry) appendKrakenD(b []byte, r *Request, end time.Time, latency time.Duration) []byte {
	if latency > time.Minute {
		latency = latency.Truncate(time.Second)
	}
	b = append(b, "[GIN] "...)
	b = end.AppendFormat(b, "2006/01/02 - 15:04:05")
	b = append(b, " | "...)
	b = padLeft(b, 3, func(b []byte) []byte { return strconv.AppendInt(b, int64(r.Status), 10) })
	b = append(b, " | "...)
	b = padLeft(b, 13, func(b []byte) []byte { return AppendDuration(b, latency) })
	b = append(b, " | "...)
	b = padLeft(b, 15, func(b []byte) []byte { return append(b, r.ClientIP...) })
	b = append(b, " | "...)
	n := len(b)
	b = append(b, r.Method...)
	for utf8.RuneCount(b[n:]) < 7 {
		b = append(b, ' ')
	}
	b = append(b, ' ', ' ') // gin's empty colour reset sits between two spaces
	b = appendQuotedPath(b, r.Path, r.Query)
	b = append(b, '\n')
	i := 0
	for rest := e.Errors; len(rest) > 0; {
		line := rest
		if j := indexByte(rest, '\n'); j >= 0 {
			line, rest = rest[:j], rest[j+1:]
		} else {
			rest = nil
		}
		i++
		b = append(b, "Error #"...)
		if i < 10 {
			b = append(b, '0')
		}
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ": "...)
		b = append(b, line...)
		b = append(b, '\n')
	}
	return b
}

// appendJSON appends one JSON object and a newline.
func (e *Entry) appendJSON(b []byte, r *Request, end time.Time, latency time.Duration) []byte {
	b = append(b, `{"time":"`...)
	b = end.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","component":"access","method":`...)
	b = response.AppendJSONString(b, r.Method)
	b = append(b, `,"path":`...)
	b = response.AppendJSONString(b, r.Path)
	if len(r.Query) > 0 {
		b = append(b, `,"query":`...)
		b = response.AppendJSONString(b, r.Query)
	}
	if e.Route != "" {
		b = append(b, `,"route":`...)
		b = response.AppendJSONString(b, []byte(e.Route))
		b = append(b, `,"backends":`...)
		b = strconv.AppendInt(b, int64(e.Backends), 10)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(latency)/float64(time.Millisecond), 'f', 3, 64)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, int64(r.Bytes), 10)
	b = append(b, `,"client_ip":`...)
	b = response.AppendJSONString(b, r.ClientIP)
	if len(r.Complete) > 0 {
		b = append(b, `,"complete":`...)
		if string(r.Complete) == "true" {
			b = append(b, "true"...)
		} else {
			b = append(b, "false"...)
		}
	}
	if len(r.TraceID) > 0 {
		b = append(b, `,"trace_id":`...)
		b = response.AppendJSONString(b, r.TraceID)
	}
	if len(e.Errors) > 0 {
		b = append(b, `,"errors":[`...)
		first := true
		for rest := e.Errors; len(rest) > 0; {
			line := rest
			if j := indexByte(rest, '\n'); j >= 0 {
				line, rest = rest[:j], rest[j+1:]
			} else {
				rest = nil
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = response.AppendJSONString(b, line)
		}
		b = append(b, ']')
	}
	return append(b, "}\n"...)
}

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// padLeft appends what f appends, right-aligned in width runes (fmt's %Nv).
func padLeft(b []byte, width int, f func([]byte) []byte) []byte {
	start := len(b)
	b = f(b)
	n := utf8.RuneCount(b[start:])
	if n >= width {
		return b
	}
	pad := width - n
	for range pad {
		b = append(b, ' ')
	}
	copy(b[start+pad:], b[start:len(b)-pad])
	for i := start; i < start+pad; i++ {
		b[i] = ' '
	}
	return b
}

// appendQuotedPath appends strconv.Quote(path + "?" + query) (fmt's %#v of
// the string gin builds) without building the string: '?' is ASCII, so no
// rune spans it and the three quoted pieces join exactly.
func appendQuotedPath(b, path, query []byte) []byte {
	b = strconv.AppendQuote(b, zerocopy.String(path))
	if len(query) > 0 {
		b = append(b[:len(b)-1], '?')
		n := len(b)
		b = strconv.AppendQuote(b, zerocopy.String(query))
		b = append(b[:n], b[n+1:]...) // the query's opening quote
	}
	return b
}

// AppendDuration appends d as time.Duration.String formats it ("1.5ms",
// "4.246µs", "1m2.5s"), without the string.
func AppendDuration(b []byte, d time.Duration) []byte {
	// Largest: "-2562047h47m16.854775808s" (25 bytes).
	var arr [32]byte
	w := len(arr)
	u := uint64(d)
	neg := d < 0
	if neg {
		u = -u
	}
	if u < uint64(time.Second) {
		// Sub-second: one unit, with a fraction.
		var prec int
		w--
		arr[w] = 's'
		w--
		switch {
		case u == 0:
			return append(b, '0', 's')
		case u < uint64(time.Microsecond):
			prec = 0
			arr[w] = 'n'
		case u < uint64(time.Millisecond):
			prec = 3
			// U+00B5 'µ' micro sign, as Go writes it.
			w--
			copy(arr[w:], "µ")
		default:
			prec = 6
			arr[w] = 'm'
		}
		w, u = fmtFrac(arr[:w], u, prec)
		w = fmtInt(arr[:w], u)
	} else {
		w--
		arr[w] = 's'
		w, u = fmtFrac(arr[:w], u, 9)
		w = fmtInt(arr[:w], u%60)
		u /= 60
		if u > 0 {
			w--
			arr[w] = 'm'
			w = fmtInt(arr[:w], u%60)
			u /= 60
			if u > 0 {
				w--
				arr[w] = 'h'
				w = fmtInt(arr[:w], u)
			}
		}
	}
	if neg {
		w--
		arr[w] = '-'
	}
	return append(b, arr[w:]...)
}

// fmtFrac writes the fraction of v/10^prec into the tail of buf, dropping
// trailing zeros (and the point when nothing is left); it returns where the
// written part starts and v/10^prec.
func fmtFrac(buf []byte, v uint64, prec int) (int, uint64) {
	w := len(buf)
	printed := false
	for range prec {
		digit := v % 10
		printed = printed || digit != 0
		if printed {
			w--
			buf[w] = byte(digit) + '0'
		}
		v /= 10
	}
	if printed {
		w--
		buf[w] = '.'
	}
	return w, v
}

// fmtInt writes v in decimal into the tail of buf and returns where it
// starts.
func fmtInt(buf []byte, v uint64) int {
	w := len(buf)
	if v == 0 {
		w--
		buf[w] = '0'
		return w
	}
	for v > 0 {
		w--
		buf[w] = byte(v%10) + '0'
		v /= 10
	}
	return w
}
