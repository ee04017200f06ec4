package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/apigw/gateway/proto/feature"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// AsyncAgent is one entry of the service's `async_agent` list: a consumer
// of a queue that runs each message through its backends as an endpoint
// pipe does (KrakenD's lura async agents).
type AsyncAgent struct {
	Name        string
	Consumer    AsyncConsumer
	Connection  AsyncConnection
	Backend     []*Backend
	ExtraConfig AsyncAgentExtra

	// pipe is the endpoint KrakenD builds for the agent (lura async:
	// Endpoint = name, Timeout = consumer timeout, its backends and its
	// extra_config). Defaults, Validate and the compiler treat it as an
	// endpoint that is never routed.
	pipe *Endpoint
}

// AsyncConsumer is `async_agent[].consumer`.
type AsyncConsumer struct {
	Topic   string
	Workers int64
	// Timeout is nil when absent: the service timeout applies.
	Timeout *time.Duration
	MaxRate float64
}

// AsyncConnection is `async_agent[].connection`.
type AsyncConnection struct {
	// MaxRetries of 0 or less means retry forever, as in KrakenD.
	MaxRetries      int64
	BackoffStrategy string
	HealthInterval  time.Duration
}

// AsyncAgentExtra holds an agent's extra_config namespaces: its driver and
// the endpoint-level proxy namespace of its pipe.
type AsyncAgentExtra struct {
	AMQP  *AMQPConsumer
	Proxy *EndpointProxy
}

// AMQPConsumer is the agent's `async/amqp` namespace.
type AMQPConsumer struct {
	Host          string
	Name          string
	Exchange      string
	Durable       bool
	Delete        bool
	Exclusive     bool
	NoWait        bool
	PrefetchCount int64
	PrefetchSize  int64
	AutoAck       bool
	NoLocal       bool
	NackDiscard   bool
}

// Defaults and limits of async agents.
const (
	// MinHealthInterval is KrakenD's floor for connection.health_interval.
	MinHealthInterval = time.Second
	// MaxAgentWorkers bounds consumer.workers (one goroutine each).
	MaxAgentWorkers = 1024
)

// backoffStrategies are the connection.backoff_strategy values (any case,
// as lura's backoff.GetByName lower-cases them); "" and "fallback" wait 1s.
var backoffStrategies = []string{"fallback", "linear", "linear-jitter", "exponential", "exponential-jitter"}

var agentNamespaces = []namespace[AsyncAgentExtra]{
	{"async/amqp", func(d *decoder, n *node, p path, x *AsyncAgentExtra) { x.AMQP = d.amqpConsumer(n, p) }},
	{"proxy", func(d *decoder, n *node, p path, x *AsyncAgentExtra) { x.Proxy = d.endpointProxy(n, p) }},
}

func (d *decoder) asyncAgent(n *node, p path) *AsyncAgent {
	if !d.want(n, p, typeObject) {
		return nil
	}
	a := &AsyncAgent{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"name": d.str(&a.Name),
		"consumer": func(n *node, p path) {
			d.object(n, p, objectSpec{fields: map[string]handler{
				"topic":    d.str(&a.Consumer.Topic),
				"workers":  d.integer(&a.Consumer.Workers),
				"timeout":  d.optDuration(&a.Consumer.Timeout),
				"max_rate": d.number(&a.Consumer.MaxRate),
			}})
		},
		"connection": func(n *node, p path) {
			d.object(n, p, objectSpec{fields: map[string]handler{
				"max_retries":      d.integer(&a.Connection.MaxRetries),
				"backoff_strategy": d.str(&a.Connection.BackoffStrategy),
				"health_interval":  d.duration(&a.Connection.HealthInterval),
			}})
		},
		"encoding": d.noEffect(d.str(new(string)), "KrakenD reads an agent's encoding and never uses it: messages reach the backends as they are"),
		"backend": func(n *node, p path) {
			d.list(n, p, func(_ int, item *node, ip path) {
				a.Backend = append(a.Backend, d.backend(item, ip))
			})
		},
		"extra_config": func(n *node, p path) {
			decodeExtraConfig(d, n, p, agentNamespaces, &a.ExtraConfig)
		},
	}})
	return a
}

