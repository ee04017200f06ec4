package service

import (
	"strings"
	"testing"
	"time"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// TestFleetKeepsBoundedAgentReports: an edge's keepalive sets its agents
// in status, bounded in count and text, and only from the stream that owns
// the entry.
func TestFleetKeepsBoundedAgentReports(t *testing.T) {
	m := newMetrics(newEdgesCollector(func() map[regionState]int { return nil }))
	f := newFleet(3, time.Hour, m)
	now := time.Now()
	id, err := f.connect(hello("a", "eu"), nil, "", func(error) {}, now)
	if err != nil {
		t.Fatal(err)
	}
	ka := &gatewayv1.Keepalive{}
	for range maxReportedAgents + 5 {
		ka.Agents = append(ka.Agents, &gatewayv1.AgentState{Name: "ag", State: "connected", LastError: strings.Repeat("x", 5000)})
	}
	f.keepalive("a", id, ka, now)
	f.keepalive("a", id+99, &gatewayv1.Keepalive{}, now) // a stale stream: ignored
	got := f.list(func(string) (uint64, string) { return 0, "" })[0].GetAgents()
	if len(got) != maxReportedAgents {
		t.Fatalf("kept %d agents, want %d", len(got), maxReportedAgents)
	}
	if n := len(got[0].GetLastError()); n != maxAgentText {
		t.Errorf("last error kept %d bytes, want %d", n, maxAgentText)
	}
	f.keepalive("a", id, &gatewayv1.Keepalive{}, now)
	if got := f.list(func(string) (uint64, string) { return 0, "" })[0].GetAgents(); len(got) != 0 {
		t.Errorf("agents after a keepalive without any: %v", got)
	}
}
