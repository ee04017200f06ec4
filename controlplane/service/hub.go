package service

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/apigw/gateway/controlplane/store"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// published is one version as every stream sends it. It is immutable once
// stored in the hub and shared by all streams: the payload is read from the
// store and wrapped once per version, never per edge (per-edge copies are
// what made go-control-plane use 10 GB for 190 proxies).
type published struct {
	resp *gatewayv1.SyncResponse // wraps env; concurrent Marshal of one message is safe
	env  *gatewayv1.SnapshotEnvelope
}

// hub holds the current snapshot and wakes subscribed streams when it
// changes. Each subscriber has a 1-slot channel: a wake-up replaces nothing,
// it only says "look at current()", so a stream that was busy sending sees
// only the newest version when it looks.
type hub struct {
	store   store.Store
	log     zerolog.Logger
	metrics *metrics

	cur atomic.Pointer[published]

	// mu guards subs.
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

func newHub(st store.Store, log zerolog.Logger, m *metrics) *hub {
	return &hub{store: st, log: log, metrics: m, subs: make(map[chan struct{}]struct{})}
}

// current returns the newest published snapshot, or nil before the first.
func (h *hub) current() *published { return h.cur.Load() }

// subscribe returns a wake-up channel and the function that unsubscribes it.
func (h *hub) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}
}

// run follows the store until ctx is done or the store closes. The store's
// watch starts with the latest version, so the first iteration loads what is
// stored, and later ones each new version (coalesced to the newest).
func (h *hub) run(ctx context.Context) {
	versions, err := h.store.Watch(ctx)
	if err != nil {
		h.log.Error().Err(err).Msg("hub: watch store")
		return
	}
	for v := range versions {
		if cur := h.cur.Load(); cur != nil && cur.env.GetVersion() >= v {
			continue
		}
		rev, ok := h.load(ctx, v)
		if !ok {
			return
		}
		h.publish(rev)
	}
}

// load reads version v, retrying transient errors with a capped backoff.
// It gives up (false) only when ctx is done or the store is closed.
func (h *hub) load(ctx context.Context, v uint64) (*store.Revision, bool) {
	delay := 100 * time.Millisecond
	for {
		rev, err := h.store.Get(ctx, v)
		if err == nil {
			return rev, true
		}
		if ctx.Err() != nil || isClosed(err) {
			return nil, false
		}
		h.log.Error().Err(err).Uint64("version", v).Dur("retry_in", delay).Msg("hub: load version")
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, false
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func (h *hub) publish(rev *store.Revision) {
	env := &gatewayv1.SnapshotEnvelope{
		Version:       rev.Version,
		Sha256:        rev.SHA256,
		Payload:       rev.Payload,
		Author:        rev.Author,
		CreatedUnixMs: rev.CreatedUnixMs,
	}
	h.cur.Store(&published{
		env:  env,
		resp: &gatewayv1.SyncResponse{Msg: &gatewayv1.SyncResponse_Snapshot{Snapshot: env}},
	})
	h.metrics.snapshotBytes.Set(float64(len(rev.Payload)))
	h.log.Info().Uint64("version", rev.Version).Str("sha256", rev.SHA256).Int("bytes", len(rev.Payload)).Msg("snapshot published")

	h.mu.Lock()
	subs := make([]chan struct{}, 0, len(h.subs))
	for ch := range h.subs {
		subs = append(subs, ch)
	}
	h.mu.Unlock()
	for _, ch := range subs {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is already pending; it will see this version
		}
	}
}
