package command

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// result is one gwctl run.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// testEnv is a process environment for run: variables from vars, a clock
// stopped at the Unix epoch (every "ago" is "0s ago", every wait takes 0s),
// no terminal.
func testEnv(vars map[string]string) env {
	return env{
		getenv: func(k string) string { return vars[k] },
		now:    func() time.Time { return time.Unix(0, 0) },
		environ: func() []string {
			out := make([]string, 0, len(vars))
			for k, v := range vars {
				out = append(out, k+"="+v)
			}
			return out
		},
	}
}

func runCLI(t *testing.T, e env, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr, e)
	r := result{code: ExitCode(err), stdout: stdout.String(), stderr: stderr.String()}
	if (err == nil) != (r.code == 0) {
		t.Fatalf("run returned %v with exit code %d", err, r.code)
	}
	return r
}

var (
	reSHA256   = regexp.MustCompile(`\b[0-9a-f]{64}\b`)
	reSHA12    = regexp.MustCompile(`(?m)(^\d+\s+|sha256 )[0-9a-f]{12}\b`)
	reDateTime = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`)
	reProgress = regexp.MustCompile(`^\d+/\d+ edges on v\d+$`)
	reTempDir  = regexp.MustCompile(`/[^\s:]*/testdata/`)
)

// normalise removes what varies between runs: hashes (they depend on the
// compiler's output, which its owner may change), local times, temporary
// paths, and the progress lines printed while waiting (how many appear
// depends on timing; the last one is kept).
func normalise(s string) string {
	s = reSHA256.ReplaceAllString(s, "<sha256>")
	s = reSHA12.ReplaceAllString(s, "${1}<sha256-pre>")
	s = reDateTime.ReplaceAllString(s, "YYYY-MM-DD hh:mm:ss")
	s = reTempDir.ReplaceAllString(s, "testdata/")
	lines := strings.Split(s, "\n")
	lastProgress := -1
	for i, l := range lines {
		if reProgress.MatchString(l) {
			lastProgress = i
		}
	}
	out := lines[:0]
	for i, l := range lines {
		if reProgress.MatchString(l) && i != lastProgress {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// golden compares got with testdata/name.golden (rewritten with -update).
func golden(t *testing.T, name string, got result) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	text := normalise(got.String())
	if *update {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), text); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

func TestValidateGolden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		wantCode int
	}{
		{name: "validate_good", args: []string{"validate", "testdata/good.json"}, wantCode: ExitOK},
		{name: "validate_good_yaml", args: []string{"validate", "testdata/good_v2.yaml"}, wantCode: ExitOK},
		{name: "validate_bad", args: []string{"validate", "testdata/bad.json"}, wantCode: ExitRejected},
		{name: "validate_missing", args: []string{"validate", "testdata/missing.json"}, wantCode: ExitRejected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, testEnv(nil), tc.args...)
			if r.code != tc.wantCode {
				t.Errorf("exit %d, want %d\n%s", r.code, tc.wantCode, r)
			}
			golden(t, tc.name, r)
		})
	}
}

func TestValidateBadListsEveryViolation(t *testing.T) {
	t.Parallel()
	r := runCLI(t, testEnv(nil), "validate", "testdata/bad.json")
	for _, want := range []string{
		"endpoints[0].backend[0].host[0]",
		"endpoints[1].method",
		"endpoints[1].backend[0].url_pattern",
		"endpoints[2].backend[0].encodin",
		"endpoints[2].endpoint",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if strings.Count(line, ": ") < 2 {
			t.Errorf("%q is not path: kind: detail", line)
		}
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
		wantStdout string
	}{
		{name: "no command", args: nil, wantCode: ExitUsage, wantStderr: "no command given"},
		{name: "unknown command", args: []string{"apply"}, wantCode: ExitUsage, wantStderr: `unknown command "apply"`},
		{name: "unknown global flag", args: []string{"--nope", "status"}, wantCode: ExitUsage, wantStderr: "flag provided but not defined"},
		{name: "help", args: []string{"--help"}, wantCode: ExitOK, wantStderr: "Commands:"},
		{name: "help command", args: []string{"help"}, wantCode: ExitOK, wantStdout: "Exit codes:"},
		{name: "push help", args: []string{"push", "--help"}, wantCode: ExitOK, wantStderr: "gwctl push FILE"},
		{name: "validate help", args: []string{"validate", "-h"}, wantCode: ExitOK, wantStderr: "gwctl validate FILE"},
		{name: "diff help", args: []string{"diff", "--help"}, wantCode: ExitOK, wantStderr: "gwctl diff FILE"},
		{name: "status help", args: []string{"status", "--help"}, wantCode: ExitOK, wantStderr: "gwctl status"},
		{name: "history help", args: []string{"history", "--help"}, wantCode: ExitOK, wantStderr: "--limit"},
		{name: "rollback help", args: []string{"rollback", "--help"}, wantCode: ExitOK, wantStderr: "gwctl rollback VERSION"},
		{name: "revoke help", args: []string{"revoke", "--help"}, wantCode: ExitOK, wantStderr: "gwctl revoke VALUE"},
		{name: "revocations help", args: []string{"revocations", "--help"}, wantCode: ExitOK, wantStderr: "gwctl revocations"},
		{name: "revoke without value", args: []string{"revoke"}, wantCode: ExitUsage, wantStderr: "want 1 argument(s)"},
		{name: "push without file", args: []string{"push"}, wantCode: ExitUsage, wantStderr: "want 1 argument(s), got 0"},
		{name: "validate two files", args: []string{"validate", "a", "b"}, wantCode: ExitUsage, wantStderr: "got 2"},
		{name: "status with argument", args: []string{"status", "x"}, wantCode: ExitUsage, wantStderr: "want 0 argument(s)"},
		{name: "rollback not a number", args: []string{"rollback", "v3"}, wantCode: ExitUsage, wantStderr: `"v3" is not a version number`},
		{name: "bad timeout", args: []string{"--timeout", "0s", "status"}, wantCode: ExitUsage, wantStderr: "--timeout"},
		{name: "bad push timeout", args: []string{"push", "f", "--wait", "--timeout", "-1s"}, wantCode: ExitUsage, wantStderr: "--timeout"},
		{name: "bad limit", args: []string{"history", "--limit", "0"}, wantCode: ExitUsage, wantStderr: "--limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, testEnv(map[string]string{"GWCTL_TOKEN": "x"}), tc.args...)
			if r.code != tc.wantCode {
				t.Errorf("exit %d, want %d\n%s", r.code, tc.wantCode, r)
			}
			if !strings.Contains(r.stderr, tc.wantStderr) || !strings.Contains(r.stdout, tc.wantStdout) {
				t.Errorf("output lacks %q / %q:\n%s", tc.wantStderr, tc.wantStdout, r)
			}
		})
	}
}

func TestParseMixesFlagsAndArguments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		want     int
		wantPos  []string
		wantWait bool
	}{
		{name: "flags after", args: []string{"f.json", "--wait"}, want: 1, wantPos: []string{"f.json"}, wantWait: true},
		{name: "flags before", args: []string{"--wait", "f.json"}, want: 1, wantPos: []string{"f.json"}, wantWait: true},
		{name: "double dash", args: []string{"--", "--wait"}, want: 1, wantPos: []string{"--wait"}},
		{name: "none", args: nil, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(&bytes.Buffer{})
			wait := fs.Bool("wait", false, "")
			pos, err := parse(fs, tc.args, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantPos, pos); diff != "" {
				t.Errorf("positional (-want +got):\n%s", diff)
			}
			if *wait != tc.wantWait {
				t.Errorf("wait = %v", *wait)
			}
		})
	}
}

func TestTokenPrecedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flagFile := write("flag.token", "from-flag\n")
	envFile := write("env.token", "from-env-file\n")
	if err := os.MkdirAll(filepath.Join(dir, "state", "apigw", "controlplane"), 0o700); err != nil {
		t.Fatal(err)
	}
	write("state/apigw/controlplane/admin.token", "from-default\n")

	tests := []struct {
		name      string
		tokenFile string
		vars      map[string]string
		want      string
		wantCode  int
	}{
		{name: "flag wins", tokenFile: flagFile, vars: map[string]string{"GWCTL_TOKEN": "env", "GWCTL_TOKEN_FILE": envFile}, want: "from-flag"},
		{name: "env token", vars: map[string]string{"GWCTL_TOKEN": "env", "GWCTL_TOKEN_FILE": envFile}, want: "env"},
		{name: "env file", vars: map[string]string{"GWCTL_TOKEN_FILE": envFile}, want: "from-env-file"},
		{name: "xdg default", vars: map[string]string{"XDG_STATE_HOME": filepath.Join(dir, "state")}, want: "from-default"},
		{name: "home default missing", vars: map[string]string{"HOME": filepath.Join(dir, "nohome")}, wantCode: ExitUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &cli{env: testEnv(tc.vars), tokenFile: tc.tokenFile}
			got, err := c.token()
			if code := ExitCode(err); code != tc.wantCode {
				t.Fatalf("exit %d (%v), want %d", code, err, tc.wantCode)
			}
			if got != tc.want {
				t.Errorf("token %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRPCErrorMapping(t *testing.T) {
	t.Parallel()
	withViolations := func(details ...protoadapt.MessageV1) error {
		st, err := status.New(codes.InvalidArgument, "push: invalid config").WithDetails(details...)
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	vs := []*gatewayv1.FieldViolation{{Path: "endpoints[0].endpoint", Kind: "invalid", Detail: "must start with /"}}
	tests := []struct {
		name       string
		err        error
		wantCode   int
		wantStderr string
	}{
		{name: "unavailable", err: status.Error(codes.Unavailable, "connection refused"), wantCode: ExitUnavailable},
		{name: "unauthenticated", err: status.Error(codes.Unauthenticated, "invalid bearer token"), wantCode: ExitUnavailable},
		{name: "deadline", err: status.Error(codes.DeadlineExceeded, "slow"), wantCode: ExitTimeout},
		{name: "context deadline", err: context.DeadlineExceeded, wantCode: ExitTimeout},
		{name: "not found", err: status.Error(codes.NotFound, "version 9"), wantCode: ExitRejected},
		{name: "internal", err: status.Error(codes.Internal, "boom"), wantCode: ExitRejected},
		{
			name:       "validate response detail",
			err:        withViolations(protoadapt.MessageV1Of(&gatewayv1.ValidateResponse{Violations: vs})),
			wantCode:   ExitRejected,
			wantStderr: "endpoints[0].endpoint: invalid: must start with /\n",
		},
		{
			name: "bad request detail",
			err: withViolations(protoadapt.MessageV1Of(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
				{Field: "endpoints[0].endpoint", Description: "invalid: must start with /"},
			}})),
			wantCode:   ExitRejected,
			wantStderr: "endpoints[0].endpoint: invalid: must start with /\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			c := &cli{stderr: &stderr, server: "127.0.0.1:9000", timeout: time.Second}
			err := c.rpcError("push", tc.err)
			if code := ExitCode(err); code != tc.wantCode {
				t.Errorf("exit %d (%v), want %d", code, err, tc.wantCode)
			}
			if stderr.String() != tc.wantStderr {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}

func TestViolationsPreferExactDetail(t *testing.T) {
	t.Parallel()
	exact := []*gatewayv1.FieldViolation{{Path: "a", Kind: "required", Detail: "x: y"}}
	st, err := status.New(codes.InvalidArgument, "bad").WithDetails(
		protoadapt.MessageV1Of(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "a", Description: "required: x: y"}}}),
		protoadapt.MessageV1Of(&gatewayv1.ValidateResponse{Violations: exact}),
	)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(exact, violations(st), protocmp.Transform()); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
}

func TestFleetProgress(t *testing.T) {
	t.Parallel()
	v := &gatewayv1.VersionInfo{Version: 5, Sha256: "s5"}
	edge := func(node string, connected bool, applied uint64, sha string, rejected uint64) *gatewayv1.EdgeStatus {
		return &gatewayv1.EdgeStatus{NodeId: node, Connected: connected, AppliedVersion: applied, AppliedSha256: sha, RejectedVersion: rejected}
	}
	tests := []struct {
		name                      string
		edges                     []*gatewayv1.EdgeStatus
		wantConnected, wantOn     int
		wantRejected, wantLagging []string
	}{
		{name: "none", wantConnected: 0},
		{
			name:          "on, past, lagging",
			edges:         []*gatewayv1.EdgeStatus{edge("a", true, 5, "s5", 0), edge("b", true, 6, "s6", 0), edge("c", true, 4, "s4", 0)},
			wantConnected: 3, wantOn: 2, wantLagging: []string{"c"},
		},
		{
			name:          "same version other content is not on it",
			edges:         []*gatewayv1.EdgeStatus{edge("a", true, 5, "other", 0)},
			wantConnected: 1, wantLagging: []string{"a"},
		},
		{
			name:          "rejected, connected or not",
			edges:         []*gatewayv1.EdgeStatus{edge("a", true, 4, "s4", 5), edge("b", false, 4, "s4", 5), edge("c", true, 4, "s4", 3)},
			wantConnected: 2, wantRejected: []string{"a", "b"}, wantLagging: []string{"c"},
		},
		{
			name:          "disconnected edges are not waited for",
			edges:         []*gatewayv1.EdgeStatus{edge("a", false, 1, "s1", 0), edge("b", true, 5, "s5", 0)},
			wantConnected: 1, wantOn: 1,
		},
	}
	names := func(es []*gatewayv1.EdgeStatus) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.GetNodeId())
		}
		return out
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := fleetProgress(tc.edges, v)
			if p.connected != tc.wantConnected || p.on != tc.wantOn {
				t.Errorf("%d/%d, want %d/%d", p.on, p.connected, tc.wantOn, tc.wantConnected)
			}
			if diff := cmp.Diff(tc.wantRejected, names(p.rejected)); diff != "" {
				t.Errorf("rejected (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantLagging, names(p.lagging)); diff != "" {
				t.Errorf("lagging (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFormatting(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct{ got, want string }{
		{changeLine(&gatewayv1.Change{Op: "added", Subject: "GET /x"}), "+ GET /x"},
		{changeLine(&gatewayv1.Change{Op: "removed", Subject: "GET /y"}), "- GET /y"},
		{changeLine(&gatewayv1.Change{Op: "changed", Subject: "GET /z", Fields: []string{"backends[0].url_pattern", "timeout_ms"}}), "~ GET /z: backends[0].url_pattern, timeout_ms"},
		{changeLine(&gatewayv1.Change{Op: "changed", Subject: "service"}), "~ service"},
		{ago(now, now.Add(-1500*time.Millisecond)), "1s ago"},
		{ago(now, now.Add(time.Second)), "0s ago"},
		{ago(now, now.Add(-5*time.Minute)), "5m ago"},
		{ago(now, now.Add(-30*time.Hour)), "30h ago"},
		{ago(now, now.Add(-72*time.Hour)), "3d ago"},
		{lag(5, 3), "2"},
		{lag(5, 0), "5"},
		{lag(5, 7), "0"},
		{lag(0, 0), "0"},
		{oneLine("a\n  b\tc", 100), "a b c"},
		{oneLine("abcdef", 4), "abc…"},
		{shortSHA("0123456789abcdef"), "0123456789ab"},
		{defaultTokenFile(func(k string) string { return map[string]string{"HOME": "/home/u"}[k] }), "/home/u/.local/state/apigw/controlplane/admin.token"},
	}
	for i, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("case %d: got %q, want %q", i, tc.got, tc.want)
		}
	}
}

func TestParseUntil(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "2h", want: now.Add(2 * time.Hour)},
		{in: "2026-03-01T00:00:00Z", want: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
		{in: "-1h", wantErr: true},
		{in: "tomorrow", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseUntil(tc.in, now)
		if (err != nil) != tc.wantErr || (err == nil && !got.Equal(tc.want)) {
			t.Errorf("parseUntil(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	if got := ExitCode(nil); got != 0 {
		t.Errorf("ExitCode(nil) = %d", got)
	}
	if got := ExitCode(fmt.Errorf("wrapped: %w", &ExitError{Code: 3, Err: errors.New("x")})); got != 3 {
		t.Errorf("ExitCode(wrapped 3) = %d", got)
	}
	if got := ExitCode(errors.New("plain")); got != ExitRejected {
		t.Errorf("ExitCode(plain) = %d", got)
	}
}

func TestValidateWarningsAndStrict(t *testing.T) {
	t.Parallel()
	r := runCLI(t, testEnv(nil), "validate", "testdata/warned.json")
	if r.code != ExitOK || !strings.Contains(r.stdout, "warning: endpoints[0].backend[0].url_pattern: normalized: ") ||
		!strings.Contains(r.stdout, "1 warning") {
		t.Errorf("not strict: code %d stdout %q", r.code, r.stdout)
	}
	r = runCLI(t, testEnv(nil), "validate", "--strict", "testdata/warned.json")
	if r.code != ExitRejected || !strings.HasPrefix(r.stdout, "endpoints[0].backend[0].url_pattern: normalized: ") {
		t.Errorf("strict: code %d stdout %q", r.code, r.stdout)
	}
}

func TestValidateEnvOverrides(t *testing.T) {
	t.Parallel()
	ok := runCLI(t, testEnv(nil), "validate", "testdata/good.json")
	r := runCLI(t, testEnv(map[string]string{"KRAKEND_PORT": "9090"}), "validate", "testdata/good.json")
	if r.code != ExitOK || r.stdout == ok.stdout {
		t.Errorf("KRAKEND_PORT changed nothing: %q", r.stdout)
	}
	r = runCLI(t, testEnv(map[string]string{"KRAKEND_PORT": "x"}), "validate", "testdata/good.json")
	if r.code != ExitRejected || !strings.Contains(r.stdout, "port: invalid:") || !strings.Contains(r.stdout, "$KRAKEND_PORT") {
		t.Errorf("bad override: code %d stdout %q", r.code, r.stdout)
	}
}

// fcEnv is the Flexible Config environment of testdata/fc.
func fcEnv() map[string]string {
	return map[string]string{
		"FC_ENABLE":    "1",
		"FC_SETTINGS":  "testdata/fc/settings",
		"FC_PARTIALS":  "testdata/fc/partials",
		"FC_TEMPLATES": "testdata/fc/templates",
	}
}

func TestFlexibleConfig(t *testing.T) {
	t.Parallel()
	t.Run("render prints what KrakenD renders", func(t *testing.T) {
		t.Parallel()
		// krakend-rendered.json is the FC_OUT file KrakenD CE 2.12.1 wrote
		// for the same template and environment.
		want, err := os.ReadFile("testdata/fc/krakend-rendered.json")
		if err != nil {
			t.Fatal(err)
		}
		vars := fcEnv()
		delete(vars, "FC_ENABLE") // render implies it
		r := runCLI(t, testEnv(vars), "render", "testdata/fc/gw.tmpl")
		if r.code != ExitOK || r.stdout != string(want) {
			t.Errorf("render: exit %d, stdout differs from KrakenD's:\n%s", r.code, cmp.Diff(string(want), r.stdout))
		}
	})
	t.Run("render applies KRAKEND_ overrides", func(t *testing.T) {
		t.Parallel()
		vars := fcEnv()
		vars["KRAKEND_NAME"] = "overridden"
		r := runCLI(t, testEnv(vars), "render", "testdata/fc/gw.tmpl")
		if r.code != ExitOK || !strings.Contains(r.stdout, `"name": "overridden"`) {
			t.Errorf("render with KRAKEND_NAME:\n%s", r)
		}
	})
	t.Run("validate renders with FC_ENABLE", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, testEnv(fcEnv()), "validate", "testdata/fc/gw.tmpl")
		if r.code != ExitOK || !strings.Contains(r.stdout, "ok: 2 endpoints") {
			t.Errorf("validate:\n%s", r)
		}
		// Without FC_ENABLE a template is not a config (KrakenD would try
		// to parse it as JSON).
		r = runCLI(t, testEnv(nil), "validate", "testdata/fc/gw.tmpl")
		if r.code != ExitRejected || !strings.Contains(r.stdout, "render templates first") {
			t.Errorf("validate without FC_ENABLE:\n%s", r)
		}
	})
	t.Run("violations name the template line", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, testEnv(fcEnv()), "validate", "testdata/fc/bad.tmpl")
		if r.code != ExitRejected {
			t.Fatalf("exit %d, want %d\n%s", r.code, ExitRejected, r)
		}
		for _, want := range []string{"endpoints[1].endpoint: invalid:", "from testdata/fc/templates/endpoint.tmpl line 1"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, r)
			}
		}
	})
	t.Run("a template error is an error", func(t *testing.T) {
		t.Parallel()
		vars := fcEnv()
		vars["FC_PARTIALS"] = t.TempDir() // cors.json is missing there
		for _, cmd := range []string{"validate", "render", "push"} {
			r := runCLI(t, testEnv(vars), cmd, "testdata/fc/gw.tmpl")
			if r.code != ExitRejected || !strings.Contains(r.stderr, "cors.json") {
				t.Errorf("%s with a missing partial: exit %d\n%s", cmd, r.code, r)
			}
		}
	})
}
