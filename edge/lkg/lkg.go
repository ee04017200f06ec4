// Package lkg is the edge's durable state: the last-known-good snapshots, so
// that an edge restarted while the control plane is unreachable serves the
// configuration it served before, and the revocation set, so that it still
// enforces every revocation it had.
//
// Both go through the same code: one record format, one atomic write, one
// verification and one keep-N rotation. A record is a SnapshotEnvelope proto
// {version, sha256, payload}; for a snapshot the payload is the Snapshot and
// the version its config version, for the revocation set the payload is a
// deterministic RevocationReset{seq, entries} and the version its seq. A
// record is written atomically into the data dir (a temporary file in the
// same directory, write, fsync, rename, fsync of the directory) and the
// sha256 of its payload is checked on load. The newest few records of each
// kind are kept; when the newest is corrupt or truncated, loading falls back
// to the previous one (Kong #13076 is the cautionary tale).
//
// File names are "<kind>-<seq>-v<version>.pb" (kind "snapshot" or
// "revocations") with both numbers zero-padded to 20 digits. seq is a save
// counter local to the edge, so the name order is the save order: a control
// plane whose store was reset (versions starting again at 1) can never make
// the edge boot on an older snapshot that happens to carry a higher version
// number. Edges compare versions only for equality.
//
// Earlier builds kept the revocation set in "revocations.bin" and
// "revocations.bin.prev" (magic GWREVOC1 | length | sha256 | payload).
// LoadRevocations still reads them when no record of the new format exists;
// the first SaveRevocations writes the new format and removes them.
//
// lkg imports no other edge package and nothing from the control plane.
package lkg

import (
	"cmp"
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
	"github.com/apigw/gateway/proto/sign"
)

const (
	// DefaultKeep is how many snapshots a Store keeps when Config.Keep is 0.
	DefaultKeep = 3

	// keepRevocations is how many revocation records a Store keeps: the
	// newest and one to fall back on.
	keepRevocations = 2

	kindSnapshot    = "snapshot"
	kindRevocations = "revocations"
	fileSuffix      = ".pb"
	tempSuffix      = ".tmp"
	numberWidth     = 20
	// maxFileBytes bounds what Load reads: a snapshot is a compiled config
	// and never comes near this; a larger file is damage, not data.
	maxFileBytes = 256 << 20
)

// ErrNotFound is returned by Load and LoadRevocations when the data dir
// holds no valid record of the kind asked for.
var ErrNotFound = errors.New("lkg: no valid record")

// Config configures a Store. The zero value is not usable: Dir is required.
type Config struct {
	// Dir is the data directory; it is created (0700) when missing.
	Dir string
	// Keep is how many snapshots to keep (0 means DefaultKeep); the
	// revocation set keeps 2.
	Keep int
	// Logger receives a line for every file skipped or cleaned up.
	Logger zerolog.Logger
	// Verifier, when set, checks the control plane's signature of every
	// snapshot saved and loaded: a file that does not verify is skipped
	// like a corrupt one. Nil checks only the sha256 (standalone mode, or
	// the explicit insecure flag).
	Verifier *sign.Verifier
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

// Store reads and writes the durable state of one data dir. It is safe for
// concurrent use; it assumes no other process writes the same directory.
type Store struct {
	dir         string
	log         zerolog.Logger
	verifier    *sign.Verifier
	snapshots   series
	revocations series
}

// series is the records of one kind.
type series struct {
	kind   string
	keep   int
	signed bool       // records carry the control plane's signature
	mu     sync.Mutex // serialises save (sequence allocation, rename, prune)
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
	s := &Store{
		dir:         cfg.Dir,
		log:         cfg.Logger,
		verifier:    cfg.Verifier,
		snapshots:   series{kind: kindSnapshot, keep: keep, signed: true},
		revocations: series{kind: kindRevocations, keep: keepRevocations},
	}
	if err := s.removeTemps(); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir returns the data directory.
func (s *Store) Dir() string { return s.dir }

// file is one record file name, parsed.
type file struct {
	name    string
	seq     uint64
	version uint64
}

// fileName renders the name of the seq-th saved record of kind.
func fileName(kind string, seq, version uint64) string {
	return fmt.Sprintf("%s-%0*d-v%0*d%s", kind, numberWidth, seq, numberWidth, version, fileSuffix)
}

// parseName parses a record file name of kind; ok is false for any other
// file.
func parseName(kind, name string) (file, bool) {
	rest, ok := strings.CutPrefix(name, kind+"-")
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

// list returns the record files of kind, newest (highest seq) first.
func (s *Store) list(kind string) ([]file, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("lkg: read data dir: %w", err)
	}
	var files []file
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if f, ok := parseName(kind, e.Name()); ok {
			files = append(files, f)
		}
	}
	slices.SortFunc(files, func(a, b file) int { return cmp.Compare(b.seq, a.seq) })
	return files, nil
}

// isTemp reports whether name is a temporary file of an interrupted save
// (of this format: ".<kind>-*.tmp", or of the earlier revocations format).
func isTemp(name string) bool {
	for _, kind := range []string{kindSnapshot, kindRevocations} {
		if strings.HasPrefix(name, "."+kind+"-") && strings.HasSuffix(name, tempSuffix) {
			return true
		}
	}
	return strings.HasPrefix(name, legacyRevocationsFile+".tmp-")
}

// removeTemps deletes temporary files a crashed save left behind.
func (s *Store) removeTemps() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("lkg: read data dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !isTemp(name) {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("lkg: remove temporary file %s: %w", name, err)
		}
		s.log.Info().Str("file", name).Msg("removed temporary file left by an interrupted save")
	}
	return nil
}