func (d *decoder) amqpConsumer(n *node, p path) *AMQPConsumer {
	c := &AMQPConsumer{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"host":           d.str(&c.Host),
		"name":           d.str(&c.Name),
		"exchange":       d.str(&c.Exchange),
		"durable":        d.boolean(&c.Durable),
		"delete":         d.boolean(&c.Delete),
		"exclusive":      d.boolean(&c.Exclusive),
		"no_wait":        d.boolean(&c.NoWait),
		"prefetch_count": d.integer(&c.PrefetchCount),
		"prefetch_size":  d.integer(&c.PrefetchSize),
		"auto_ack":       d.boolean(&c.AutoAck),
		"no_local":       d.boolean(&c.NoLocal),
		"nack_discard":   d.boolean(&c.NackDiscard),
	}})
	return c
}

// agentDefaults completes the agents as lura does (config.initAsyncAgents):
// a name by position, the service timeout, at least one worker, a health
// interval of at least a second, and backends defaulted as an endpoint's
// with method GET.
func agentDefaults(s *Service, inherited endpointInheritance) {
	for i, a := range s.AsyncAgents {
		if a == nil {
			continue
		}
		if a.Name == "" {
			a.Name = fmt.Sprintf("AsyncAgent-%02d", i)
		}
		if a.Consumer.Timeout == nil || *a.Consumer.Timeout == 0 {
			a.Consumer.Timeout = ptr(inherited.timeout)
		}
		if a.Consumer.Workers < 1 {
			a.Consumer.Workers = 1
		}
		if a.Connection.HealthInterval < MinHealthInterval {
			a.Connection.HealthInterval = MinHealthInterval
		}
		a.Connection.BackoffStrategy = strings.ToLower(a.Connection.BackoffStrategy)
		a.pipe = &Endpoint{
			Endpoint: a.Name,
			// lura gives agent backends GET when they name no method.
			Method:      DefaultMethod,
			Backend:     a.Backend,
			Timeout:     a.Consumer.Timeout,
			ExtraConfig: EndpointExtra{Proxy: a.ExtraConfig.Proxy},
		}
		endpointDefaults(a.pipe, s, inherited)
		// A message carries no headers to forward.
		a.pipe.InputHeaders = nil
	}
}

// agents validates the async agents.
func (v *validator) agents() {
	names := map[string]int{}
	for i, a := range v.s.AsyncAgents {
		if a == nil {
			continue
		}
		p := path("async_agent").index(i)
		if prev, dup := names[a.Name]; dup {
			v.vs.add(p.field("name"), KindDuplicate, "%q is also the name of async_agent[%d]; agents are told apart by name", a.Name, prev)
		} else {
			names[a.Name] = i
		}
		v.agent(p, a)
	}
}

func (v *validator) agent(p path, a *AsyncAgent) {
	cp := p.field("consumer")
	switch w := a.Consumer.Workers; {
	case w > MaxAgentWorkers:
		v.vs.add(cp.field("workers"), KindTooMany, "%d: at most %d workers per agent", w, MaxAgentWorkers)
	}
	if a.Consumer.Timeout != nil {
		v.positive(cp.field("timeout"), *a.Consumer.Timeout)
	}
	if a.Consumer.MaxRate < 0 {
		v.vs.add(cp.field("max_rate"), KindInvalid, "%g: must not be negative (0 means no limit)", a.Consumer.MaxRate)
	}
	np := p.field("connection")
	if bs := a.Connection.BackoffStrategy; bs != "" {
		v.oneOf(np.field("backoff_strategy"), bs, backoffStrategies)
	}
	v.nonNegative(np.field("health_interval"), a.Connection.HealthInterval)

	x := p.field("extra_config")
	if a.ExtraConfig.AMQP == nil {
		v.vs.add(x, KindRequired, "an agent needs a driver: extra_config %q (the only async driver of KrakenD CE)", "async/amqp")
	} else {
		v.amqpConsumer(x.key("async/amqp"), a.ExtraConfig.AMQP)
	}
	e := a.pipe
	if e == nil {
		return // Defaults did not run; Validate reports what it can.
	}
	if px := a.ExtraConfig.Proxy; px != nil {
		v.endpointProxy(x.key("proxy"), e, px)
	}
	bp := p.field("backend")
	answering := 0
	for _, b := range e.Backend {
		if b != nil && !b.shadow() {
			answering++
		}
	}
	switch {
	case len(e.Backend) == 0:
		v.vs.add(bp, KindRequired, "an agent needs at least one backend")
	case answering == 0:
		v.vs.add(bp, KindRequired, "every backend is a shadow backend; at least one must process the messages")
	}
	sequential := a.ExtraConfig.Proxy != nil && a.ExtraConfig.Proxy.Sequential
	// A message has no parameters: placeholders can only name earlier
	// sequential responses.
	r := route{ok: true}
	for j, b := range e.Backend {
		if b != nil {
			v.backend(bp.index(j), j, e, b, r, sequential)
		}
	}
}

