package lkg

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// The revocation files of earlier edge builds, read for migration only:
// magic | uint64 big-endian payload length | sha256(payload) | payload, with
// payload a RevocationReset; the newest copy and the one before it.
const (
	legacyRevocationsFile     = "revocations.bin"
	legacyRevocationsPrevFile = "revocations.bin.prev"
	legacyHeaderLen           = 8 + 8 + sha256.Size
)

var legacyMagic = []byte("GWREVOC1")

// loadLegacyRevocations reads the newest valid file of the earlier format.
func (s *Store) loadLegacyRevocations() (*gatewayv1.RevocationReset, error) {
	var errs []error
	found := false
	for _, name := range []string{legacyRevocationsFile, legacyRevocationsPrevFile} {
		set, err := readLegacyRevocations(filepath.Join(s.dir, name))
		if err == nil {
			s.log.Info().Str("file", name).Uint64("seq", set.GetSeq()).
				Msg("revocation set read from the earlier format; the next save migrates it")
			return set, nil
		}
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		found = true
		errs = append(errs, err)
		s.log.Warn().Str("file", name).Err(err).Msg("skipping corrupt revocations file")
	}
	if !found {
		return nil, fmt.Errorf("lkg load revocations: %w", ErrNotFound)
	}
	return nil, fmt.Errorf("lkg load revocations: %w", errors.Join(errs...))
}

func readLegacyRevocations(path string) (*gatewayv1.RevocationReset, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < legacyHeaderLen || !bytes.Equal(b[:8], legacyMagic) {
		return nil, fmt.Errorf("%s: bad header", path)
	}
	payload := b[legacyHeaderLen:]
	if n := binary.BigEndian.Uint64(b[8:16]); uint64(len(payload)) != n {
		return nil, fmt.Errorf("%s: length %d, header says %d", path, len(payload), n)
	}
	if sum := sha256.Sum256(payload); !bytes.Equal(sum[:], b[16:legacyHeaderLen]) {
		return nil, fmt.Errorf("%s: checksum mismatch", path)
	}
	set := &gatewayv1.RevocationReset{}
	if err := proto.Unmarshal(payload, set); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return set, nil
}

// removeLegacyRevocations deletes the earlier format's files once a record
// of the new one is saved.
func (s *Store) removeLegacyRevocations() {
	removed := false
	for _, name := range []string{legacyRevocationsFile, legacyRevocationsPrevFile} {
		err := os.Remove(filepath.Join(s.dir, name))
		switch {
		case err == nil:
			removed = true
		case !errors.Is(err, os.ErrNotExist):
			s.log.Warn().Str("file", name).Err(err).Msg("could not remove a revocations file of the earlier format")
		}
	}
	if removed {
		if err := syncDir(s.dir); err != nil {
			s.log.Warn().Err(err).Msg("could not fsync data dir after the revocations migration")
		}
	}
}
