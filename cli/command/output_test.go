package command

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// TestMachineOutput: -o json and -o yaml print the admin API's response
// messages with proto field names, parseable by scripts.
func TestMachineOutput(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t)
	startFakeEdge(t, t, cp.sync, "edge-eu-1", "eu-west", ackAll)
	cp.waitEdges(t, 1)
	if r := cp.gwctlEnv(t, nil, "push", "testdata/good.json", "--wait", "--timeout", "10s", "--author", "alice"); r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	if r := cp.gwctlEnv(t, nil, "revoke", "token-1", "--author", "alice"); r.code != 0 {
		t.Fatalf("revoke: %s", r)
	}

	var status struct {
		Current struct {
			Version string `json:"version"`
			Author  string `json:"author"`
		} `json:"current"`
		Edges []struct {
			NodeID         string `json:"node_id"`
			Region         string `json:"region"`
			State          string `json:"state"`
			AppliedVersion string `json:"applied_version"`
		} `json:"edges"`
		RevocationSeq string `json:"revocation_seq"`
	}
	decode(t, cp.gwctlEnv(t, nil, "status", "-o", "json"), json.Unmarshal, &status)
	if status.Current.Version != "1" || len(status.Edges) != 1 || status.RevocationSeq != "1" {
		t.Fatalf("status -o json: %+v", status)
	}
	if e := status.Edges[0]; e.NodeID != "edge-eu-1" || e.Region != "eu-west" || e.State != "in_sync" || e.AppliedVersion != "1" {
		t.Errorf("status -o json edge: %+v", e)
	}

	var history struct {
		Versions []struct {
			Version string `json:"version"`
			Author  string `json:"author"`
		} `json:"versions"`
	}
	decode(t, cp.gwctlEnv(t, nil, "history", "-o", "yaml"), func(b []byte, v any) error { return yaml.Unmarshal(b, v) }, &history)
	if len(history.Versions) != 1 || history.Versions[0].Version != "1" || !strings.Contains(history.Versions[0].Author, "alice") {
		t.Errorf("history -o yaml: %+v", history)
	}

	var revs struct {
		Seq     string `json:"seq"`
		Entries []struct {
			Claim string `json:"claim"`
			Value string `json:"value"`
		} `json:"entries"`
	}
	decode(t, cp.gwctlEnv(t, nil, "revocations", "-o", "json"), json.Unmarshal, &revs)
	if revs.Seq != "1" || len(revs.Entries) != 1 || revs.Entries[0].Claim != "jti" || revs.Entries[0].Value != "token-1" {
		t.Errorf("revocations -o json: %+v", revs)
	}

	var audit struct {
		Entries []struct {
			Seq     string `json:"seq"`
			Who     string `json:"who"`
			Action  string `json:"action"`
			Outcome string `json:"outcome"`
			Version string `json:"version"`
			Diff    struct {
				Added []string `json:"added"`
			} `json:"diff"`
			Revocation struct {
				Value string `json:"value"`
			} `json:"revocation"`
		} `json:"entries"`
		NextBeforeSeq string `json:"next_before_seq"`
	}
	decode(t, cp.gwctlEnv(t, nil, "audit", "-o", "json"), json.Unmarshal, &audit)
	if len(audit.Entries) != 2 || audit.NextBeforeSeq != "0" {
		t.Fatalf("audit -o json: %+v", audit)
	}
	if e := audit.Entries[1]; e.Seq != "1" || e.Action != "push" || e.Outcome != "created" || e.Version != "1" || e.Who != "token:admin (alice)" || len(e.Diff.Added) != 2 {
		t.Errorf("audit -o json push: %+v", e)
	}
	if e := audit.Entries[0]; e.Action != "revoke" || e.Revocation.Value != "token-1" {
		t.Errorf("audit -o json revoke: %+v", e)
	}
	decode(t, cp.gwctlEnv(t, nil, "audit", "-o", "yaml"), func(b []byte, v any) error { return yaml.Unmarshal(b, v) }, &audit)
	if len(audit.Entries) != 2 {
		t.Errorf("audit -o yaml: %+v", audit)
	}

	var diff struct {
		CurrentVersion string `json:"current_version"`
		Changes        []struct {
			Op      string   `json:"op"`
			Subject string   `json:"subject"`
			Fields  []string `json:"fields"`
		} `json:"changes"`
	}
	decode(t, cp.gwctlEnv(t, nil, "diff", "testdata/good_v2.yaml", "-o", "json"), json.Unmarshal, &diff)
	ops := map[string]string{}
	for _, ch := range diff.Changes {
		ops[ch.Subject] = ch.Op
	}
	if diff.CurrentVersion != "1" || ops["GET /items/{id}"] != "removed" || ops["POST /users"] != "added" || ops["GET /hello"] != "changed" {
		t.Errorf("diff -o json: %+v", diff)
	}
	decode(t, cp.gwctlEnv(t, nil, "diff", "testdata/good.json", "-o", "yaml"), func(b []byte, v any) error { return yaml.Unmarshal(b, v) }, &diff)
	if diff.CurrentVersion != "1" || len(diff.Changes) != 0 {
		t.Errorf("diff -o yaml of the current content: %+v", diff)
	}

	var validate struct {
		Sha256     string `json:"sha256"`
		Violations []struct {
			Path string `json:"path"`
			Kind string `json:"kind"`
		} `json:"violations"`
		Warnings []struct {
			Path string `json:"path"`
		} `json:"warnings"`
	}
	decode(t, cp.gwctlEnv(t, nil, "validate", "testdata/warned.json", "-o", "json"), json.Unmarshal, &validate)
	if len(validate.Sha256) != 64 || len(validate.Violations) != 0 || len(validate.Warnings) == 0 {
		t.Errorf("validate -o json: %+v", validate)
	}
	r := cp.gwctlEnv(t, nil, "validate", "testdata/bad.json", "-o", "json")
	if r.code != ExitRejected {
		t.Fatalf("validate bad -o json: exit %d\n%s", r.code, r)
	}
	validate.Sha256, validate.Violations = "", nil
	if err := json.Unmarshal([]byte(r.stdout), &validate); err != nil || validate.Sha256 != "" || len(validate.Violations) < 2 || validate.Violations[0].Path == "" {
		t.Errorf("validate bad -o json: %v %+v\n%s", err, validate, r.stdout)
	}

	if r := cp.gwctlEnv(t, nil, "status", "-o", "xml"); r.code != ExitUsage {
		t.Errorf("status -o xml: exit %d, want %d\n%s", r.code, ExitUsage, r)
	}
}

