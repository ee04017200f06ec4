package config

import (
	"net/url"
	pathpkg "path"
	"slices"
	"strconv"
	"strings"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// PubSub is a backend's `backend/pubsub/publisher` (Topic) or
// `backend/pubsub/subscriber` (Subscription) namespace: krakend-pubsub's
// topic_url and subscription_url, appended to host[0].
type PubSub struct {
	URL string
}

func (d *decoder) pubSub(key string) func(n *node, p path) *PubSub {
	return func(n *node, p path) *PubSub {
		c := &PubSub{}
		d.object(n, p, objectSpec{fields: map[string]handler{key: d.str(&c.URL)}})
		return c
	}
}

// pubSubSchemes are the gocloud schemes KrakenD CE registers; only nats and
// rabbit are served here.
var pubSubSchemes = []string{"nats", "rabbit"}

// pubSubUntestable are the other gocloud schemes of KrakenD CE (and the
// in-memory one), refused with their reason.
var pubSubUntestable = map[string]string{
	"awssns":    "Amazon SNS",
	"awssqs":    "Amazon SQS",
	"azuresb":   "Azure Service Bus",
	"gcppubsub": "Google Cloud Pub/Sub",
	"kafka":     "Kafka",
	"mem":       "the in-memory driver (KrakenD CE does not register it)",
}

// pubSubBackend validates a Pub/Sub backend: KrakenD opens host[0] +
// topic_url (or subscription_url) with gocloud's URL mux, so host[0] must
// be written unsanitised ("nats://") and the joined URL must be one the
// driver accepts.
func (v *validator) pubSubBackend(p path, b *Backend) {
	x := p.field("extra_config")
	ns, key, c, subscriber := "backend/pubsub/publisher", "topic_url", b.ExtraConfig.PubSubPublisher, false
	if b.ExtraConfig.PubSubSubscriber != nil {
		ns, key, c, subscriber = "backend/pubsub/subscriber", "subscription_url", b.ExtraConfig.PubSubSubscriber, true
		if b.ExtraConfig.PubSubPublisher != nil {
			v.vs.add(x, KindInvalid, "a backend is either a Pub/Sub subscriber or a publisher (KrakenD uses the subscriber)")
		}
	}
	if b.ExtraConfig.AMQPConsumer != nil || b.ExtraConfig.AMQPProducer != nil {
		v.vs.add(x, KindInvalid, "a backend is either an AMQP or a Pub/Sub backend (KrakenD uses the AMQP one)")
	}
	kp := x.key(ns).field(key)
	if len(b.Host) == 0 {
		return // reported as a missing host
	}
	hp := p.field("host").index(0)
	switch {
	case b.hostInherited:
		v.vs.add(p.field("host"), KindInvalid, "a Pub/Sub backend opens host[0] + %s, and KrakenD sanitises the service's hosts into http:// URLs, "+
			"which no Pub/Sub driver opens: set the scheme (\"nats://\" or \"rabbit://\") in this backend's host, with disable_host_sanitize: true", key)
		return
	case !b.DisableHostSanitize:
		v.vs.add(p.field("disable_host_sanitize"), KindRequired, "a Pub/Sub backend opens host[0] + %s (%q), and without disable_host_sanitize: true "+
			"KrakenD sanitises host[0] into an http:// URL, which no Pub/Sub driver opens: set disable_host_sanitize: true", key, b.Host[0])
		return
	}
	raw := b.Host[0] + c.URL
	u, err := url.Parse(raw)
	if err != nil {
		v.vs.add(kp, KindInvalid, "%q (host[0] + %s): not a URL: %v", raw, key, errText(err))
		return
	}
	if reason, ok := pubSubUntestable[u.Scheme]; ok {
		v.vs.add(hp, KindUnsupported, "%q: the %s Pub/Sub driver is not supported (no such broker to test against here); supported: %s",
			raw, reason, strings.Join(pubSubSchemes, ", "))
		return
	}
	if !slices.Contains(pubSubSchemes, u.Scheme) {
		v.vs.add(hp, KindInvalid, "%q: host[0] must name a Pub/Sub driver scheme (\"nats://\" or \"rabbit://\"; KrakenD CE also has awssns, awssqs, azuresb, gcppubsub, kafka)", b.Host[0])
		return
	}
	if pathpkg.Join(u.Host, u.Path) == "" {
		what := "subject"
		if u.Scheme == "rabbit" {
			what = "exchange"
			if subscriber {
				what = "queue"
			}
		}
		v.vs.add(kp, KindRequired, "%q names no %s: host[0] + %s must be %s://<%s>", raw, what, key, u.Scheme, what)
		return
	}
	if u.User != nil || u.Fragment != "" || u.Opaque != "" {
		v.vs.add(kp, KindInvalid, "%q: a Pub/Sub URL carries no user info or fragment", raw)
	}
	// The query parameters the drivers of KrakenD CE (gocloud v0.37) accept.
	for name, vals := range u.Query() {
		switch lower := strings.ToLower(name); {
		case u.Scheme == "nats" && lower == "natsv2":
			if len(vals) > 1 {
				v.vs.add(kp, KindInvalid, "%q: natsv2 is given more than once", raw)
			} else if vals[0] != "" {
				if _, err := strconv.ParseBool(vals[0]); err != nil {
					v.vs.add(kp, KindInvalid, "%q: natsv2=%q is not a boolean (or leave it without a value)", raw, vals[0])
				}
			}
		case u.Scheme == "nats" && subscriber && lower == "queue":
			if len(vals) != 1 || vals[0] == "" {
				v.vs.add(kp, KindInvalid, "%q: queue takes one queue group name", raw)
			}
		default:
			v.vs.add(kp, KindInvalid, "%q: the %s driver of KrakenD CE refuses the query parameter %q (accepted: %s)", raw, u.Scheme, name, pubSubParams(u.Scheme, subscriber))
		}
	}
}

func pubSubParams(scheme string, subscriber bool) string {
	switch {
	case scheme == "rabbit":
		return "none"
	case subscriber:
		return "natsv2, queue"
	}
	return "natsv2"
}

// errText is a url.Parse error without the URL it repeats.
func errText(err error) string {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err.Error()
	}
	return err.Error()
}

func compilePubSub(b *Backend) *gatewayv1.PubSub {
	if c := b.ExtraConfig.PubSubSubscriber; c != nil {
		return &gatewayv1.PubSub{Url: b.Host[0] + c.URL, Subscriber: true}
	}
	return &gatewayv1.PubSub{Url: b.Host[0] + b.ExtraConfig.PubSubPublisher.URL}
}