func (v *validator) amqpConsumer(p path, c *AMQPConsumer) {
	switch uri, err := amqp.ParseURI(c.Host); {
	case c.Host == "":
		v.vs.add(p.field("host"), KindRequired, "the broker's URL is required (amqp://user:password@host:5672/vhost)")
	case err != nil:
		v.vs.add(p.field("host"), KindInvalid, "%q: %v", redactURL(c.Host), err)
	case uri.Host == "":
		v.vs.add(p.field("host"), KindInvalid, "%q: no host", redactURL(c.Host))
	}
	if c.Exchange == "" {
		v.vs.add(p.field("exchange"), KindRequired, "the agent declares a topic exchange and binds its queue to it: name the exchange (the default exchange cannot be declared)")
	}
	if c.PrefetchCount < 0 || c.PrefetchCount > 65535 {
		v.vs.add(p.field("prefetch_count"), KindInvalid, "%d: must be between 0 and 65535", c.PrefetchCount)
	}
	if c.PrefetchSize < 0 || c.PrefetchSize > 1<<31-1 {
		v.vs.add(p.field("prefetch_size"), KindInvalid, "%d: must be between 0 and %d", c.PrefetchSize, 1<<31-1)
	}
}

// redactURL hides the password of a URL in a violation.
func redactURL(raw string) string {
	at := strings.LastIndexByte(raw, '@')
	scheme := strings.Index(raw, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return raw
	}
	userinfo := raw[scheme+3 : at]
	if c := strings.IndexByte(userinfo, ':'); c >= 0 {
		return raw[:scheme+3] + userinfo[:c] + ":xxxxx" + raw[at:]
	}
	return raw
}

// compileAgents compiles the async agents.
func compileAgents(s *Service, features map[string]bool) []*gatewayv1.AsyncAgent {
	var out []*gatewayv1.AsyncAgent
	for _, a := range s.AsyncAgents {
		if a == nil || a.pipe == nil {
			continue
		}
		e := compileEndpoint(s, a.pipe, features)
		e.Name, e.Path, e.Method = a.Name, "", ""
		j := 0
		for i, b := range a.pipe.Backend {
			if b == nil {
				continue
			}
			e.Backends[j].Name = a.Name + " backend[" + strconv.Itoa(i) + "]"
			j++
		}
		ca := &gatewayv1.AsyncAgent{
			Name:     a.Name,
			Endpoint: e,
			Consumer: &gatewayv1.AsyncConsumer{
				Topic:     a.Consumer.Topic,
				Workers:   uint32(a.Consumer.Workers),
				TimeoutMs: ms(deref(a.Consumer.Timeout)),
				MaxRate:   a.Consumer.MaxRate,
			},
			Connection: &gatewayv1.AsyncConnection{
				MaxRetries:       max(a.Connection.MaxRetries, 0),
				BackoffStrategy:  a.Connection.BackoffStrategy,
				HealthIntervalMs: ms(a.Connection.HealthInterval),
			},
		}
		if c := a.ExtraConfig.AMQP; c != nil {
			ca.Amqp = &gatewayv1.AMQPConsumer{
				Host: c.Host, Name: c.Name, Exchange: c.Exchange,
				Durable: c.Durable, Delete: c.Delete, Exclusive: c.Exclusive, NoWait: c.NoWait,
				PrefetchCount: c.PrefetchCount, PrefetchSize: c.PrefetchSize,
				AutoAck: c.AutoAck, NoLocal: c.NoLocal, NackDiscard: c.NackDiscard,
			}
			features[feature.AsyncAMQP] = true
		}
		out = append(out, ca)
	}
	return out
}

