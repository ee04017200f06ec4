package security

import (
	"fmt"
	"regexp"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/internal/lru"
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

// verdictCache is a fixed-size LRU of verdicts, safe for concurrent use.
type verdictCache struct {
	mu sync.Mutex
	t  lru.Table[bool] // guarded by mu
}

func newVerdictCache(size int) *verdictCache {
	return &verdictCache{t: lru.New[bool](size)}
}

func (c *verdictCache) get(key []byte) (bot, ok bool) {
	c.mu.Lock()
	v, ok := c.t.Get(key)
	if ok {
		bot = *v
	}
	c.mu.Unlock()
	return bot, ok
}

// add stores key's verdict (a concurrent miss may have added it already).
func (c *verdictCache) add(key []byte, bot bool) {
	c.mu.Lock()
	v, _ := c.t.Put(key)
	*v = bot
	c.mu.Unlock()
}

// len returns the number of cached verdicts (tests).
func (c *verdictCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t.Len()
}
