package service

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/apigw/gateway/controlplane/store"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// The fleet across replicas. On a store that several replicas share
// (store.FleetBoard: etcd), each replica publishes its registry's entries
// under a lease of its own and follows the others' (fleetShare), and every
// reader that must see the whole fleet (Status, the fleet page, the staged
// rollout's checks, the no-resend-after-NACK rule) merges the two. The
// write rate is bounded: entries are written at most once per
// FleetPublishInterval, only when something the others must know changed
// (connect, ACK, NACK, disconnect, agent states; the counters of canary
// edges while a rollout runs), else once per FleetRefresh to bring
// last_seen and revocation_seq up to date, and at most
// maxFleetWritesPerPublish per interval (the rest waits for the next).

// Defaults of the fleet board.
const (
	DefaultFleetLeaseTTL        = 15 * time.Second
	DefaultFleetPublishInterval = time.Second
	DefaultFleetRefresh         = 5 * time.Minute
	// maxFleetWritesPerPublish caps the entries one publish writes (8
	// transactions of 128): a reconnect storm of 10,000 edges reaches the
	// others over ten intervals instead of in one burst.
	maxFleetWritesPerPublish = 1024
)

// Keys of the fleet board within a session.
const (
	fleetKeyReplica    = "r"
	fleetKeyEdgePrefix = "e/"
)

// pubMark is what was last published of one node.
type pubMark struct {
	mod              uint64
	requests, errors uint64
	at               time.Time
}

// pubWrite is one entry to publish (value nil: delete it).
type pubWrite struct {
	node             string
	mod              uint64
	requests, errors uint64
	value            []byte
}

// trackChanges makes the registry remember which nodes changed, for
// collect; called once, before any stream connects, on a shared store.
func (f *fleet) trackChanges() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dirty = make(map[string]struct{})
}

// collect returns what to publish at now: entries changed since they were
// last published, entries of hot regions whose counters moved, entries
// older than refresh, and deletions of nodes gone from the registry; at
// most limit. mu is held while encoding (a few microseconds per entry).
//
// Only the changed nodes are looked at, except for a whole walk of the
// registry every tenth of refresh (so an entry is refreshed at most a tenth
// of refresh late) and while a rollout makes regions hot (their counters
// move without a change): the walk held the lock for 1.5-3 ms at 10,000
// edges every interval (BenchmarkFleetCollect).
func (f *fleet) collect(now time.Time, replica string, hot []string, refresh time.Duration, limit int) []pubWrite {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []pubWrite
	// due decides one entry and reports whether it goes out.
	due := func(id string, e *edgeEntry) bool {
		p, ok := f.pub[id]
		if ok && p.mod == e.mod && now.Sub(p.at) < refresh &&
			(p.requests == e.requests && p.errors == e.errors || !slices.Contains(hot, e.region)) {
			return false
		}
		b, err := proto.Marshal(e.record(replica, now))
		if err != nil {
			return false // cannot happen: every field is valid UTF-8 or bytes
		}
		out = append(out, pubWrite{node: id, mod: e.mod, requests: e.requests, errors: e.errors, value: b})
		return true
	}
	if f.dirty == nil || len(hot) > 0 || now.Sub(f.walkedAt) >= refresh/10 {
		for id, e := range f.edges {
			if len(out) >= limit {
				return out
			}
			due(id, e)
		}
		for id := range f.pub {
			if len(out) >= limit {
				return out
			}
			if _, ok := f.edges[id]; !ok {
				out = append(out, pubWrite{node: id})
			}
		}
		f.walkedAt = now // a whole walk within the limit
		return out
	}
	for id := range f.dirty {
		if len(out) >= limit {
			break
		}
		if e, ok := f.edges[id]; ok {
			if !due(id, e) {
				delete(f.dirty, id) // published as it is
			}
			continue
		}
		if _, ok := f.pub[id]; ok {
			out = append(out, pubWrite{node: id})
		} else {
			delete(f.dirty, id) // gone, and never published
		}
	}
	return out
}

// published records that writes reached the store at now.
func (f *fleet) published(writes []pubWrite, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range writes {
		if e := f.edges[w.node]; e == nil || e.mod == w.mod {
			delete(f.dirty, w.node) // unless it changed again meanwhile
		}
		if w.value == nil {
			delete(f.pub, w.node)
			continue
		}
		f.pub[w.node] = pubMark{mod: w.mod, requests: w.requests, errors: w.errors, at: now}
	}
}

// forgetPublished drops every mark: the store lost them (a new lease).
func (f *fleet) forgetPublished() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.pub)
	f.walkedAt = time.Time{} // republish everything
}

// size is the number of entries.
func (f *fleet) size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.edges)
}

// fleetShare is this replica's session on the fleet board and what the
// other replicas published.
type fleetShare struct {
	sess store.FleetSession
	name string

	// Used by the publishing loop only.
	epoch    uint64
	lastBeat time.Time
	lastErr  time.Time

	// mu guards sessions.
	mu       sync.Mutex
	sessions map[string]*remoteReplica
}