// AMQPProducer is a backend's `backend/amqp/producer` namespace
// (krakend-amqp's producerCfg). The *Key settings name endpoint
// parameters the way lura names them: first letter upper-cased ("Routing"
// for {routing}).
type AMQPProducer struct {
	Exchange         string
	Durable          bool
	Delete           bool
	Exclusive        bool
	NoWait           bool
	Mandatory        bool
	Immediate        bool
	BackoffStrategy  string
	MaxRetries       int64
	RoutingKey       string
	StaticRoutingKey bool
	ExpirationKey    string
	ReplyToKey       string
	MessageIDKey     string
	PriorityKey      string
}

func (d *decoder) amqpProducer(n *node, p path) *AMQPProducer {
	c := &AMQPProducer{}
	unused := "the producer publishes to the exchange; it declares no queue"
	d.object(n, p, objectSpec{fields: map[string]handler{
		"exchange":           d.str(&c.Exchange),
		"durable":            d.boolean(&c.Durable),
		"delete":             d.boolean(&c.Delete),
		"exclusive":          d.boolean(&c.Exclusive),
		"no_wait":            d.boolean(&c.NoWait),
		"mandatory":          d.boolean(&c.Mandatory),
		"immediate":          d.boolean(&c.Immediate),
		"backoff_strategy":   d.str(&c.BackoffStrategy),
		"max_retries":        d.integer(&c.MaxRetries),
		"routing_key":        d.str(&c.RoutingKey),
		"static_routing_key": d.boolean(&c.StaticRoutingKey),
		"exp_key":            d.str(&c.ExpirationKey),
		"reply_to_key":       d.str(&c.ReplyToKey),
		"msg_id_key":         d.str(&c.MessageIDKey),
		"priority_key":       d.str(&c.PriorityKey),
		"name":               d.noEffect(d.str(new(string)), unused),
		"prefetch_count":     d.noEffect(d.integer(new(int64)), unused),
		"prefetch_size":      d.noEffect(d.integer(new(int64)), unused),
	}})
	return c
}

// luraParam returns the endpoint parameter a lura params key names: lura
// upper-cases the first letter of every parameter name.
func luraParam(r route, key string) string {
	if key == "" {
		return ""
	}
	for _, p := range r.params {
		if p != "" && strings.ToUpper(p[:1])+p[1:] == key {
			return p
		}
	}
	return ""
}

// amqpProducer validates a producer backend: its host is the broker's URL
// and its keys should name parameters of the endpoint.
func (v *validator) amqpProducer(p path, b *Backend, c *AMQPProducer, r route) {
	if len(b.Host) > 0 {
		hp := p.field("host").index(0)
		if b.hostInherited {
			hp = path("host").index(0)
		}
		if uri, err := amqp.ParseURI(b.Host[0]); err != nil || uri.Host == "" {
			v.vs.add(hp, KindInvalid, "%q: an AMQP producer publishes to host[0], which must be an amqp:// or amqps:// URL", redactURL(b.Host[0]))
		}
	}
	x := p.field("extra_config").key("backend/amqp/producer")
	if c.Exchange == "" {
		v.vs.add(x.field("exchange"), KindRequired, "the producer declares a topic exchange and publishes to it: name the exchange")
	}
	if bs := strings.ToLower(c.BackoffStrategy); bs != "" {
		v.oneOf(x.field("backoff_strategy"), bs, backoffStrategies)
	}
	if !r.ok {
		return
	}
	keys := []struct {
		name, value string
	}{{"exp_key", c.ExpirationKey}, {"reply_to_key", c.ReplyToKey}, {"msg_id_key", c.MessageIDKey}, {"priority_key", c.PriorityKey}}
	if !c.StaticRoutingKey {
		keys = append(keys, struct{ name, value string }{"routing_key", c.RoutingKey})
	}
	for _, k := range keys {
		if k.value != "" && luraParam(r, k.value) == "" {
			v.s.warnings.add(x.field(k.name), KindNoEffect,
				"%q names no parameter of the endpoint (KrakenD writes parameters with their first letter upper-cased, e.g. \"Id\" for {id}); messages get no value for it", k.value)
		}
	}
}

