package service

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apigw/gateway/controlplane/config"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Edge states as reported by Status and the gw_controlplane_edges metric.
const (
	stateInSync       = "in_sync"      // connected and serving the current version
	stateStale        = "stale"        // connected, serving something else (update on its way or pending)
	stateRejected     = "rejected"     // connected, NACKed the current version
	stateDisconnected = "disconnected" // no open stream
)

// maxNacked bounds the NACKed versions remembered per node. Only versions at
// or above the current one matter (versions only grow), so a handful is
// plenty; the bound keeps a flapping edge from growing memory forever.
const maxNacked = 16

// maxErrorLen bounds the last_error text kept per edge.
const maxErrorLen = 1024

// fleet is the registry of every edge seen since the process started. It is
// safe for concurrent use; it never does I/O or channel sends under mu.
type fleet struct {
	max     int
	ttl     time.Duration
	metrics *metrics

	// mu guards the fields below.
	mu        sync.Mutex
	edges     map[string]*edgeEntry // by node_id (the authenticated one under mTLS)
	lastConn  uint64
	lastSweep time.Time
	// modSeq numbers the changes other replicas must hear of (edgeEntry.mod).
	modSeq uint64
	// pub is what this replica last published of each node on a shared
	// store (fleetshare.go); empty otherwise.
	pub map[string]pubMark
	// dirty holds the nodes changed or evicted since they were last
	// published, so the publisher looks at those instead of walking the
	// registry every interval; nil unless the store is shared
	// (trackChanges).
	dirty map[string]struct{}
	// walkedAt is when the publisher last walked the whole registry (for
	// the refresh of old entries).
	walkedAt time.Time
}

// edgeEntry is one node. connID identifies the stream that owns the entry;
// only that stream may update or disconnect it, so a stale stream that ends
// after its node reconnected cannot clobber the new entry.
type edgeEntry struct {
	nodeID, region, build, peer string
	// identity is the node id the client certificate proved ("" without
	// mTLS); certNotAfter is when that certificate expires.
	identity     string
	certNotAfter time.Time
	connID       uint64 // zero when disconnected
	// mod is the fleet's modSeq at the entry's last change that the other
	// replicas must hear of soon (connect, ACK, NACK, disconnect, agent
	// states); lastSeen, revocationSeq and counters are refreshed lazily.
	mod                      uint64
	cancel                   context.CancelCauseFunc
	connectedSince, lastSeen time.Time
	appliedVersion           uint64
	appliedSHA               string
	rejectedVersion          uint64
	lastError                string
	// revocationSeq is the newest revocation seq the edge holds: from its
	// Hello, then from its RevocationAcks.
	revocationSeq uint64
	// nacked survives reconnects of the same build: an edge is never sent a
	// version it refused.
	nacked []uint64
	// agents are the edge's async agents from its last keepalive.
	agents []*gatewayv1.AgentState
	// requests and errors are the edge's own response counters (all, 5xx)
	// from its last ACK or keepalive; reqBase and errBase are what they
	// were when it started serving baseVersion, so the difference is what
	// it served on that version (a rollout's error rate).
	requests, errors uint64
	reqBase, errBase uint64
	baseVersion      uint64
	countersSeen     bool
}

// setCounters records an edge's counters. The first report on a version
// (its ACK, or the first keepalive a replica sees) is that version's base;
// counters that went down (the edge restarted) restart the base at zero.
// mu must be held.
func (e *edgeEntry) setCounters(requests, errs uint64) {
	if !e.countersSeen || e.baseVersion != e.appliedVersion {
		e.reqBase, e.errBase, e.baseVersion = requests, errs, e.appliedVersion
	}
	if requests < e.reqBase || errs < e.errBase {
		e.reqBase, e.errBase = 0, 0
	}
	e.requests, e.errors, e.countersSeen = requests, errs, true
}

func newFleet(max int, ttl time.Duration, m *metrics) *fleet {
	return &fleet{max: max, ttl: ttl, metrics: m, edges: make(map[string]*edgeEntry), pub: make(map[string]pubMark)}
}

// errFleetFull refuses a new node while the registry is full of connected
// edges.
var errFleetFull = status.Error(codes.ResourceExhausted, "the control plane's edge registry is full; raise --max-edges")

// touchLocked marks e changed for the other replicas. mu must be held.
func (f *fleet) touchLocked(e *edgeEntry) {
	f.modSeq++
	e.mod = f.modSeq
	if f.dirty != nil {
		f.dirty[e.nodeID] = struct{}{}
	}
}

