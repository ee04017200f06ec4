package security

import (
	"fmt"
	"regexp"
	"sync"

	"github.com/valyala/fasthttp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// MaxBotCacheSize bounds security/bot-detector's cache_size: an edge never
// allocates what a snapshot says without a ceiling.
const MaxBotCacheSize = 1 << 20

// BotDetector is `security/bot-detector` (krakend-botdetector), compiled
// once per plan. A request is a bot when its User-Agent is empty (with
// empty_user_agent_is_bot), or is not in allow and is in deny or matches a
// pattern. With cache_size, verdicts are kept in an LRU keyed by the
// User-Agent, so a repeated agent costs one map lookup and no allocation.
// A nil *BotDetector lets everything through.
type BotDetector struct {
	allow       map[string]struct{}
	deny        map[string]struct{}
	patterns    []*regexp.Regexp
	rejectEmpty bool
	cache       *verdictCache // nil: cache_size 0
}

// NewBotDetector compiles c; nil for a nil c.
func NewBotDetector(c *gatewayv1.BotDetector) (*BotDetector, error) {
	if c == nil {
		return nil, nil
	}
	if c.GetCacheSize() > MaxBotCacheSize {
		return nil, fmt.Errorf("cache_size %d is above this edge's limit of %d", c.GetCacheSize(), MaxBotCacheSize)
	}
	d := &BotDetector{
		allow:       make(map[string]struct{}, len(c.GetAllow())),
		deny:        make(map[string]struct{}, len(c.GetDeny())),
		patterns:    make([]*regexp.Regexp, len(c.GetPatterns())),
		rejectEmpty: c.GetEmptyUserAgentIsBot(),
	}
	for _, a := range c.GetAllow() {
		d.allow[a] = struct{}{}
	}
	for _, a := range c.GetDeny() {
		d.deny[a] = struct{}{}
	}
	for i, p := range c.GetPatterns() {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("patterns[%d]: %v", i, err)
		}
		d.patterns[i] = re
	}
	if n := int(c.GetCacheSize()); n > 0 {
		d.cache = newVerdictCache(n)
	}
	return d, nil
}

// Handle answers a bot with KrakenD's empty 403 (no Content-Type, no
// body) and reports whether it did.
func (d *BotDetector) Handle(ctx *fasthttp.RequestCtx) (done bool) {
	if d == nil || !d.IsBot(ctx.Request.Header.UserAgent()) {
		return false
	}
	ctx.Response.Header.SetNoDefaultContentType(true)
	ctx.Response.ResetBody()
	ctx.SetStatusCode(fasthttp.StatusForbidden)
	return true
}

// IsBot returns the verdict for one User-Agent value.
func (d *BotDetector) IsBot(ua []byte) bool {
	if d == nil {
		return false
	}
	if d.cache == nil {
		return d.decide(ua)
	}
	if bot, ok := d.cache.get(ua); ok {
		return bot
	}
	bot := d.decide(ua)
	d.cache.add(ua, bot)
	return bot
}

// decide is krakend-botdetector's order: empty, allow, deny, patterns.
func (d *BotDetector) decide(ua []byte) bool {
	if len(ua) == 0 {
		return d.rejectEmpty
	}
	if _, ok := d.allow[string(ua)]; ok {
		return false
	}
	if _, ok := d.deny[string(ua)]; ok {
		return true
	}
	for _, re := range d.patterns {
		if re.Match(ua) {
			return true
		}
	}
	return false
}

// verdictCache is a fixed-size LRU of verdicts. Its entries live in one
// slice linked by index, so a hit allocates nothing and, once the cache is
// full, a miss allocates only the key (evicting reuses the oldest entry).
type verdictCache struct {
	mu      sync.Mutex
	size    int
	index   map[string]int32 // key -> position in entries
	entries []verdictEntry
	head    int32 // most recently used; -1 when empty
	tail    int32 // least recently used
}

type verdictEntry struct {
	key        string
	bot        bool
	prev, next int32 // -1: none
}

func newVerdictCache(size int) *verdictCache {
	return &verdictCache{
		size:  size,
		index: make(map[string]int32),
		head:  -1,
		tail:  -1,
	}
}

func (c *verdictCache) get(key []byte) (bot, ok bool) {
	c.mu.Lock()
	i, ok := c.index[string(key)]
	if ok {
		c.moveToFront(i)
		bot = c.entries[i].bot
	}
	c.mu.Unlock()
	return bot, ok
}

func (c *verdictCache) add(key []byte, bot bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.index[string(key)]; ok { // a concurrent miss added it
		c.entries[i].bot = bot
		c.moveToFront(i)
		return
	}
	var i int32
	if len(c.entries) < c.size {
		i = int32(len(c.entries))
		c.entries = append(c.entries, verdictEntry{prev: -1, next: -1})
	} else {
		i = c.tail // evict the least recently used
		c.unlink(i)
		delete(c.index, c.entries[i].key)
	}
	e := &c.entries[i]
	e.key, e.bot = string(key), bot
	c.index[e.key] = i
	c.pushFront(i)
}

func (c *verdictCache) moveToFront(i int32) {
	if c.head == i {
		return
	}
	c.unlink(i)
	c.pushFront(i)
}

func (c *verdictCache) unlink(i int32) {
	e := &c.entries[i]
	if e.prev >= 0 {
		c.entries[e.prev].next = e.next
	} else {
		c.head = e.next
	}
	if e.next >= 0 {
		c.entries[e.next].prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

func (c *verdictCache) pushFront(i int32) {
	e := &c.entries[i]
	e.prev, e.next = -1, c.head
	if c.head >= 0 {
		c.entries[c.head].prev = i
	}
	c.head = i
	if c.tail < 0 {
		c.tail = i
	}
}

// len returns the number of cached verdicts (tests).
func (c *verdictCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.index)
}
