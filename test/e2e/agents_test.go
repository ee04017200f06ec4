package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apigw/gateway/test/testenv"
)

// TestFleetAgentStatus: a pushed config with an async agent on a real
// RabbitMQ runs the agent on the edge, and gwctl status shows the agent and
// its connection state as the edge reports it on the sync stream.
func TestFleetAgentStatus(t *testing.T) {
	mq := testenv.SharedRabbitMQ(t)
	bins := testenv.Build(t)
	var calls atomic.Int32
	backend := testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{}`)
	}))
	dir := t.TempDir()
	cfg := testenv.WriteFile(t, dir, "agent.json", fmt.Sprintf(`{"version": 3, "host": [%[1]q],
		"endpoints": [{"endpoint": "/hello", "backend": [{"url_pattern": "/hello"}]}],
		"async_agent": [{"name": "fleet-agent", "connection": {"backoff_strategy": "linear"},
			"backend": [{"url_pattern": "/events", "method": "POST"}],
			"extra_config": {"async/amqp": {"host": %[2]q, "name": "fleet-agent-q", "exchange": "fleet", "durable": true}}}]}`, backend.URL, mq.URL))
	cp := testenv.StartControlPlane(t, bins, filepath.Join(dir, "cp"))
	e := testenv.StartEdge(t, bins, cp, "edge-agents-1", "eu-west", filepath.Join(dir, "e"), "--keepalive", "200ms")
	if r := testenv.Gwctl(t, bins, cp, "push", cfg, "--wait", "--timeout", "20s"); r.Code != 0 {
		t.Fatalf("push: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	e.WaitVersion(t, 1, 10*time.Second)
	testenv.Eventually(t, 20*time.Second, func() error {
		r := testenv.Gwctl(t, bins, cp, "status")
		if r.Code != 0 {
			return fmt.Errorf("status: exit %d %s", r.Code, r.Stderr)
		}
		for _, line := range strings.Split(r.Stdout, "\n") {
			if strings.Contains(line, "fleet-agent") && strings.Contains(line, "connected") && strings.Contains(line, "edge-agents-1") {
				return nil
			}
		}
		return fmt.Errorf("status does not show the connected agent:\n%s", r.Stdout)
	})
	// protojson varies its whitespace on purpose: decode, do not grep.
	r := testenv.Gwctl(t, bins, cp, "status", "-o", "json")
	var st struct {
		Edges []struct {
			NodeID string `json:"node_id"`
			Agents []struct {
				Name  string `json:"name"`
				State string `json:"state"`
			} `json:"agents"`
		} `json:"edges"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, r.Stdout)
	}
	found := false
	for _, e := range st.Edges {
		for _, a := range e.Agents {
			found = found || (e.NodeID == "edge-agents-1" && a.Name == "fleet-agent" && a.State == "connected")
		}
	}
	if !found {
		t.Errorf("status -o json does not show edge-agents-1's connected fleet-agent:\n%s", r.Stdout)
	}
}