// Verify checks that env's sha256 is the digest of its payload. It is the
// one integrity check of the edge: applied to every pushed snapshot and to
// every record loaded from disk.
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

// read loads and checks one record file.
func (s *Store) read(f file) (*gatewayv1.SnapshotEnvelope, error) {
	b, err := readFile(filepath.Join(s.dir, f.name))
	if err != nil {
		return nil, err
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
	if strings.HasPrefix(f.name, kindSnapshot+"-") {
		if err := s.verifier.Snapshot(env); err != nil {
			return nil, err
		}
	}
	return env, nil
}

// readFile reads a whole state file, refusing empty and oversized ones.
func readFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
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
	return b, nil
}

// loadAll returns every valid record of kind, newest first; invalid ones
// are skipped and logged with the reason. stop, when it returns true for a
// record, ends the walk there.
func (s *Store) loadAll(kind string, stop func(*gatewayv1.SnapshotEnvelope) bool) ([]*gatewayv1.SnapshotEnvelope, error) {
	files, err := s.list(kind)
	if err != nil {
		return nil, err
	}
	var out []*gatewayv1.SnapshotEnvelope
	for _, f := range files {
		env, err := s.read(f)
		if err != nil {
			s.log.Warn().Str("file", f.name).Uint64("version", f.version).Err(err).
				Msgf("skipping corrupt %s record", kind)
			continue
		}
		out = append(out, env)
		if stop != nil && stop(env) {
			break
		}
	}
	return out, nil
}

// LoadAll returns every valid snapshot of the data dir, newest first. Files
// that fail to read, decode or verify are skipped and logged with the reason.
// The result is empty (and err nil) when there is none.
func (s *Store) LoadAll() ([]*gatewayv1.SnapshotEnvelope, error) {
	return s.loadAll(kindSnapshot, nil)
}

// Load returns the newest valid snapshot of the data dir, falling back to
// older ones when the newest is corrupt or truncated (each skipped file is
// logged with the reason). It returns ErrNotFound when none is valid.
func (s *Store) Load() (*gatewayv1.SnapshotEnvelope, error) {
	all, err := s.loadAll(kindSnapshot, func(*gatewayv1.SnapshotEnvelope) bool { return true })
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, ErrNotFound
	}
	return all[0], nil
}

// Save persists env atomically as the newest snapshot and prunes all but the
// newest Keep files. env must verify (sha256 of its payload). Saving the
// snapshot that is already the newest file is a no-op, so an edge that boots
// from disk does not rewrite what it loaded.
func (s *Store) Save(env *gatewayv1.SnapshotEnvelope) error {
	if err := s.save(&s.snapshots, env); err != nil {
		return fmt.Errorf("lkg save version %d: %w", env.GetVersion(), err)
	}
	return nil
}

