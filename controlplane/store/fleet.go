package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/apigw/gateway/internal/pause"
)

// FleetBoard is implemented by stores that several control-plane replicas
// share (etcd). Each replica publishes the state of the edges streaming
// from it under a lease of its own and follows what the others publish, so
// any replica can show (and judge) the whole fleet. A replica that dies
// stops renewing its lease, and etcd deletes its entries when the lease's
// TTL runs out.
//
// The values are opaque to the store (the control plane encodes them).
type FleetBoard interface {
	// JoinFleet grants a lease of ttl for this replica, keeps it alive
	// and follows the other sessions' entries: onEvent is called from one
	// goroutine, in order, first with a Reset and every entry already
	// published, then with every change. The session's own entries are
	// not reported. onEvent must not block for long.
	JoinFleet(ctx context.Context, ttl time.Duration, onEvent func(FleetEvent)) (FleetSession, error)
}

// FleetEvent is one change of another session's entries.
type FleetEvent struct {
	// Reset: forget every entry of every other session; the events that
	// follow are the full set again (first event, and after the watch
	// was lost or compacted away).
	Reset bool
	// Session identifies the publisher (one lease; a replica that lost its
	// lease comes back as a new session).
	Session string
	// Key is the entry's key within the session ("" never occurs).
	Key string
	// Value is the entry; nil when it was deleted (or its lease expired).
	Value []byte
}

// FleetWrite is one entry to publish; a nil Value deletes it.
type FleetWrite struct {
	Key   string
	Value []byte
}

// FleetSession is one replica's lease on the fleet board.
type FleetSession interface {
	// ID is the current session id (it changes when the lease was lost
	// and a new one granted).
	ID() string
	// Epoch counts the leases granted: a change means every entry
	// written before is gone and must be written again.
	Epoch() uint64
	// Publish writes the entries under the lease, in transactions of at
	// most maxFleetTxnOps operations. A lost lease is replaced by a new
	// one (Epoch changes) and the call fails; the caller writes everything
	// again.
	Publish(ctx context.Context, writes []FleetWrite) error
	// Writes returns how many entries and transactions were written.
	Writes() (entries, txns uint64)
	// Close revokes the lease (the entries vanish at once for the
	// others) and stops following.
	Close() error
}

// maxFleetTxnOps stays under etcd's default --max-txn-ops (128).
const maxFleetTxnOps = 128

// ErrFleetLeaseLost is returned by Publish when the session's lease had
// expired; a new one is in place.
var ErrFleetLeaseLost = errors.New("fleet lease lost")

var _ FleetBoard = (*Etcd)(nil)

// Keys: fleet/<lease id, 16 hex>/<key>.
func (s *Etcd) keyFleet() string { return s.prefix + "fleet/" }

// JoinFleet implements FleetBoard.
func (s *Etcd) JoinFleet(ctx context.Context, ttl time.Duration, onEvent func(FleetEvent)) (FleetSession, error) {
	secs := int64((ttl + time.Second - 1) / time.Second)
	if secs < 1 {
		return nil, fmt.Errorf("join fleet: lease ttl must be at least 1s, got %s", ttl)
	}
	fs := &etcdFleet{s: s, ttl: secs, onEvent: onEvent, done: make(chan struct{})}
	octx, cancel, err := s.op(ctx, "join fleet")
	if err != nil {
		return nil, err
	}
	err = fs.grant(octx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("join fleet: %w", err)
	}
	wctx, stop := context.WithCancel(context.Background())
	fs.stop = stop
	go fs.follow(wctx)
	return fs, nil
}

