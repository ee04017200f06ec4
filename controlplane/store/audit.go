package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The audit log (layout in bolt.go): one record per seq, written once,
// deleted oldest first when the log holds more than the retention.
var (
	bucketAudit    = []byte("audit")
	bucketAuditLog = []byte("log")
	keyAuditSeq    = []byte("seq")
)

// DefaultAuditRetain is how many audit records the store keeps: the
// oldest are deleted beyond it, so refused calls (which anyone who reaches
// the admin listener can cause) never fill the disk. About 300 bytes a
// record: some 30 MB.
const DefaultAuditRetain = 100_000

// AuditLog is the control plane's append-only audit trail. The store
// keeps each record as opaque bytes (the service encodes them) under a
// seq it assigns: 1, 2, 3... never reused.
type AuditLog interface {
	// AppendAudit stores data as the next record and returns its seq. The
	// record is durable when it returns.
	AppendAudit(ctx context.Context, data []byte) (uint64, error)
	// ScanAudit calls fn with the records whose seq is below beforeSeq
	// (zero: every record), newest first, until fn returns false. data is
	// only valid during the call.
	ScanAudit(ctx context.Context, beforeSeq uint64, fn func(seq uint64, data []byte) bool) error
}

var _ AuditLog = (*Bolt)(nil)

// WithAuditRetain sets how many audit records are kept (default
// DefaultAuditRetain).
func WithAuditRetain(n int) Option {
	return func(o *boltOptions) { o.auditRetain = n }
}

func createAuditBuckets(tx *bolt.Tx) error {
	ab, err := tx.CreateBucketIfNotExists(bucketAudit)
	if err != nil {
		return err
	}
	_, err = ab.CreateBucketIfNotExists(bucketAuditLog)
	return err
}

// AppendAudit implements AuditLog. Concurrent appends share a transaction
// (bbolt's Batch), so a burst of refused calls costs one fsync per batch,
// not one each.
func (s *Bolt) AppendAudit(ctx context.Context, data []byte) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("append audit: %w", err)
	}
	if len(data) == 0 {
		return 0, errors.New("append audit: empty record")
	}
	var seq uint64
	err := s.db.Batch(func(tx *bolt.Tx) error {
		ab := tx.Bucket(bucketAudit)
		seq = getUint64(ab, keyAuditSeq) + 1
		if err := ab.Put(keyAuditSeq, versionKey(seq)); err != nil {
			return err
		}
		log := ab.Bucket(bucketAuditLog)
		if err := log.Put(versionKey(seq), data); err != nil {
			return err
		}
		// Trim to the retention: usually one record, the oldest.
		if seq > uint64(s.auditRetain) {
			c := log.Cursor()
			for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq-uint64(s.auditRetain); k, _ = c.Next() {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("append audit: %w", s.mapErr(err))
	}
	return seq, nil
}

// ScanAudit implements AuditLog.
func (s *Bolt) ScanAudit(ctx context.Context, beforeSeq uint64, fn func(seq uint64, data []byte) bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("scan audit: %w", err)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Bucket(bucketAuditLog).Cursor()
		var k, v []byte
		if beforeSeq == 0 {
			k, v = c.Last()
		} else {
			k, _ = c.Seek(versionKey(beforeSeq))
			if k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		for ; k != nil; k, v = c.Prev() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if !fn(binary.BigEndian.Uint64(k), v) {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan audit: %w", s.mapErr(err))
	}
	return nil
}
