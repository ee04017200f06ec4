// Package store keeps the control plane's configuration history: immutable,
// versioned revisions with a compare-and-swap commit and a watch that tells
// subscribers about the newest version.
//
// Store is the interface the rest of the control plane uses; OpenBolt is the
// embedded implementation on a local bbolt file. The interface deliberately
// exposes no bbolt types so that a replicated implementation (etcd) can be
// added later without touching callers.
//
// store must not import the gRPC services (controlplane/service), the config
// compiler (controlplane/config), the generated protos or anything under edge/
// or cli/: it stores opaque bytes and metadata only.
package store

import (
	"context"
	"errors"
)

// ErrNotFound is returned when a requested revision does not exist, and by
// Latest when the store holds no revision yet.
var ErrNotFound = errors.New("not found")

// ErrStale is returned by Commit when prevVersion is not the latest version:
// another writer committed first. The caller re-reads Latest and decides again.
var ErrStale = errors.New("stale revision")

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("store closed")

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
}

// Store is a versioned configuration store. Implementations are safe for
// concurrent use.
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
	// Close releases the store. It is idempotent; calls after the first
	// return nil.
	Close() error
}
