// Package logsink is where the edge's log events go, as a snapshot's
// telemetry/logging says (krakend-gologging v2's rules): to stdout or not,
// to the local syslog or not, rendered in KrakenD's default text pattern or
// its logstash JSON, with the configured prefix. Until a snapshot sets
// telemetry/logging (or when the operator pinned the format with
// --log-format) events go to the process's own writer unchanged.
//
// A Sink sits under loglevel.Var's writer, so the level still filters per
// logger, never through zerolog's global level. Logging is off the request
// path; rendering parses the zerolog event.
//
// logsink imports nothing from the project but internal/gologfmt (go-logging's
// pattern language, for format custom).
package logsink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/syslog"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/apigw/gateway/internal/gologfmt"
)

// Settings are a snapshot's telemetry/logging output settings.
type Settings struct {
	// Format is "default" (KrakenD's text pattern), "logstash" or
	// "custom" (CustomFormat); "" keeps the process's own rendering (and
	// ignores the rest).
	Format string
	// CustomFormat is go-logging's pattern for format custom
	// (internal/gologfmt); as in KrakenD, the prefix is not written then.
	CustomFormat string
	Prefix       string
	Stdout       bool
	Syslog       bool
	// Facility is local0..local7; anything else is local3, as in KrakenD.
	Facility string
	// Level is the configured level (debug, info, warn, error): KrakenD
	// writes every syslog line at the severity it maps to.
	Level string
	// Logstash is telemetry/logstash: the message becomes krakend-logstash's
	// JSON record (module = Prefix or KRAKEND), and the line has no prefix.
	Logstash bool
}

// Sink is a zerolog.LevelWriter whose destination and rendering change
// with Apply. Safe for concurrent use; New makes one.
type Sink struct {
	base   io.Writer // the process's writer
	stdout io.Writer
	dial   func(p syslog.Priority, tag string) (io.WriteCloser, error)
	cur    atomic.Pointer[state]
	gelf   atomic.Pointer[gelfDest] // nil: no telemetry/gelf
	mu     sync.Mutex               // serialises Apply
	now    func() time.Time
	// ids numbers the rendered events, as go-logging's record ids.
	ids atomic.Uint64
}

type gelfDest struct{ w io.Writer }

// SetGELF makes the rendered events also go to w (telemetry/gelf), as the
// bare message (krakend-gelf's "%{message}" pattern), while a snapshot
// sets telemetry/logging; nil stops it.
func (s *Sink) SetGELF(w io.Writer) {
	if w == nil {
		s.gelf.Store(nil)
		return
	}
	s.gelf.Store(&gelfDest{w: w})
}

type state struct {
	set    Settings
	sys    io.WriteCloser    // nil without syslog
	custom *gologfmt.Pattern // format custom
}

// New returns a Sink writing to base until Apply; stdout is where rendered
// lines go when Settings.Stdout.
func New(base, stdout io.Writer) *Sink {
	s := &Sink{base: base, stdout: stdout, now: time.Now,
		dial: func(p syslog.Priority, tag string) (io.WriteCloser, error) { return syslog.New(p, tag) }}
	s.cur.Store(&state{})
	return s
}

// SetSyslogDial replaces how the syslog connection is opened (tests).
func (s *Sink) SetSyslogDial(dial func(p syslog.Priority, tag string) (io.WriteCloser, error)) {
	s.dial = dial
}

// Apply switches to set. A syslog that cannot be opened is an error, and
// the previous settings stay.
func (s *Sink) Apply(set Settings) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	if old.set == set {
		return nil
	}
	next := &state{set: set}
	if set.Format == "custom" {
		pat, err := gologfmt.Parse(set.CustomFormat)
		if err != nil {
			return fmt.Errorf("telemetry/logging custom_format: %w", err)
		}
		next.custom = pat
	}
	if set.Format != "" && set.Syslog {
		w, err := s.dial(severity(set.Level)|facility(set.Facility), set.Prefix)
		if err != nil {
			return fmt.Errorf("telemetry/logging syslog: %w", err)
		}
		next.sys = w
	}
	s.cur.Store(next)
	if old.sys != nil {
		old.sys.Close()
	}
	return nil
}

