package service

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"
	"google.golang.org/protobuf/proto"

	"github.com/apigw/gateway/controlplane/store"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/proto/sign"
)

// Revocation fan-out.
//
// The revocation hub follows the store's revocation watch. For each new seq
// it reads the log once (the entries after the seq it last published),
// encodes them once as a RevocationDelta, and wakes every stream; a stream
// whose "sent up to" seq is that delta's from_seq sends those same bytes.
// An append therefore costs one store read and one encoding whatever the
// number of edges. The hub also keeps a window of the newest entries (about
// the reset threshold's worth), from which a stream that fell several
// batches behind, or an edge that says hello with an older seq, gets one
// merged delta without touching the store. Only an edge below the window
// makes a stream read the store: a delta from RevocationsSince, or a reset,
// which streams needing one at the same moment share.
//
// None of this waits for config ACKs: revocations have their own
// "sent up to" seq per stream, and the stream sends them before any
// snapshot.

const (
	// maxRevocationMsgBytes bounds one delta or reset message. Edges accept
	// 4 MiB per message by default; larger sets go out as a reset followed
	// by deltas (or as consecutive deltas), which the edge applies in order.
	maxRevocationMsgBytes = 1 << 20
	// resetCacheTTL is how long a built reset is reused for other streams.
	// A reset that is a few seconds old is still exact up to its seq (the
	// stream sends the newer entries as a delta right after it); only
	// entries that expired meanwhile ride along, and edges drop those.
	resetCacheTTL = 5 * time.Second
)

// revBatch is one range of the log, as every stream at its from seq sends
// it: consecutive pre-encoded deltas from from to to.
type revBatch struct {
	from, to uint64
	msgs     []*gatewayv1.SyncResponse
}

// revView is what the hub publishes: the log head and a window of the
// newest entries. It is immutable once published (views share backing
// arrays, but a view never reads past its own length and only the newest
// view is ever extended).
type revView struct {
	// seq is the newest seq the hub has read (the log head, a moment ago).
	seq uint64
	// entries holds every entry in (base, seq]: entries[i].Seq == base+1+i.
	base    uint64
	entries []*gatewayv1.RevocationEntry
	// batches are the deltas the hub built, consecutive, in (base, seq].
	batches []*revBatch
}

// window returns the entries after from; base <= from <= seq.
func (v *revView) window(from uint64) []*gatewayv1.RevocationEntry {
	return v.entries[from-v.base:]
}

// batchFrom returns the index of the batch starting at from, or -1.
func (v *revView) batchFrom(from uint64) int {
	i, ok := slices.BinarySearchFunc(v.batches, from, func(b *revBatch, f uint64) int { return cmp.Compare(b.from, f) })
	if !ok {
		return -1
	}
	return i
}

// entry returns the entry with seq if the window holds it.
func (v *revView) entry(seq uint64) *gatewayv1.RevocationEntry {
	if seq <= v.base || seq > v.seq {
		return nil
	}
	return v.entries[seq-v.base-1]
}

// extend returns the view with entries (contiguous after v.seq) and their
// batch appended, keeping at most 2*keep entries (then trimming to keep, so
// the copy happens once per keep appends).
func (v *revView) extend(entries []*gatewayv1.RevocationEntry, b *revBatch, keep int) *revView {
	next := &revView{
		seq:     b.to,
		base:    v.base,
		entries: append(v.entries, entries...),
		batches: append(v.batches, b),
	}
	if len(next.entries) > 2*keep {
		next = next.trim(next.seq - uint64(keep))
	}
	return next
}

// trim returns the view without the entries at or below base.
func (v *revView) trim(base uint64) *revView {
	base = min(base, v.seq)
	if base <= v.base {
		return v
	}
	next := &revView{seq: v.seq, base: base, entries: slices.Clone(v.entries[base-v.base:])}
	i, _ := slices.BinarySearchFunc(v.batches, base, func(b *revBatch, f uint64) int { return cmp.Compare(b.from, f) })
	next.batches = slices.Clone(v.batches[i:])
	return next
}

// revReset is a reset as every stream that needs one at the same time sends
// it.
type revReset struct {
	seq     uint64
	entries int
	msgs    []*gatewayv1.SyncResponse
	built   time.Time
}

