package auth

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/apigw/gateway/edge/internal/zerocopy"
)

// cacheShards is the number of independently locked parts of a token cache.
const cacheShards = 16

// tokenCache maps exact token bytes to a verification result. It is bounded
// (CLOCK eviction: an entry used since the hand last passed gets a second
// chance) and sharded so parallel hits rarely meet on one lock. Entries are
// immutable once inserted; validity (expiry, key generation) is checked by
// the caller. A lookup does not allocate.
type tokenCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	// mu guards the fields below.
	mu    sync.RWMutex
	index map[string]int
	ring  []*cacheEntry
	hand  int
	max   int
	_     [40]byte // keep neighbouring shards' locks off one cache line
}

// cacheEntry is one verified token and what the validator decided for it.
type cacheEntry struct {
	key    string
	tok    *Token
	reason Reason // ReasonOK, ReasonRoles or ReasonScopes
	until  int64  // unix nanos: valid while now <= until; 0 means no exp
	gen    uint64 // key-set generation the signature was checked with
	ref    atomic.Bool
}

func newTokenCache(size int) *tokenCache {
	if size <= 0 {
		return nil
	}
	c := &tokenCache{seed: maphash.MakeSeed()}
	per := max(1, (size+cacheShards-1)/cacheShards)
	for i := range c.shards {
		c.shards[i].index = make(map[string]int, per)
		c.shards[i].ring = make([]*cacheEntry, 0, per)
		c.shards[i].max = per
	}
	return c
}

func (c *tokenCache) shard(tok []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, tok)%cacheShards]
}

// get returns the entry for tok, or nil. The caller checks validity and
// calls touch on a hit.
func (c *tokenCache) get(tok []byte) *cacheEntry {
	if c == nil {
		return nil
	}
	sh := c.shard(tok)
	sh.mu.RLock()
	var e *cacheEntry
	if i, ok := sh.index[string(tok)]; ok {
		e = sh.ring[i]
	}
	sh.mu.RUnlock()
	return e
}

// touch marks e as recently used (skips the store when already marked so
// hot entries do not bounce their cache line between cores).
func (e *cacheEntry) touch() {
	if !e.ref.Load() {
		e.ref.Store(true)
	}
}

// put inserts or replaces the entry for e.key, evicting with CLOCK when full.
func (c *tokenCache) put(e *cacheEntry) {
	if c == nil {
		return
	}
	sh := c.shard(zerocopy.Bytes(e.key))
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if i, ok := sh.index[e.key]; ok {
		sh.ring[i] = e
		return
	}
	if len(sh.ring) < sh.max {
		sh.index[e.key] = len(sh.ring)
		sh.ring = append(sh.ring, e)
		return
	}
	for {
		victim := sh.ring[sh.hand]
		if victim.ref.Load() {
			victim.ref.Store(false)
			sh.hand = (sh.hand + 1) % len(sh.ring)
			continue
		}
		delete(sh.index, victim.key)
		sh.ring[sh.hand] = e
		sh.index[e.key] = sh.hand
		sh.hand = (sh.hand + 1) % len(sh.ring)
		return
	}
}

// len returns the number of cached entries (tests).
func (c *tokenCache) len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.ring)
		sh.mu.RUnlock()
	}
	return n
}
