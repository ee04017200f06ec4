package httpcache

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/apigw/gateway/edge/internal/ascii"
	"github.com/apigw/gateway/edge/internal/hop"
	"github.com/apigw/gateway/edge/internal/zerocopy"
	"github.com/apigw/gateway/edge/qos/clock"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Defaults of Config.
const (
	// DefaultMaxBytes bounds a cache whose config sets no max_size. KrakenD
	// is unbounded then; an unbounded cache is an out-of-memory waiting to
	// happen, so we bound it.
	DefaultMaxBytes = 64 << 20
	// DefaultMaxVariants is how many Vary variants one URL keeps.
	DefaultMaxVariants = 8
	// entryOverhead approximates the bookkeeping bytes of one entry.
	entryOverhead = 256
)

// Header is one header field. In a stored Entry both slices are read-only.
type Header struct {
	Key, Value []byte
}

// Response is a backend response offered to Put. Put copies what it keeps:
// the caller may reuse every buffer as soon as Put returns.
type Response struct {
	Status int
	Header []Header
	Body   []byte
}

// RequestHeader is how the cache reads request headers (Vary values,
// Authorization, Cache-Control). Peek returns the first value of the named
// header (any case) or nil; the result is only read during the call.
// fasthttp's *RequestHeader satisfies it; for net/http use HTTPHeader.
type RequestHeader interface {
	Peek(key string) []byte
}

// HTTPHeader adapts a net/http header map to RequestHeader.
type HTTPHeader map[string][]string

// Peek implements RequestHeader.
func (h HTTPHeader) Peek(key string) []byte {
	if v := http.Header(h).Values(key); len(v) > 0 {
		return []byte(v[0])
	}
	return nil
}

// Entry is a stored response. It is immutable: callers may keep and share
// it for as long as they like (the garbage collector owns it), but must
// never modify Header or Body (fasthttp's SetBodyRaw(e.Body) is fine; so is
// copying).
type Entry struct {
	Status int
	Header []Header
	Body   []byte
}

// Config configures a Cache. The zero value is valid (DefaultMaxBytes).
type Config struct {
	// MaxBytes bounds the bytes held (bodies, headers, keys and a fixed
	// per-entry overhead); 0 means DefaultMaxBytes.
	MaxBytes int64
	// MaxItems bounds the number of entries; 0 means no item bound.
	MaxItems int
	// MaxEntryBytes is the largest entry stored; 0 means MaxBytes/4, so one
	// large response cannot flush the whole cache.
	MaxEntryBytes int64
	// MaxVariants bounds the Vary variants kept per URL; 0 means
	// DefaultMaxVariants.
	MaxVariants int
	// Clock defaults to clock.System().
	Clock clock.Clock
}

// Validate reports negative bounds.
func (c Config) Validate() error {
	if c.MaxBytes < 0 || c.MaxItems < 0 || c.MaxEntryBytes < 0 || c.MaxVariants < 0 {
		return fmt.Errorf("httpcache config: max_size %d, max_items %d, max_entry_bytes %d, max_variants %d: must not be negative",
			c.MaxBytes, c.MaxItems, c.MaxEntryBytes, c.MaxVariants)
	}
	return nil
}

// ConfigFromProto converts `qos/http-cache` settings. ok is false when pb is
// nil (no cache). Whether the cache is shared (pb.Shared) is an identity
// question for the caller (see qos.Lease.Cache), not a Config field.
func ConfigFromProto(pb *gatewayv1.HTTPCache) (cfg Config, ok bool) {
	if pb == nil {
		return Config{}, false
	}
	return Config{MaxBytes: pb.GetMaxSize(), MaxItems: int(min(pb.GetMaxItems(), 1<<31-1))}, true
}

// Stats are counters since New.
type Stats struct {
	Hits, Misses, Stores, Evictions uint64
	Items                           int
	Bytes                           int64
}

// Cache is a bounded in-memory HTTP cache. Safe for concurrent use; a nil
// *Cache never hits and never stores.
type Cache struct {
	maxBytes, maxEntry int64
	maxItems           int
	maxVariants        int
	clock              clock.Clock

	mu sync.Mutex
	// mu guards the fields below.
	byURL [2]map[string]*variants // by method: 0 GET, 1 HEAD
	lru   node                    // sentinel: lru.next is the most recent
	bytes int64
	items int
	stats Stats
}

