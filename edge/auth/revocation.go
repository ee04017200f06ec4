package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/rs/zerolog"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Revocation defaults, used when the snapshot has no `auth/revoker` or
// leaves a field zero.
const (
	DefaultRevocationN   = 100_000
	DefaultRevocationP   = 1e-9
	DefaultRevocationTTL = 24 * time.Hour
	// MaxRevocationN and MinRevocationP bound the bloom filter an edge
	// builds, whatever a snapshot asks: at these bounds the filter takes
	// about 70 MB (a snapshot asking for n=1e11 once killed an edge).
	// plan.Build refuses snapshots outside them; applySettings clamps as a
	// second line.
	MaxRevocationN = 10_000_000
	MinRevocationP = 1e-12
	// DefaultRebuildPeriod is how often expired entries are looked for.
	DefaultRebuildPeriod = time.Minute
	// compactAt is the overlay size at which the overlay is folded into a
	// new bloom filter (one O(m) copy per compactAt entries, not per delta
	// nor per entry).
	compactAt = 4096
	// maxProbeStack is the longest "<claim>-<value>" probe built on the
	// stack; longer ones use a pooled buffer.
	maxProbeStack = 256
)

// DefaultTokenKeys is the claim list probed when the snapshot names none.
var DefaultTokenKeys = []string{"jti"}

// SeqGapError is returned by ApplyDelta when the delta does not start at
// the sequence number the set holds. The set is unchanged; the edge should
// get a RevocationReset (reconnect with its Seq in Hello).
type SeqGapError struct {
	Have, From uint64
}

func (e *SeqGapError) Error() string {
	return fmt.Sprintf("apply revocation delta: gap: holding seq %d, delta starts at %d", e.Have, e.From)
}

// RevocationsConfig configures a Revocations set. The zero value is usable.
type RevocationsConfig struct {
	// Revoker is the snapshot's `auth/revoker` (n, p, ttl_ms, token_keys);
	// nil means the defaults. Change it later with Configure.
	Revoker *gatewayv1.Revoker
	// RebuildPeriod is how often expired entries are dropped (by building
	// a fresh filter and swapping it); zero means DefaultRebuildPeriod,
	// negative disables the background rebuild (call Rebuild yourself).
	RebuildPeriod time.Duration
	Logger        zerolog.Logger
	// Clock is a test hook for expiry; nil means time.Now.
	Clock func() time.Time
}