// SaveRevocations persists the revocation set (seq and live entries)
// atomically as the newest revocation record, keeping the previous one.
// The entries are stored sorted, so equal sets make equal files.
func (s *Store) SaveRevocations(set *gatewayv1.RevocationReset) error {
	entries := slices.Clone(set.GetEntries())
	slices.SortFunc(entries, func(a, b *gatewayv1.RevocationEntry) int {
		return cmp.Or(cmp.Compare(a.GetClaim(), b.GetClaim()), cmp.Compare(a.GetValue(), b.GetValue()))
	})
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(&gatewayv1.RevocationReset{Seq: set.GetSeq(), Entries: entries})
	if err != nil {
		return fmt.Errorf("lkg save revocations at seq %d: encode: %w", set.GetSeq(), err)
	}
	sum := sha256.Sum256(payload)
	env := &gatewayv1.SnapshotEnvelope{Version: set.GetSeq(), Sha256: hex.EncodeToString(sum[:]), Payload: payload}
	if err := s.save(&s.revocations, env); err != nil {
		return fmt.Errorf("lkg save revocations at seq %d: %w", set.GetSeq(), err)
	}
	s.removeLegacyRevocations()
	return nil
}

// LoadRevocations returns the newest valid revocation record, falling back
// to the previous one when the newest is corrupt, and to the files of the
// earlier format when no record exists. It returns an error wrapping
// ErrNotFound when the dir holds no revocation state at all, and another
// error when it holds some but none is valid.
func (s *Store) LoadRevocations() (*gatewayv1.RevocationReset, error) {
	set, _, err := s.LoadRevocationsReport()
	return set, err
}

// LoadRevocationsReport is LoadRevocations that also says how many newer
// records were skipped as corrupt: a set returned with skipped > 0 is an
// older copy that may lack the newest revocations.
func (s *Store) LoadRevocationsReport() (set *gatewayv1.RevocationReset, skipped int, err error) {
	files, err := s.list(kindRevocations)
	if err != nil {
		return nil, 0, err
	}
	for _, f := range files {
		env, err := s.read(f)
		if err == nil {
			set := &gatewayv1.RevocationReset{}
			if err = proto.Unmarshal(env.GetPayload(), set); err == nil {
				return set, skipped, nil
			}
		}
		skipped++
		s.log.Warn().Str("file", f.name).Err(err).Msg("skipping corrupt revocations record")
	}
	if len(files) > 0 {
		return nil, skipped, fmt.Errorf("lkg load revocations: all %d records corrupt", skipped)
	}
	set, err = s.loadLegacyRevocations()
	return set, 0, err
}

// save writes env as the newest record of se and prunes past se.keep.
func (s *Store) save(se *series, env *gatewayv1.SnapshotEnvelope) error {
	if err := Verify(env); err != nil {
		return err
	}
	if se.signed {
		if err := s.verifier.Snapshot(env); err != nil {
			return err
		}
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(env)
	if err != nil {
		return fmt.Errorf("encode envelope: %w", err)
	}

	se.mu.Lock()
	defer se.mu.Unlock()

	files, err := s.list(se.kind)
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
	name := fileName(se.kind, seq, env.GetVersion())
	if err := writeAtomic(s.dir, "."+se.kind+"-*"+tempSuffix, name, b); err != nil {
		return err
	}
	s.prune(se.keep, append([]file{{name: name, seq: seq, version: env.GetVersion()}}, files...))
	return nil
}

// writeAtomic writes b to dir/name via a temporary file (named by pattern,
// as os.CreateTemp takes it) in the same directory: write, fsync, rename,
// fsync of the directory. A crash at any point leaves either the old set of
// files or the new one, plus at most a temporary file that New removes.
func writeAtomic(dir, pattern, name string, b []byte) (err error) {
	tmp, err := os.CreateTemp(dir, pattern)
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
	if err = os.Rename(tmpName, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("rename to %s: %w", name, err)
	}
	return syncDir(dir)
}

// prune removes every file past the newest keep. files is newest first.
func (s *Store) prune(keep int, files []file) {
	if len(files) <= keep {
		return
	}
	removed := false
	for _, f := range files[keep:] {
		if err := os.Remove(filepath.Join(s.dir, f.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			// Not fatal: the record was saved; a leftover file is pruned
			// by a later save.
			s.log.Warn().Str("file", f.name).Err(err).Msg("could not prune old record")
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
// It is the edge's only one.
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
