package service

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/apigw/gateway/controlplane/store"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/proto/sign"
)

// published is one version as every stream sends it. It is immutable once
// stored in the hub and shared by all streams: the payload is read from the
// store and wrapped once per version, never per edge (per-edge copies are
// what made go-control-plane use 10 GB for 190 proxies).
type published struct {
	resp *gatewayv1.SyncResponse // wraps env; concurrent Marshal of one message is safe
	env  *gatewayv1.SnapshotEnvelope
	// revoker is the snapshot's service.revoker (nil when it has none),
	// read once per version for the default expiry of Revoke.
	revoker *gatewayv1.Revoker
}

// wakers is a set of 1-slot wake-up channels. A wake-up carries nothing, it
// only says "look at the hub's current state", so one pending wake-up is
// enough and a subscriber that was busy sees only the newest state when it
// looks. The zero value is ready to use.
type wakers struct {
	// mu guards subs.
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

// add subscribes ch (1-slot) and returns the function that unsubscribes
// it; one channel may be subscribed to several sets.
func (w *wakers) add(ch chan struct{}) func() {
	w.mu.Lock()
	if w.subs == nil {
		w.subs = make(map[chan struct{}]struct{})
	}
	w.subs[ch] = struct{}{}
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		delete(w.subs, ch)
		w.mu.Unlock()
	}
}

// wake wakes every subscriber. The channels are copied under mu and sent to
// after it is released.
func (w *wakers) wake() {
	w.mu.Lock()
	subs := make([]chan struct{}, 0, len(w.subs))
	for ch := range w.subs {
		subs = append(subs, ch)
	}
	w.mu.Unlock()
	for _, ch := range subs {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is already pending; it will see this state
		}
	}
}

// hub holds the current snapshot and wakes subscribed streams when it
// changes.
type hub struct {
	store   store.Store
	log     zerolog.Logger
	metrics *metrics
	signer  *sign.Signer

	cur  atomic.Pointer[published]
	subs wakers
}

func newHub(st store.Store, log zerolog.Logger, m *metrics, signer *sign.Signer) *hub {
	return &hub{store: st, log: log, metrics: m, signer: signer}
}

// current returns the newest published snapshot, or nil before the first.
func (h *hub) current() *published { return h.cur.Load() }

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
	// Signed once per version with the key loaded now, so a rotated key
	// signs every version the control plane serves after a restart.
	h.signer.Snapshot(env)
	revoker, err := snapshotRevoker(rev.Payload)
	if err != nil {
		// The payload was compiled by this control plane; the edges will
		// say more when they decode it. Revoke falls back to its flag.
		h.log.Error().Err(err).Uint64("version", rev.Version).Msg("hub: read the revoker settings")
	}
	h.cur.Store(&published{
		env:     env,
		resp:    &gatewayv1.SyncResponse{Msg: &gatewayv1.SyncResponse_Snapshot{Snapshot: env}},
		revoker: revoker,
	})
	h.metrics.snapshotBytes.Set(float64(len(rev.Payload)))
	h.log.Info().Uint64("version", rev.Version).Str("sha256", rev.SHA256).Int("bytes", len(rev.Payload)).Msg("snapshot published")
	h.subs.wake()
}

// snapshotServiceField is the field number of Snapshot.service, looked up by
// name so it cannot drift from the schema.
var snapshotServiceField = (&gatewayv1.Snapshot{}).ProtoReflect().Descriptor().Fields().ByName("service").Number()

// snapshotRevoker returns service.revoker of a serialized Snapshot (nil when
// unset) without decoding the endpoints, which can be megabytes: it walks
// the top-level fields and unmarshals only the Service message.
func snapshotRevoker(payload []byte) (*gatewayv1.Revoker, error) {
	svc := &gatewayv1.Service{}
	for b := payload; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("read snapshot revoker: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == snapshotServiceField && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, fmt.Errorf("read snapshot revoker: %w", protowire.ParseError(n))
			}
			b = b[n:]
			// A repeated embedded message merges, as proto.Unmarshal does.
			if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(v, svc); err != nil {
				return nil, fmt.Errorf("read snapshot revoker: %w", err)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, fmt.Errorf("read snapshot revoker: %w", protowire.ParseError(n))
		}
		b = b[n:]
	}
	return svc.GetRevoker(), nil
}