// Close closes the syslog connection, if any; events then go to stdout
// only.
func (s *Sink) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	set := old.set
	set.Syslog = false
	s.cur.Store(&state{set: set, custom: old.custom})
	if old.sys != nil {
		old.sys.Close()
	}
}

// Write writes an event without a level.
func (s *Sink) Write(p []byte) (int, error) { return s.WriteLevel(zerolog.NoLevel, p) }

// WriteLevel renders and writes one zerolog event.
func (s *Sink) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	st := s.cur.Load()
	if st.set.Format == "" {
		if lw, ok := s.base.(zerolog.LevelWriter); ok {
			return lw.WriteLevel(l, p)
		}
		return s.base.Write(p)
	}
	g := s.gelf.Load()
	if g != nil && !st.set.Logstash { // KrakenD gives krakend-logstash's logger no GELF writer
		msg, fields := parseEvent(p)
		if len(fields) > 0 {
			msg += " " + strings.Join(fields, " ")
		}
		_, _ = g.w.Write([]byte(msg))
	}
	if !st.set.Stdout && st.sys == nil {
		return len(p), nil // KrakenD: stdout false and no syslog writes nothing
	}
	msg := eventMessage(p)
	line := s.render(st, l, msg)
	if st.set.Stdout {
		prefixed := line
		if st.set.Prefix != "" && st.set.Format == "default" && !st.set.Logstash {
			prefixed = append([]byte(st.set.Prefix), line...)
		}
		if _, err := s.stdout.Write(prefixed); err != nil {
			return 0, err
		}
	}
	if st.sys != nil {
		// The syslog tag carries the prefix already; the line has
		// krakend-gologging's syslog pattern whatever the format.
		rec := gologfmt.Record{Time: s.now(), Level: goLevels[l], Module: "KRAKEND", Message: msg}
		if _, err := st.sys.Write(syslogPattern.Append(nil, &rec)); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// levelNames are go-logging's level names.
var levelNames = map[zerolog.Level]string{
	zerolog.TraceLevel: "DEBUG", zerolog.DebugLevel: "DEBUG", zerolog.InfoLevel: "INFO",
	zerolog.WarnLevel: "WARNING", zerolog.ErrorLevel: "ERROR", zerolog.FatalLevel: "CRITICAL",
	zerolog.PanicLevel: "CRITICAL", zerolog.NoLevel: "INFO",
}

// krakend-gologging's fixed patterns: the default format's, and the one
// every syslog line is written with whatever the format.
var (
	defaultPattern = mustParse(` %{time:2006/01/02 - 15:04:05.000} %{color}▶ %{level}%{color:reset} %{message}`)
	syslogPattern  = mustParse(`%{level} > %{message}`)
)

func mustParse(p string) *gologfmt.Pattern {
	pat, err := gologfmt.Parse(p)
	if err != nil {
		panic(err)
	}
	return pat
}

// goLevels are go-logging's levels of zerolog's.
var goLevels = map[zerolog.Level]gologfmt.Level{
	zerolog.TraceLevel: gologfmt.Debug, zerolog.DebugLevel: gologfmt.Debug, zerolog.InfoLevel: gologfmt.Info,
	zerolog.WarnLevel: gologfmt.Warning, zerolog.ErrorLevel: gologfmt.Error, zerolog.FatalLevel: gologfmt.Critical,
	zerolog.PanicLevel: gologfmt.Critical, zerolog.NoLevel: gologfmt.Info,
}

// render turns a zerolog JSON event into KrakenD's line: the default
// pattern " 2006/01/02 - 15:04:05.000 ▶ LEVEL message" or the logstash
// object; the event's fields follow the message as key=value, sorted.
func (s *Sink) render(st *state, l zerolog.Level, msg string) []byte {
	set := st.set
	now := s.now()
	level := levelNames[l]
	if set.Logstash {
		msg = logstashRecord(set.Prefix, level, msg, now)
	}
	if set.Format != "logstash" {
		pat := defaultPattern
		if st.custom != nil {
			pat = st.custom
		}
		line := pat.Append(nil, &gologfmt.Record{Time: now, Level: goLevels[l], ID: s.ids.Add(1), Module: "KRAKEND", Message: msg})
		// log.Logger ends every line with a newline.
		if len(line) == 0 || line[len(line)-1] != '\n' {
			line = append(line, '\n')
		}
		return line
	}
	var b bytes.Buffer
	m, _ := json.Marshal(msg)
	fmt.Fprintf(&b, `{"@timestamp":"%s", "@version": 1, "level": "%s", "message": %s, "module": "KRAKEND"}`,
		now.UTC().Format("2006-01-02T15:04:05.000+00:00"), level, m)
	b.WriteByte('\n')
	return b.Bytes()
}

// eventMessage is an event's message followed by its fields.
func eventMessage(p []byte) string {
	msg, fields := parseEvent(p)
	if len(fields) > 0 {
		msg += " " + strings.Join(fields, " ")
	}
	return msg
}

// parseEvent returns the message of a zerolog JSON event and its other
// fields as key=value (level and time left out), sorted by key.
func parseEvent(p []byte) (string, []string) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(bytes.TrimSpace(p), &m); err != nil {
		return strings.TrimRight(string(p), "\n"), nil
	}
	var msg string
	if raw, ok := m[zerolog.MessageFieldName]; ok {
		_ = json.Unmarshal(raw, &msg)
	}
	var fields []string
	for k, raw := range m {
		switch k {
		case zerolog.MessageFieldName, zerolog.LevelFieldName, zerolog.TimestampFieldName:
			continue
		}
		var str string
		v := string(raw)
		if json.Unmarshal(raw, &str) == nil {
			v = str
			if strings.ContainsAny(v, " \t\"=") {
				v = fmt.Sprintf("%q", v)
			}
		}
		fields = append(fields, k+"="+v)
	}
	sort.Strings(fields)
	return msg, fields
}