// sweepLocked drops disconnected entries not seen for the TTL; at most once
// a minute unless force. mu must be held.
func (f *fleet) sweepLocked(now time.Time, force bool) {
	if !force && now.Sub(f.lastSweep) < min(time.Minute, f.ttl) {
		return
	}
	f.lastSweep = now
	for id, e := range f.edges {
		if e.connID == 0 && now.Sub(e.lastSeen) > f.ttl {
			f.evictLocked(id)
		}
	}
}

func (f *fleet) evictLocked(id string) {
	delete(f.edges, id)
	if f.dirty != nil {
		f.dirty[id] = struct{}{}
	}
	f.metrics.fleetEvicted.Inc()
	f.metrics.edgeCertExpiry.DeleteLabelValues(id)
}

// makeRoomLocked frees one entry for a new node: an expired one, else the
// disconnected one seen longest ago. It reports false when every entry is
// connected. mu must be held.
func (f *fleet) makeRoomLocked(now time.Time) bool {
	f.sweepLocked(now, true)
	if len(f.edges) < f.max {
		return true
	}
	var oldest *edgeEntry
	for _, e := range f.edges {
		if e.connID == 0 && (oldest == nil || e.lastSeen.Before(oldest.lastSeen)) {
			oldest = e
		}
	}
	if oldest == nil {
		return false
	}
	f.evictLocked(oldest.nodeID)
	return true
}

// connect registers a stream for hello's node and returns its connection id.
// A node that reconnects replaces its old entry (keeping only what it
// NACKed); the previous stream, if still open, is cancelled with
// errStreamReplace after mu is released.
func (f *fleet) connect(hello *gatewayv1.Hello, id *identity, peer string, cancel context.CancelCauseFunc, now time.Time) (uint64, error) {
	f.mu.Lock()
	f.sweepLocked(now, false)
	if _, known := f.edges[hello.GetNodeId()]; !known && len(f.edges) >= f.max && !f.makeRoomLocked(now) {
		f.mu.Unlock()
		return 0, errFleetFull
	}
	f.lastConn++
	connID := f.lastConn
	e := &edgeEntry{
		nodeID:         hello.GetNodeId(),
		region:         hello.GetRegion(),
		build:          hello.GetBuildVersion(),
		peer:           peer,
		connID:         connID,
		cancel:         cancel,
		connectedSince: now,
		lastSeen:       now,
		appliedVersion: hello.GetConfigVersion(),
		appliedSHA:     hello.GetConfigSha256(),
		revocationSeq:  hello.GetRevocationSeq(),
	}
	if id != nil {
		e.identity, e.certNotAfter = id.nodeID, id.notAfter
		f.metrics.edgeCertExpiry.WithLabelValues(id.nodeID).Set(float64(id.notAfter.Unix()))
	}
	var replaced context.CancelCauseFunc
	if old := f.edges[e.nodeID]; old != nil {
		// NACKs are remembered per node and build: the same build would
		// refuse the same version again, but an upgraded one may accept it
		// (the usual cause of a NACK is a feature the old build lacked).
		if old.build == e.build {
			e.nacked = old.nacked
			e.rejectedVersion = old.rejectedVersion
		}
		e.lastError = old.lastError
		if old.connID != 0 {
			replaced = old.cancel
		}
	}
	f.touchLocked(e)
	f.edges[e.nodeID] = e
	f.mu.Unlock()
	if replaced != nil {
		replaced(errStreamReplace)
	}
	return connID, nil
}

// owned returns node's entry if stream connID still owns it. mu must be held.
func (f *fleet) owned(node string, connID uint64) *edgeEntry {
	e := f.edges[node]
	if e == nil || e.connID != connID {
		return nil
	}
	return e
}

// seen records that the stream received a message.
func (f *fleet) seen(node string, connID uint64, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.owned(node, connID); e != nil {
		e.lastSeen = now
	}
}

// Bounds of what an edge's keepalive may make the control plane keep.
const (
	maxReportedAgents = 1024
	maxAgentText      = 256
)

