package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/apigw/gateway/controlplane/service"
	"github.com/apigw/gateway/internal/atomicfile"
)

// Named admin tokens with roles (read, push, revoke, admin) live in
// <data-dir>/tokens.json (mode 0600), each as its name, role and the
// sha256 of the secret: the secret is printed once by `token create` and
// never stored. The admin.token file stays the bootstrap credential of
// gwctl on this host (name "admin", role admin). The running control plane
// re-reads tokens.json when it changes, so a token works (or stops
// working) within a second of `token create` (or `token delete`).

const (
	tokensFile     = "tokens.json"
	tokensLockFile = "tokens.lock"
	// bootstrapTokenName names the admin.token credential.
	bootstrapTokenName = "admin"
	maxTokenNameLen    = 64
)

type tokenRecord struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created"`
}

type tokenFileData struct {
	Tokens []tokenRecord `json:"tokens"`
}

// readTokenRecords reads path; a missing file is an empty set. A file
// others can read is refused, like the admin token.
func readTokenRecords(path string) ([]tokenRecord, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	if err := checkPrivateMode(path); err != nil {
		return nil, err
	}
	var d tokenFileData
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d.Tokens, nil
}

// serviceTokens turns records into the TokenAuth set, checking each.
func serviceTokens(path string, recs []tokenRecord) ([]service.Token, error) {
	out := make([]service.Token, 0, len(recs))
	var errs []error
	for i, r := range recs {
		role, err := service.ParseRole(r.Role)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: tokens[%d] (%q): %w", path, i, r.Name, err))
			continue
		}
		sum, err := hex.DecodeString(r.SHA256)
		if err != nil || len(sum) != sha256.Size {
			errs = append(errs, fmt.Errorf("%s: tokens[%d] (%q): sha256: want 64 hex digits", path, i, r.Name))
			continue
		}
		t := service.Token{Name: r.Name, Role: role}
		copy(t.SHA256[:], sum)
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}

// loadTokens is the full token set: the bootstrap token, then tokens.json.
func loadTokens(dataDir, bootstrap string) ([]service.Token, error) {
	path := filepath.Join(dataDir, tokensFile)
	recs, err := readTokenRecords(path)
	if err != nil {
		return nil, err
	}
	named, err := serviceTokens(path, recs)
	if err != nil {
		return nil, err
	}
	return append([]service.Token{{Name: bootstrapTokenName, Role: service.RoleAdmin, SHA256: sha256.Sum256([]byte(bootstrap))}}, named...), nil
}

// watchTokens reloads tokens.json into auth when it changes (checked once
// a second). A file that does not load keeps the previous set and logs an
// error until it is fixed.
func watchTokens(ctx context.Context, dataDir, bootstrap string, auth *service.TokenAuth, log zerolog.Logger) {
	path := filepath.Join(dataDir, tokensFile)
	stamp := func() string {
		fi, err := os.Stat(path)
		if err != nil {
			return "missing"
		}
		return fmt.Sprint(fi.ModTime().UnixNano(), fi.Size(), fi.Mode())
	}
	last := stamp()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := stamp()
		if cur == last {
			continue
		}
		last = cur
		tokens, err := loadTokens(dataDir, bootstrap)
		if err != nil {
			log.Error().Err(err).Msg("admin tokens not reloaded; the previous set stays in force")
			continue
		}
		auth.SetTokens(tokens)
		log.Info().Int("tokens", len(tokens)).Msg("admin tokens reloaded")
	}
}

// checkTokenName allows 1–64 bytes of [A-Za-z0-9._-].
func checkTokenName(name string) error {
	if name == "" || len(name) > maxTokenNameLen {
		return fmt.Errorf("--name: 1 to %d characters, got %d", maxTokenNameLen, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("--name %q: only letters, digits and . _ - are allowed", name)
		}
	}
	if name == bootstrapTokenName {
		return fmt.Errorf("--name %q: reserved for the admin.token file", name)
	}
	return nil
}

