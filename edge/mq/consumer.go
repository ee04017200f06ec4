package mq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// QueueConfig identifies one consuming connection of backend/amqp/consumer
// (krakend-amqp's consumerCfg).
type QueueConfig struct {
	URL           string
	Name          string
	Exchange      string
	RoutingKeys   string // the routing_key list, joined by "\n" (comparable)
	Durable       bool
	Delete        bool
	Exclusive     bool
	NoWait        bool
	PrefetchCount int64
	PrefetchSize  int64
	AutoAck       bool
	NoLocal       bool
	NackDiscard   bool
	Backoff       string
	MaxRetries    int64
}

// Consumers is the process's registry of consumer connections, reference
// counted like Producers. Safe for concurrent use.
type Consumers struct {
	log   zerolog.Logger
	conns pool[QueueConfig, *queue]
}

// NewConsumers returns an empty registry.
func NewConsumers(log zerolog.Logger) *Consumers {
	return &Consumers{log: log.With().Str("component", "amqp").Logger(), conns: newPool[QueueConfig, *queue]("amqp consumers")}
}

// queue is one consuming connection.
type queue struct {
	cfg QueueConfig
	log zerolog.Logger

	mu   sync.Mutex // guards the fields below
	c    *amqp.Connection
	msgs <-chan amqp.Delivery

	reconnecting atomic.Bool
	stop         chan struct{}
	stopOnce     sync.Once
	wg           sync.WaitGroup
}

// Consumer takes one message per call from its queue. It is a
// proxy.Transport.
type Consumer struct {
	q *queue
	// valid says whether the backend's decoder accepts a body: a message
	// it refuses is nacked (requeued unless nack_discard), as KrakenD does.
	valid func([]byte) bool
}

// Acquire returns a consumer on the shared connection for cfg, connecting
// it in the background when it is new. valid is the backend decoder's
// check (ValidJSON for encoding json, nil to accept every body).
func (cs *Consumers) Acquire(cfg QueueConfig, valid func([]byte) bool) (*Consumer, error) {
	q, err := cs.conns.acquire(cfg, func() *queue {
		q := &queue{cfg: cfg, log: cs.log.With().Str("queue", cfg.Name).Logger(), stop: make(chan struct{})}
		q.reconnect(startupRetries)
		return q
	})
	if err != nil {
		return nil, err
	}
	return &Consumer{q: q, valid: valid}, nil
}

// Release gives a consumer back; the connection closes with its last one.
func (cs *Consumers) Release(c *Consumer) {
	cs.conns.release(c.q.cfg)
}

// Close closes every connection. Idempotent.
func (cs *Consumers) Close() {
	cs.conns.closeAll()
}

// Connected reports whether the consumer's connection is up.
func (c *Consumer) Connected() bool { return c.q.deliveries() != nil }

func (q *queue) deliveries() <-chan amqp.Delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.c == nil || q.c.IsClosed() {
		return nil
	}
	return q.msgs
}

func (q *queue) reconnect(attempts int64) {
	if !q.reconnecting.CompareAndSwap(false, true) {
		return
	}
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		defer q.reconnecting.Store(false)
		wait := backoff(q.cfg.Backoff)
		for i := int64(0); attempts <= 0 || i < attempts; i++ {
			t := time.NewTimer(wait(int(min(i, 62))))
			select {
			case <-q.stop:
				t.Stop()
				return
			case <-t.C:
			}
			if err := q.dial(); err != nil {
				q.log.Debug().Err(err).Int64("attempt", i+1).Msg("amqp consumer connection attempt failed")
				continue
			}
			q.log.Info().Int64("attempt", i+1).Msg("amqp consumer connected")
			return
		}
	}()
}

