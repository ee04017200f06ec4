package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"
)

// MinAdminTokenLen is the shortest admin token accepted (a generated one is
// 64 hex characters, 256 bits).
const MinAdminTokenLen = 32

// loadOrCreateToken reads the admin token from path. When the file does not
// exist it generates 32 random bytes (hex) and writes them atomically with
// mode 0600: temp file, fsync, then a hard link that fails if another process
// created the file meanwhile (in which case that token wins). The token
// itself is never logged.
func loadOrCreateToken(path string, log zerolog.Logger) (string, error) {
	for range 2 { // the second round reads a file a concurrent start created
		tok, err := readToken(path, log)
		if err == nil {
			return tok, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		created, err := createToken(path)
		if err != nil {
			return "", err
		}
		if created != "" {
			log.Info().Str("path", path).Msg("generated admin token (gwctl reads it from this file)")
			return created, nil
		}
	}
	return "", fmt.Errorf("admin token %s: created and removed concurrently", path)
}

func readToken(path string, log zerolog.Logger) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("read admin token %s: file is empty", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("admin token %s: mode %s lets other users read it; chmod 600 it (the token grants every admin call)", path, perm)
	}
	if len(tok) < MinAdminTokenLen {
		return "", fmt.Errorf("admin token %s: %d characters, want at least %d (remove the file to have a random one generated)", path, len(tok), MinAdminTokenLen)
	}
	log.Debug().Str("path", path).Msg("admin token read")
	return tok, nil
}

// createToken writes a new token to path unless the file exists, in which
// case it returns "" and no error.
func createToken(path string) (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generate admin token: %w", err)
	}
	tok := hex.EncodeToString(raw)

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create admin token dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".admin.token-*") // mode 0600
	if err != nil {
		return "", fmt.Errorf("create admin token: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.WriteString(tok + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", nil
		}
		return "", fmt.Errorf("install admin token: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new directory entry durable
		d.Close()
	}
	return tok, nil
}
