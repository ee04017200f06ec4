package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"
)

// Buckets and keys of the revocation log (the layout is in bolt.go).
var (
	bucketRevocations = []byte("revocations")
	bucketRevLog      = []byte("log")
	bucketRevExpiry   = []byte("expiry")
	keyRevSeq         = []byte("seq")
	keyRevCompacted   = []byte("compacted")
)

// compactBatch bounds the entries one compaction transaction deletes, so an
// append waits for at most one short transaction, never for a whole sweep of
// a million expired entries.
const compactBatch = 1000

// A stored revocation is encoded in the protobuf wire format by hand, like a
// revision (record.go). The seq is the key, so it is not repeated. Field
// numbers are forever; never reuse one.
const (
	fieldRevClaim         protowire.Number = 1
	fieldRevValue         protowire.Number = 2
	fieldRevExpiresUnixMs protowire.Number = 3
	fieldRevCreatedUnixMs protowire.Number = 4
	fieldRevAuthor        protowire.Number = 5
)

// AppendRevocation implements RevocationLog.
func (s *Bolt) AppendRevocation(ctx context.Context, r *Revocation) (*Revocation, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("append revocation: %w", err)
	}
	out, err := newRevocation(r, s.now)
	if err != nil {
		return nil, err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketRevocations)
		out.Seq = getUint64(rb, keyRevSeq) + 1
		if err := rb.Put(keyRevSeq, versionKey(out.Seq)); err != nil {
			return err
		}
		if err := rb.Bucket(bucketRevLog).Put(versionKey(out.Seq), encodeRevocation(&out)); err != nil {
			return err
		}
		return rb.Bucket(bucketRevExpiry).Put(expiryKey(out.ExpiresUnixMs, out.Seq), []byte{})
	})
	if err != nil {
		return nil, fmt.Errorf("append revocation: %w", s.mapErr(err))
	}
	s.notify(&s.revSeqs, out.Seq)
	return &out, nil
}

// RevocationsSince implements RevocationLog.
func (s *Bolt) RevocationsSince(ctx context.Context, seq uint64) ([]*Revocation, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("revocations since %d: %w", seq, err)
	}
	var out []*Revocation
	err := s.db.View(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketRevocations)
		if c := getUint64(rb, keyRevCompacted); seq < c {
			return fmt.Errorf("entries up to %d were compacted: %w", c, ErrCompacted)
		}
		if seq == math.MaxUint64 {
			return nil
		}
		c := rb.Bucket(bucketRevLog).Cursor()
		for k, v := c.Seek(versionKey(seq + 1)); k != nil; k, v = c.Next() {
			r, err := decodeRevocation(k, v)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("revocations since %d: %w", seq, s.mapErr(err))
	}
	return out, nil
}

// LiveRevocations implements RevocationLog.
func (s *Bolt) LiveRevocations(ctx context.Context, now time.Time) ([]*Revocation, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("live revocations: %w", err)
	}
	nowMs := now.UnixMilli()
	var (
		out []*Revocation
		seq uint64
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketRevocations)
		seq = getUint64(rb, keyRevSeq)
		c := rb.Bucket(bucketRevLog).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			r, err := decodeRevocation(k, v)
			if err != nil {
				return err
			}
			if r.ExpiresUnixMs > nowMs {
				out = append(out, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("live revocations: %w", s.mapErr(err))
	}
	return out, seq, nil
}

// RevocationSeq implements RevocationLog.
func (s *Bolt) RevocationSeq(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("revocation seq: %w", err)
	}
	var seq uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		seq = getUint64(tx.Bucket(bucketRevocations), keyRevSeq)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("revocation seq: %w", s.mapErr(err))
	}
	return seq, nil
}

// WatchRevocations implements RevocationLog.
func (s *Bolt) WatchRevocations(ctx context.Context) (<-chan uint64, error) {
	return s.watch(ctx, "watch revocations", &s.revSeqs)
}

