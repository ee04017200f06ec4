package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTokenCommand: create prints a secret once and stores its hash,
// refuses a bad role, a reserved or duplicate name; list names every
// token without secrets; delete removes one; the result loads into the
// control plane's token set with the bootstrap token first.
func TestTokenCommand(t *testing.T) {
	dir := t.TempDir()
	tok := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := realMain(append([]string{"token"}, append(args, "--data-dir", dir)...), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, secret, stderr := tok("create", "--name", "ci", "--role", "push")
	secret = strings.TrimSpace(secret)
	if code != exitOK || len(secret) != 64 {
		t.Fatalf("create: exit %d, secret %q, stderr %s", code, secret, stderr)
	}
	for name, tc := range map[string]struct {
		args []string
		code int
		want string
	}{
		"bad role":       {[]string{"create", "--name", "x", "--role", "root"}, exitUsage, "want read, push, revoke or admin"},
		"reserved name":  {[]string{"create", "--name", "admin", "--role", "read"}, exitUsage, "reserved"},
		"bad name":       {[]string{"create", "--name", "a b", "--role", "read"}, exitUsage, "only letters"},
		"duplicate name": {[]string{"create", "--name", "ci", "--role", "read"}, exitError, "exists"},
		"delete missing": {[]string{"delete", "--name", "nope"}, exitError, "no such token"},
		"no subcommand":  {[]string{"rotate"}, exitUsage, "Usage: gw-controlplane token"},
	} {
		if code, _, stderr := tok(tc.args...); code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", name, code, stderr, tc.code, tc.want)
		}
	}
	if code, _, _ := tok("create", "--name", "viewer", "--role", "read"); code != exitOK {
		t.Fatal("create viewer")
	}
	b, err := os.ReadFile(filepath.Join(dir, tokensFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), secret) {
		t.Fatal("tokens.json holds the secret")
	}
	_, list, _ := tok("list")
	for _, want := range []string{"admin", "ci", "push", "viewer", "read"} {
		if !strings.Contains(list, want) {
			t.Errorf("list lacks %q:\n%s", want, list)
		}
	}
	if code, _, _ := tok("delete", "--name", "viewer"); code != exitOK {
		t.Fatal("delete viewer")
	}
	set, err := loadTokens(dir, strings.Repeat("b", 64))
	if err != nil {
		t.Fatal(err)
	}
	if len(set) != 2 || set[0].Name != "admin" || set[1].Name != "ci" || set[1].Role.String() != "push" {
		t.Fatalf("loaded %+v, want admin then ci (push)", set)
	}
	if err := os.Chmod(filepath.Join(dir, tokensFile), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := loadTokens(dir, "x"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group-readable tokens.json: %v, want refused", err)
	}
}
