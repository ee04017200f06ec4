// Package lkg persists the edge's last-known-good snapshots, so that an edge
// restarted while the control plane is unreachable serves the configuration
// it served before.
//
// Every snapshot the edge ACKs is written atomically into the data dir: a
// temporary file in the same directory, write, fsync, rename, fsync of the
// directory. The file holds the SnapshotEnvelope proto bytes; the envelope
// carries the sha256 of its payload, which is checked on load. The newest
// few files are kept; when the newest is corrupt or truncated, Load falls
// back to the previous one (Kong #13076 is the cautionary tale).
//
// File names are "snapshot-<seq>-v<version>.pb" with both numbers zero-padded
// to 20 digits. seq is a save counter local to the edge, so the name order is
// the save order: a control plane whose store was reset (versions starting
// again at 1) can never make the edge boot on an older snapshot that happens
// to carry a higher version number. Edges compare versions only for equality.
//
// lkg imports no other edge package and nothing from the control plane.
package lkg

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

const (
	// DefaultKeep is how many snapshots a Store keeps when Config.Keep is 0.
	DefaultKeep = 3

	filePrefix  = "snapshot-"
	fileSuffix  = ".pb"
	tempPrefix  = ".snapshot-"
	tempSuffix  = ".tmp"
	numberWidth = 20
	// maxFileBytes bounds what Load reads: a snapshot is a compiled config
	// and never comes near this; a larger file is damage, not data.
	maxFileBytes = 256 << 20
)

// ErrNotFound is returned by Load when the data dir holds no valid snapshot.
var ErrNotFound = errors.New("lkg: no valid snapshot")

// Config configures a Store. The zero value is not usable: Dir is required.
type Config struct {
	// Dir is the data directory; it is created (0700) when missing.
	Dir string
	// Keep is how many snapshots to keep (0 means DefaultKeep).
	Keep int
	// Logger receives a line for every file skipped or cleaned up.
	Logger zerolog.Logger
}

// Validate reports a configuration that New would refuse.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("lkg config: dir is required")
	}
	if c.Keep < 0 {
		return fmt.Errorf("lkg config: keep %d: must not be negative", c.Keep)
	}
	return nil
}

// Store reads and writes the snapshots of one data dir. It is safe for
// concurrent use; it assumes no other process writes the same directory.
type Store struct {
	dir  string
	keep int
	log  zerolog.Logger

	mu sync.Mutex // serialises Save (sequence allocation, rename, prune)
}

// New opens the data dir, creating it when missing, and removes temporary
// files left behind by a crash in the middle of a Save.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	keep := cfg.Keep
	if keep == 0 {
		keep = DefaultKeep
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("lkg: create data dir: %w", err)
	}
	s := &Store{dir: cfg.Dir, keep: keep, log: cfg.Logger}
	if err := s.removeTemps(); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir returns the data directory.
func (s *Store) Dir() string { return s.dir }

// file is one snapshot file name, parsed.
type file struct {
	name    string
	seq     uint64
	version uint64
}

// fileName renders the name of the seq-th saved snapshot.
func fileName(seq, version uint64) string {
	return fmt.Sprintf("%s%0*d-v%0*d%s", filePrefix, numberWidth, seq, numberWidth, version, fileSuffix)
}

// parseName parses a snapshot file name; ok is false for any other file.
func parseName(name string) (file, bool) {
	rest, ok := strings.CutPrefix(name, filePrefix)
	if !ok {
		return file{}, false
	}
	rest, ok = strings.CutSuffix(rest, fileSuffix)
	if !ok {
		return file{}, false
	}
	seqStr, verStr, ok := strings.Cut(rest, "-v")
	if !ok || len(seqStr) != numberWidth || len(verStr) != numberWidth {
		return file{}, false
	}
	seq, err1 := strconv.ParseUint(seqStr, 10, 64)
	ver, err2 := strconv.ParseUint(verStr, 10, 64)
	if err1 != nil || err2 != nil {
		return file{}, false
	}
	return file{name: name, seq: seq, version: ver}, true
}

// list returns the snapshot files of the dir, newest (highest seq) first.
func (s *Store) list() ([]file, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("lkg: read data dir: %w", err)
	}
	var files []file
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if f, ok := parseName(e.Name()); ok {
			files = append(files, f)
		}
	}
	slices.SortFunc(files, func(a, b file) int {
		switch {
		case a.seq > b.seq:
			return -1
		case a.seq < b.seq:
			return 1
		}
		return 0
	})
	return files, nil
}

// removeTemps deletes temporary files a crashed Save left behind.
func (s *Store) removeTemps() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("lkg: read data dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, tempPrefix) || !strings.HasSuffix(name, tempSuffix) {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("lkg: remove temporary file %s: %w", name, err)
		}
		s.log.Info().Str("file", name).Msg("removed temporary snapshot file left by an interrupted save")
	}
	return nil
}