// remoteReplica is one other replica's session.
type remoteReplica struct {
	name     string
	reported time.Time
	edges    map[string]*gatewayv1.FleetRecord // by node id
}

func (sh *fleetShare) session(id string) *remoteReplica {
	r := sh.sessions[id]
	if r == nil {
		r = &remoteReplica{edges: map[string]*gatewayv1.FleetRecord{}}
		sh.sessions[id] = r
	}
	return r
}

// event applies one change of the board (store.FleetBoard's callback).
func (sh *fleetShare) event(ev store.FleetEvent) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if ev.Reset {
		clear(sh.sessions)
		return
	}
	if ev.Key == fleetKeyReplica {
		if ev.Value == nil {
			delete(sh.sessions, ev.Session) // lease gone: so are its edges
			return
		}
		rec := &gatewayv1.FleetReplicaRecord{}
		if proto.Unmarshal(ev.Value, rec) != nil {
			return
		}
		r := sh.session(ev.Session)
		r.name, r.reported = rec.GetName(), time.UnixMilli(rec.GetHeartbeatUnixMs())
		return
	}
	node, ok := strings.CutPrefix(ev.Key, fleetKeyEdgePrefix)
	if !ok {
		return
	}
	if ev.Value == nil {
		if r := sh.sessions[ev.Session]; r != nil {
			delete(r.edges, node)
		}
		return
	}
	rec := &gatewayv1.FleetRecord{}
	if proto.Unmarshal(ev.Value, rec) != nil || rec.GetEdge().GetNodeId() != node {
		return
	}
	sh.session(ev.Session).edges[node] = rec
}

// remote returns the other replicas' records of regions (all when nil).
func (sh *fleetShare) remote(regions []string) []*gatewayv1.FleetRecord {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var out []*gatewayv1.FleetRecord
	for _, r := range sh.sessions {
		for _, rec := range r.edges {
			if regions == nil || slices.Contains(regions, rec.GetEdge().GetRegion()) {
				out = append(out, rec)
			}
		}
	}
	return out
}

// connectedElsewhere reports whether another replica has node connected.
func (sh *fleetShare) connectedElsewhere(node string) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, r := range sh.sessions {
		if rec := r.edges[node]; rec != nil && rec.GetEdge().GetConnected() {
			return true
		}
	}
	return false
}

// nacked reports whether another replica saw node, running build, NACK
// version (an upgraded build may accept it, as on one replica).
func (sh *fleetShare) nacked(node, build string, version uint64) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, r := range sh.sessions {
		if rec := r.edges[node]; rec != nil && rec.GetEdge().GetBuildVersion() == build && slices.Contains(rec.GetNacked(), version) {
			return true
		}
	}
	return false
}

