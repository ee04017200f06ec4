package server

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/apigw/gateway/edge/apply"
	"github.com/apigw/gateway/edge/internal/logsink"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// TestSnapshotLoggingOutput: a snapshot's telemetry/logging output
// settings reach the edge's loggers (logstash format, prefix dropped as
// KrakenD does), a snapshot without the namespace gives the process's own
// output back, and --log-format (PinLogFormat) keeps it whatever the
// snapshot says.
func TestSnapshotLoggingOutput(t *testing.T) {
	for _, pinned := range []bool{false, true} {
		base, out := &syncBuffer{}, &syncBuffer{}
		sink := logsink.New(base, out)
		h := start(t, func(c *Config, a *apply.Config) {
			log := zerolog.New(sink).With().Timestamp().Logger()
			c.Logger, a.Logger = log, log
			c.LogSink, c.PinLogFormat = sink, pinned
		})
		snap := snapshot()
		snap.Service.Logging = &gatewayv1.Logging{Level: "info", Format: "logstash", Prefix: "[EDGE]", Stdout: true}
		h.apply(t, envelope(t, 1, snap))
		h.srv.log.Info().Msg("probe one")
		none := snapshot()
		none.Service.Logging = nil
		h.apply(t, envelope(t, 2, none))
		h.srv.log.Info().Msg("probe two")
		quiet := snapshot()
		quiet.Service.Logging = &gatewayv1.Logging{Level: "info", Format: "default", Stdout: false}
		h.apply(t, envelope(t, 3, quiet))
		h.srv.log.Info().Msg("probe three")
		time.Sleep(10 * time.Millisecond)
		gotOut, gotBase := out.String(), base.String()
		if pinned {
			if gotOut != "" || !strings.Contains(gotBase, `"message":"probe one"`) || !strings.Contains(gotBase, `"message":"probe three"`) {
				t.Errorf("pinned: stdout %q, process output %q: want everything on the process output", gotOut, gotBase)
			}
			continue
		}
		if !strings.Contains(gotOut, `"level": "INFO", "message": "probe one component=server", "module": "KRAKEND"}`) || strings.Contains(gotOut, "[EDGE]") {
			t.Errorf("logstash output %q", gotOut)
		}
		if strings.Contains(gotOut, "probe two") || !strings.Contains(gotBase, `"message":"probe two"`) {
			t.Errorf("after a snapshot without telemetry/logging: stdout %q, process output %q", gotOut, gotBase)
		}
		if strings.Contains(gotOut+gotBase, "probe three") {
			t.Errorf("stdout false and no syslog still wrote a line (KrakenD writes none)")
		}
	}
}
