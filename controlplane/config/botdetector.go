package config

import (
	"regexp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// `security/bot-detector` (krakend-botdetector), service and endpoint level.

// maxBotCacheSize is the edge's ceiling for cache_size
// (edge/security.MaxBotCacheSize).
const maxBotCacheSize = 1 << 20

// BotDetector is the `security/bot-detector` namespace.
type BotDetector struct {
	Allow               []string
	Deny                []string
	Patterns            []string
	CacheSize           int64
	EmptyUserAgentIsBot bool
}

func (d *decoder) botDetector(n *node, p path) *BotDetector {
	b := &BotDetector{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"allow":                   d.strings(&b.Allow),
		"deny":                    d.strings(&b.Deny),
		"patterns":                d.strings(&b.Patterns),
		"cache_size":              d.integer(&b.CacheSize),
		"empty_user_agent_is_bot": d.boolean(&b.EmptyUserAgentIsBot),
	}})
	return b
}

// botDetector rejects what KrakenD only logs (and then serves without a
// detector): a bad pattern or a negative cache_size.
func (v *validator) botDetector(p path, b *BotDetector) {
	for i, pat := range b.Patterns {
		if _, err := regexp.Compile(pat); err != nil {
			v.vs.add(p.field("patterns").index(i), KindInvalid, "%q is not a valid regular expression: %v", pat, err)
		}
	}
	if b.CacheSize < 0 || b.CacheSize > maxBotCacheSize {
		v.vs.add(p.field("cache_size"), KindInvalid, "%d: want 0 (no cache) to %d", b.CacheSize, maxBotCacheSize)
	}
}

func compileBotDetector(b *BotDetector) *gatewayv1.BotDetector {
	return &gatewayv1.BotDetector{
		Allow:               b.Allow,
		Deny:                b.Deny,
		Patterns:            b.Patterns,
		CacheSize:           uint32(max(0, min(b.CacheSize, maxBotCacheSize))),
		EmptyUserAgentIsBot: b.EmptyUserAgentIsBot,
	}
}