// variants are the stored responses of one method+URL, oldest first.
type variants struct {
	url   string
	nodes []*node
}

type node struct {
	entry      *Entry
	method     int
	vs         *variants
	varyNames  [][]byte // lower case
	varyValues [][]byte
	size       int64
	storedAt   int64 // clock.Nanotime at Put
	expires    int64 // clock.Nanotime after which it is stale
	initialAge time.Duration
	prev, next *node
}

// New returns an empty cache.
func New(cfg Config) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Cache{
		maxBytes:    cfg.MaxBytes,
		maxItems:    cfg.MaxItems,
		maxEntry:    cfg.MaxEntryBytes,
		maxVariants: cfg.MaxVariants,
		clock:       cfg.Clock,
	}
	if c.maxBytes == 0 {
		c.maxBytes = DefaultMaxBytes
	}
	if c.maxEntry == 0 {
		c.maxEntry = c.maxBytes / 4
	}
	if c.maxVariants == 0 {
		c.maxVariants = DefaultMaxVariants
	}
	if c.clock == nil {
		c.clock = clock.System()
	}
	c.reset()
	return c, nil
}

func (c *Cache) reset() {
	c.byURL = [2]map[string]*variants{{}, {}}
	c.lru.next, c.lru.prev = &c.lru, &c.lru
	c.bytes, c.items = 0, 0
}

func methodIndex(m []byte) int {
	switch string(m) {
	case "GET":
		return 0
	case "HEAD":
		return 1
	}
	return -1
}

// Get returns the fresh stored response for method and url whose Vary
// values match req (nil req reads every header as absent), and its current
// age (set the Age header to whole seconds of it). e is nil on a miss. A
// stale entry found on the way is dropped. No allocation; the arguments are
// not retained.
func (c *Cache) Get(method, url []byte, req RequestHeader) (e *Entry, age time.Duration) {
	if c == nil {
		return nil, 0
	}
	m := methodIndex(method)
	if m < 0 {
		return nil, 0
	}
	now := c.clock.Nanotime()
	c.mu.Lock()
	vs := c.byURL[m][string(url)]
	if vs != nil {
		for i := len(vs.nodes) - 1; i >= 0; i-- {
			n := vs.nodes[i]
			if !n.matches(req) {
				continue
			}
			if now >= n.expires {
				c.removeLocked(n)
				break
			}
			c.unlink(n)
			c.pushFront(n)
			c.stats.Hits++
			c.mu.Unlock()
			return n.entry, n.initialAge + time.Duration(now-n.storedAt)
		}
	}
	c.stats.Misses++
	c.mu.Unlock()
	return nil, 0
}

func (n *node) matches(req RequestHeader) bool {
	for i, name := range n.varyNames {
		var v []byte
		if req != nil {
			v = bytes.TrimSpace(req.Peek(zerocopy.String(name)))
		}
		if !bytes.Equal(v, n.varyValues[i]) {
			return false
		}
	}
	return true
}

// Put stores resp as the response to method url (with request headers req,
// nil meaning none) if the storage rules allow it, and reports whether it
// did. Everything kept is copied before the lock is taken.
func (c *Cache) Put(method, url []byte, req RequestHeader, resp Response) bool {
	if c == nil {
		return false
	}
	m := methodIndex(method)
	if m < 0 {
		return false
	}
	f, ok := evaluate(resp.Status, resp.Header, req, c.clock.Now())
	if !ok {
		return false
	}
	now := c.clock.Nanotime()
	n := &node{
		method:     m,
		varyNames:  f.varyNames,
		storedAt:   now,
		expires:    now + int64(f.lifetime-f.initialAge),
		initialAge: f.initialAge,
	}
	n.varyValues = make([][]byte, len(f.varyNames))
	size := int64(entryOverhead + len(url))
	for i, name := range f.varyNames {
		if req != nil {
			n.varyValues[i] = bytes.Clone(bytes.TrimSpace(req.Peek(string(name))))
		}
		size += int64(len(name) + len(n.varyValues[i]))
	}
	n.entry = copyEntry(resp)
	for _, h := range n.entry.Header {
		size += int64(len(h.Key) + len(h.Value) + 48)
	}
	size += int64(len(n.entry.Body))
	n.size = size
	if size > c.maxEntry || size > c.maxBytes {
		return false
	}
	key := string(url)

	c.mu.Lock()
	defer c.mu.Unlock()
	vs := c.byURL[m][key]
	if vs == nil {
		vs = &variants{url: key}
		c.byURL[m][key] = vs
	}
	for _, old := range vs.nodes {
		if sameVariant(old, n) {
			c.removeLocked(old)
			break
		}
	}
	if len(vs.nodes) >= c.maxVariants {
		c.removeLocked(vs.nodes[0])
	}
	if c.byURL[m][key] == nil { // removeLocked dropped the emptied set
		c.byURL[m][key] = vs
	}
	n.vs = vs
	vs.nodes = append(vs.nodes, n)
	c.pushFront(n)
	c.bytes += n.size
	c.items++
	c.stats.Stores++
	for c.bytes > c.maxBytes || (c.maxItems > 0 && c.items > c.maxItems) {
		c.removeLocked(c.lru.prev)
		c.stats.Evictions++
	}
	return true
}

