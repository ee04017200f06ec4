package plan

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/apigw/gateway/edge/mq"
	"github.com/apigw/gateway/edge/proxy"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/proto/violation"
)

// producerCall compiles a backend/amqp/producer backend: a proxy.Backend
// whose one host is an mq.Producer. The endpoint parameters the producer's
// keys name travel to it as the call's query arguments (no client query
// string is forwarded to a producer).
func (b *builder) producerCall(path string, e *gatewayv1.Endpoint, be *gatewayv1.Backend, params []string) *proxy.Backend {
	pr := be.GetAmqpProducer()
	if len(be.GetHosts()) == 0 {
		b.violate(path+".host", violation.Required, "an AMQP producer needs the broker's URL as host[0]")
		return nil
	}
	if pr.GetExchange() == "" {
		b.violate(path+".amqp_producer.exchange", violation.Required, "an AMQP producer needs an exchange")
		return nil
	}
	if b.producers.reg == nil {
		if b.deps.Producers != nil {
			b.producers.reg = b.deps.Producers
		} else {
			b.producers.reg, b.producers.own = mq.NewProducers(b.deps.Logger), true
		}
	}
	cfg := mq.PublishConfig{
		Conn: mq.ConnConfig{
			URL: be.GetHosts()[0], Exchange: pr.GetExchange(),
			Durable: pr.GetDurable(), Delete: pr.GetDelete(), Exclusive: pr.GetExclusive(), NoWait: pr.GetNoWait(),
			Backoff: pr.GetBackoffStrategy(), MaxRetries: pr.GetMaxRetries(),
		},
		Mandatory: pr.GetMandatory(),
		Immediate: pr.GetImmediate(),
	}
	if pr.GetStaticRoutingKey() {
		key := pr.GetRoutingKey()
		cfg.StaticRoutingKey = &key
	}
	prod, err := b.producers.reg.Acquire(cfg)
	if err != nil {
		b.violate(path+".host", violation.Invalid, err.Error())
		return nil
	}
	b.producers.refs = append(b.producers.refs, prod)

	var args []string
	for _, a := range []struct{ arg, param string }{
		{mq.ArgRoutingKey, pr.GetRoutingParam()},
		{mq.ArgExpiration, pr.GetExpirationParam()},
		{mq.ArgMessageID, pr.GetMessageIdParam()},
		{mq.ArgPriority, pr.GetPriorityParam()},
		{mq.ArgReplyTo, pr.GetReplyToParam()},
	} {
		if a.param == "" {
			continue
		}
		if !slices.Contains(params, a.param) {
			b.violate(path+".amqp_producer", violation.NotFound, "parameter {"+a.param+"} is not a parameter of the endpoint")
			return nil
		}
		args = append(args, a.arg+"={"+a.param+"}")
	}
	pattern := "/"
	if len(args) > 0 {
		pattern += "?" + strings.Join(args, "&")
	}
	return b.messagingCall(path, e, be, params, "amqp", prod, pattern, true)
}

// mqRefs is what a build took from one broker registry (AMQP producers or
// consumers): the references, given back on release, and whether the build
// created the registry itself (Deps had none), closed after them.
type mqRefs[R interface {
	Release(C)
	Close()
}, C any] struct {
	reg  R // nil until the first AMQP backend; set whenever refs or own are
	refs []C
	own  bool
}

// release gives every reference back and closes a registry the build owned.
func (r *mqRefs[R, C]) release() {
	for _, c := range r.refs {
		r.reg.Release(c)
	}
	if r.own {
		r.reg.Close()
	}
}

// consumerCall compiles a backend/amqp/consumer backend: each call takes
// one message from the queue as the backend's answer.
func (b *builder) consumerCall(path string, e *gatewayv1.Endpoint, be *gatewayv1.Backend, params []string) *proxy.Backend {
	c := be.GetAmqpConsumer()
	if c.GetHost() == "" || c.GetExchange() == "" || c.GetName() == "" {
		b.violate(path+".amqp_consumer", violation.Required, "an AMQP consumer needs the broker's URL, an exchange and a queue name")
		return nil
	}
	if b.consumers.reg == nil {
		if b.deps.Consumers != nil {
			b.consumers.reg = b.deps.Consumers
		} else {
			b.consumers.reg, b.consumers.own = mq.NewConsumers(b.deps.Logger), true
		}
	}
	cfg := mq.QueueConfig{
		URL: c.GetHost(), Name: c.GetName(), Exchange: c.GetExchange(), RoutingKeys: strings.Join(c.GetRoutingKeys(), "\n"),
		Durable: c.GetDurable(), Delete: c.GetDelete(), Exclusive: c.GetExclusive(), NoWait: c.GetNoWait(),
		PrefetchCount: c.GetPrefetchCount(), PrefetchSize: c.GetPrefetchSize(),
		AutoAck: c.GetAutoAck(), NoLocal: c.GetNoLocal(), NackDiscard: c.GetNackDiscard(),
		Backoff: c.GetBackoffStrategy(), MaxRetries: c.GetMaxRetries(),
	}
	cons, err := b.consumers.reg.Acquire(cfg, decoderCheck(be))
	if err != nil {
		b.violate(path+".host", violation.Invalid, err.Error())
		return nil
	}
	b.consumers.refs = append(b.consumers.refs, cons)
	return b.messagingCall(path, e, be, params, "amqp", cons, "/", false)
}

