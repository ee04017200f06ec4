package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// TestTelemetryLoggingOutput: a real gw-edge started without --log-format
// writes its logs as the config's telemetry/logging says: KrakenD's
// default line after the prefix, at the configured level, for its own
// lines (listening) and the sampled backend-failure warning alike.
func TestTelemetryLoggingOutput(t *testing.T) {
	bins := testenv.Build(t)
	b := testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError) // a failed backend is logged at warn
	}))
	cfg := func(logging string) string {
		return testenv.WriteFile(t, t.TempDir(), "krakend.json", fmt.Sprintf(`{
  "version": 3,
  "extra_config": {"telemetry/logging": %s, "router": {"disable_access_log": true}},
  "endpoints": [{"endpoint": "/fail", "backend": [{"host": [%q], "url_pattern": "/x"}]}]
}`, logging, b.URL))
	}
	t.Run("default format with prefix", func(t *testing.T) {
		e := testenv.Start(t, "gw-edge", bins.Edge, "run", "-c", cfg(`{"level": "INFO", "prefix": "[EDGE-E2E]", "stdout": true}`),
			"--listen", "127.0.0.1:0")
		line := regexp.MustCompile(`^\[EDGE-E2E\] \d{4}/\d\d/\d\d - \d\d:\d\d:\d\d\.\d{3} ` + "\x1b\\[33m▶ WARNING\x1b\\[0m" + ` backend call failed .*reason=status`)
		var addr string
		testenv.Eventually(t, 10*time.Second, func() error {
			for _, l := range e.Lines() {
				if m := regexp.MustCompile(`^\[EDGE-E2E\] \d{4}/\d\d/\d\d - [0-9:.]+ ▶ INFO` + "\x1b\\[0m" + ` listening addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(l); m != nil {
					addr = m[1]
				}
			}
			if addr == "" {
				return errorf("no KrakenD-format listening line yet: %q", e.Lines())
			}
			return nil
		})
		testenv.Get(t, "http://"+addr+"/fail")
		testenv.Eventually(t, 10*time.Second, func() error {
			for _, l := range e.Lines() {
				if line.MatchString(l) {
					return nil
				}
			}
			return errorf("no KrakenD-format warning line in %q", e.Lines())
		})
		for _, l := range e.Lines() {
			if strings.Contains(l, "▶ DEBUG") || strings.Contains(l, `"level":"debug"`) {
				t.Errorf("a line below INFO was written: %q", l)
			}
		}
	})
	t.Run("logstash", func(t *testing.T) {
		e := testenv.Start(t, "gw-edge", bins.Edge, "run", "-c", cfg(`{"level": "INFO", "prefix": "[DROPPED]", "stdout": true, "format": "logstash"}`),
			"--listen", "127.0.0.1:0")
		listening := regexp.MustCompile(`^\{"@timestamp":"[0-9T:.-]+\+00:00", "@version": 1, "level": "INFO", "message": "listening addr=(127\.0\.0\.1:\d+) `)
		var addr string
		testenv.Eventually(t, 10*time.Second, func() error {
			for _, l := range e.Lines() {
				if m := listening.FindStringSubmatch(l); m != nil {
					addr = m[1]
					return nil
				}
			}
			return errorf("no logstash listening line yet: %q", e.Lines())
		})
		testenv.Get(t, "http://"+addr+"/fail")
		testenv.Eventually(t, 10*time.Second, func() error {
			for _, l := range e.Lines() {
				if strings.Contains(l, `"level": "WARNING", "message": "backend call failed `) && strings.HasSuffix(l, `"module": "KRAKEND"}`) {
					return nil
				}
			}
			return errorf("no logstash warning line in %q", e.Lines())
		})
		for _, l := range e.Lines() {
			if strings.Contains(l, "[DROPPED]") {
				t.Errorf("logstash line carries the prefix: %q", l)
			}
		}
	})
	// format custom: go-logging's pattern, as KrakenD CE 2.12.1 renders it
	// (compared by hand against /work/ref/krakend with this pattern): the
	// record id, the module, a cut level, the level's color, no prefix.
	t.Run("custom", func(t *testing.T) {
		e := testenv.Start(t, "gw-edge", bins.Edge, "run", "-c", cfg(`{"level": "INFO", "prefix": "[DROPPED]", "stdout": true, "format": "custom", "custom_format": "%{id} %{program} [%{module}] %{level:.4s} %{level:-8s}| %{color}%{message}%{color:reset}"}`),
			"--listen", "127.0.0.1:0")
		listening := regexp.MustCompile(`^(\d+) gw-edge \[KRAKEND\] INFO INFO    \| listening addr=(127\.0\.0\.1:\d+) .*` + "\x1b\\[0m$")
		var addr string
		testenv.Eventually(t, 10*time.Second, func() error {
			for _, l := range e.Lines() {
				if m := listening.FindStringSubmatch(l); m != nil {
					addr = m[2]
					return nil
				}
			}
			return errorf("no custom listening line yet: %q", e.Lines())
		})
		testenv.Get(t, "http://"+addr+"/fail")
		warn := regexp.MustCompile(`^\d+ gw-edge \[KRAKEND\] WARN WARNING \| ` + "\x1b\\[33m" + `backend call failed .*reason=status.*` + "\x1b\\[0m$")
		testenv.Eventually(t, 10*time.Second, func() error {
			for _, l := range e.Lines() {
				if warn.MatchString(l) {
					return nil
				}
			}
			return errorf("no custom warning line in %q", e.Lines())
		})
		for _, l := range e.Lines() {
			if strings.Contains(l, "[DROPPED]") {
				t.Errorf("custom line carries the prefix: %q", l)
			}
		}
	})
}