// keepalive records a keepalive of node: when it was seen and its async
// agents (at most maxReportedAgents, texts cut to maxAgentText bytes).
func (f *fleet) keepalive(node string, connID uint64, ka *gatewayv1.Keepalive, now time.Time) {
	agents := ka.GetAgents()
	if len(agents) > maxReportedAgents {
		agents = agents[:maxReportedAgents]
	}
	kept := make([]*gatewayv1.AgentState, 0, len(agents))
	for _, a := range agents {
		kept = append(kept, &gatewayv1.AgentState{
			Name: cut(a.GetName()), State: cut(a.GetState()), SinceUnixMs: a.GetSinceUnixMs(),
			Retries: a.GetRetries(), LastError: cut(a.GetLastError()), LastPingUnixMs: a.GetLastPingUnixMs(),
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.owned(node, connID); e != nil {
		e.lastSeen = now
		if !sameAgents(e.agents, kept) {
			f.touchLocked(e)
		}
		e.agents = kept
		e.setCounters(ka.GetRequestsTotal(), ka.GetErrorsTotal())
	}
}

// sameAgents reports whether two reports of agents differ only in their
// ping times (which change with every keepalive and are not worth telling
// the other replicas about at once).
func sameAgents(a, b []*gatewayv1.AgentState) bool {
	return slices.EqualFunc(a, b, func(x, y *gatewayv1.AgentState) bool {
		return x.GetName() == y.GetName() && x.GetState() == y.GetState() && x.GetSinceUnixMs() == y.GetSinceUnixMs() &&
			x.GetRetries() == y.GetRetries() && x.GetLastError() == y.GetLastError()
	})
}

func cut(s string) string {
	if len(s) <= maxAgentText {
		return s
	}
	return strings.ToValidUTF8(s[:maxAgentText], "")
}

// ack records that node serves version/sha. It reports whether the applied
// version changed (a first ACK of this version by this stream).
func (f *fleet) ack(node string, connID uint64, a *gatewayv1.Ack, now time.Time) bool {
	version, sha := a.GetVersion(), a.GetSha256()
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.owned(node, connID)
	if e == nil {
		return false
	}
	e.lastSeen = now
	f.touchLocked(e)
	changed := e.appliedVersion != version || e.appliedSHA != sha
	e.appliedVersion, e.appliedSHA = version, sha
	e.setCounters(a.GetRequestsTotal(), a.GetErrorsTotal())
	if version > e.rejectedVersion {
		e.lastError = ""
	}
	return changed
}

// revocationAck records that node enforces every revocation up to seq. A
// lower seq than before is recorded as is: after a reset the edge holds
// what this control plane's log says, even if it claimed more.
func (f *fleet) revocationAck(node string, connID uint64, seq uint64, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.owned(node, connID); e != nil {
		e.lastSeen = now
		e.revocationSeq = seq
	}
}

// nack records that node refused a version.
func (f *fleet) nack(node string, connID uint64, n *gatewayv1.Nack, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.edges[node]
	if e == nil {
		return
	}
	// The refusal is a fact about the node, kept even if this stream was
	// replaced meanwhile.
	f.touchLocked(e)
	if !slices.Contains(e.nacked, n.GetVersion()) {
		e.nacked = append(e.nacked, n.GetVersion())
		slices.Sort(e.nacked)
		if len(e.nacked) > maxNacked {
			e.nacked = slices.Delete(e.nacked, 0, len(e.nacked)-maxNacked)
		}
	}
	if n.GetVersion() >= e.rejectedVersion {
		e.rejectedVersion = n.GetVersion()
		e.lastError = truncate(nackText(n), maxErrorLen)
	}
	if e.connID == connID {
		e.lastSeen = now
	}
}

// nackedVersion reports whether node ever NACKed version.
func (f *fleet) nackedVersion(node string, version uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.edges[node]
	return e != nil && slices.Contains(e.nacked, version)
}

// disconnect marks node disconnected if stream connID still owns it.
func (f *fleet) disconnect(node string, connID uint64, reason string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.owned(node, connID)
	if e == nil {
		return
	}
	e.connID = 0
	e.cancel = nil
	e.lastSeen = now
	f.touchLocked(e)
	if reason != "" {
		e.lastError = truncate(reason, maxErrorLen)
	}
}

// wantFunc returns the version and sha256 an edge of region must serve
// (the latest version, or the stable one outside a canary's regions).
type wantFunc func(region string) (uint64, string)

// state classifies one entry against the version it must serve. mu must be
// held.
func (e *edgeEntry) state(want wantFunc) string {
	curVersion, curSHA := want(e.region)
	switch {
	case e.connID == 0:
		return stateDisconnected
	case e.appliedVersion == curVersion && e.appliedSHA == curSHA:
		return stateInSync
	case curVersion != 0 && e.rejectedVersion == curVersion:
		return stateRejected
	default:
		return stateStale
	}
}

// canaryStats is what the edges of a rollout's regions say about it.
type canaryStats struct {
	edges, applied   int    // connected canary edges; those serving the version
	requests, errors uint64 // served on the version, all and 5xx
	nacked           []string
	nackText         string // the last error of nacked[0]
}

// canaryOf sums up records (one per node, nacked merged over every
// replica's record of it) against version.
func canaryOf(recs []*gatewayv1.FleetRecord, version uint64) canaryStats {
	var st canaryStats
	for _, r := range recs {
		e := r.GetEdge()
		if slices.Contains(r.GetNacked(), version) {
			st.nacked = append(st.nacked, e.GetNodeId())
		}
		if !e.GetConnected() {
			continue
		}
		st.edges++
		if e.GetAppliedVersion() != version {
			continue
		}
		st.applied++
		if r.GetCountersSeen() && r.GetBaseVersion() == version {
			st.requests += r.GetRequests() - r.GetReqBase()
			st.errors += r.GetErrors() - r.GetErrBase()
		}
	}
	slices.Sort(st.nacked)
	if len(st.nacked) > 0 {
		for _, r := range recs {
			if r.GetEdge().GetNodeId() == st.nacked[0] {
				st.nackText = r.GetEdge().GetLastError()
				break
			}
		}
	}
	return st
}

// status is the entry as Status shows it, without State. mu must be held.
func (e *edgeEntry) status() *gatewayv1.EdgeStatus {
	st := &gatewayv1.EdgeStatus{
		NodeId:          e.nodeID,
		Region:          e.region,
		BuildVersion:    e.build,
		AppliedVersion:  e.appliedVersion,
		AppliedSha256:   e.appliedSHA,
		RejectedVersion: e.rejectedVersion,
		LastError:       e.lastError,
		LastSeenUnixMs:  e.lastSeen.UnixMilli(),
		Connected:       e.connID != 0,
		Peer:            e.peer,
		RevocationSeq:   e.revocationSeq,
		Identity:        e.identity,
		Agents:          e.agents,
	}
	if !e.certNotAfter.IsZero() {
		st.CertNotAfterUnixMs = e.certNotAfter.UnixMilli()
	}
	if e.connID != 0 {
		st.ConnectedSinceUnixMs = e.connectedSince.UnixMilli()
	}
	return st
}

// record is the entry as published to the other replicas. mu must be held.
func (e *edgeEntry) record(replica string, now time.Time) *gatewayv1.FleetRecord {
	st := e.status()
	st.Replica, st.ReportedUnixMs = replica, now.UnixMilli()
	return &gatewayv1.FleetRecord{
		Edge:         st,
		Nacked:       slices.Clone(e.nacked),
		Requests:     e.requests,
		Errors:       e.errors,
		ReqBase:      e.reqBase,
		ErrBase:      e.errBase,
		BaseVersion:  e.baseVersion,
		CountersSeen: e.countersSeen,
	}
}

// records returns the entries of regions (all when regions is nil) as
// records of replica.
func (f *fleet) records(regions []string, replica string, now time.Time) []*gatewayv1.FleetRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*gatewayv1.FleetRecord
	for _, e := range f.edges {
		if regions == nil || slices.Contains(regions, e.region) {
			out = append(out, e.record(replica, now))
		}
	}
	return out
}

// list returns every edge, sorted by region then node id.
func (f *fleet) list(want wantFunc) []*gatewayv1.EdgeStatus {
	f.mu.Lock()
	f.sweepLocked(time.Now(), false)
	out := make([]*gatewayv1.EdgeStatus, 0, len(f.edges))
	for _, e := range f.edges {
		st := e.status()
		st.State = e.state(want)
		out = append(out, st)
	}
	f.mu.Unlock()
	sortEdges(out)
	return out
}

func sortEdges(out []*gatewayv1.EdgeStatus) {
	slices.SortFunc(out, func(a, b *gatewayv1.EdgeStatus) int {
		return cmp.Or(cmp.Compare(a.GetRegion(), b.GetRegion()), cmp.Compare(a.GetNodeId(), b.GetNodeId()))
	})
}

// counts returns the number of edges per state.
func (f *fleet) counts(want wantFunc) map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(edgeStates))
	for _, e := range f.edges {
		out[e.state(want)]++
	}
	return out
}

// regionCounts is counts split by the region each edge announced. An edge
// disconnected from here that elsewhere reports connected to another
// replica is left out (that replica counts it), so the gauges summed over
// the replicas count each edge once.
func (f *fleet) regionCounts(want wantFunc, elsewhere func(node string) bool) map[regionState]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[regionState]int, len(edgeStates))
	for _, e := range f.edges {
		if e.connID == 0 && elsewhere != nil && elsewhere(e.nodeID) {
			continue
		}
		out[regionState{e.region, e.state(want)}]++
	}
	return out
}

func nackText(n *gatewayv1.Nack) string {
	var b strings.Builder
	b.WriteString(n.GetDetail())
	for _, v := range n.GetViolations() {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(config.FormatViolation(v))
	}
	if b.Len() == 0 {
		return "rejected without detail"
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
