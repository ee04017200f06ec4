package service

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/apigw/gateway/controlplane/store"
	"github.com/apigw/gateway/internal/pause"
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

// wakers is the set of streams to wake when a hub changes. A wake-up
// carries nothing, it only says "look at the hub's current state", so a
// stream that was busy sees only the newest state when it looks. The zero
// value is ready to use.
type wakers struct {
	// mu guards subs.
	mu   sync.Mutex
	subs map[*edgeStream]struct{}
}

// add subscribes e and returns the function that unsubscribes it; one
// stream may be subscribed to several sets.
func (w *wakers) add(e *edgeStream) func() {
	w.mu.Lock()
	if w.subs == nil {
		w.subs = make(map[*edgeStream]struct{})
	}
	w.subs[e] = struct{}{}
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		delete(w.subs, e)
		w.mu.Unlock()
	}
}

// wake wakes every subscriber. The streams are copied under mu and woken
// after it is released.
func (w *wakers) wake() {
	w.mu.Lock()
	subs := make([]*edgeStream, 0, len(w.subs))
	for e := range w.subs {
		subs = append(subs, e)
	}
	w.mu.Unlock()
	for _, e := range subs {
		e.wake()
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
	roll atomic.Pointer[rolloutView]
	subs wakers
}

// rolloutView is the staged rollout as the hub serves it: the stored record
// (nil when none), its generation, and the stable version's snapshot that
// the regions outside the canary get (nil when there is none).
type rolloutView struct {
	r      *gatewayv1.Rollout
	gen    uint64
	stable *published
}

func newHub(st store.Store, log zerolog.Logger, m *metrics, signer *sign.Signer) *hub {
	return &hub{store: st, log: log, metrics: m, signer: signer}
}

// current returns the newest published snapshot, or nil before the first.
func (h *hub) current() *published { return h.cur.Load() }

// run follows the store until ctx is done or the store closes. The store's
// watches start with the latest version and rollout generation, so the
// first iterations load what is stored, and later ones each change
// (coalesced to the newest). A new version is published only after the
// rollout record was read again: a canary push writes both in one
// transaction, so its version never reaches a region outside the canary.
func (h *hub) run(ctx context.Context) {
	versions, err := h.store.Watch(ctx)
	if err != nil {
		h.log.Error().Err(err).Msg("hub: watch store")
		return
	}
	gens, err := h.store.WatchRollout(ctx)
	if err != nil {
		h.log.Error().Err(err).Msg("hub: watch rollout")
		return
	}
	// The initial rollout is read before anything is published.
	if !h.refreshRollout(ctx, nil) {
		return
	}
	for {
		select {
		case v, ok := <-versions:
			if !ok {
				return
			}
			if cur := h.cur.Load(); cur != nil && cur.env.GetVersion() >= v {
				continue
			}
			rev, ok := h.load(ctx, v)
			if !ok {
				return
			}
			p := h.wrap(rev)
			if !h.refreshRollout(ctx, p) {
				return
			}
			h.publish(p)
		case _, ok := <-gens:
			if !ok {
				return
			}
			if !h.refreshRollout(ctx, h.cur.Load()) {
				return
			}
			h.subs.wake()
		}
	}
}

// refreshRollout reads the rollout record (retrying transient errors) and
// stores the view of it, loading the stable version unless cur or the
// previous view already holds it. False when ctx is done or the store closed.
func (h *hub) refreshRollout(ctx context.Context, cur *published) bool {
	delay := 100 * time.Millisecond
	for {
		data, gen, err := h.store.Rollout(ctx)
		if err == nil {
			old := h.roll.Load()
			if old != nil && old.gen == gen {
				return true
			}
			view := &rolloutView{gen: gen}
			if data != nil {
				r := &gatewayv1.Rollout{}
				if err := proto.Unmarshal(data, r); err != nil {
					// Written by this control plane; undecodable means a
					// newer build wrote something this one cannot serve.
					h.log.Error().Err(err).Msg("hub: rollout record undecodable; serving the latest version everywhere")
				} else {
					view.r = r
				}
			}
			if sv := view.r.GetStableVersion(); sv != 0 {
				switch {
				case cur != nil && cur.env.GetVersion() == sv:
					view.stable = cur
				case old != nil && old.stable != nil && old.stable.env.GetVersion() == sv:
					view.stable = old.stable
				default:
					rev, ok := h.load(ctx, sv)
					if !ok {
						return false
					}
					view.stable = h.wrap(rev)
				}
			}
			h.roll.Store(view)
			if r := view.r; r != nil {
				h.log.Info().Uint64("version", r.GetVersion()).Uint64("stable_version", r.GetStableVersion()).
					Strs("regions", r.GetRegions()).Str("phase", r.GetPhase()).Msg("rollout")
			}
			return true
		}
		if ctx.Err() != nil || isClosed(err) {
			return false
		}
		h.log.Error().Err(err).Dur("retry_in", delay).Msg("hub: read rollout")
		if !pause.For(ctx, delay) {
			return false
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// rollout returns the current rollout record and its generation (nil, 0
// when none).
func (h *hub) rollout() (*gatewayv1.Rollout, uint64) {
	v := h.roll.Load()
	if v == nil {
		return nil, 0
	}
	return v.r, v.gen
}

// target returns the snapshot an edge of region must serve: the latest
// version, except while that version is staged: then only the canary
// regions get it (in phase canary) and every other region, or every region
// once it was aborted or halted, gets the stable version. nil when there is
// nothing to serve there.
func (h *hub) target(region string) *published {
	cur := h.cur.Load()
	view := h.roll.Load()
	if cur == nil || view == nil || view.r == nil || view.r.GetVersion() != cur.env.GetVersion() {
		return cur
	}
	switch view.r.GetPhase() {
	case phaseCanary:
		if slices.Contains(view.r.GetRegions(), region) {
			return cur
		}
		return view.stable
	case phaseAborted, phaseHalted:
		return view.stable
	}
	return cur
}

// want returns, for the fleet's states, the version and sha256 an edge of
// a region must serve (zero and empty when none).
func (h *hub) want(region string) (uint64, string) {
	p := h.target(region)
	if p == nil {
		return 0, ""
	}
	return p.env.GetVersion(), p.env.GetSha256()
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

// wrap turns a stored revision into what streams send: signed once.
func (h *hub) wrap(rev *store.Revision) *published {
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
	return &published{
		env:     env,
		resp:    &gatewayv1.SyncResponse{Msg: &gatewayv1.SyncResponse_Snapshot{Snapshot: env}},
		revoker: revoker,
	}
}

func (h *hub) publish(p *published) {
	h.cur.Store(p)
	h.metrics.snapshotBytes.Set(float64(len(p.env.GetPayload())))
	h.log.Info().Uint64("version", p.env.GetVersion()).Str("sha256", p.env.GetSha256()).Int("bytes", len(p.env.GetPayload())).Msg("snapshot published")
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