// replicas returns the other replicas, by name.
func (sh *fleetShare) replicas() []*gatewayv1.ReplicaStatus {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	out := make([]*gatewayv1.ReplicaStatus, 0, len(sh.sessions))
	for _, r := range sh.sessions {
		if r.name == "" {
			continue // its replica record is not in yet
		}
		out = append(out, &gatewayv1.ReplicaStatus{Name: r.name, Edges: uint32(len(r.edges)), ReportedUnixMs: r.reported.UnixMilli()})
	}
	slices.SortFunc(out, func(a, b *gatewayv1.ReplicaStatus) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// publishFleet writes what changed since the last call (see collect) and,
// every third of the lease TTL, the replica's own record.
func (s *Service) publishFleet(ctx context.Context, now time.Time) {
	sh := s.share
	if ep := sh.sess.Epoch(); ep != sh.epoch {
		// A new lease: everything written under the old one is gone.
		s.fleet.forgetPublished()
		sh.epoch, sh.lastBeat = ep, time.Time{}
	}
	var hot []string
	if r, _ := s.hub.rollout(); r != nil && r.GetPhase() == phaseCanary {
		hot = r.GetRegions()
	}
	writes := s.fleet.collect(now, sh.name, hot, s.cfg.FleetRefresh, maxFleetWritesPerPublish)
	beat := now.Sub(sh.lastBeat) >= s.cfg.FleetLeaseTTL/3
	if len(writes) == 0 && !beat {
		return
	}
	fw := make([]store.FleetWrite, 0, len(writes)+1)
	for _, w := range writes {
		fw = append(fw, store.FleetWrite{Key: fleetKeyEdgePrefix + w.node, Value: w.value})
	}
	if beat {
		b, _ := proto.Marshal(&gatewayv1.FleetReplicaRecord{Name: sh.name, HeartbeatUnixMs: now.UnixMilli(), Edges: uint32(s.fleet.size())})
		fw = append(fw, store.FleetWrite{Key: fleetKeyReplica, Value: b})
	}
	if err := sh.sess.Publish(ctx, fw); err != nil {
		if ctx.Err() != nil || isClosed(err) {
			return
		}
		s.metrics.fleetPublishErrors.Inc()
		if errors.Is(err, store.ErrFleetLeaseLost) || now.Sub(sh.lastErr) >= time.Minute {
			sh.lastErr = now
			s.log.Warn().Err(err).Msg("fleet: could not publish this replica's edges to the other replicas; retrying")
		}
		return
	}
	s.fleet.published(writes, now)
	if beat {
		sh.lastBeat = now
	}
	s.metrics.fleetPublished.Add(float64(len(fw)))
}

// better reports whether a should stand for the node rather than b: a
// connected record beats a disconnected one, then the newer stream, then
// the one seen last.
func better(a, b *gatewayv1.EdgeStatus) bool {
	if a.GetConnected() != b.GetConnected() {
		return a.GetConnected()
	}
	if a.GetConnected() {
		return a.GetConnectedSinceUnixMs() > b.GetConnectedSinceUnixMs()
	}
	return a.GetLastSeenUnixMs() > b.GetLastSeenUnixMs()
}

// mergeRecords keeps one record per node (better), with the NACKs of every
// replica's record of it and the newest rejection's version and text. The
// inputs are not modified (records from the board are shared).
func mergeRecords(recs []*gatewayv1.FleetRecord) []*gatewayv1.FleetRecord {
	byNode := make(map[string][]*gatewayv1.FleetRecord, len(recs))
	for _, r := range recs {
		id := r.GetEdge().GetNodeId()
		byNode[id] = append(byNode[id], r)
	}
	out := make([]*gatewayv1.FleetRecord, 0, len(byNode))
	for _, group := range byNode {
		if len(group) == 1 {
			out = append(out, group[0])
			continue
		}
		best, rejected := group[0], group[0]
		var nacked []uint64
		for _, r := range group {
			if better(r.GetEdge(), best.GetEdge()) {
				best = r
			}
			if r.GetEdge().GetRejectedVersion() > rejected.GetEdge().GetRejectedVersion() {
				rejected = r
			}
			nacked = append(nacked, r.GetNacked()...)
		}
		slices.Sort(nacked)
		m := proto.CloneOf(best)
		m.Nacked = slices.Compact(nacked)
		if rejected.GetEdge().GetRejectedVersion() > m.Edge.GetRejectedVersion() {
			m.Edge.RejectedVersion, m.Edge.LastError = rejected.GetEdge().GetRejectedVersion(), rejected.GetEdge().GetLastError()
		}
		out = append(out, m)
	}
	return out
}

// stateOf classifies a record's edge against what its region must serve
// (as edgeEntry.state does).
func stateOf(e *gatewayv1.EdgeStatus, want wantFunc) string {
	curVersion, curSHA := want(e.GetRegion())
	switch {
	case !e.GetConnected():
		return stateDisconnected
	case e.GetAppliedVersion() == curVersion && e.GetAppliedSha256() == curSHA:
		return stateInSync
	case curVersion != 0 && e.GetRejectedVersion() == curVersion:
		return stateRejected
	default:
		return stateStale
	}
}

// replicaName is this replica's name in Status ("" on an unshared store).
func (s *Service) replicaName() string {
	if s.share == nil {
		return ""
	}
	return s.share.name
}

// fleetList is every edge of the fleet, sorted by region then node id:
// this replica's registry and, on a shared store, the other replicas'
// entries, one per node (mergeRecords).
func (s *Service) fleetList() []*gatewayv1.EdgeStatus {
	if s.share == nil {
		return s.fleet.list(s.hub.want)
	}
	now := time.Now()
	recs := mergeRecords(append(s.fleet.records(nil, s.share.name, now), s.share.remote(nil)...))
	out := make([]*gatewayv1.EdgeStatus, 0, len(recs))
	for _, r := range recs {
		e := proto.CloneOf(r.GetEdge()) // board records are shared
		e.State = stateOf(e, s.hub.want)
		out = append(out, e)
	}
	sortEdges(out)
	return out
}

// canary sums up the fleet's edges of regions against version (the staged
// rollout's checks and status).
func (s *Service) canary(regions []string, version uint64) canaryStats {
	recs := s.fleet.records(regions, s.replicaName(), time.Now())
	if s.share != nil {
		recs = mergeRecords(append(recs, s.share.remote(regions)...))
	}
	return canaryOf(recs, version)
}

// nackedVersion reports whether node, running build, NACKed version on
// any replica.
func (s *Service) nackedVersion(node, build string, version uint64) bool {
	return s.fleet.nackedVersion(node, version) || s.share != nil && s.share.nacked(node, build, version)
}

// statusReplicas is Status's replicas list: this one first, then the
// others by name (nil on an unshared store).
func (s *Service) statusReplicas(now time.Time) []*gatewayv1.ReplicaStatus {
	if s.share == nil {
		return nil
	}
	self := &gatewayv1.ReplicaStatus{Name: s.share.name, Edges: uint32(s.fleet.size()), ReportedUnixMs: now.UnixMilli()}
	return append([]*gatewayv1.ReplicaStatus{self}, s.share.replicas()...)
}
