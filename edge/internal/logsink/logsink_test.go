package logsink

import (
	"bytes"
	"io"
	"log/syslog"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newSink() (*Sink, *buffer, *buffer) {
	base, out := &buffer{}, &buffer{}
	s := New(base, out)
	s.now = func() time.Time { return time.Date(2026, 12, 7, 9, 15, 39, 123e6, time.UTC) }
	return s, base, out
}

func TestFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		set  Settings
		want string // on stdout
		base string // on the process's writer
	}{
		{"no telemetry/logging: the process's own output", Settings{},
			"", `{"level":"warn","backend":"GET /a backend[0]","message":"backend call failed"}` + "\n"},
		{"default with prefix", Settings{Format: "default", Prefix: "[EDGE]", Stdout: true},
			"[EDGE] 2026/12/07 - 09:15:39.123 \033[33m▶ WARNING\033[0m backend call failed backend=\"GET /a backend[0]\"\n", ""},
		{"logstash drops the prefix", Settings{Format: "logstash", Prefix: "[EDGE]", Stdout: true},
			`{"@timestamp":"2026-12-07T09:15:39.123+00:00", "@version": 1, "level": "WARNING", "message": "backend call failed backend=\"GET /a backend[0]\"", "module": "KRAKEND"}` + "\n", ""},
		{"stdout false, no syslog: nothing, as KrakenD", Settings{Format: "default", Stdout: false}, "", ""},
		{"custom drops the prefix", Settings{Format: "custom", CustomFormat: "%{id} [%{module}] %{level:.4s} %{color}%{message}%{color:reset} %{time:15:04:05.000}", Prefix: "[EDGE]", Stdout: true},
			"1 [KRAKEND] WARN \033[33mbackend call failed backend=\"GET /a backend[0]\"\033[0m 09:15:39.123\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, base, out := newSink()
			if err := s.Apply(tc.set); err != nil {
				t.Fatal(err)
			}
			log := zerolog.New(s)
			log.Warn().Str("backend", "GET /a backend[0]").Msg("backend call failed")
			if got := out.String(); got != tc.want {
				t.Errorf("stdout:\n%q\nwant\n%q", got, tc.want)
			}
			if got := base.String(); got != tc.base {
				t.Errorf("process writer:\n%q\nwant\n%q", got, tc.base)
			}
		})
	}
}

// TestSyslog writes to a real unixgram syslog socket: the line carries
// the facility and the severity of the configured level, tagged with the
// prefix, and stdout still gets its copy.
func TestSyslog(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "log.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s, _, out := newSink()
	s.SetSyslogDial(func(p syslog.Priority, tag string) (io.WriteCloser, error) {
		return syslog.Dial("unixgram", sock, p, tag)
	})
	if err := s.Apply(Settings{Format: "default", Prefix: "gw", Stdout: true, Syslog: true, Facility: "local5", Level: "warn"}); err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(s)
	log.Error().Msg("upstream gone")
	s.Close()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	got := string(buf[:n])
	// <facility*8 + severity>: local5 (21) and WARNING (4) = 172.
	if !regexp.MustCompile(`^<172>.* gw\[\d+\]: ERROR > upstream gone\n?$`).MatchString(got) {
		t.Errorf("syslog datagram %q", got)
	}
	if !strings.HasPrefix(out.String(), "gw 2026/12/07") {
		t.Errorf("stdout %q, want the prefixed line too", out.String())
	}
}

func TestFacilityAndSeverity(t *testing.T) {
	t.Parallel()
	if facility("LOCAL7") != syslog.LOG_LOCAL7 || facility("kern") != syslog.LOG_LOCAL3 || facility("") != syslog.LOG_LOCAL3 {
		t.Error("facility mapping")
	}
	if severity("warn") != syslog.LOG_WARNING || severity("debug") != syslog.LOG_DEBUG || severity("") != syslog.LOG_CRIT {
		t.Error("severity mapping")
	}
}

// TestLogstash: telemetry/logstash turns each message into
// krakend-logstash's record (sorted keys, microsecond time with offset,
// module = the prefix), inside the telemetry/logging line without the
// prefix, as KrakenD CE 2.12.1 prints it; GELF gets no log line then.
func TestLogstash(t *testing.T) {
	t.Parallel()
	s, _, out := newSink()
	var g buffer
	s.SetGELF(&g)
	if err := s.Apply(Settings{Format: "default", Prefix: "[KD]", Stdout: true, Logstash: true}); err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(s)
	log.Warn().Str("backend", "GET /a").Msg("backend call failed")
	want := " 2026/12/07 - 09:15:39.123 \x1b[33m▶ WARNING\x1b[0m " + `{"@timestamp":"2026-12-07T09:15:39.123000+00:00","@version":1,"host":"` +
		hostname + `","level":"WARNING","message":"backend call failed backend=\"GET /a\"","module":"[KD]"}` + "\n"
	if got := out.String(); got != want {
		t.Errorf("line\n got %q\nwant %q", got, want)
	}
	if g.String() != "" {
		t.Errorf("GELF got %q with telemetry/logstash", g.String())
	}
	// Without logstash GELF gets the bare message.
	if err := s.Apply(Settings{Format: "default", Stdout: true}); err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("hello")
	if g.String() != "hello" {
		t.Errorf("GELF got %q, want the bare message", g.String())
	}
}
