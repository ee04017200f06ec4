package ratelimit

import (
	"crypto/sha256"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/apigw/gateway/edge/internal/lru"
	"github.com/apigw/gateway/edge/qos/clock"
)

// Defaults of ClientConfig.
const (
	DefaultNumShards     = 2048
	DefaultCleanupPeriod = time.Minute
	// DefaultMaxClients bounds the buckets one client limiter keeps (about
	// 100 bytes each plus the key): ~10 MiB worst case per endpoint.
	DefaultMaxClients = 1 << 16
	// MaxKeyLen is the longest client key stored as is; longer keys are
	// stored as a 33-byte SHA-256 digest.
	MaxKeyLen = 64
	// minPerShard is the smallest per-shard capacity NumShards is reduced to.
	minPerShard = 32
)

// ClientConfig configures per-client buckets. The zero value is not valid:
// MaxRate must be > 0.
type ClientConfig struct {
	// MaxRate, Every and Capacity define every client's bucket, as in
	// BucketConfig (Every not clamped here; Capacity 0 means MaxRate, min 1).
	MaxRate  float64
	Every    time.Duration
	Capacity uint64
	// NumShards splits the table; 0 means DefaultNumShards, 1 one table.
	// It is reduced so that every shard holds at least 32 clients
	// (MaxClients/32 shards at most).
	NumShards int
	// CleanupPeriod is how often refilled (idle) buckets are dropped; 0 means
	// DefaultCleanupPeriod, values under one second are raised to one second.
	CleanupPeriod time.Duration
	// MaxClients caps the number of buckets: each shard holds at most
	// ceil(MaxClients/NumShards) and evicts its least recently used bucket
	// for a new key (so eviction can start a little below MaxClients when
	// keys spread unevenly). 0 means DefaultMaxClients.
	MaxClients int
	// Clock defaults to clock.System().
	Clock clock.Clock
}

// Validate reports a configuration that cannot build a limiter.
func (c ClientConfig) Validate() error {
	if err := (BucketConfig{MaxRate: c.MaxRate, Every: c.Every}).Validate(); err != nil {
		return err
	}
	if c.NumShards < 0 {
		return fmt.Errorf("ratelimit config: num_shards %d: must not be negative", c.NumShards)
	}
	if c.MaxClients < 0 {
		return fmt.Errorf("ratelimit config: max_clients %d: must not be negative", c.MaxClients)
	}
	if c.CleanupPeriod < 0 {
		return fmt.Errorf("ratelimit config: cleanup_period %v: must not be negative", c.CleanupPeriod)
	}
	return nil
}

// Clients is a sharded table of per-client buckets with bounded memory (see
// the package doc). It runs one sweeping goroutine, stopped by Close. Safe
// for concurrent use; a nil *Clients allows everything.
type Clients struct {
	g        gcra
	clock    clock.Clock
	shards   []shard
	mask     uint64 // len(shards)-1 when a power of two, else 0
	perShard int

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// shard is one mutex-guarded LRU table of buckets' theoretical arrival
// times (GCRA's tat; zero for a new, full bucket).
type shard struct {
	mu sync.Mutex
	t  lru.Table[int64] // guarded by mu
}

// NewClients returns an empty table and starts its sweeper.
func NewClients(cfg ClientConfig) (*Clients, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := newClients(NewRate(cfg.MaxRate, cfg.Every, cfg.Capacity), cfg)
	return c, nil
}

func newClients(r Rate, cfg ClientConfig) *Clients {
	n := cfg.NumShards
	if n == 0 {
		n = DefaultNumShards
	}
	maxClients := cfg.MaxClients
	if maxClients == 0 {
		maxClients = DefaultMaxClients
	}
	// Keys spread unevenly over shards, and a full shard evicts even while
	// others have room; at least minPerShard slots per shard keeps that
	// effect small, so small tables get fewer shards.
	n = max(min(n, maxClients/minPerShard), 1)
	period := cfg.CleanupPeriod
	if period == 0 {
		period = DefaultCleanupPeriod
	}
	period = max(period, time.Second)
	c := &Clients{
		g:        newGCRA(r),
		clock:    cfg.Clock,
		shards:   make([]shard, n),
		perShard: min(max((maxClients+n-1)/n, 1), math.MaxInt32),
		stop:     make(chan struct{}),
	}
	if c.clock == nil {
		c.clock = clock.System()
	}
	if n&(n-1) == 0 {
		c.mask = uint64(n - 1)
	}
	for i := range c.shards {
		c.shards[i].t = lru.New[int64](c.perShard)
	}
	c.wg.Add(1)
	go c.sweepLoop(period)
	return c
}

func (c *Clients) sweepLoop(period time.Duration) {
	defer c.wg.Done()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.Sweep()
		}
	}
}