// Revocations is the edge's set of revoked "<claim>-<value>" elements
// (KrakenD's element format, e.g. "jti-abc", "sub-alice"), each with an
// expiry. Readers (Check) never lock: they load one immutable state through
// an atomic pointer. A state is a bloom filter over a base set, for the
// fast negative, the exact base set that confirms every filter hit (a false
// positive never rejects a valid token), and a small exact overlay with the
// entries added since the filter was built. Writers (ApplyDelta, Reset,
// Configure, Rebuild) serialise on a mutex and publish a new state
// copy-on-write. Safe for concurrent use; Close stops the rebuild loop.
type Revocations struct {
	state atomic.Pointer[revState]
	now   func() time.Time
	log   zerolog.Logger

	// unknown says the set may lack revocations: the edge could not
	// restore it at boot and the control plane has not answered since.
	// Validators then refuse every token (ReasonRevocationsUnknown).
	unknown atomic.Bool

	// mu serialises the writers that publish a state; it is held only for
	// O(delta) work (and for Reset/Configure, which rebuild anyway).
	mu sync.Mutex
	// foldMu serialises folds (filter rebuilds), which run outside mu.
	foldMu sync.Mutex

	compact   chan struct{} // asks the loop to fold the overlay
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// revState is one immutable revocation state.
type revState struct {
	seq     uint64
	filter  *bloom.BloomFilter // over base
	base    map[string]revEntry
	overlay map[string]revEntry // not in filter; checked exactly
	count   int                 // distinct elements in base ∪ overlay
	minExp  int64               // earliest expiry (unix ms), 0 when none
	// baseGen changes whenever base (and filter) are replaced; a fold
	// built from an older base is discarded.
	baseGen uint64
	keys    []string
	n       uint64
	p       float64
	ttl     int64 // ms
}

// revEntry is one element's expiry and where the claim ends in its key.
type revEntry struct {
	exp      int64 // unix ms
	claimLen int32
}

func (e revEntry) live(nowMs int64) bool { return e.exp == 0 || nowMs < e.exp }

// NewRevocations returns an empty set (seq 0) and starts its expiry loop.
func NewRevocations(cfg RevocationsConfig) *Revocations {
	r := &Revocations{
		now:     cfg.Clock,
		log:     cfg.Logger.With().Str("component", "revocations").Logger(),
		compact: make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if r.now == nil {
		r.now = time.Now
	}
	st := &revState{}
	applySettings(st, cfg.Revoker)
	st.filter = bloom.NewWithEstimates(uint(st.n), st.p)
	st.base = map[string]revEntry{}
	r.state.Store(st)
	period := cfg.RebuildPeriod
	if period == 0 {
		period = DefaultRebuildPeriod
	}
	if period > 0 {
		go r.loop(period)
	} else {
		r.compact = nil // no loop: ApplyDelta folds synchronously
		close(r.done)
	}
	return r
}

func applySettings(st *revState, rv *gatewayv1.Revoker) {
	st.n = rv.GetN()
	if st.n == 0 {
		st.n = DefaultRevocationN
	}
	st.n = min(st.n, MaxRevocationN)
	st.p = rv.GetP()
	if !(st.p > 0 && st.p < 1) {
		st.p = DefaultRevocationP
	}
	st.p = max(st.p, MinRevocationP)
	st.ttl = rv.GetTtlMs()
	if st.ttl <= 0 {
		st.ttl = DefaultRevocationTTL.Milliseconds()
	}
	st.keys = slices.Clone(rv.GetTokenKeys())
	if len(st.keys) == 0 {
		st.keys = slices.Clone(DefaultTokenKeys)
	}
}

// Close stops the background rebuild and waits for it. Check, ApplyDelta
// and the rest keep working. Idempotent.
func (r *Revocations) Close() {
	r.closeOnce.Do(func() {
		if r.stop != nil {
			close(r.stop)
		}
	})
	<-r.done
}

func (r *Revocations) loop(period time.Duration) {
	defer close(r.done)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.Rebuild()
		case <-r.compact:
			r.fold(false)
		}
	}
}

// Seq returns the sequence number of the last applied delta or reset (what
// the edge sends as Hello.revocation_seq and RevocationAck.seq).
func (r *Revocations) Seq() uint64 { return r.state.Load().seq }

// Len returns the number of elements held (expired ones included until the
// next rebuild).
func (r *Revocations) Len() int { return r.state.Load().count }

// Check reports whether the token is revoked: for each token_keys claim,
// "<claim>-<value>" is probed in the filter and every filter hit is
// confirmed in the exact set (an expired entry does not count). The value
// is the claim rendered by FormatClaim, so a numeric `"jti": 12345` is
// matched by a revocation of "12345" (as are 12345.0 and "12345"), a
// boolean by "true"/"false", an array by its comma-joined members and an
// object by its JSON. KrakenD's bloomfilter rejecter skips every
// non-string value, so a revoked numeric jti or sub still passes there; we
// close that hole deliberately. It runs on every request and does not lock;
// it does not allocate for strings and integer numbers (CheckToken never
// does).
func (r *Revocations) Check(c *Claims) bool {
	st := r.state.Load()
	for _, k := range st.keys {
		v, ok := c.Get(k)
		if !ok {
			continue
		}
		var s string
		switch t := v.(type) {
		case string:
			s = t
		case json.Number:
			s = formatNumber(t)
		default:
			if s, ok = FormatClaim(v); !ok {
				continue
			}
		}
		if r.probe(st, k, s) {
			return true
		}
	}
	return false
}