func (q *queue) dial() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-q.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	d := &netDialer{ctx: ctx}
	ac, err := amqp.DialConfig(q.cfg.URL, amqp.Config{Locale: "en_US", Dial: d.dial})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	fail := func(what string, err error) error {
		ac.Close()
		return fmt.Errorf("%s: %w", what, err)
	}
	ch, err := ac.Channel()
	if err != nil {
		return fail("open channel", err)
	}
	cfg := q.cfg
	// krakend-amqp passes exclusive as the exchange's "internal" flag.
	if err := ch.ExchangeDeclare(cfg.Exchange, "topic", cfg.Durable, cfg.Delete, cfg.Exclusive, cfg.NoWait, nil); err != nil {
		return fail("declare exchange", err)
	}
	qu, err := ch.QueueDeclare(cfg.Name, cfg.Durable, cfg.Delete, cfg.Exclusive, cfg.NoWait, nil)
	if err != nil {
		return fail("declare queue", err)
	}
	for _, k := range splitKeys(cfg.RoutingKeys) {
		if err := ch.QueueBind(qu.Name, k, cfg.Exchange, false, nil); err != nil {
			return fail("bind queue", err)
		}
	}
	if cfg.PrefetchCount != 0 || cfg.PrefetchSize != 0 {
		if err := ch.Qos(int(cfg.PrefetchCount), int(cfg.PrefetchSize), false); err != nil {
			return fail("qos", err)
		}
	}
	// krakend-amqp consumes the configured name (the queue it declared when
	// named) with an empty consumer tag.
	msgs, err := ch.Consume(cfg.Name, "", cfg.AutoAck, cfg.Exclusive, cfg.NoLocal, cfg.NoWait, nil)
	if err != nil {
		return fail("consume", err)
	}
	q.mu.Lock()
	old := q.c
	q.c, q.msgs = ac, msgs
	q.mu.Unlock()
	if old != nil {
		old.Close()
	}
	select {
	case <-q.stop:
		ac.Close()
	default:
	}
	return nil
}

func (q *queue) close() {
	q.stopOnce.Do(func() { close(q.stop) })
	q.wg.Wait()
	q.mu.Lock()
	if q.c != nil {
		q.c.Close()
	}
	q.c, q.msgs = nil, nil
	q.mu.Unlock()
}

func splitKeys(joined string) []string {
	if joined == "" {
		return nil
	}
	var out []string
	for _, k := range bytes.Split([]byte(joined), []byte("\n")) {
		out = append(out, string(k))
	}
	return out
}

// ErrNoMessage fails a call whose deadline passed before a message came.
var ErrNoMessage = errors.New("no message before the deadline")

// Do waits for one message until deadline and answers it as the backend's
// response body (200). A message the backend's decoder refuses is nacked
// (requeued unless nack_discard) and fails the call; an accepted one is
// acknowledged (unless auto_ack), as krakend-amqp's consumer does.
func (c *Consumer) Do(_ *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) error {
	msgs := c.q.deliveries()
	if msgs == nil {
		c.q.reconnect(c.q.cfg.MaxRetries)
		return ErrNotConnected
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	var d amqp.Delivery
	select {
	case <-t.C:
		return ErrNoMessage
	case m, ok := <-msgs:
		if !ok {
			c.q.reconnect(c.q.cfg.MaxRetries)
			return ErrNotConnected
		}
		d = m
	}
	if c.valid != nil && !c.valid(d.Body) {
		if !c.q.cfg.AutoAck {
			_ = d.Nack(false, !c.q.cfg.NackDiscard)
		}
		return errors.New("message body refused by the backend encoding")
	}
	if !c.q.cfg.AutoAck {
		if err := d.Ack(false); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
	}
	resp.Reset()
	resp.SetStatusCode(fasthttp.StatusOK)
	resp.Header.SetContentType("application/json")
	resp.SetBody(d.Body)
	return nil
}

// ValidJSON is lura's JSON decoder check: a JSON object, or null (or an
// empty body, which lura reads as no data).
func ValidJSON(b []byte) bool {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return true
	}
	if !json.Valid(b) {
		return false
	}
	return b[0] == '{' || bytes.Equal(b, []byte("null"))
}
