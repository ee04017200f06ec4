package store

import (
	"context"
	"fmt"
	"sync"
)

// notifier is the watch machinery both stores share: the subscribers of the
// config version and of the revocation seq, and the newest value announced
// to each. The zero value is not usable; use newNotifier.
type notifier struct {
	// mu guards the fields below.
	mu       sync.Mutex
	closed   bool
	versions watchSet // config versions
	revSeqs  watchSet // revocation seqs
	rollouts watchSet // rollout record generations
}

// watchSet is the subscribers of one watched number and the newest value
// announced to them.
type watchSet struct {
	latest   uint64
	watchers map[*watcher]struct{}
}

type watcher struct {
	ch   chan uint64
	stop func() bool // unregisters the ctx.Done callback
}

func newNotifier(version, revSeq, rolloutGen uint64) notifier {
	return notifier{
		versions: watchSet{latest: version, watchers: make(map[*watcher]struct{})},
		revSeqs:  watchSet{latest: revSeq, watchers: make(map[*watcher]struct{})},
		rollouts: watchSet{latest: rolloutGen, watchers: make(map[*watcher]struct{})},
	}
}

// watch registers a watcher of set (a field of n, guarded by mu).
func (n *notifier) watch(ctx context.Context, op string, set *watchSet) (<-chan uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	w := &watcher{ch: make(chan uint64, 1)}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("%s: %w", op, ErrClosed)
	}
	if set.latest > 0 {
		w.ch <- set.latest // fresh 1-slot channel: cannot block
	}
	set.watchers[w] = struct{}{}
	// Registered under mu, so the callback (which also takes mu) cannot run
	// before w.stop is set.
	w.stop = context.AfterFunc(ctx, func() { n.unwatch(set, w) })
	return w.ch, nil
}

func (n *notifier) unwatch(set *watchSet, w *watcher) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := set.watchers[w]; ok {
		delete(set.watchers, w)
		close(w.ch)
	}
}

// notify announces value v to every watcher of set, replacing an unread
// older value. All senders hold mu, so after draining the slot it is free and
// the send cannot block; the select keeps that true even if the invariant
// broke. Values at or below the last announced one are dropped, which keeps
// the values each watcher sees strictly increasing even when two commits
// finish in the opposite order, and makes a resync that finds nothing new
// (etcd's watch was lost or compacted) wake nobody.
func (n *notifier) notify(set *watchSet, v uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || v <= set.latest {
		return
	}
	set.latest = v
	for w := range set.watchers {
		select {
		case <-w.ch:
		default:
		}
		select {
		case w.ch <- v:
		default:
		}
	}
}

// isClosed reports whether closeWatchers ran.
func (n *notifier) isClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}

// closeWatchers marks the notifier closed and closes every watch channel.
// It returns false when it was already closed.
func (n *notifier) closeWatchers() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.closed = true
	for _, set := range []*watchSet{&n.versions, &n.revSeqs, &n.rollouts} {
		for w := range set.watchers {
			w.stop()
			close(w.ch)
		}
		set.watchers = nil
	}
	return true
}