// MarkUnknown says the set may lack revocations (the copy on disk was
// missing or corrupt at boot): until Confirm, Verdict answers
// ReasonRevocationsUnknown for every token, so protected routes fail
// closed instead of accepting revoked tokens.
func (r *Revocations) MarkUnknown() { r.unknown.Store(true) }

// Confirm says the set is as current as the control plane's log (the
// control plane answered on the sync stream after the edge's Hello; it
// sends revocations before anything else). It ends MarkUnknown.
func (r *Revocations) Confirm() {
	if r.unknown.Swap(false) {
		r.log.Info().Msg("revocation set confirmed by the control plane; protected routes serve again")
	}
}

// Known reports whether the set can be trusted (no MarkUnknown pending).
func (r *Revocations) Known() bool { return !r.unknown.Load() }

// Verdict is the revocation answer for a verified token: ReasonOK,
// ReasonRevoked, or ReasonRevocationsUnknown while the set is not known.
// It never allocates.
func (r *Revocations) Verdict(t *Token) Reason {
	if r.unknown.Load() {
		return ReasonRevocationsUnknown
	}
	if r.CheckToken(t) {
		return ReasonRevoked
	}
	return ReasonOK
}

// CheckToken is Check over the token's precomputed claim values (the same
// FormatClaim rendering); it never allocates.
func (r *Revocations) CheckToken(t *Token) bool {
	st := r.state.Load()
	for _, k := range st.keys {
		if s, ok := t.values[k]; ok && r.probe(st, k, s) {
			return true
		}
	}
	return false
}

// Revoked reports whether the element "<claim>-<value>" is revoked now.
func (r *Revocations) Revoked(claim, value string) bool {
	return r.probe(r.state.Load(), claim, value)
}

var probePool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func (r *Revocations) probe(st *revState, claim, value string) bool {
	n := len(claim) + 1 + len(value)
	if n <= maxProbeStack {
		var arr [maxProbeStack]byte
		return r.probeBuf(st, appendElem(arr[:0], claim, value))
	}
	bp := probePool.Get().(*[]byte)
	*bp = appendElem((*bp)[:0], claim, value)
	hit := r.probeBuf(st, *bp)
	probePool.Put(bp)
	return hit
}

func appendElem(dst []byte, claim, value string) []byte {
	dst = append(dst, claim...)
	dst = append(dst, '-')
	return append(dst, value...)
}

func (r *Revocations) probeBuf(st *revState, elem []byte) bool {
	if len(st.overlay) > 0 {
		if e, ok := st.overlay[string(elem)]; ok {
			return e.live(r.now().UnixMilli())
		}
	}
	if !st.filter.Test(elem) {
		return false
	}
	e, ok := st.base[string(elem)]
	return ok && e.live(r.now().UnixMilli())
}

// ApplyDelta adds the entries of a RevocationDelta. fromSeq must equal Seq
// (else *SeqGapError and nothing changes); afterwards Seq is toSeq. An entry
// without expiry expires after the revoker TTL from now; an element revoked
// twice keeps the later expiry; already-expired entries are skipped.
//
// The new entries go to the exact overlay, so a delta costs O(overlay +
// delta), never a copy of the filter. Once the overlay holds compactAt
// entries it is folded into a new filter (one O(m) copy of the bits per
// compactAt entries) by the background loop, outside the writer lock, so
// later deltas are not delayed by it.
func (r *Revocations) ApplyDelta(entries []*gatewayv1.RevocationEntry, fromSeq, toSeq uint64) error {
	n, err := r.applyDelta(entries, fromSeq, toSeq)
	if err != nil || n < compactAt {
		return err
	}
	if r.compact == nil {
		r.fold(false)
		return nil
	}
	select {
	case r.compact <- struct{}{}:
	default:
	}
	return nil
}