// withTokensLocked runs edit on the records under an exclusive lock of
// the data dir's tokens.lock and writes the result atomically (0600).
func withTokensLocked(dataDir string, edit func([]tokenRecord) ([]tokenRecord, error)) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	lf, err := os.OpenFile(filepath.Join(dataDir, tokensLockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lf.Name(), err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	path := filepath.Join(dataDir, tokensFile)
	recs, err := readTokenRecords(path)
	if err != nil {
		return err
	}
	if recs, err = edit(recs); err != nil {
		return err
	}
	b, err := json.MarshalIndent(tokenFileData{Tokens: recs}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o600)
}

// runToken runs `gw-controlplane token create|list|delete`.
func runToken(args []string, stdout, stderr io.Writer) int {
	usage := "Usage: gw-controlplane token create --name N --role read|push|revoke|admin [--data-dir DIR]\n       gw-controlplane token list [--data-dir DIR]\n       gw-controlplane token delete --name N [--data-dir DIR]"
	if len(args) == 0 || !slices.Contains([]string{"create", "list", "delete"}, args[0]) {
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("gw-controlplane token "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", defaultDataDir(), "the control plane's data directory")
	name := fs.String("name", "", "the token's name, recorded as the author (token:NAME) of what it does")
	role := fs.String("role", "", "read (validate, diff, status, history, revocations), push (read + push, rollback), revoke (read + revoke) or admin (everything, also certs issue)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nNamed admin tokens in <data-dir>/tokens.json (mode 0600; only the sha256 of each is\nstored). create prints the new token once, on stdout; a running control plane\npicks changes up within a second.\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "gw-controlplane token %s: %v\n", sub, err)
		return code
	}
	if *dataDir == "" {
		return fail(exitUsage, errors.New("--data-dir: required"))
	}
	switch sub {
	case "create":
		if err := checkTokenName(*name); err != nil {
			return fail(exitUsage, err)
		}
		r, err := service.ParseRole(*role)
		if err != nil {
			return fail(exitUsage, fmt.Errorf("--role: %w", err))
		}
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return fail(exitError, err)
		}
		secret := hex.EncodeToString(raw)
		sum := sha256.Sum256([]byte(secret))
		err = withTokensLocked(*dataDir, func(recs []tokenRecord) ([]tokenRecord, error) {
			for _, t := range recs {
				if t.Name == *name {
					return nil, fmt.Errorf("--name %q: a token of that name exists (token delete it first)", *name)
				}
			}
			return append(recs, tokenRecord{Name: *name, Role: r.String(), SHA256: hex.EncodeToString(sum[:]), Created: time.Now().UTC().Truncate(time.Second)}), nil
		})
		if err != nil {
			return fail(exitError, err)
		}
		fmt.Fprintln(stdout, secret)
		return exitOK
	case "delete":
		if *name == "" {
			return fail(exitUsage, errors.New("--name: required"))
		}
		err := withTokensLocked(*dataDir, func(recs []tokenRecord) ([]tokenRecord, error) {
			out := slices.DeleteFunc(slices.Clone(recs), func(t tokenRecord) bool { return t.Name == *name })
			if len(out) == len(recs) {
				return nil, fmt.Errorf("--name %q: no such token", *name)
			}
			return out, nil
		})
		if err != nil {
			return fail(exitError, err)
		}
		fmt.Fprintf(stdout, "deleted token %s\n", *name)
		return exitOK
	default: // list
		recs, err := readTokenRecords(filepath.Join(*dataDir, tokensFile))
		if err != nil {
			return fail(exitError, err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tCREATED")
		fmt.Fprintf(tw, "%s\tadmin\t(the admin.token file)\n", bootstrapTokenName)
		for _, t := range recs {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, t.Role, t.Created.Format(time.RFC3339))
		}
		return exitOKAfter(tw.Flush())
	}
}

func exitOKAfter(err error) int {
	if err != nil {
		return exitError
	}
	return exitOK
}

// tokenNames is for messages: the names in a set.
func tokenNames(ts []service.Token) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Name
	}
	return strings.Join(names, ", ")
}