func facility(name string) syslog.Priority {
	switch strings.ToLower(name) {
	case "local0":
		return syslog.LOG_LOCAL0
	case "local1":
		return syslog.LOG_LOCAL1
	case "local2":
		return syslog.LOG_LOCAL2
	case "local4":
		return syslog.LOG_LOCAL4
	case "local5":
		return syslog.LOG_LOCAL5
	case "local6":
		return syslog.LOG_LOCAL6
	case "local7":
		return syslog.LOG_LOCAL7
	}
	return syslog.LOG_LOCAL3
}

// severity is krakend-gologging's fixed syslog severity for a level (its
// names or the snapshot's zerolog names); CRITICAL otherwise.
func severity(level string) syslog.Priority {
	switch strings.ToLower(level) {
	case "debug", "trace":
		return syslog.LOG_DEBUG
	case "info":
		return syslog.LOG_INFO
	case "warning", "warn":
		return syslog.LOG_WARNING
	case "error":
		return syslog.LOG_ERR
	}
	return syslog.LOG_CRIT
}

var hostname = func() string {
	h, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	return h
}()

// logstashRecord is krakend-logstash's JSON record of one message: its
// keys sorted (encoding/json of a map), the time in microseconds with the
// zone offset, module the telemetry/logging prefix or KRAKEND.
func logstashRecord(prefix, level, msg string, now time.Time) string {
	module := prefix
	if module == "" {
		module = "KRAKEND"
	}
	b, _ := json.Marshal(map[string]any{
		"@timestamp": now.Format("2006-01-02T15:04:05.000000-07:00"),
		"@version":   1,
		"host":       hostname,
		"level":      level,
		"message":    msg,
		"module":     module,
	})
	return string(b)
}
