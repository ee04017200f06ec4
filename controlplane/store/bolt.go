package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Bucket layout of the bbolt file. Every write happens in one transaction, so
// a crash mid-write leaves either the old or the new state, never a mix.
//
//	meta/                       format marker and, later, small settings
//	  "format" -> "1"
//	config/
//	  revisions/                one entry per version, never rewritten
//	    be64(version) -> record (see record.go)
//	revocations/
//	  "seq"       -> be64       newest seq ever assigned (survives compaction)
//	  "compacted" -> be64       compaction point: every entry above it is in log/
//	  log/                      one entry per seq, never rewritten
//	    be64(seq) -> entry (see revocations.go)
//	  expiry/                   index for compaction, written with each entry
//	    be64(expires_unix_ms) be64(seq) -> empty
//	audit/
//	  "seq"       -> be64       newest audit seq ever assigned
//	  log/                      one record per seq, oldest deleted past the retention
//	    be64(seq) -> record (opaque: the service's AuditEntry)
//
// Big-endian keys keep bbolt's byte order equal to numeric order, so the
// newest entry is Cursor.Last, history is a backwards cursor walk, and the
// expiry index lists the oldest expiries first. The revocation and audit
// buckets were added without a format change: an older build ignores them.
var (
	bucketMeta      = []byte("meta")
	bucketConfig    = []byte("config")
	bucketRevisions = []byte("revisions")
	keyFormat       = []byte("format")
	keyRollout      = []byte("rollout") // in bucketMeta: be64 generation, then the record
)

// formatVersion is the on-disk layout version written to meta/format.
const formatVersion = "1"

// defaultLockTimeout bounds how long OpenBolt waits for the file lock held by
// another process before giving up with a clear error.
const defaultLockTimeout = 2 * time.Second

// Option adjusts OpenBolt. Options exist for tests and tuning; the defaults
// suit production.
type Option func(*boltOptions)

type boltOptions struct {
	lockTimeout time.Duration
	now         func() time.Time
	auditRetain int
}

// WithLockTimeout sets how long OpenBolt waits for another process to release
// the database file (default 2s).
func WithLockTimeout(d time.Duration) Option {
	return func(o *boltOptions) { o.lockTimeout = d }
}

// WithClock replaces the clock used to stamp CreatedUnixMs (tests).
func WithClock(now func() time.Time) Option {
	return func(o *boltOptions) { o.now = now }
}

// Bolt is the embedded Store on a bbolt file. It is safe for concurrent use.
// Writers are serialized by bbolt's single write transaction; readers run in
// parallel read transactions and receive copies that outlive the transaction.
type Bolt struct {
	db          *bolt.DB
	now         func() time.Time
	auditRetain int

	notifier
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens (creating if needed) the bbolt store at path. The directory
// must exist. When another process holds the file, OpenBolt fails after the
// lock timeout instead of hanging.
func OpenBolt(path string, opts ...Option) (*Bolt, error) {
	o := boltOptions{lockTimeout: defaultLockTimeout, now: time.Now, auditRetain: DefaultAuditRetain}
	for _, opt := range opts {
		opt(&o)
	}
	if o.auditRetain <= 0 {
		return nil, fmt.Errorf("open store %s: audit retention must be positive, got %d", path, o.auditRetain)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.lockTimeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: file is locked by another process (waited %s)", path, o.lockTimeout)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	var latest, revSeq, rolloutGen uint64
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch f := meta.Get(keyFormat); {
		case f == nil:
			if err := meta.Put(keyFormat, []byte(formatVersion)); err != nil {
				return err
			}
		case string(f) != formatVersion:
			return fmt.Errorf("unsupported format %q (this build reads %q)", f, formatVersion)
		}
		cfg, err := tx.CreateBucketIfNotExists(bucketConfig)
		if err != nil {
			return err
		}
		revs, err := cfg.CreateBucketIfNotExists(bucketRevisions)
		if err != nil {
			return err
		}
		latest = lastVersion(revs)
		rb, err := createRevocationBuckets(tx)
		if err != nil {
			return err
		}
		revSeq = getUint64(rb, keyRevSeq)
		rolloutGen, _ = boltRollout(meta)
		return createAuditBuckets(tx)
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Bolt{db: db, now: o.now, auditRetain: o.auditRetain, notifier: newNotifier(latest, revSeq, rolloutGen)}, nil
}

// Latest implements Store.
func (s *Bolt) Latest(ctx context.Context) (*Revision, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("latest: %w", err)
	}
	var rev *Revision
	err := s.db.View(func(tx *bolt.Tx) error {
		k, v := revisions(tx).Cursor().Last()
		if k == nil {
			return ErrNotFound
		}
		var err error
		rev, err = decodeFull(k, v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("latest: %w", s.mapErr(err))
	}
	return rev, nil
}

// Get implements Store.
func (s *Bolt) Get(ctx context.Context, version uint64) (*Revision, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get version %d: %w", version, err)
	}
	var rev *Revision
	err := s.db.View(func(tx *bolt.Tx) error {
		k := versionKey(version)
		v := revisions(tx).Get(k)
		if v == nil {
			return ErrNotFound
		}
		var err error
		rev, err = decodeFull(k, v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get version %d: %w", version, s.mapErr(err))
	}
	return rev, nil
}

// List implements Store.
func (s *Bolt) List(ctx context.Context, limit int) ([]*Revision, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	var out []*Revision
	err := s.db.View(func(tx *bolt.Tx) error {
		c := revisions(tx).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if limit > 0 && len(out) >= limit {
				break
			}
			rev, err := decodeMeta(k, v)
			if err != nil {
				return err
			}
			out = append(out, rev)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list: %w", s.mapErr(err))
	}
	return out, nil
}

// Commit implements Store.
func (s *Bolt) Commit(ctx context.Context, prevVersion uint64, rev *Revision) (*Revision, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	out, err := newRevision(rev, s.now)
	if err != nil {
		return nil, err
	}
	var rolloutGen uint64
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := revisions(tx)
		latest := lastVersion(b)
		if latest != prevVersion {
			return fmt.Errorf("based on version %d but the latest is %d: %w", prevVersion, latest, ErrStale)
		}
		out.Version = latest + 1
		if err := b.Put(versionKey(out.Version), encodeRecord(&out)); err != nil {
			return err
		}
		if rev.Rollout != nil {
			meta := tx.Bucket(bucketMeta)
			gen, _ := boltRollout(meta)
			rolloutGen = gen + 1
			return meta.Put(keyRollout, append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(rev.Rollout)), rolloutGen), rev.Rollout...))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("commit: %w", s.mapErr(err))
	}
	s.notify(&s.versions, out.Version)
	if rolloutGen != 0 {
		s.notify(&s.rollouts, rolloutGen)
	}
	return &out, nil
}

// Watch implements Store.
func (s *Bolt) Watch(ctx context.Context) (<-chan uint64, error) {
	return s.watch(ctx, "watch", &s.versions)
}

// Close implements Store. It closes every watch channel, then the database
// (bbolt waits for running transactions). It is idempotent.
func (s *Bolt) Close() error {
	if !s.closeWatchers() {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// mapErr turns bbolt's "database not open" into ErrClosed; every other
// error passes through.
func (s *Bolt) mapErr(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

func revisions(tx *bolt.Tx) *bolt.Bucket {
	// Both buckets are created by OpenBolt and never deleted.
	return tx.Bucket(bucketConfig).Bucket(bucketRevisions)
}

func lastVersion(b *bolt.Bucket) uint64 {
	k, _ := b.Cursor().Last()
	if k == nil {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

func versionKey(v uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v)
}
