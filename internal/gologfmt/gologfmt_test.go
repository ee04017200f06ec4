package gologfmt

import (
	"strings"
	"testing"
	"time"
)

// The expected lines were produced by KrakenD CE 2.12.1 (/work/ref/krakend)
// with the same patterns; time, id and pid differ per run and are fixed here.
func TestAppendAsGoLogging(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 49, 40, 721_000_000, time.Local)
	rec := func(l Level, id uint64, msg string) *Record {
		return &Record{Time: at, Level: l, ID: id, Module: "KRAKEND", Message: msg}
	}
	tests := []struct {
		pattern string
		rec     *Record
		want    string
	}{
		// KrakenD's default pattern: the color of the level, then a reset
		// even for INFO (which has no color).
		{` %{time:2006/01/02 - 15:04:05.000} %{color}▶ %{level}%{color:reset} %{message}`, rec(Debug, 1, "[SERVICE: telemetry/logging] Improved logging started."),
			" 2026/12/07 - 12:49:40.721 \033[36m▶ DEBUG\033[0m [SERVICE: telemetry/logging] Improved logging started."},
		{` %{time:2006/01/02 - 15:04:05.000} %{color}▶ %{level}%{color:reset} %{message}`, rec(Info, 2, "Starting KrakenD v2.12.1"),
			" 2026/12/07 - 12:49:40.721 ▶ INFO\033[0m Starting KrakenD v2.12.1"},
		{`%{id} [%{module}] %{level:.4s} %{level:-8s}| %{color}%{message}%{color:reset} %{time:15:04}`, rec(Error, 11, "[SERVICE: Gin] listen tcp :18090: bind: address already in use"),
			"11 [KRAKEND] ERRO ERROR   | \033[31m[SERVICE: Gin] listen tcp :18090: bind: address already in use\033[0m 12:49"},
		// go-logging's regexp quirks: %{level:x} is fmt's %x of the
		// level's name; "%{time:}" runs on to the next "}".
		{`%{message} %{level:x} %{time:} %{time} [%{color:bold}]`, rec(Debug, 1, "m"),
			"m 4445425547 } %{time [\033[36;1m]"},
		{`%{level:d} %{id:03d}`, rec(Warning, 7, ""), "2 007"},
		{`%{shortfile} %{shortfunc}|%{callpath}|`, rec(Info, 1, ""), "???:0 ???||"},
	}
	for _, tc := range tests {
		p, err := Parse(tc.pattern)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.pattern, err)
		}
		if got := string(p.Append(nil, tc.rec)); got != tc.want {
			t.Errorf("%q:\n got %q\nwant %q", tc.pattern, got, tc.want)
		}
	}
	p, _ := Parse(`%{pid} %{program}`)
	if got := string(p.Append(nil, rec(Info, 1, ""))); !strings.HasSuffix(got, " "+program) || strings.HasPrefix(got, " ") {
		t.Errorf("pid and program: %q", got)
	}
	if p, _ := Parse(`%{shortfile} %{message} %{callpath:2}`); strings.Join(p.CallSiteVerbs(), ",") != "shortfile,callpath" {
		t.Errorf("call-site verbs: %v", p.CallSiteVerbs())
	}
}

// KrakenD refuses these at start (go-logging panics with these messages).
func TestParseRefuses(t *testing.T) {
	for pattern, want := range map[string]string{
		"no verbs here": "invalid log format: no verbs here",
		"%{nope} x":     "unknown variable: nope",
		"":              "invalid log format: ",
	} {
		if _, err := Parse(pattern); err == nil || err.Error() != want {
			t.Errorf("Parse(%q) = %v, want %q", pattern, err, want)
		}
	}
}