func decode(t *testing.T, r result, unmarshal func([]byte, any) error, into any) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r)
	}
	data := []byte(r.stdout)
	data = bytes.TrimPrefix(data, []byte("---\n"))
	if err := unmarshal(data, into); err != nil {
		t.Fatalf("output does not parse: %v\n%s", err, r.stdout)
	}
}

// syncBuffer is a bytes.Buffer the watch goroutine writes while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStatusWatch: status --watch prints a first frame, a second one when
// a push changes the fleet's status (and none while nothing changes), and
// ends with exit 0 when its context is cancelled (Ctrl-C).
func TestStatusWatch(t *testing.T) {
	t.Parallel()
	cp := startControlPlane(t)
	startFakeEdge(t, t, cp.sync, "edge-eu-1", "eu-west", ackAll)
	cp.waitEdges(t, 1)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--server", cp.admin, "--token-file", cp.tokenFile,
			"status", "--watch", "--watch-interval", "100ms", "-o", "yaml"}, &stdout, &stderr, testEnv(nil))
	}()
	frames := func() int { return strings.Count(stdout.String(), "---\n") }
	waitFor(t, "the first frame", func() bool { return frames() >= 1 })
	// Several polls with nothing changed print nothing new.
	time.Sleep(350 * time.Millisecond) // pacing only: three polls go by; the assertion is on their output
	if n := frames(); n != 1 {
		t.Fatalf("%d frames before any change, want 1:\n%s", n, stdout.String())
	}
	if r := cp.gwctlEnv(t, nil, "push", "testdata/good.json", "--author", "alice"); r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	waitFor(t, "a frame showing version 1", func() bool {
		out := stdout.String()
		return frames() >= 2 && strings.Contains(out[strings.LastIndex(out, "---\n"):], "version: \"1\"")
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("watch ended with %v (exit %d), want exit 0\n%s", err, ExitCode(err), stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not stop after cancel")
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