func sameVariant(a, b *node) bool {
	if len(a.varyNames) != len(b.varyNames) {
		return false
	}
	for i := range a.varyNames {
		if !bytes.Equal(a.varyNames[i], b.varyNames[i]) || !bytes.Equal(a.varyValues[i], b.varyValues[i]) {
			return false
		}
	}
	return true
}

// copyEntry copies the storable headers and the body into one allocation.
func copyEntry(resp Response) *Entry {
	var drop [][]byte // names listed in Connection
	total := len(resp.Body)
	keep := 0
	for _, h := range resp.Header {
		if ascii.EqualFold(h.Key, "connection") {
			for name := range bytes.SplitSeq(h.Value, []byte(",")) {
				drop = append(drop, bytes.TrimSpace(name))
			}
		}
	}
	storable := func(k []byte) bool {
		// Hop-by-hop headers are never stored (RFC 9110 §7.6.1), nor is
		// Age (Get recomputes it).
		if hop.Is(k) || ascii.EqualFold(k, "age") {
			return false
		}
		for _, d := range drop {
			if bytes.EqualFold(k, d) {
				return false
			}
		}
		return true
	}
	for _, h := range resp.Header {
		if storable(h.Key) {
			total += len(h.Key) + len(h.Value)
			keep++
		}
	}
	arena := make([]byte, 0, total)
	e := &Entry{Status: resp.Status, Header: make([]Header, 0, keep)}
	for _, h := range resp.Header {
		if !storable(h.Key) {
			continue
		}
		k := len(arena)
		arena = append(arena, h.Key...)
		v := len(arena)
		arena = append(arena, h.Value...)
		e.Header = append(e.Header, Header{Key: arena[k:v:v], Value: arena[v:len(arena):len(arena)]})
	}
	b := len(arena)
	arena = append(arena, resp.Body...)
	e.Body = arena[b:len(arena):len(arena)]
	return e
}

// removeLocked drops n from the list, its variant set and the totals.
func (c *Cache) removeLocked(n *node) {
	c.unlink(n)
	vs := n.vs
	if i := slices.Index(vs.nodes, n); i >= 0 {
		vs.nodes = slices.Delete(vs.nodes, i, i+1)
	}
	if len(vs.nodes) == 0 && c.byURL[n.method][vs.url] == vs {
		delete(c.byURL[n.method], vs.url)
	}
	c.bytes -= n.size
	c.items--
}

func (c *Cache) pushFront(n *node) {
	n.prev, n.next = &c.lru, c.lru.next
	c.lru.next.prev = n
	c.lru.next = n
}

func (c *Cache) unlink(n *node) {
	if n.prev == nil {
		return
	}
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
}

// Stats returns the counters and current size.
func (c *Cache) Stats() Stats {
	if c == nil {
		return Stats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Items, s.Bytes = c.items, c.bytes
	return s
}

// Purge drops every entry.
func (c *Cache) Purge() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.reset()
	c.mu.Unlock()
}

// Close drops every entry so the memory goes back before the Cache itself
// becomes garbage. The cache stays usable. Idempotent.
func (c *Cache) Close() error {
	c.Purge()
	return nil
}
