package config

import (
	"os"
	"strings"
	"testing"
)

// krakendCENamespaces is every extra_config namespace KrakenD CE v2.12.1
// reads, by level (its short names). The README's table must list each.
var krakendCENamespaces = map[string][]string{
	"service": {"router", "telemetry/logging", "telemetry/metrics", "telemetry/opentelemetry",
		"telemetry/gelf", "telemetry/logstash", "telemetry/influx", "telemetry/opencensus",
		"auth/validator", "auth/revoker", "security/cors", "security/http", "security/bot-detector",
		"plugin/http-server"},
	"endpoint": {"proxy", "auth/validator", "auth/signer", "qos/ratelimit/router", "validation/json-schema",
		"validation/cel", "security/bot-detector", "modifier/lua-endpoint", "modifier/lua-proxy",
		"telemetry/opentelemetry", "plugin/req-resp-modifier"},
	"backend": {"backend/http", "backend/http/client", "proxy", "qos/ratelimit/proxy", "qos/circuit-breaker",
		"qos/http-cache", "modifier/martian", "telemetry/opentelemetry", "auth/client-credentials",
		"backend/amqp/consumer", "backend/amqp/producer", "backend/lambda", "backend/pubsub/publisher",
		"backend/pubsub/subscriber", "backend/graphql", "modifier/lua-backend", "validation/cel",
		"plugin/http-client", "plugin/req-resp-modifier"},
	"async_agent": {"async/amqp"},
}

// TestREADMENamespaceTable keeps the README's namespace table in step with
// the decoder: every namespace the decoder supports is listed as supported
// at its level, every one listed as refused is refused by the decoder, and
// every KrakenD CE namespace is listed.
func TestREADMENamespaceTable(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i, j := strings.Index(text, "<!-- namespaces:begin"), strings.Index(text, "<!-- namespaces:end -->")
	if i < 0 || j < i {
		t.Fatal("README.md has no namespaces:begin/end table")
	}
	status := map[string]map[string]string{} // level -> namespace -> status
	for _, line := range strings.Split(text[i:j], "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 || !strings.Contains(cells[2], "`") {
			continue
		}
		level, ns := strings.TrimSpace(cells[1]), strings.Trim(strings.TrimSpace(cells[2]), "`")
		if status[level] == nil {
			status[level] = map[string]string{}
		}
		status[level][ns] = strings.TrimSpace(cells[3])
	}
	supported := map[string][]string{
		"service":     namesOf(serviceNamespaces),
		"endpoint":    namesOf(endpointNamespaces),
		"backend":     namesOf(backendNamespaces),
		"async_agent": namesOf(agentNamespaces),
	}
	for level, names := range supported {
		for _, ns := range names {
			if st := status[level][ns]; !strings.HasPrefix(st, "supported") {
				t.Errorf("%s namespace %q is supported by the decoder but the README table says %q", level, ns, st)
			}
		}
		for ns, st := range status[level] {
			if strings.HasPrefix(st, "supported") && !contains(names, ns) {
				t.Errorf("README table says %s namespace %q is supported; the decoder refuses it", level, ns)
			}
			if !strings.HasPrefix(st, "supported") && !strings.HasPrefix(st, "refused") {
				t.Errorf("README table: %s namespace %q has status %q (want supported or refused)", level, ns, st)
			}
		}
	}
	for level, names := range krakendCENamespaces {
		for _, ns := range names {
			if status[level][ns] == "" {
				t.Errorf("KrakenD CE %s namespace %q is missing from the README table", level, ns)
			}
		}
	}
	if len(status) != 4 {
		t.Errorf("README table levels = %v, want service, endpoint, backend, async_agent", status)
	}
}

func namesOf[T any](table []namespace[T]) []string {
	out := make([]string, len(table))
	for i, ns := range table {
		out[i] = ns.name
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
