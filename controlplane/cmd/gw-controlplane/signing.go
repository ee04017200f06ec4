package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/apigw/gateway/proto/sign"
)

// Files of the snapshot signing key inside the data dir. The public key is
// what every edge pins (gw-edge --snapshot-public-key).
const (
	signingKeyFile = "signing.key"
	signingPubFile = "signing.pub"
)

// loadOrCreateSigner reads the Ed25519 signing key from the data dir,
// generating it (mode 0600) on first start, and (re)writes the public key
// beside it for distribution to edges.
func loadOrCreateSigner(dataDir string, log zerolog.Logger) (*sign.Signer, error) {
	path := filepath.Join(dataDir, signingKeyFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		key, gerr := sign.GenerateKey()
		if gerr != nil {
			return nil, gerr
		}
		pemKey, gerr := sign.EncodePrivateKey(key)
		if gerr != nil {
			return nil, gerr
		}
		if werr := writeExclusive(path, pemKey, 0o600); werr != nil {
			if !errors.Is(werr, fs.ErrExist) {
				return nil, fmt.Errorf("create signing key: %w", werr)
			}
			// A concurrent start won; use its key.
			if b, err = os.ReadFile(path); err != nil {
				return nil, fmt.Errorf("read signing key: %w", err)
			}
		} else {
			b = pemKey
			log.Info().Str("path", path).Msg("generated the snapshot signing key")
		}
	case err != nil:
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	if err := checkPrivateMode(path); err != nil {
		return nil, err
	}
	key, err := sign.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s := sign.NewSigner(key)
	pub, err := sign.EncodePublicKey(s.Public())
	if err != nil {
		return nil, err
	}
	pubPath := filepath.Join(dataDir, signingPubFile)
	if cur, err := os.ReadFile(pubPath); err != nil || string(cur) != string(pub) {
		if err := writeAtomic(pubPath, pub, 0o644); err != nil {
			return nil, fmt.Errorf("write signing public key: %w", err)
		}
	}
	log.Info().Str("key_id", s.KeyID()).Str("public_key", pubPath).Msg("snapshots and revocations are signed; pin the public key on every edge (gw-edge --snapshot-public-key)")
	return s, nil
}

// checkPrivateMode refuses a key file that others can read.
func checkPrivateMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s: mode %s lets other users read a private key; chmod 600 it", path, fi.Mode().Perm())
	}
	return nil
}

// writeExclusive creates path with b and mode, failing with fs.ErrExist
// when it exists. It writes a temp file, syncs it and hard-links it into
// place, so a reader never sees a partial file.
func writeExclusive(path string, b []byte, mode os.FileMode) error {
	tmp, err := writeTemp(path, b, mode)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return os.Link(tmp, path)
}

// writeAtomic replaces path with b and mode.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := writeTemp(path, b, mode)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func writeTemp(path string, b []byte, mode os.FileMode) (string, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}
