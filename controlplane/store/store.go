// Package store keeps the control plane's durable state: the configuration
// history (immutable, versioned revisions with a compare-and-swap commit),
// the revocation log (append-only entries with a monotonic seq, compacted
// once they have expired), each with a watch that tells subscribers about
// the newest version or seq, and the audit log (append-only, bounded).
//
// Store is the interface the rest of the control plane uses; OpenBolt is the
// embedded implementation on a local bbolt file, OpenEtcd the replicated one
// on an etcd cluster that several control-plane replicas share (etcd.go has
// its key layout). The interface exposes neither's types; the contract tests
// run against both.
//
// store must not import the gRPC services (controlplane/service), the config
// compiler (controlplane/config), the generated protos or anything under edge/
// or cli/: it stores opaque bytes and metadata only.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a requested revision does not exist, and by
// Latest when the store holds no revision yet.
var ErrNotFound = errors.New("not found")

// ErrStale is returned by Commit when prevVersion is not the latest version:
// another writer committed first. The caller re-reads Latest and decides again.
var ErrStale = errors.New("stale revision")

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("store closed")

// ErrCompacted is returned by RevocationsSince when entries after the given
// seq were deleted by compaction: the caller cannot build a delta from that
// point and must send the whole live set instead (as etcd's ErrCompacted).
var ErrCompacted = errors.New("revocation log compacted")

// Revision is one immutable, stored version of the configuration.
//
// Revisions returned by a Store are shared and must be treated as read-only
// (including the byte slices). Callers that need to change one copy it first.
type Revision struct {
	// Version is assigned by the store on Commit: 1, 2, 3... and never reused.
	Version uint64
	// SHA256 is the lowercase hex sha256 of Payload.
	SHA256 string
	// Payload is the deterministic serialization of the compiled snapshot.
	Payload []byte
	// Source is the configuration document as the operator pushed it.
	Source []byte
	// SourceName is the file name the source was pushed with.
	SourceName string
	// Author is who pushed the revision ("unknown" when not given).
	Author string
	// CreatedUnixMs is when the revision was committed (set by the store when
	// zero on Commit).
	CreatedUnixMs int64
	// RollbackOf is the version whose content this revision copies, or zero.
	RollbackOf uint64
	// Endpoints is the number of endpoints in the snapshot, for listings.
	Endpoints uint32
	// RenderedFrom lists the Flexible Config files whose render is Source
	// (empty when Source was written by hand).
	RenderedFrom []SourceFile
	// Warnings are the compiler's warnings for Source.
	Warnings []Warning
	// Rollout, on Commit only, replaces the rollout record (RolloutLog) in
	// the same transaction as the revision, so no reader ever sees the new
	// version without the rollout that stages it. It is not part of the
	// stored revision and is nil on every Revision a Store returns.
	Rollout []byte
}

// SourceFile is one input of a rendered configuration: its name and the
// sha256 of its content.
type SourceFile struct {
	Name   string
	SHA256 string
}

// Warning is one compiler warning kept with a revision (the store keeps the
// three fields of a FieldViolation without depending on the protos).
type Warning struct {
	Path, Kind, Detail string
}

// Revocation is one immutable entry of the revocation log: every token whose
// Claim equals Value is revoked until ExpiresUnixMs.
//
// Entries returned by a Store are shared and must be treated as read-only.
type Revocation struct {
	// Seq is assigned by the store on AppendRevocation: 1, 2, 3... and never
	// reused, not even after compaction deleted the newest entries.
	Seq uint64
	// Claim is the JWT claim ("jti", "sub"...).
	Claim string
	// Value is the revoked claim value.
	Value string
	// ExpiresUnixMs is when the entry stops mattering (the token would have
	// expired anyway). Required: the log only shrinks through expiry.
	ExpiresUnixMs int64
	// CreatedUnixMs is when the entry was appended (set by the store when
	// zero on AppendRevocation).
	CreatedUnixMs int64
	// Author is who revoked.
	Author string
}

// RevocationCompaction is the result of CompactRevocations.
type RevocationCompaction struct {
	// Removed is the number of entries deleted by this call.
	Removed int
	// CompactedSeq is the compaction point after the call: the log holds
	// every entry with a higher seq (entries at or below it may be gone).
	CompactedSeq uint64
}