func (r *Revocations) applyDelta(entries []*gatewayv1.RevocationEntry, fromSeq, toSeq uint64) (overlay int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.state.Load()
	if fromSeq != cur.seq {
		return 0, &SeqGapError{Have: cur.seq, From: fromSeq}
	}
	if toSeq < fromSeq {
		return 0, fmt.Errorf("apply revocation delta: to_seq %d before from_seq %d", toSeq, fromSeq)
	}
	if err := checkEntries(entries, fromSeq, toSeq); err != nil {
		return 0, fmt.Errorf("apply revocation delta: %w", err)
	}
	next := *cur
	next.seq = toSeq
	next.overlay = maps.Clone(cur.overlay)
	if next.overlay == nil {
		next.overlay = make(map[string]revEntry, len(entries))
	}
	nowMs := r.now().UnixMilli()
	for _, e := range entries {
		key, re := toElem(e, nowMs, cur.ttl)
		if !re.live(nowMs) {
			continue
		}
		if old, ok := next.overlay[key]; ok {
			re.exp = laterExp(old.exp, re.exp)
		} else if old, ok := cur.base[key]; ok {
			re.exp = laterExp(old.exp, re.exp)
		} else {
			next.count++
		}
		next.overlay[key] = re
		next.minExp = minExp(next.minExp, re.exp)
	}
	r.state.Store(&next)
	return len(next.overlay), nil
}