// revHub distributes the revocation log to the streams.
type revHub struct {
	store   store.Store
	log     zerolog.Logger
	metrics *metrics
	keep    int // window size: the reset threshold
	signer  *sign.Signer

	view atomic.Pointer[revView]
	subs wakers

	// writeMu serialises view updates: the run loop's appends and the
	// housekeeping's trims. It is held only while a view is built in
	// memory, never across a store read.
	writeMu sync.Mutex

	resets singleflight.Group
	// mu guards lastReset.
	mu        sync.Mutex
	lastReset *revReset
}

func newRevHub(st store.Store, log zerolog.Logger, m *metrics, keep int, signer *sign.Signer) *revHub {
	return &revHub{store: st, log: log, metrics: m, keep: keep, signer: signer}
}

// current returns the newest view, or nil before the hub read the log.
func (h *revHub) current() *revView { return h.view.Load() }

// run follows the log until ctx is done or the store closes.
func (h *revHub) run(ctx context.Context) {
	seqs, err := h.store.WatchRevocations(ctx)
	if err != nil {
		h.log.Error().Err(err).Msg("revocation hub: watch store")
		return
	}
	if !h.load(ctx) {
		return
	}
	sweep := time.NewTicker(resetCacheTTL)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-sweep.C:
			h.dropStaleReset(now)
		case seq, ok := <-seqs:
			if !ok {
				return
			}
			if seq <= h.current().seq {
				continue
			}
			if !h.advance(ctx) {
				return
			}
		}
	}
}

// load publishes the first view: the head and, when the log still holds
// them, the newest keep entries (so edges that reconnect after a restart of
// the control plane are served from memory).
func (h *revHub) load(ctx context.Context) bool {
	head, err := retryStore(ctx, h.log, "read the revocation seq", func() (uint64, error) { return h.store.RevocationSeq(ctx) })
	if err != nil {
		return false
	}
	from := head - min(head, uint64(h.keep))
	got, err := retryStore(ctx, h.log, "read revocations", func() ([]*store.Revocation, error) { return h.store.RevocationsSince(ctx, from) })
	v := &revView{seq: head, base: head}
	switch {
	case errors.Is(err, store.ErrCompacted):
		// Start with an empty window; edges below it are served from the store.
	case err != nil:
		return false
	case contiguous(got, from):
		v = &revView{seq: from + uint64(len(got)), base: from, entries: toEntries(got)}
	}
	h.writeMu.Lock()
	h.view.Store(v)
	h.writeMu.Unlock()
	h.published(v)
	return true
}

// advance reads the entries after the published seq once, and publishes
// them as one batch. It returns false when ctx is done or the store closed.
func (h *revHub) advance(ctx context.Context) bool {
	from := h.current().seq
	got, err := retryStore(ctx, h.log, "read revocations", func() ([]*store.Revocation, error) { return h.store.RevocationsSince(ctx, from) })
	if errors.Is(err, store.ErrCompacted) || (err == nil && !contiguous(got, from)) {
		// Entries after our seq were compacted while we were not reading
		// (hours of store errors, or another replica compacting). The
		// window cannot continue: restart it empty at the head.
		h.log.Warn().Err(err).Uint64("seq", from).Msg("revocation hub: the log moved on without us; restarting the window")
		return h.restart(ctx)
	}
	if err != nil {
		return false
	}
	if len(got) == 0 {
		return true
	}
	entries := toEntries(got)
	to := entries[len(entries)-1].GetSeq()
	b := &revBatch{from: from, to: to, msgs: deltaMsgs(h.signer, from, to, entries, true)}
	h.writeMu.Lock()
	// Only this goroutine moves seq; a trim in between only raised base.
	next := h.current().extend(entries, b, h.keep)
	h.view.Store(next)
	h.writeMu.Unlock()
	h.published(next)
	return true
}

// restart publishes an empty window at the log head.
func (h *revHub) restart(ctx context.Context) bool {
	head, err := retryStore(ctx, h.log, "read the revocation seq", func() (uint64, error) { return h.store.RevocationSeq(ctx) })
	if err != nil {
		return false
	}
	h.writeMu.Lock()
	v := &revView{seq: max(head, h.current().seq)}
	v.base = v.seq
	h.view.Store(v)
	h.writeMu.Unlock()
	h.published(v)
	return true
}