type etcdFleet struct {
	s       *Etcd
	ttl     int64
	onEvent func(FleetEvent)

	// mu guards lease and cancelKA (the lease's keepalive).
	mu       sync.Mutex
	lease    clientv3.LeaseID
	cancelKA context.CancelFunc
	epoch    atomic.Uint64
	// ownPrefix is the key prefix of the current lease (string), read by
	// the watch loop to skip our own entries.
	ownPrefix atomic.Value

	entries, txns atomic.Uint64

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// grant takes a new lease and keeps it alive in the background.
func (f *etcdFleet) grant(ctx context.Context) error {
	g, err := f.s.cli.Grant(ctx, f.ttl)
	if err != nil {
		return f.s.mapErr(err)
	}
	kctx, cancel := context.WithCancel(context.Background())
	ka, err := f.s.cli.KeepAlive(kctx, g.ID)
	if err != nil {
		cancel()
		return f.s.mapErr(err)
	}
	go func() {
		// Drain: the client expects its responses read.
		for range ka {
		}
	}()
	f.mu.Lock()
	if f.cancelKA != nil {
		f.cancelKA()
	}
	f.lease, f.cancelKA = g.ID, cancel
	f.mu.Unlock()
	f.ownPrefix.Store(f.s.keyFleet() + hex16(uint64(g.ID)) + "/")
	f.epoch.Add(1)
	return nil
}

func (f *etcdFleet) ID() string    { return hex16(uint64(f.currentLease())) }
func (f *etcdFleet) Epoch() uint64 { return f.epoch.Load() }
func (f *etcdFleet) Writes() (entries, txns uint64) {
	return f.entries.Load(), f.txns.Load()
}

func (f *etcdFleet) currentLease() clientv3.LeaseID {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lease
}

// Publish implements FleetSession.
func (f *etcdFleet) Publish(ctx context.Context, writes []FleetWrite) error {
	octx, cancel, err := f.s.op(ctx, "publish fleet")
	if err != nil {
		return err
	}
	defer cancel()
	lease := f.currentLease()
	prefix := f.s.keyFleet() + hex16(uint64(lease)) + "/"
	for len(writes) > 0 {
		n := min(len(writes), maxFleetTxnOps)
		ops := make([]clientv3.Op, 0, n)
		for _, w := range writes[:n] {
			if w.Value == nil {
				ops = append(ops, clientv3.OpDelete(prefix+w.Key))
			} else {
				ops = append(ops, clientv3.OpPut(prefix+w.Key, string(w.Value), clientv3.WithLease(lease)))
			}
		}
		_, err := retryTransient(octx, func() (*clientv3.TxnResponse, error) {
			return f.s.cli.Txn(octx).Then(ops...).Commit()
		})
		if err != nil {
			if isLeaseNotFound(err) {
				// The lease expired (etcd unreachable for longer than its
				// TTL, or this process stalled): take a new one; the
				// caller republishes everything under it.
				if gerr := f.grant(octx); gerr != nil {
					return fmt.Errorf("publish fleet: %w; new lease: %w", ErrFleetLeaseLost, gerr)
				}
				return fmt.Errorf("publish fleet: %w", ErrFleetLeaseLost)
			}
			return fmt.Errorf("publish fleet: %w", f.s.mapErr(err))
		}
		f.entries.Add(uint64(n))
		f.txns.Add(1)
		writes = writes[n:]
	}
	return nil
}

func isLeaseNotFound(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound) || strings.Contains(err.Error(), "requested lease not found")
}

// Close implements FleetSession.
func (f *etcdFleet) Close() error {
	var err error
	f.closeOnce.Do(func() {
		f.stop()
		<-f.done
		f.mu.Lock()
		lease, cancelKA := f.lease, f.cancelKA
		f.mu.Unlock()
		if cancelKA != nil {
			cancelKA()
		}
		if f.s.isClosed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), f.s.opTimeout)
		defer cancel()
		if _, rerr := f.s.cli.Revoke(ctx, lease); rerr != nil && !isLeaseNotFound(rerr) {
			err = fmt.Errorf("close fleet session: %w", f.s.mapErr(rerr))
		}
	})
	return err
}

// follow reads every entry of the board, reports it (after a Reset), then
// watches from that read; a lost or compacted watch starts over.
func (f *etcdFleet) follow(ctx context.Context) {
	defer close(f.done)
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, f.s.opTimeout)
		resp, err := f.s.cli.Get(rctx, f.s.keyFleet(), clientv3.WithPrefix())
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			f.s.log.Warn().Err(err).Dur("retry_in", delay).Msg("etcd: fleet read failed")
			if !pause.For(ctx, delay) {
				return
			}
			delay = min(2*delay, 5*time.Second)
			continue
		}
		f.onEvent(FleetEvent{Reset: true})
		for _, kv := range resp.Kvs {
			f.report(string(kv.Key), kv.Value)
		}
		if f.watch(ctx, resp.Header.Revision) {
			delay = 100 * time.Millisecond
		} else if !pause.For(ctx, delay) {
			return
		}
	}
}

func (f *etcdFleet) watch(ctx context.Context, rev int64) bool {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	delivered := false
	for resp := range f.s.cli.Watch(wctx, f.s.keyFleet(), clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if resp.CompactRevision != 0 || resp.Err() != nil {
			if ctx.Err() == nil {
				f.s.log.Warn().Err(resp.Err()).Int64("compact_revision", resp.CompactRevision).Msg("etcd: fleet watch lost; rereading")
			}
			return delivered
		}
		delivered = true
		for _, ev := range resp.Events {
			v := ev.Kv.Value
			if ev.Type == clientv3.EventTypeDelete {
				v = nil
			} else if v == nil {
				v = []byte{}
			}
			f.report(string(ev.Kv.Key), v)
		}
	}
	return delivered
}

// report passes one key's value on, unless it is ours or malformed.
func (f *etcdFleet) report(key string, value []byte) {
	if own, _ := f.ownPrefix.Load().(string); own != "" && strings.HasPrefix(key, own) {
		return
	}
	rest, ok := strings.CutPrefix(key, f.s.keyFleet())
	if !ok {
		return
	}
	session, k, ok := strings.Cut(rest, "/")
	if !ok || k == "" {
		return
	}
	if _, err := strconv.ParseUint(session, 16, 64); err != nil {
		return
	}
	f.onEvent(FleetEvent{Session: session, Key: k, Value: value})
}