func compileAMQPProducer(c *AMQPProducer, r route) *gatewayv1.AMQPProducer {
	out := &gatewayv1.AMQPProducer{
		Exchange: c.Exchange, Durable: c.Durable, Delete: c.Delete, Exclusive: c.Exclusive, NoWait: c.NoWait,
		Mandatory: c.Mandatory, Immediate: c.Immediate,
		BackoffStrategy: strings.ToLower(c.BackoffStrategy), MaxRetries: max(c.MaxRetries, 0),
		StaticRoutingKey: c.StaticRoutingKey,
		ExpirationParam:  luraParam(r, c.ExpirationKey),
		ReplyToParam:     luraParam(r, c.ReplyToKey),
		MessageIdParam:   luraParam(r, c.MessageIDKey),
		PriorityParam:    luraParam(r, c.PriorityKey),
	}
	if c.StaticRoutingKey {
		out.RoutingKey = c.RoutingKey
	} else {
		out.RoutingParam = luraParam(r, c.RoutingKey)
	}
	return out
}

// AMQPConsumerBackend is a backend's `backend/amqp/consumer` namespace
// (krakend-amqp's consumerCfg).
type AMQPConsumerBackend struct {
	AMQPConsumer
	RoutingKey      []string
	BackoffStrategy string
	MaxRetries      int64
}

func (d *decoder) amqpConsumerBackend(n *node, p path) *AMQPConsumerBackend {
	c := &AMQPConsumerBackend{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"name":             d.str(&c.Name),
		"exchange":         d.str(&c.Exchange),
		"routing_key":      d.strings(&c.RoutingKey),
		"durable":          d.boolean(&c.Durable),
		"delete":           d.boolean(&c.Delete),
		"exclusive":        d.boolean(&c.Exclusive),
		"no_wait":          d.boolean(&c.NoWait),
		"prefetch_count":   d.integer(&c.PrefetchCount),
		"prefetch_size":    d.integer(&c.PrefetchSize),
		"auto_ack":         d.boolean(&c.AutoAck),
		"no_local":         d.boolean(&c.NoLocal),
		"nack_discard":     d.boolean(&c.NackDiscard),
		"backoff_strategy": d.str(&c.BackoffStrategy),
		"max_retries":      d.integer(&c.MaxRetries),
	}})
	return c
}

// amqpConsumerBackend validates a consumer backend.
func (v *validator) amqpConsumerBackend(p path, b *Backend, c *AMQPConsumerBackend) {
	if len(b.Host) > 0 {
		hp := p.field("host").index(0)
		if b.hostInherited {
			hp = path("host").index(0)
		}
		if uri, err := amqp.ParseURI(b.Host[0]); err != nil || uri.Host == "" {
			v.vs.add(hp, KindInvalid, "%q: an AMQP consumer reads from host[0], which must be an amqp:// or amqps:// URL", redactURL(b.Host[0]))
		}
	}
	x := p.field("extra_config").key("backend/amqp/consumer")
	if c.Exchange == "" {
		v.vs.add(x.field("exchange"), KindRequired, "the consumer declares a topic exchange and binds its queue to it: name the exchange")
	}
	if c.Name == "" {
		v.vs.add(x.field("name"), KindRequired, "the consumer reads the queue it declares by name: name the queue")
	}
	if bs := strings.ToLower(c.BackoffStrategy); bs != "" {
		v.oneOf(x.field("backoff_strategy"), bs, backoffStrategies)
	}
	if c.PrefetchCount < 0 || c.PrefetchCount > 65535 {
		v.vs.add(x.field("prefetch_count"), KindInvalid, "%d: must be between 0 and 65535", c.PrefetchCount)
	}
	if c.PrefetchSize < 0 || c.PrefetchSize > 1<<31-1 {
		v.vs.add(x.field("prefetch_size"), KindInvalid, "%d: must be between 0 and %d", c.PrefetchSize, 1<<31-1)
	}
}

func compileAMQPConsumerBackend(c *AMQPConsumerBackend, host string) *gatewayv1.AMQPConsumer {
	return &gatewayv1.AMQPConsumer{
		Host: host, Name: c.Name, Exchange: c.Exchange,
		Durable: c.Durable, Delete: c.Delete, Exclusive: c.Exclusive, NoWait: c.NoWait,
		PrefetchCount: c.PrefetchCount, PrefetchSize: c.PrefetchSize,
		AutoAck: c.AutoAck, NoLocal: c.NoLocal, NackDiscard: c.NackDiscard,
		RoutingKeys: c.RoutingKey, BackoffStrategy: strings.ToLower(c.BackoffStrategy), MaxRetries: max(c.MaxRetries, 0),
	}
}