// CompactRevocations implements RevocationLog. It walks the expiry index
// from the oldest expiry, so its cost is the number of expired entries, not
// the size of the log.
func (s *Bolt) CompactRevocations(ctx context.Context, expiredBefore time.Time) (RevocationCompaction, error) {
	cut := expiredBefore.UnixMilli()
	var res RevocationCompaction
	for {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("compact revocations: %w", err)
		}
		var n int
		err := s.db.Update(func(tx *bolt.Tx) error {
			rb := tx.Bucket(bucketRevocations)
			log, idx := rb.Bucket(bucketRevLog), rb.Bucket(bucketRevExpiry)
			marker := getUint64(rb, keyRevCompacted)
			// Collect first: deleting under a live cursor skips keys. Keys
			// are only valid inside the transaction; keep the numbers.
			type expired struct {
				exp int64
				seq uint64
			}
			var found []expired
			c := idx.Cursor()
			for k, _ := c.First(); k != nil && len(found) < compactBatch; k, _ = c.Next() {
				if len(k) != 16 {
					return fmt.Errorf("expiry index key %x is malformed (store corrupt)", k)
				}
				exp := int64(binary.BigEndian.Uint64(k[:8]))
				if exp >= cut {
					break
				}
				found = append(found, expired{exp, binary.BigEndian.Uint64(k[8:])})
			}
			for _, f := range found {
				if err := idx.Delete(expiryKey(f.exp, f.seq)); err != nil {
					return err
				}
				if err := log.Delete(versionKey(f.seq)); err != nil {
					return err
				}
				marker = max(marker, f.seq)
			}
			if len(found) > 0 {
				if err := rb.Put(keyRevCompacted, versionKey(marker)); err != nil {
					return err
				}
			}
			n = len(found)
			res.CompactedSeq = marker
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("compact revocations: %w", s.mapErr(err))
		}
		res.Removed += n
		if n < compactBatch {
			return res, nil
		}
	}
}

// createRevocationBuckets creates the revocation buckets if missing and
// returns the top one.
func createRevocationBuckets(tx *bolt.Tx) (*bolt.Bucket, error) {
	rb, err := tx.CreateBucketIfNotExists(bucketRevocations)
	if err != nil {
		return nil, err
	}
	for _, name := range [][]byte{bucketRevLog, bucketRevExpiry} {
		if _, err := rb.CreateBucketIfNotExists(name); err != nil {
			return nil, err
		}
	}
	return rb, nil
}

// getUint64 reads a big-endian counter; a missing key is zero.
func getUint64(b *bolt.Bucket, key []byte) uint64 {
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func expiryKey(expiresUnixMs int64, seq uint64) []byte {
	k := make([]byte, 0, 16)
	k = binary.BigEndian.AppendUint64(k, uint64(expiresUnixMs))
	return binary.BigEndian.AppendUint64(k, seq)
}

func encodeRevocation(r *Revocation) []byte {
	b := make([]byte, 0, len(r.Claim)+len(r.Value)+len(r.Author)+32)
	b = appendString(b, fieldRevClaim, r.Claim)
	b = appendString(b, fieldRevValue, r.Value)
	b = appendVarint(b, fieldRevExpiresUnixMs, uint64(r.ExpiresUnixMs))
	b = appendVarint(b, fieldRevCreatedUnixMs, uint64(r.CreatedUnixMs))
	b = appendString(b, fieldRevAuthor, r.Author)
	return b
}

// decodeRevocation decodes an entry; key and val belong to a bbolt
// transaction and the result holds copies.
func decodeRevocation(key, val []byte) (*Revocation, error) {
	if len(key) != 8 {
		return nil, fmt.Errorf("decode revocation: key %x is not a seq", key)
	}
	r := &Revocation{Seq: binary.BigEndian.Uint64(key)}
	fail := func(n int) (*Revocation, error) {
		return nil, fmt.Errorf("decode revocation %d: %w", r.Seq, protowire.ParseError(n))
	}
	for len(val) > 0 {
		num, typ, n := protowire.ConsumeTag(val)
		if n < 0 {
			return fail(n)
		}
		val = val[n:]
		switch {
		case typ == protowire.BytesType && (num == fieldRevClaim || num == fieldRevValue || num == fieldRevAuthor):
			v, n := protowire.ConsumeBytes(val)
			if n < 0 {
				return fail(n)
			}
			val = val[n:]
			switch num {
			case fieldRevClaim:
				r.Claim = string(v)
			case fieldRevValue:
				r.Value = string(v)
			case fieldRevAuthor:
				r.Author = string(v)
			}
		case typ == protowire.VarintType && (num == fieldRevExpiresUnixMs || num == fieldRevCreatedUnixMs):
			v, n := protowire.ConsumeVarint(val)
			if n < 0 {
				return fail(n)
			}
			val = val[n:]
			if num == fieldRevExpiresUnixMs {
				r.ExpiresUnixMs = int64(v)
			} else {
				r.CreatedUnixMs = int64(v)
			}
		default:
			// A field from a newer build (or an unexpected type): skip it.
			n := protowire.ConsumeFieldValue(num, typ, val)
			if n < 0 {
				return fail(n)
			}
			val = val[n:]
		}
	}
	return r, nil
}