// Close stops the sweeper and waits for it. Idempotent. Allow keeps working
// after Close (the per-shard cap still bounds memory).
func (c *Clients) Close() error {
	if c == nil {
		return nil
	}
	c.closeOnce.Do(func() {
		close(c.stop)
		c.wg.Wait()
	})
	return nil
}

// Allow takes one token from key's bucket, creating a full bucket for a new
// key. An empty key is rejected (ScopeClient, no RetryAfter). key is not
// retained. No allocation when key already has a bucket.
func (c *Clients) Allow(key []byte) Decision {
	if c == nil {
		return Decision{Allowed: true}
	}
	if len(key) == 0 {
		return Decision{RejectedBy: ScopeClient}
	}
	var buf [1 + sha256.Size]byte
	return c.allowAt(normKey(key, &buf), c.clock.Nanotime())
}

// normKey returns key, or for keys longer than MaxKeyLen a marker byte plus
// their SHA-256 (in buf). A real key equal to a digest would need a SHA-256
// preimage to collide with anyone on purpose.
func normKey(key []byte, buf *[1 + sha256.Size]byte) []byte {
	if len(key) <= MaxKeyLen {
		return key
	}
	buf[0] = 0xff
	sum := sha256.Sum256(key)
	copy(buf[1:], sum[:])
	return buf[:]
}

// fnv1a is 64-bit FNV-1a over b.
func fnv1a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

func (c *Clients) shardFor(key []byte) *shard {
	h := fnv1a(key)
	if c.mask != 0 || len(c.shards) == 1 {
		return &c.shards[h&c.mask]
	}
	return &c.shards[h%uint64(len(c.shards))]
}

func (c *Clients) allowAt(key []byte, now int64) Decision {
	s := c.shardFor(key)
	s.mu.Lock()
	tat, _ := s.t.Put(key)
	next, d := c.g.take(*tat, now)
	if d.Allowed {
		*tat = next
	}
	s.mu.Unlock()
	if !d.Allowed {
		d.RejectedBy = ScopeClient
	}
	return d
}

// refund gives back the token allowAt took for key (when a later check
// rejected the request).
func (c *Clients) refund(key []byte) {
	s := c.shardFor(key)
	s.mu.Lock()
	if tat, ok := s.t.Peek(key); ok {
		*tat -= c.g.interval
	}
	s.mu.Unlock()
}

// Len returns the number of buckets held.
func (c *Clients) Len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += s.t.Len()
		s.mu.Unlock()
	}
	return n
}

// Cap returns the most buckets the table can hold.
func (c *Clients) Cap() int {
	if c == nil {
		return 0
	}
	return c.perShard * len(c.shards)
}

// Sweep drops every bucket that has refilled completely (it is then
// indistinguishable from a new one, so nothing is lost) and returns how many
// it dropped. The sweeper calls it every CleanupPeriod; tests call it after
// advancing a fake clock. It locks one shard at a time.
func (c *Clients) Sweep() int {
	if c == nil {
		return 0
	}
	now := c.clock.Nanotime()
	dropped := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		dropped += s.t.RemoveIf(func(tat *int64) bool { return *tat <= now })
		s.mu.Unlock()
	}
	return dropped
}