// Reset replaces the whole set with entries as of seq (a RevocationReset,
// or a load from disk). Expired entries are dropped.
func (r *Revocations) Reset(seq uint64, entries []*gatewayv1.RevocationEntry) error {
	if err := checkEntries(entries, 0, 0); err != nil {
		return fmt.Errorf("reset revocations: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.state.Load()
	nowMs := r.now().UnixMilli()
	set := make(map[string]revEntry, len(entries))
	for _, e := range entries {
		key, re := toElem(e, nowMs, cur.ttl)
		if !re.live(nowMs) {
			continue
		}
		if old, ok := set[key]; ok {
			re.exp = laterExp(old.exp, re.exp)
		}
		set[key] = re
	}
	next := *cur
	next.seq = seq
	next.baseGen++
	r.state.Store(build(&next, set))
	return nil
}

// Configure applies a new `auth/revoker` (from a new snapshot): token keys
// and TTL take effect at once; a change of n or p rebuilds the filter.
func (r *Revocations) Configure(rv *gatewayv1.Revoker) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.state.Load()
	next := *cur
	applySettings(&next, rv)
	if next.n == cur.n && next.p == cur.p {
		r.state.Store(&next)
		return
	}
	next.baseGen++
	r.state.Store(build(&next, merged(cur, 0)))
}

// Rebuild drops expired entries by building a fresh filter from the live
// ones and swapping it in; it does nothing when nothing has expired. The
// background loop calls it every RebuildPeriod. Readers and writers are not
// blocked while the filter is built.
func (r *Revocations) Rebuild() { r.fold(true) }

// fold publishes a state whose filter covers the overlay too: with
// dropExpired a fresh filter over the live entries (when something has
// expired), else a copy of the filter plus the overlay (when the overlay is
// large). The filter is built from a snapshot without holding mu; entries
// that writers added meanwhile are carried over into the new overlay. If a
// Reset or Configure replaced the base meanwhile, the fold is dropped (the
// next trigger retries).
func (r *Revocations) fold(dropExpired bool) {
	r.foldMu.Lock()
	defer r.foldMu.Unlock()
	cur := r.state.Load()
	nowMs := r.now().UnixMilli()
	fresh := *cur
	if dropExpired {
		if cur.minExp == 0 || nowMs < cur.minExp {
			return
		}
		build(&fresh, merged(cur, nowMs))
	} else {
		if len(cur.overlay) < compactAt {
			return
		}
		fresh.filter = cur.filter.Copy()
		fresh.base = maps.Clone(cur.base)
		for k, e := range cur.overlay {
			fresh.filter.AddString(k)
			fresh.base[k] = e
		}
		fresh.overlay = nil
		fresh.count = len(fresh.base)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	latest := r.state.Load()
	if latest.baseGen != cur.baseGen {
		return
	}
	// latest differs from cur only by overlay additions, seq and the
	// settings Configure changes without a rebuild.
	fresh.seq, fresh.keys, fresh.ttl = latest.seq, latest.keys, latest.ttl
	fresh.baseGen = cur.baseGen + 1
	for k, e := range latest.overlay {
		if old, ok := cur.overlay[k]; ok && old == e {
			continue // folded into the new filter
		}
		if dropExpired && !e.live(nowMs) {
			continue
		}
		if fresh.overlay == nil {
			fresh.overlay = make(map[string]revEntry)
		}
		fresh.overlay[k] = e
		if _, inBase := fresh.base[k]; !inBase {
			fresh.count++
		}
		fresh.minExp = minExp(fresh.minExp, e.exp)
	}
	r.state.Store(&fresh)
	if dropExpired {
		r.log.Debug().Int("dropped", cur.count-len(fresh.base)).Int("live", fresh.count).Msg("revocation filter rebuilt")
	}
}

func minExp(cur, exp int64) int64 {
	if exp != 0 && (cur == 0 || exp < cur) {
		return exp
	}
	return cur
}

// merged returns base ∪ overlay (overlay wins), without the entries expired
// at nowMs (nowMs 0 keeps everything).
func merged(st *revState, nowMs int64) map[string]revEntry {
	out := make(map[string]revEntry, st.count)
	for k, e := range st.base {
		if nowMs == 0 || e.live(nowMs) {
			out[k] = e
		}
	}
	for k, e := range st.overlay {
		if nowMs == 0 || e.live(nowMs) {
			out[k] = e
		} else {
			delete(out, k)
		}
	}
	return out
}

// build fills st with a fresh filter sized from st.n and st.p over set.
func build(st *revState, set map[string]revEntry) *revState {
	st.filter = bloom.NewWithEstimates(uint(st.n), st.p)
	st.base = set
	st.overlay = nil
	st.count = len(set)
	st.minExp = 0
	for k, e := range set {
		st.filter.AddString(k)
		st.minExp = minExp(st.minExp, e.exp)
	}
	return st
}

func toElem(e *gatewayv1.RevocationEntry, nowMs, ttl int64) (string, revEntry) {
	exp := e.GetExpiresUnixMs()
	if exp == 0 {
		exp = nowMs + ttl
	}
	return e.GetClaim() + "-" + e.GetValue(), revEntry{exp: exp, claimLen: int32(len(e.GetClaim()))}
}

func laterExp(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	return max(a, b)
}

// checkEntries rejects entries without claim or value and, when the range
// is set, entries whose (non-zero) seq is outside (from, to].
func checkEntries(entries []*gatewayv1.RevocationEntry, from, to uint64) error {
	var errs []error
	for i, e := range entries {
		switch {
		case e.GetClaim() == "" || e.GetValue() == "":
			errs = append(errs, fmt.Errorf("entry %d: claim and value are required", i))
		case len(e.GetClaim()) > 1<<15:
			errs = append(errs, fmt.Errorf("entry %d: claim name too long", i))
		case to > 0 && e.GetSeq() != 0 && (e.GetSeq() <= from || e.GetSeq() > to):
			errs = append(errs, fmt.Errorf("entry %d: seq %d outside (%d, %d]", i, e.GetSeq(), from, to))
		}
	}
	return errors.Join(errs...)
}

// Entries returns the live elements (for Save, listing and tests), unordered.
func (r *Revocations) Entries() []*gatewayv1.RevocationEntry {
	return entriesOf(r.state.Load(), r.now().UnixMilli())
}

func entriesOf(st *revState, nowMs int64) []*gatewayv1.RevocationEntry {
	set := merged(st, nowMs)
	out := make([]*gatewayv1.RevocationEntry, 0, len(set))
	for k, e := range set {
		out = append(out, &gatewayv1.RevocationEntry{Claim: k[:e.claimLen], Value: k[e.claimLen+1:], ExpiresUnixMs: e.exp})
	}
	return out
}

// FilterBytes returns the memory held by the current bloom filter's bits.
func (r *Revocations) FilterBytes() int {
	return len(r.state.Load().filter.BitSet().Words()) * 8
}
