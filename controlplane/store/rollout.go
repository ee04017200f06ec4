package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// boltRollout returns the generation and record kept under keyRollout of
// the meta bucket (0 and nil when none). The record is a copy.
func boltRollout(meta *bolt.Bucket) (uint64, []byte) {
	v := meta.Get(keyRollout)
	if len(v) < 8 {
		return 0, nil
	}
	return binary.BigEndian.Uint64(v), bytes.Clone(v[8:])
}

// Rollout implements RolloutLog.
func (s *Bolt) Rollout(ctx context.Context) ([]byte, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("rollout: %w", err)
	}
	var gen uint64
	var data []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		gen, data = boltRollout(tx.Bucket(bucketMeta))
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("rollout: %w", s.mapErr(err))
	}
	return data, gen, nil
}

// PutRollout implements RolloutLog: the generation counts the writes.
func (s *Bolt) PutRollout(ctx context.Context, prevGen uint64, data []byte) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("put rollout: %w", err)
	}
	var gen uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		cur, _ := boltRollout(meta)
		if cur != prevGen {
			return fmt.Errorf("based on generation %d but the record is at %d: %w", prevGen, cur, ErrStale)
		}
		gen = cur + 1
		return meta.Put(keyRollout, append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(data)), gen), data...))
	})
	if err != nil {
		return 0, fmt.Errorf("put rollout: %w", s.mapErr(err))
	}
	s.notify(&s.rollouts, gen)
	return gen, nil
}

// WatchRollout implements RolloutLog.
func (s *Bolt) WatchRollout(ctx context.Context) (<-chan uint64, error) {
	return s.watch(ctx, "watch rollout", &s.rollouts)
}

// keyHeadRollout is the rollout record. It lives under head/ so the one
// watch every replica runs sees it change; its generation is the key's
// etcd mod revision (a compare on it guards PutRollout).
func (s *Etcd) keyHeadRollout() string { return s.prefix + "head/rollout" }

// Rollout implements RolloutLog.
func (s *Etcd) Rollout(ctx context.Context) ([]byte, uint64, error) {
	c, cancel, err := s.op(ctx, "rollout")
	if err != nil {
		return nil, 0, err
	}
	defer cancel()
	resp, err := s.cli.Get(c, s.keyHeadRollout())
	if err != nil {
		return nil, 0, fmt.Errorf("rollout: %w", s.mapErr(err))
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	return resp.Kvs[0].Value, uint64(resp.Kvs[0].ModRevision), nil
}

// PutRollout implements RolloutLog.
func (s *Etcd) PutRollout(ctx context.Context, prevGen uint64, data []byte) (uint64, error) {
	c, cancel, err := s.op(ctx, "put rollout")
	if err != nil {
		return 0, err
	}
	defer cancel()
	key := s.keyHeadRollout()
	resp, err := retryTransient(c, func() (*clientv3.TxnResponse, error) {
		return s.cli.Txn(c).If(clientv3.Compare(clientv3.ModRevision(key), "=", int64(prevGen))).
			Then(clientv3.OpPut(key, string(data))).
			Else(clientv3.OpGet(key)).Commit()
	})
	if err != nil {
		return 0, fmt.Errorf("put rollout: %w", s.mapErr(err))
	}
	if !resp.Succeeded {
		var cur int64
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
			cur = kvs[0].ModRevision
		}
		return 0, fmt.Errorf("put rollout: based on generation %d but the record is at %d: %w", prevGen, cur, ErrStale)
	}
	gen := uint64(resp.Header.Revision)
	s.notify(&s.rollouts, gen)
	return gen, nil
}

// WatchRollout implements RolloutLog.
func (s *Etcd) WatchRollout(ctx context.Context) (<-chan uint64, error) {
	return s.watch(ctx, "watch rollout", &s.rollouts)
}