// Verify checks that env's sha256 is the digest of its payload.
func Verify(env *gatewayv1.SnapshotEnvelope) error {
	if env.GetSha256() == "" {
		return errors.New("verify snapshot: sha256 is empty")
	}
	sum := sha256.Sum256(env.GetPayload())
	if got := hex.EncodeToString(sum[:]); got != env.GetSha256() {
		return fmt.Errorf("verify snapshot: sha256 of payload is %s, envelope says %s", got, env.GetSha256())
	}
	return nil
}

// read loads and checks one snapshot file.
func (s *Store) read(f file) (*gatewayv1.SnapshotEnvelope, error) {
	fh, err := os.Open(filepath.Join(s.dir, f.name))
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("file larger than %d bytes", maxFileBytes)
	}
	if len(b) == 0 {
		return nil, errors.New("file is empty")
	}
	env := &gatewayv1.SnapshotEnvelope{}
	if err := proto.Unmarshal(b, env); err != nil {
		return nil, fmt.Errorf("decode envelope: %w", err)
	}
	if env.GetVersion() != f.version {
		return nil, fmt.Errorf("envelope holds version %d, file name says %d", env.GetVersion(), f.version)
	}
	if err := Verify(env); err != nil {
		return nil, err
	}
	return env, nil
}

// LoadAll returns every valid snapshot of the data dir, newest first. Files
// that fail to read, decode or verify are skipped and logged with the reason.
// The result is empty (and err nil) when there is none.
func (s *Store) LoadAll() ([]*gatewayv1.SnapshotEnvelope, error) {
	files, err := s.list()
	if err != nil {
		return nil, err
	}
	var out []*gatewayv1.SnapshotEnvelope
	for _, f := range files {
		env, err := s.read(f)
		if err != nil {
			s.log.Warn().Str("file", f.name).Uint64("version", f.version).Err(err).
				Msg("skipping corrupt last-known-good snapshot")
			continue
		}
		out = append(out, env)
	}
	return out, nil
}

// Load returns the newest valid snapshot of the data dir, falling back to
// older ones when the newest is corrupt or truncated (each skipped file is
// logged with the reason). It returns ErrNotFound when none is valid.
func (s *Store) Load() (*gatewayv1.SnapshotEnvelope, error) {
	files, err := s.list()
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		env, err := s.read(f)
		if err != nil {
			s.log.Warn().Str("file", f.name).Uint64("version", f.version).Err(err).
				Msg("skipping corrupt last-known-good snapshot")
			continue
		}
		return env, nil
	}
	return nil, ErrNotFound
}

// Save persists env atomically as the newest snapshot and prunes all but the
// newest Keep files. env must verify (sha256 of its payload). Saving the
// snapshot that is already the newest file is a no-op, so an edge that boots
// from disk does not rewrite what it loaded.
func (s *Store) Save(env *gatewayv1.SnapshotEnvelope) error {
	if err := Verify(env); err != nil {
		return fmt.Errorf("lkg save version %d: %w", env.GetVersion(), err)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(env)
	if err != nil {
		return fmt.Errorf("lkg save version %d: encode envelope: %w", env.GetVersion(), err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	files, err := s.list()
	if err != nil {
		return err
	}
	var seq uint64 = 1
	if len(files) > 0 {
		newest := files[0]
		seq = newest.seq + 1
		if newest.version == env.GetVersion() {
			if cur, err := s.read(newest); err == nil && cur.GetSha256() == env.GetSha256() {
				return nil
			}
		}
	}
	name := fileName(seq, env.GetVersion())
	if err := s.writeAtomic(name, b); err != nil {
		return fmt.Errorf("lkg save version %d: %w", env.GetVersion(), err)
	}
	s.prune(append([]file{{name: name, seq: seq, version: env.GetVersion()}}, files...))
	return nil
}

// writeAtomic writes b to name via a temporary file in the same directory:
// write, fsync, rename, fsync of the directory. A crash at any point leaves
// either the old set of files or the new one, plus at most a temporary file
// that New removes.
func (s *Store) writeAtomic(name string, b []byte) (err error) {
	tmp, err := os.CreateTemp(s.dir, tempPrefix+"*"+tempSuffix)
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if _, err = tmp.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", tmpName, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmpName, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmpName, err)
	}
	if err = os.Rename(tmpName, filepath.Join(s.dir, name)); err != nil {
		return fmt.Errorf("rename to %s: %w", name, err)
	}
	if err = syncDir(s.dir); err != nil {
		return err
	}
	return nil
}

// prune removes every file past the newest s.keep. files is newest first.
func (s *Store) prune(files []file) {
	if len(files) <= s.keep {
		return
	}
	removed := false
	for _, f := range files[s.keep:] {
		if err := os.Remove(filepath.Join(s.dir, f.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			// Not fatal: the snapshot was saved; a leftover file is pruned
			// by a later Save.
			s.log.Warn().Str("file", f.name).Err(err).Msg("could not prune old snapshot")
			continue
		}
		removed = true
	}
	if removed {
		if err := syncDir(s.dir); err != nil {
			s.log.Warn().Err(err).Msg("could not fsync data dir after pruning")
		}
	}
}

// syncDir fsyncs a directory so that a rename or removal in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open data dir for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync data dir: %w", err)
	}
	return nil
}
