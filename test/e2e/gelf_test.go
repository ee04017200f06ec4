package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// gelfInput is a Graylog input written for the test: it decodes the GELF
// messages it receives over UDP (gzip, unchunked) or TCP (NUL-framed JSON)
// and keeps their short_message.
type gelfInput struct {
	addr string
	mu   sync.Mutex // guards shorts
	msgs []map[string]any
}

func (g *gelfInput) add(b []byte) {
	var m map[string]any
	if json.Unmarshal(b, &m) == nil {
		g.mu.Lock()
		g.msgs = append(g.msgs, m)
		g.mu.Unlock()
	}
}

// find returns the first message whose short_message matches re.
func (g *gelfInput) find(re *regexp.Regexp) map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range g.msgs {
		if s, _ := m["short_message"].(string); re.MatchString(s) {
			return m
		}
	}
	return nil
}

func startGELFInput(t *testing.T, tcp bool) *gelfInput {
	t.Helper()
	g := &gelfInput{}
	if tcp {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		g.addr = ln.Addr().String()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					r := bufio.NewReader(c)
					for {
						frame, err := r.ReadBytes(0)
						if err != nil {
							return
						}
						g.add(frame[:len(frame)-1])
					}
				}()
			}
		}()
		return g
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	g.addr = pc.LocalAddr().String()
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			zr, err := gzip.NewReader(bytes.NewReader(buf[:n]))
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(zr)
			g.add(b)
		}
	}()
	return g
}

// TestGELF: a real gw-edge with telemetry/gelf sends its access log and,
// with telemetry/logging, its log lines (the bare message) to a Graylog
// input, over UDP and over TCP.
func TestGELF(t *testing.T) {
	bins := testenv.Build(t)
	b := testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/x" {
			w.WriteHeader(http.StatusInternalServerError) // a failed backend is logged at warn
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	for _, tcp := range []bool{false, true} {
		t.Run(map[bool]string{false: "udp", true: "tcp"}[tcp], func(t *testing.T) {
			in := startGELFInput(t, tcp)
			cfg := testenv.WriteFile(t, t.TempDir(), "krakend.json", fmt.Sprintf(`{
  "version": 3,
  "extra_config": {
    "telemetry/logging": {"level": "INFO", "stdout": true},
    "telemetry/gelf": {"address": %q, "enable_tcp": %v}
  },
  "endpoints": [
    {"endpoint": "/fail", "backend": [{"host": [%[3]q], "url_pattern": "/x"}]},
    {"endpoint": "/ok", "backend": [{"host": [%[3]q], "url_pattern": "/y"}]}
  ]
}`, in.addr, tcp, b.URL))
			e := testenv.Start(t, "gw-edge", bins.Edge, "run", "-c", cfg, "--listen", "127.0.0.1:0")
			var addr string
			listening := regexp.MustCompile(`▶ INFO(?:\x1b\[0m)? listening addr=(127\.0\.0\.1:\d+)`)
			testenv.Eventually(t, 10*time.Second, func() error {
				for _, l := range e.Lines() {
					if m := listening.FindStringSubmatch(l); m != nil {
						addr = m[1]
						return nil
					}
				}
				return errorf("no listening line yet: %q", e.Lines())
			})
			if st, _, _ := testenv.Get(t, "http://"+addr+"/ok"); st != 200 {
				t.Fatalf("GET /ok: %d", st)
			}
			testenv.Get(t, "http://"+addr+"/fail")
			var access, warn map[string]any
			testenv.Eventually(t, 10*time.Second, func() error {
				access = in.find(regexp.MustCompile(`^\[GIN\] .*\| 200 \|.*"/ok"$`))
				warn = in.find(regexp.MustCompile(`^backend call failed .*reason=status`))
				if access == nil || warn == nil {
					return errorf("access line %v, warning %v: not both received", access != nil, warn != nil)
				}
				return nil
			})
			for _, m := range []map[string]any{access, warn} {
				if m["version"] != "1.1" || m["level"] != float64(6) || m["host"] == "" {
					t.Errorf("GELF fields of %v", m)
				}
			}
			// go-gelf's _file/_line: the standard-library frame that called
			// its Write in KrakenD CE 2.12.1 (seen on its binary).
			if access["_file"] != "/usr/local/go/src/fmt/print.go" || access["_line"] != float64(263) {
				t.Errorf("access line _file %v _line %v", access["_file"], access["_line"])
			}
			if warn["_file"] != "/usr/local/go/src/log/log.go" || warn["_line"] != float64(244) {
				t.Errorf("log line _file %v _line %v", warn["_file"], warn["_line"])
			}
			if s, _ := warn["short_message"].(string); strings.Contains(s, "▶") {
				t.Errorf("log line sent with KrakenD's pattern, want the bare message: %q", s)
			}
		})
	}
}

// TestLogstash: a real gw-edge with telemetry/logstash prints each log
// message as krakend-logstash's record inside telemetry/logging's line, as
// KrakenD CE 2.12.1 does:
//
//	2026/12/07 - 12:59:39.035 ▶ INFO\x1b[0m {"@timestamp":"2026-12-07T12:59:39.035054+00:00","@version":1,"host":"vm","level":"INFO","message":"...","module":"[KD]"}
func TestLogstash(t *testing.T) {
	bins := testenv.Build(t)
	cfg := testenv.WriteFile(t, t.TempDir(), "krakend.json", `{
  "version": 3,
  "extra_config": {
    "telemetry/logging": {"level": "INFO", "prefix": "[KD]", "stdout": true},
    "telemetry/logstash": {"enabled": true}
  },
  "endpoints": [{"endpoint": "/a", "backend": [{"host": ["http://127.0.0.1:9"], "url_pattern": "/a"}]}]
}`)
	e := testenv.Start(t, "gw-edge", bins.Edge, "run", "-c", cfg, "--listen", "127.0.0.1:0")
	line := regexp.MustCompile(`^ \d{4}/\d\d/\d\d - \d\d:\d\d:\d\d\.\d{3} ▶ INFO(?:\x1b\[0m)? (\{.*\})$`)
	testenv.Eventually(t, 10*time.Second, func() error {
		for _, l := range e.Lines() {
			m := line.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(m[1]), &rec); err != nil {
				return errorf("record %q: %v", m[1], err)
			}
			msg, _ := rec["message"].(string)
			if !strings.HasPrefix(msg, "listening") {
				continue
			}
			ts, _ := rec["@timestamp"].(string)
			if rec["module"] != "[KD]" || rec["level"] != "INFO" || rec["@version"] != float64(1) || rec["host"] == "" ||
				!regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d$`).MatchString(ts) {
				t.Errorf("record %v", rec)
			}
			if !strings.HasPrefix(m[1], `{"@timestamp":`) {
				t.Errorf("keys not in krakend-logstash's (sorted) order: %s", m[1])
			}
			return nil
		}
		return errorf("no logstash listening line yet: %q", e.Lines())
	})
}
