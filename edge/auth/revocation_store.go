package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Files Save writes in its directory. RevocationsFile is the newest copy,
// RevocationsPrevFile the one before it (used when the newest is corrupt).
const (
	RevocationsFile     = "revocations.bin"
	RevocationsPrevFile = "revocations.bin.prev"
)

// ErrCorrupt is wrapped by Load when a copy fails its checksum or does not
// decode.
var ErrCorrupt = errors.New("revocations file corrupt")

// revMagic starts every revocations file; the format is
// magic | uint64 big-endian payload length | sha256(payload) | payload,
// where payload is a deterministic RevocationReset{seq, entries}.
var revMagic = []byte("GWREVOC1")

const revHeaderLen = 8 + 8 + sha256.Size

// Save writes the live set and its seq to dir atomically: a temporary file
// is written and fsynced, the current copy becomes RevocationsPrevFile, the
// temporary file is renamed over RevocationsFile and the directory is
// fsynced. Concurrent Saves are serialised; readers are not blocked.
func (r *Revocations) Save(dir string) error {
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	st := r.state.Load()
	entries := entriesOf(st, r.now().UnixMilli())
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].GetClaim() != entries[j].GetClaim() {
			return entries[i].GetClaim() < entries[j].GetClaim()
		}
		return entries[i].GetValue() < entries[j].GetValue()
	})
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(&gatewayv1.RevocationReset{Seq: st.seq, Entries: entries})
	if err != nil {
		return fmt.Errorf("save revocations: %w", err)
	}
	sum := sha256.Sum256(payload)
	buf := make([]byte, 0, revHeaderLen+len(payload))
	buf = append(buf, revMagic...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(payload)))
	buf = append(buf, sum[:]...)
	buf = append(buf, payload...)

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save revocations: %w", err)
	}
	cur := filepath.Join(dir, RevocationsFile)
	prev := filepath.Join(dir, RevocationsPrevFile)
	tmp, err := os.CreateTemp(dir, RevocationsFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("save revocations: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // no-op after the rename
	if _, err := tmp.Write(buf); err != nil {
		tmp.Close()
		return fmt.Errorf("save revocations: write %s: %w", tmpName, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save revocations: fsync %s: %w", tmpName, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save revocations: close %s: %w", tmpName, err)
	}
	// Keep the current copy as the previous one. A hard link keeps cur in
	// place until the rename below replaces it atomically, so there is no
	// moment without a current copy; fall back to a rename where links are
	// not supported.
	if _, err := os.Stat(cur); err == nil {
		if err := os.Remove(prev); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("save revocations: %w", err)
		}
		if err := os.Link(cur, prev); err != nil {
			if err := os.Rename(cur, prev); err != nil {
				return fmt.Errorf("save revocations: keep previous copy: %w", err)
			}
		}
	}
	if err := os.Rename(tmpName, cur); err != nil {
		return fmt.Errorf("save revocations: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("save revocations: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// Load replaces the set with the newest readable copy in dir (see Save):
// RevocationsFile, or RevocationsPrevFile when the newest is missing or
// corrupt. The filter is rebuilt from the exact set. With no copy at all it
// leaves the set as is and returns an error wrapping fs.ErrNotExist; when
// every copy is corrupt the error wraps ErrCorrupt.
func (r *Revocations) Load(dir string) error {
	var errs []error
	for _, name := range []string{RevocationsFile, RevocationsPrevFile} {
		reset, err := readRevocations(filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
			if !errors.Is(err, fs.ErrNotExist) {
				r.log.Warn().Err(err).Msg("revocations copy unusable; trying the previous one")
			}
			continue
		}
		if err := r.Reset(reset.GetSeq(), reset.GetEntries()); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w: %w", name, ErrCorrupt, err))
			continue
		}
		return nil
	}
	return fmt.Errorf("load revocations: %w", errors.Join(errs...))
}

// LoadRevocations returns a set (see NewRevocations) holding the newest
// readable copy saved in dir. When dir holds no copy it returns an empty set
// and no error. When every copy is corrupt it returns the empty set and an
// error wrapping ErrCorrupt: the caller should log it and carry on with the
// empty set, whose Seq 0 makes the control plane send a full reset.
func LoadRevocations(dir string, cfg RevocationsConfig) (*Revocations, error) {
	r := NewRevocations(cfg)
	err := r.Load(dir)
	if err == nil {
		return r, nil
	}
	var onlyMissing = true
	for _, name := range []string{RevocationsFile, RevocationsPrevFile} {
		if _, statErr := os.Stat(filepath.Join(dir, name)); statErr == nil {
			onlyMissing = false
		}
	}
	if onlyMissing {
		return r, nil
	}
	return r, err
}

func readRevocations(path string) (*gatewayv1.RevocationReset, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < revHeaderLen || !bytes.Equal(b[:8], revMagic) {
		return nil, fmt.Errorf("%s: %w: bad header", path, ErrCorrupt)
	}
	n := binary.BigEndian.Uint64(b[8:16])
	payload := b[revHeaderLen:]
	if uint64(len(payload)) != n {
		return nil, fmt.Errorf("%s: %w: length %d, header says %d", path, ErrCorrupt, len(payload), n)
	}
	if sum := sha256.Sum256(payload); !bytes.Equal(sum[:], b[16:revHeaderLen]) {
		return nil, fmt.Errorf("%s: %w: checksum mismatch", path, ErrCorrupt)
	}
	var reset gatewayv1.RevocationReset
	if err := proto.Unmarshal(payload, &reset); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrCorrupt, err)
	}
	return &reset, nil
}
