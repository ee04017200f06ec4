package service

import (
	"slices"
	"sync"
	"time"
)

// convergenceVersions is how many recent versions the fleet page charts.
const convergenceVersions = 5

// convergenceLog remembers, for the last few versions, when each edge
// first ACKed it (as time since the version was created): the fleet
// page's convergence chart. Bounded by convergenceVersions times the
// fleet's size (one point per node). Safe for concurrent use.
type convergenceLog struct {
	mu       sync.Mutex
	versions []*versionConvergence // oldest first
}

type versionConvergence struct {
	version uint64
	created time.Time
	acks    map[string]time.Duration // node id -> lag of its first ACK
}

// add records node's first ACK of version (created at created), lag
// after its creation.
func (c *convergenceLog) add(version uint64, created time.Time, node string, lag time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var vc *versionConvergence
	for _, v := range c.versions {
		if v.version == version {
			vc = v
		}
	}
	if vc == nil {
		if n := len(c.versions); n > 0 && c.versions[n-1].version > version {
			return // an old version's late ACK: not charted
		}
		vc = &versionConvergence{version: version, created: created, acks: map[string]time.Duration{}}
		c.versions = append(c.versions, vc)
		if len(c.versions) > convergenceVersions {
			c.versions = slices.Delete(c.versions, 0, len(c.versions)-convergenceVersions)
		}
	}
	if _, ok := vc.acks[node]; !ok {
		vc.acks[node] = lag
	}
}

// convergencePoint is one version's ACK lags, sorted.
type convergencePoint struct {
	Version uint64
	Created time.Time
	Lags    []time.Duration
}

// snapshot returns the charted versions, newest first.
func (c *convergenceLog) snapshot() []convergencePoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]convergencePoint, 0, len(c.versions))
	for _, v := range slices.Backward(c.versions) {
		p := convergencePoint{Version: v.version, Created: v.created}
		for _, l := range v.acks {
			p.Lags = append(p.Lags, l)
		}
		slices.Sort(p.Lags)
		out = append(out, p)
	}
	return out
}