// decoderCheck is what the backend's decoder accepts, checked before a
// consumed message is acknowledged (KrakenD nacks what it cannot decode).
func decoderCheck(be *gatewayv1.Backend) func([]byte) bool {
	switch be.GetEncoding() {
	case "", "json":
		if be.GetIsCollection() {
			return func(b []byte) bool {
				b = bytes.TrimSpace(b)
				return len(b) == 0 || (json.Valid(b) && (b[0] == '[' || string(b) == "null"))
			}
		}
		return mq.ValidJSON
	case "safejson":
		return func(b []byte) bool { b = bytes.TrimSpace(b); return len(b) == 0 || json.Valid(b) }
	}
	return nil
}

// pubSubCall compiles a backend/pubsub/publisher or /subscriber backend:
// each call publishes its request to the topic, or takes one message of the
// subscription as the backend's response.
func (b *builder) pubSubCall(path string, e *gatewayv1.Endpoint, be *gatewayv1.Backend, params []string) *proxy.Backend {
	ps := be.GetPubsub()
	if b.pubsubs.reg == nil {
		if b.deps.PubSub != nil {
			b.pubsubs.reg = b.deps.PubSub
		} else {
			b.pubsubs.reg, b.pubsubs.own = mq.NewPubSub(b.deps.Logger, mq.PubSubServersFromEnv()), true
		}
	}
	var valid func([]byte) bool
	if ps.GetSubscriber() {
		valid = decoderCheck(be)
	}
	client, err := b.pubsubs.reg.Acquire(ps.GetUrl(), ps.GetSubscriber(), valid)
	if err != nil {
		b.violate(path+".pubsub.url", violation.Invalid, err.Error())
		return nil
	}
	b.pubsubs.refs = append(b.pubsubs.refs, client)
	// A published message carries the headers the endpoint forwards and,
	// with backend/graphql, the GraphQL request (KrakenD's middleware wraps
	// the publisher).
	return b.messagingCall(path, e, be, params, "pubsub", client, "/", !ps.GetSubscriber())
}

// messagingCall compiles the proxy stage of a broker backend (AMQP producer
// or consumer, Pub/Sub publisher or subscriber): its QoS and CEL around t,
// the broker, as its only host. A publishing backend (publishes) sends the
// forwarded headers and, with backend/graphql, the GraphQL request as
// KrakenD's middleware makes it. No martian modifier and no http-cache: in
// KrakenD both wrap the HTTP client, which these backends never call (the
// control plane warns).
func (b *builder) messagingCall(path string, e *gatewayv1.Endpoint, be *gatewayv1.Backend, params []string,
	scheme string, t proxy.Transport, pattern string, publishes bool) *proxy.Backend {
	method := be.GetMethod()
	if method == "" {
		method = e.GetMethod()
	}
	guard, ok := b.backendQoS(path, e, be)
	if !ok {
		return nil
	}
	checks, ok := b.backendCEL(path, be)
	if !ok {
		return nil
	}
	cfg := proxy.BackendConfig{
		Name:       be.GetName(),
		Client:     proxy.NewTransportClient(be.GetName(), scheme, t),
		Method:     method,
		URLPattern: pattern,
		ParamNames: params,
		CatchAll:   e.GetCatchAll(),
		UserAgent:  b.userAgent(),
		Breaker:    guard.breaker,
		Limiter:    guard.limiter,
		CEL:        checks,
		CELParams:  celParamNames(params),
		Trace:      b.backendTrace(e, be),
		Stats:      b.backendStats(be),
	}
	if publishes {
		cfg.EndpointHeaders, cfg.BackendHeaders = e.GetInputHeaders(), be.GetInputHeaders()
		cfg.GraphQL = graphQLConfig(be.GetGraphql(), e)
	}
	call, err := proxy.NewBackend(cfg)
	if err != nil {
		b.violate(path, violation.Invalid, err.Error())
		return nil
	}
	return call
}