// RevocationLog is the append-only log of revocations. Seqs are assigned by
// the store and strictly increase; entries are never rewritten, only deleted
// by CompactRevocations once expired. The log keeps a compaction point
// (the highest seq ever deleted): every entry above it is present, so a
// reader holding seq >= the point can be brought up to date with the
// entries after it, and one below it needs the whole live set.
type RevocationLog interface {
	// AppendRevocation stores r as the next entry and returns it with Seq
	// (and CreatedUnixMs when it was zero) set; r.Seq is ignored. Claim,
	// Value and a positive ExpiresUnixMs are required. The seq is assigned
	// and the entry written in one transaction.
	AppendRevocation(ctx context.Context, r *Revocation) (*Revocation, error)
	// RevocationsSince returns the entries with a seq above seq, oldest
	// first. They are contiguous (seq+1, seq+2...) because nothing above the
	// compaction point is ever deleted. When seq is below the compaction
	// point it returns an error wrapping ErrCompacted.
	RevocationsSince(ctx context.Context, seq uint64) ([]*Revocation, error)
	// LiveRevocations returns the entries that have not expired at now,
	// oldest first, and the newest seq of the log, read together: the
	// entries are exactly the live set as of that seq.
	LiveRevocations(ctx context.Context, now time.Time) ([]*Revocation, uint64, error)
	// RevocationSeq returns the newest seq ever assigned (zero for a log
	// that never had an entry).
	RevocationSeq(ctx context.Context) (uint64, error)
	// WatchRevocations is Watch for the revocation log: a 1-slot channel of
	// the newest seq (a newer seq replaces an unread one), holding the
	// current seq at once when the log is not empty, closed when ctx is
	// done or the store is closed.
	WatchRevocations(ctx context.Context) (<-chan uint64, error)
	// CompactRevocations deletes the entries that expired before
	// expiredBefore (callers pass now minus a grace period, so an edge with
	// a slow clock never misses an entry it still enforces) and raises the
	// compaction point to the highest seq deleted. It works in small
	// transactions so appends are never blocked for long.
	CompactRevocations(ctx context.Context, expiredBefore time.Time) (RevocationCompaction, error)
}

// RolloutLog holds the one staged-rollout record: opaque bytes the control
// plane encodes (which version is in canary where, and its phase), replaced
// with a compare-and-swap on its generation so that two replicas deciding
// at once (a promotion and a halt) never both win.
type RolloutLog interface {
	// Rollout returns the record and its generation; a nil record and
	// generation zero when none was ever written.
	Rollout(ctx context.Context) (data []byte, gen uint64, err error)
	// PutRollout replaces the record if its generation is still prevGen
	// (zero: no record yet) and returns the new generation; otherwise it
	// returns an error wrapping ErrStale and writes nothing.
	PutRollout(ctx context.Context, prevGen uint64, data []byte) (uint64, error)
	// WatchRollout is Watch for the rollout record: a 1-slot channel of its
	// newest generation, holding the current one at once when a record
	// exists, closed when ctx is done or the store is closed.
	WatchRollout(ctx context.Context) (<-chan uint64, error)
}

// Store is the control plane's durable state: configuration versions and
// the revocation log. Implementations are safe for concurrent use.
type Store interface {
	// Latest returns the newest revision, or ErrNotFound when there is none.
	Latest(ctx context.Context) (*Revision, error)
	// Get returns the revision with the given version, or ErrNotFound.
	Get(ctx context.Context, version uint64) (*Revision, error)
	// List returns up to limit revisions, newest first, WITHOUT Payload and
	// Source (they can be megabytes each; use Get for the content). A limit
	// of zero or less means all.
	List(ctx context.Context, limit int) ([]*Revision, error)
	// Commit stores rev as the next version if prevVersion is the latest
	// version (zero for an empty store), and returns the stored revision with
	// Version (and CreatedUnixMs when it was zero) set. rev.Version is ignored.
	// When prevVersion is not the latest version Commit returns an error
	// wrapping ErrStale and stores nothing. rev.SHA256 must be the sha256 of
	// rev.Payload. The result shares rev's byte slices; neither may be
	// modified afterwards.
	Commit(ctx context.Context, prevVersion uint64, rev *Revision) (*Revision, error)
	// Watch returns a channel that receives the latest version whenever it
	// changes. The channel holds one value: a newer version replaces an unread
	// one, so a slow reader never blocks a writer and only sees the newest.
	// Values are strictly increasing. When the store holds a revision, the
	// channel already contains the latest version when Watch returns, so
	// "Watch, then handle every value" never misses an update. The channel is
	// closed when ctx is done or the store is closed.
	Watch(ctx context.Context) (<-chan uint64, error)

	RevocationLog
	AuditLog
	RolloutLog

	// Close releases the store. It is idempotent; calls after the first
	// return nil.
	Close() error
}
