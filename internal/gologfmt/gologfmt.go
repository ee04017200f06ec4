// Package gologfmt is go-logging's pattern language (github.com/op/go-logging,
// the version krakend-gologging v2.1.1 renders KrakenD's log lines with),
// reimplemented: `%{verb}` or `%{verb:layout}` placeholders in static text.
//
// The verbs are time (a Go time layout, default 2006-01-02T15:04:05.999Z07:00),
// level, id, pid, program, module, message (a fmt verb as layout: %{level:.4s},
// %{id:05d}), color (the level's ANSI color; color:bold, color:reset), and the
// call-site verbs longfile, shortfile, longpkg, shortpkg, longfunc, shortfunc
// and callpath. A pattern without any placeholder, or with an unknown verb,
// is refused, as go-logging refuses it (KrakenD then does not start).
//
// The gateway's log events carry no call site, so the call-site verbs render
// as go-logging renders them when the caller is unknown ("???:0", "???"; an
// empty callpath): CallSiteVerbs says which a pattern uses.
//
// gologfmt imports nothing from the project; the control plane validates
// patterns with it and the edge renders them.
package gologfmt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// Level is go-logging's level: its numbers (CRITICAL 0 ... DEBUG 5) and
// names, so %{level:d} and %{level:.1s} print what go-logging prints.
type Level int

// go-logging's levels.
const (
	Critical Level = iota
	Error
	Warning
	Notice
	Info
	Debug
)

var levelNames = [...]string{"CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"}

func (l Level) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return fmt.Sprintf("Level(%d)", int(l))
	}
	return levelNames[l]
}

// go-logging's colors, by level (INFO has none).
var (
	colors     = [...]string{"\033[35m", "\033[31m", "\033[33m", "\033[32m", "", "\033[36m"}
	boldColors = [...]string{"\033[35;1m", "\033[31;1m", "\033[33;1m", "\033[32;1m", "", "\033[36;1m"}
)

type verb int

const (
	verbTime verb = iota
	verbLevel
	verbID
	verbPid
	verbProgram
	verbModule
	verbMessage
	verbLongfile
	verbShortfile
	verbLongpkg
	verbShortpkg
	verbLongfunc
	verbShortfunc
	verbCallpath
	verbColor
	verbStatic
)

var verbNames = [...]string{"time", "level", "id", "pid", "program", "module", "message",
	"longfile", "shortfile", "longpkg", "shortpkg", "longfunc", "shortfunc", "callpath", "color"}

var defaultLayouts = [...]string{"2006-01-02T15:04:05.999Z07:00", "s", "d", "d", "s", "s", "s",
	"s", "s", "s", "s", "s", "s", "0", ""}

// placeholder is go-logging's own expression, quirks included (a layout
// runs to the first "}" not preceded by a backslash, at least one
// character long).
var placeholder = regexp.MustCompile(`%{([a-z]+)(?::(.*?[^\\]))?}`)

type part struct {
	verb   verb
	layout string
}

// Pattern is a parsed pattern. Safe for concurrent use.
type Pattern struct {
	parts    []part
	callSite []string
}

// Record is one log event.
type Record struct {
	Time    time.Time
	Level   Level
	ID      uint64 // go-logging numbers records 1, 2, 3... per process
	Module  string // KrakenD's is "KRAKEND"
	Message string
}

var (
	pid     = os.Getpid()
	program = filepath.Base(os.Args[0])
)

// Parse parses pattern with go-logging's rules and error messages.
func Parse(pattern string) (*Pattern, error) {
	matches := placeholder.FindAllStringSubmatchIndex(pattern, -1)
	if matches == nil {
		return nil, errors.New("invalid log format: " + pattern)
	}
	p := &Pattern{}
	prev := 0
	for _, m := range matches {
		if m[0] > prev {
			p.parts = append(p.parts, part{verbStatic, pattern[prev:m[0]]})
		}
		name := pattern[m[2]:m[3]]
		v := verb(-1)
		for i, n := range verbNames {
			if n == name {
				v = verb(i)
			}
		}
		if v < 0 {
			return nil, errors.New("unknown variable: " + name)
		}
		layout := defaultLayouts[v]
		if m[4] != -1 {
			layout = pattern[m[4]:m[5]]
		}
		if v != verbTime && v != verbColor && v != verbCallpath {
			layout = "%" + layout
		}
		if v >= verbLongfile && v <= verbCallpath {
			p.callSite = append(p.callSite, name)
		}
		p.parts = append(p.parts, part{v, layout})
		prev = m[1]
	}
	if prev < len(pattern) {
		p.parts = append(p.parts, part{verbStatic, pattern[prev:]})
	}
	return p, nil
}

// CallSiteVerbs lists the call-site verbs the pattern uses, in order.
func (p *Pattern) CallSiteVerbs() []string { return p.callSite }

// Append renders r into dst, as go-logging's string formatter does.
func (p *Pattern) Append(dst []byte, r *Record) []byte {
	for _, pt := range p.parts {
		switch pt.verb {
		case verbStatic:
			dst = append(dst, pt.layout...)
		case verbTime:
			dst = r.Time.AppendFormat(dst, pt.layout)
		case verbColor:
			switch {
			case pt.layout == "reset":
				dst = append(dst, "\033[0m"...)
			case r.Level < 0 || int(r.Level) >= len(colors):
			case pt.layout == "bold":
				dst = append(dst, boldColors[r.Level]...)
			default:
				dst = append(dst, colors[r.Level]...)
			}
		case verbCallpath:
			// No call stack: go-logging's walk over zero frames.
		default:
			var v any
			switch pt.verb {
			case verbLevel:
				v = r.Level
			case verbID:
				v = r.ID
			case verbPid:
				v = pid
			case verbProgram:
				v = program
			case verbModule:
				v = r.Module
			case verbMessage:
				v = r.Message
			case verbLongfile, verbShortfile:
				v = "???:0"
			default: // the package and function verbs
				v = "???"
			}
			dst = fmt.Appendf(dst, pt.layout, v)
		}
	}
	return dst
}
