package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/apigw/gateway/internal/atomicfile"
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
		if werr := atomicfile.Create(path, pemKey, 0o600); werr != nil {
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
		if err := atomicfile.Write(pubPath, pub, 0o644); err != nil {
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
