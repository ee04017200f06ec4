package store

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/encoding/protowire"
)

// ChunkCollector is implemented by stores that can leave content behind a
// commit that lost (etcd: chunks written before a commit transaction that
// failed, or whose process died). The control plane's housekeeping calls
// it.
type ChunkCollector interface {
	// CollectOrphanChunks deletes the chunks no version references and no
	// commit can still be about to reference, and returns how many
	// contents it removed.
	CollectOrphanChunks(ctx context.Context) (int, error)
}

var _ ChunkCollector = (*Etcd)(nil)

func (s *Etcd) keyBlobIntent(sum string) string { return s.prefix + "blob-intent/" + sum }

// An intent is {1: the revision's sha256, 2: unix ms when written}.
func encodeIntent(revSHA string, unixMs int64) []byte {
	b := appendString(nil, 1, revSHA)
	return appendVarint(b, 2, uint64(unixMs))
}

func decodeIntent(b []byte) (revSHA string, unixMs int64, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", 0, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", 0, protowire.ParseError(n)
			}
			revSHA, b = string(v), b[n:]
		case num == 2 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return "", 0, protowire.ParseError(n)
			}
			unixMs, b = int64(v), b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return "", 0, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return revSHA, unixMs, nil
}

// CollectOrphanChunks implements ChunkCollector. Every chunked write leaves
// an intent that its commit transaction deletes; an intent older than the
// grace period belongs to a commit that is over (committed, lost its race,
// or died). Its chunks are deleted unless a stored version points at them
// (the same content committed by another push), and the intent with them,
// in one transaction guarded by the intent's mod revision: a push of the
// same content that starts meanwhile rewrites the intent first, so the
// deletion then does nothing.
func (s *Etcd) CollectOrphanChunks(ctx context.Context) (int, error) {
	c, cancel, err := s.op(ctx, "collect orphan chunks")
	if err != nil {
		return 0, err
	}
	defer cancel()
	resp, err := s.cli.Get(c, s.prefix+"blob-intent/", clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("collect orphan chunks: %w", s.mapErr(err))
	}
	cutoff := s.now().Add(-s.orphanGrace).UnixMilli()
	var metas []*Revision // read once, when an intent is old enough
	removed := 0
	for _, kv := range resp.Kvs {
		sum := strings.TrimPrefix(string(kv.Key), s.prefix+"blob-intent/")
		revSHA, at, err := decodeIntent(kv.Value)
		if err != nil {
			s.log.Warn().Err(err).Str("key", string(kv.Key)).Msg("etcd: undecodable chunk intent; left alone")
			continue
		}
		if at > cutoff {
			continue // its commit may still be running
		}
		if metas == nil {
			if metas, err = s.List(c, 0); err != nil {
				return removed, err
			}
		}
		used, err := s.chunksReferenced(c, metas, revSHA, sum)
		if err != nil {
			return removed, err
		}
		ops := []clientv3.Op{clientv3.OpDelete(string(kv.Key))}
		if !used {
			ops = append(ops, clientv3.OpDelete(s.keyBlobPrefix(sum), clientv3.WithPrefix()))
		}
		tr, err := s.cli.Txn(c).If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)).Then(ops...).Commit()
		if err != nil {
			return removed, fmt.Errorf("collect orphan chunks: %w", s.mapErr(err))
		}
		if tr.Succeeded && !used {
			removed++
			s.log.Info().Str("content_sha256", sum).Str("revision_sha256", revSHA).Msg("etcd: deleted the chunks of a commit that never happened")
		}
	}
	return removed, nil
}

// chunksReferenced reports whether a stored version with payload sha256
// revSHA points at the chunks of content sum.
func (s *Etcd) chunksReferenced(ctx context.Context, metas []*Revision, revSHA, sum string) (bool, error) {
	for _, m := range metas {
		if m.SHA256 != revSHA {
			continue
		}
		resp, err := s.cli.Get(ctx, s.keyContent(m.Version))
		if err != nil {
			return false, fmt.Errorf("collect orphan chunks: %w", s.mapErr(err))
		}
		if len(resp.Kvs) != 1 {
			continue
		}
		v := resp.Kvs[0].Value
		if len(v) == 0 || (v[0] != contentChunked && v[0] != contentChunkedZstd) {
			continue
		}
		ptrSum, _, _, err := decodePointer(v[1:])
		if err != nil {
			// Unreadable: keep the chunks rather than guess.
			return true, nil
		}
		if ptrSum == sum {
			return true, nil
		}
	}
	return false, nil
}

// blobCount is the number of chunk keys stored (tests).
func (s *Etcd) blobCount(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, s.prefix+"blob/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Count, nil
}
