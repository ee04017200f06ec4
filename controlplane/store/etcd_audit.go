package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var _ AuditLog = (*Etcd)(nil)

func (s *Etcd) keyHeadAudit() string          { return s.prefix + "audit/head" }
func (s *Etcd) keyAuditLogPrefix() string     { return s.prefix + "audit/log/" }
func (s *Etcd) keyAuditLog(seq uint64) string { return s.keyAuditLogPrefix() + hex16(seq) }

// AppendAudit implements AuditLog: the seq is audit/head plus one, bumped
// in the transaction that writes the record, guarded by a compare on the
// head's mod revision like the store's other counters (so two replicas
// never assign the same seq; a lost race takes the next one). The same
// transaction deletes every record at or below seq minus the retention,
// so the log stays bounded whichever replica appends.
func (s *Etcd) AppendAudit(ctx context.Context, data []byte) (uint64, error) {
	if len(data) == 0 {
		return 0, errors.New("append audit: empty record")
	}
	c, cancel, err := s.op(ctx, "append audit")
	if err != nil {
		return 0, err
	}
	defer cancel()
	head := s.keyHeadAudit()
	for {
		resp, err := s.cli.Get(c, head)
		if err != nil {
			return 0, fmt.Errorf("append audit: %w", s.mapErr(err))
		}
		var mod int64
		if len(resp.Kvs) == 1 {
			mod = resp.Kvs[0].ModRevision
		}
		seq := rangeUint64((*rangeResp)(resp)) + 1
		ops := []clientv3.Op{
			clientv3.OpPut(head, string(versionKey(seq))),
			clientv3.OpPut(s.keyAuditLog(seq), string(data)),
		}
		if r := uint64(s.auditRetain); seq > r {
			// [log/0, log/seq-r] inclusive: the range end is exclusive.
			ops = append(ops, clientv3.OpDelete(s.keyAuditLog(0), clientv3.WithRange(s.keyAuditLog(seq-r+1))))
		}
		tr, err := retryTransient(c, func() (*clientv3.TxnResponse, error) {
			return s.cli.Txn(c).If(clientv3.Compare(clientv3.ModRevision(head), "=", mod)).Then(ops...).Commit()
		})
		if err != nil {
			return 0, fmt.Errorf("append audit: %w", s.mapErr(err))
		}
		if tr.Succeeded {
			return seq, nil
		}
		// Another replica appended first: take the next seq.
	}
}

// auditPage is how many records ScanAudit reads per etcd request.
const auditPage = 256

// ScanAudit implements AuditLog: newest first, in pages read at one etcd
// revision, so a scan sees one consistent log while others append.
func (s *Etcd) ScanAudit(ctx context.Context, beforeSeq uint64, fn func(seq uint64, data []byte) bool) error {
	c, cancel, err := s.op(ctx, "scan audit")
	if err != nil {
		return err
	}
	defer cancel()
	start := s.keyAuditLogPrefix()
	end := clientv3.GetPrefixRangeEnd(start)
	if beforeSeq != 0 {
		end = s.keyAuditLog(beforeSeq)
	}
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(auditPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(c, start, opts...)
		if err != nil {
			return fmt.Errorf("scan audit: %w", s.mapErr(err))
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			seq, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), start), 16, 64)
			if err != nil {
				return fmt.Errorf("scan audit: bad key %q", kv.Key)
			}
			if !fn(seq, kv.Value) {
				return nil
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		end = string(resp.Kvs[len(resp.Kvs)-1].Key)
	}
}