func (h *revHub) published(v *revView) {
	h.metrics.revocationSeq.Set(float64(v.seq))
	h.log.Debug().Uint64("seq", v.seq).Uint64("window_from", v.base).Msg("revocations published")
	h.subs.wake()
}

// trimBelow drops the window's entries at or below the compaction point:
// an edge holding a seq below it gets a reset, exactly as when the window
// does not cover it, so every path gives the same answer for one seq.
func (h *revHub) trimBelow(compacted uint64) {
	h.writeMu.Lock()
	defer h.writeMu.Unlock()
	if cur := h.current(); cur != nil && compacted > cur.base {
		h.view.Store(cur.trim(compacted))
	}
}

// reset returns the live set as a reset (plus deltas when it is larger than
// one message), at a seq of at least minSeq when a cached one is reused.
// Concurrent callers share one store read and one encoding.
func (h *revHub) reset(ctx context.Context, minSeq uint64) (*revReset, error) {
	if r := h.cachedReset(minSeq, time.Now()); r != nil {
		return r, nil
	}
	// The read is shared: one stream ending must not fail the others.
	flight := context.WithoutCancel(ctx)
	ch := h.resets.DoChan("reset", func() (any, error) {
		live, seq, err := h.store.LiveRevocations(flight, time.Now())
		if err != nil {
			return nil, err
		}
		r := &revReset{seq: seq, entries: len(live), msgs: resetMsgs(h.signer, seq, toEntries(live), true), built: time.Now()}
		h.mu.Lock()
		if h.lastReset == nil || r.seq >= h.lastReset.seq {
			h.lastReset = r
		}
		h.mu.Unlock()
		return r, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*revReset), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (h *revHub) cachedReset(minSeq uint64, now time.Time) *revReset {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.lastReset; r != nil && r.seq >= minSeq && now.Sub(r.built) < resetCacheTTL {
		return r
	}
	return nil
}

// dropStaleReset releases an old reset's memory (it can be megabytes).
func (h *revHub) dropStaleReset(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastReset != nil && now.Sub(h.lastReset.built) >= resetCacheTTL {
		h.lastReset = nil
	}
}

// retryStore calls f until it succeeds, retrying transient errors with a
// capped backoff. It gives up, returning the error, when ctx is done, the
// store is closed, or the log was compacted (not transient).
func retryStore[T any](ctx context.Context, log zerolog.Logger, what string, f func() (T, error)) (T, error) {
	delay := 100 * time.Millisecond
	for {
		v, err := f()
		if err == nil || ctx.Err() != nil || isClosed(err) || errors.Is(err, store.ErrCompacted) {
			return v, err
		}
		log.Error().Err(err).Dur("retry_in", delay).Msg("revocation hub: " + what)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// contiguous reports whether got holds exactly the seqs after from, in order.
func contiguous(got []*store.Revocation, from uint64) bool {
	for i, r := range got {
		if r.Seq != from+1+uint64(i) {
			return false
		}
	}
	return true
}

func toEntries(rs []*store.Revocation) []*gatewayv1.RevocationEntry {
	out := make([]*gatewayv1.RevocationEntry, len(rs))
	for i, r := range rs {
		out[i] = toEntry(r)
	}
	return out
}

func toEntry(r *store.Revocation) *gatewayv1.RevocationEntry {
	return &gatewayv1.RevocationEntry{
		Seq:           r.Seq,
		Claim:         r.Claim,
		Value:         r.Value,
		ExpiresUnixMs: r.ExpiresUnixMs,
		CreatedUnixMs: r.CreatedUnixMs,
		Author:        r.Author,
	}
}

// chunks splits entries into runs of at most maxRevocationMsgBytes encoded
// (always at least one run, possibly empty).
func chunks(entries []*gatewayv1.RevocationEntry) [][]*gatewayv1.RevocationEntry {
	var out [][]*gatewayv1.RevocationEntry
	start, size := 0, 0
	for i, e := range entries {
		n := proto.Size(e) + 8 // tag and length prefix
		if i > start && size+n > maxRevocationMsgBytes {
			out = append(out, entries[start:i])
			start, size = i, 0
		}
		size += n
	}
	return append(out, entries[start:])
}

// deltaMsgs returns the deltas that take an edge from from to to with
// entries (the log's entries in that range, in order): one message, or
// several consecutive ones when it would be too large. shared pre-encodes
// them for sending on many streams.
func deltaMsgs(signer *sign.Signer, from, to uint64, entries []*gatewayv1.RevocationEntry, shared bool) []*gatewayv1.SyncResponse {
	parts := chunks(entries)
	msgs := make([]*gatewayv1.SyncResponse, 0, len(parts))
	for i, part := range parts {
		end := to
		if i < len(parts)-1 {
			end = part[len(part)-1].GetSeq()
		}
		d := &gatewayv1.RevocationDelta{FromSeq: from, ToSeq: end, Entries: part}
		signer.Delta(d)
		msgs = append(msgs, wire(&gatewayv1.SyncResponse{Msg: &gatewayv1.SyncResponse_RevocationDelta{RevocationDelta: d}}, shared))
		from = end
	}
	return msgs
}

// resetMsgs returns a reset to seq with the live entries (in seq order). A
// set too large for one message goes out as a reset with the first part, at
// the seq of its last entry (exactly the live set up to there), followed by
// deltas for the rest.
func resetMsgs(signer *sign.Signer, seq uint64, live []*gatewayv1.RevocationEntry, shared bool) []*gatewayv1.SyncResponse {
	parts := chunks(live)
	end := seq
	if len(parts) > 1 {
		end = parts[0][len(parts[0])-1].GetSeq()
	}
	r := &gatewayv1.RevocationReset{Seq: end, Entries: parts[0]}
	signer.Reset(r)
	msgs := []*gatewayv1.SyncResponse{wire(&gatewayv1.SyncResponse{Msg: &gatewayv1.SyncResponse_RevocationReset{RevocationReset: r}}, shared)}
	if len(parts) > 1 {
		msgs = append(msgs, deltaMsgs(signer, end, seq, slices.Concat(parts[1:]...), shared)...)
	}
	return msgs
}

// wire returns m ready to send on many streams: an empty SyncResponse whose
// unknown fields are m's encoding. The proto codec writes unknown fields
// back verbatim, so gRPC's per-stream marshal becomes one copy of shared
// bytes instead of a walk over every entry, and the edge decodes the
// original message. Compression, when a stream negotiated it, still happens
// per stream in gRPC, so nothing depends on the peer.
func wire(m *gatewayv1.SyncResponse, shared bool) *gatewayv1.SyncResponse {
	if !shared {
		return m
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return m // cannot happen for these messages; sending m is still right
	}
	out := &gatewayv1.SyncResponse{}
	out.ProtoReflect().SetUnknown(b)
	return out
}

// maxRevocationRounds bounds the catch-up steps of one sendRevocations: a
// reset (possibly shared, built a moment earlier) can end below the newest
// seq, and the delta for the rest follows at once instead of at the next
// wake-up, which may never come if the hub published before we looked.
const maxRevocationRounds = 4

// sendRevocations brings the edge up to the hub's seq: nothing when it is
// there, the shared batch when it is exactly one batch behind, a merged
// delta from the window when it is further behind but within reach, a delta
// from the store below the window, and a reset when it is more than the
// threshold behind, below the compaction point or ahead of the log. It
// returns an error only when sending failed; a store error is logged and
// retried at the next wake-up or keepalive tick.
func (e *edgeStream) sendRevocations(ctx context.Context) error {
	if e.repair {
		if v := e.svc.revHub.current(); v != nil {
			e.repair = false
			e.svc.metrics.revocationRepairs.Inc()
			if err := e.sendReset(ctx, v, "the edge's set differs from the log at its seq"); err != nil {
				return err
			}
		}
	}
	for range maxRevocationRounds {
		v := e.svc.revHub.current()
		if v == nil || e.revSent == v.seq {
			return nil
		}
		before := e.revSent
		if err := e.sendRevocationsFrom(ctx, v); err != nil {
			return err
		}
		if e.revSent == before {
			return nil // nothing could be sent now (store trouble, hub behind the store)
		}
	}
	return nil
}

// sendRevocationsFrom takes one step from e.revSent towards v.seq.
func (e *edgeStream) sendRevocationsFrom(ctx context.Context, v *revView) error {
	switch {
	case e.revSent > v.seq:
		return e.revAhead(ctx, v)
	case v.seq-e.revSent > uint64(e.svc.cfg.RevocationResetThreshold):
		return e.sendReset(ctx, v, "too far behind")
	case e.revSent >= v.base:
		if i := v.batchFrom(e.revSent); i >= 0 && i == len(v.batches)-1 {
			// The common case: every stream sends the same bytes.
			return e.sendRevMsgs(v.batches[i].msgs, v.seq)
		}
		// Several batches behind (the stream was busy) or a hello between
		// two batches: one merged delta.
		return e.sendRevMsgs(deltaMsgs(e.svc.cfg.Signer, e.revSent, v.seq, v.window(e.revSent), false), v.seq)
	default:
		return e.revFromStore(ctx, v)
	}
}

// revAhead handles an edge holding a seq the hub has not published. The
// hub may be a moment behind the store, or the edge got its seq from
// another log (a different control plane, a wiped store): only the store
// can tell.
func (e *edgeStream) revAhead(ctx context.Context, v *revView) error {
	head, err := e.svc.store.RevocationSeq(ctx)
	if err != nil {
		return e.revStoreTrouble(ctx, err)
	}
	if e.revSent <= head {
		return nil // the hub reads it soon and wakes us
	}
	return e.sendReset(ctx, v, "ahead of the log")
}

// revFromStore sends a delta read from the store to an edge below the
// window, or a reset when the log no longer holds everything after its seq.
func (e *edgeStream) revFromStore(ctx context.Context, v *revView) error {
	got, err := e.svc.store.RevocationsSince(ctx, e.revSent)
	if errors.Is(err, store.ErrCompacted) {
		return e.sendReset(ctx, v, "below the compaction point")
	}
	if err != nil {
		return e.revStoreTrouble(ctx, err)
	}
	// Up to the hub's seq, so the stream continues with the shared batches.
	n := v.seq - e.revSent
	if uint64(len(got)) < n || !contiguous(got[:n], e.revSent) {
		return e.sendReset(ctx, v, "log has gaps")
	}
	return e.sendRevMsgs(deltaMsgs(e.svc.cfg.Signer, e.revSent, v.seq, toEntries(got[:n]), false), v.seq)
}

func (e *edgeStream) sendReset(ctx context.Context, v *revView, reason string) error {
	r, err := e.svc.revHub.reset(ctx, v.seq)
	if err != nil {
		return e.revStoreTrouble(ctx, err)
	}
	e.svc.metrics.revocationResets.Inc()
	e.event(e.svc.log.Info()).
		Uint64("edge_seq", e.revSent).
		Uint64("seq", r.seq).
		Int("entries", r.entries).
		Str("reason", reason).
		Msg("revocation reset sent")
	return e.sendRevMsgs(r.msgs, r.seq)
}

func (e *edgeStream) sendRevMsgs(msgs []*gatewayv1.SyncResponse, to uint64) error {
	for _, m := range msgs {
		if err := e.stream.Send(m); err != nil {
			return err
		}
	}
	e.revSent = to
	return nil
}

// revStoreTrouble logs a store error of a catch-up; the stream stays up
// and tries again at its next wake-up or keepalive tick.
func (e *edgeStream) revStoreTrouble(ctx context.Context, err error) error {
	if ctx.Err() == nil && !isClosed(err) {
		e.event(e.svc.log.Error()).Err(err).Uint64("edge_seq", e.revSent).Msg("revocation catch-up: read the store; retrying")
	}
	return nil
}

// revocationAck records that the edge enforces every entry up to seq, and
// observes the propagation time of the oldest entry this ACK newly covers
// that was appended while the stream was up (older ones measure how long
// the edge was away, not how fast revocations travel).
func (e *edgeStream) revocationAck(seq uint64, now time.Time) {
	prev := e.revAcked
	e.revAcked = seq
	e.svc.fleet.revocationAck(e.node, e.connID, seq, now)
	ev := e.event(e.svc.log.Debug()).Uint64("seq", seq)
	if v := e.svc.revHub.current(); v != nil && seq > prev {
		start := e.startedAt.UnixMilli()
		for s := max(prev+1, v.base+1); s <= min(seq, v.seq); s++ {
			if en := v.entry(s); en.GetCreatedUnixMs() >= start {
				lag := now.Sub(time.UnixMilli(en.GetCreatedUnixMs()))
				e.svc.metrics.revocationPropagation.Observe(max(lag, 0).Seconds())
				ev = ev.Dur("since_created", lag)
				break
			}
		}
	}
	ev.Msg("edge revocation ACK")
}
