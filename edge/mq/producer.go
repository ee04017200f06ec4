// Package mq carries backend calls to message brokers: the AMQP producer
// of `backend/amqp/producer` (krakend-amqp's), as a proxy.Transport, so a
// producer backend goes through the same pipe stages (circuit breaker, rate
// limit, martian, metrics, traces) as an HTTP one.
//
// Broker connections outlive plans: Producers is a registry keyed by the
// connection settings and reference counted by the plans that use them, so
// a push that keeps a producer keeps its connection. A lost connection is
// re-established in the background after the producer's backoff strategy
// while calls fail fast, as KrakenD's do.
//
// mq imports edge/proxy; nothing of edge/plan, edge/server or the control
// plane.
package mq

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// Query arguments of the request a producer backend builds (plan writes
// them into the backend's url_pattern from the endpoint parameters the
// *_key settings name); the transport reads them back.
const (
	ArgRoutingKey = "r"
	ArgExpiration = "e"
	ArgMessageID  = "m"
	ArgPriority   = "p"
	ArgReplyTo    = "y"
)

// ConnConfig identifies one broker connection and the exchange it
// declares.
type ConnConfig struct {
	URL       string
	Exchange  string
	Durable   bool
	Delete    bool
	Exclusive bool
	NoWait    bool
	// Backoff and MaxRetries govern reconnections (0: forever).
	Backoff    string
	MaxRetries int64
}

// startupRetries is how many connection attempts a new producer makes
// (krakend-amqp's DefaultStartupRetries) before it waits for a call.
const startupRetries = 3

// ErrNotConnected fails a call while the producer has no connection.
var ErrNotConnected = errors.New("connection not available, trying to reconnect")

// conn is one shared broker connection with its channel.
type conn struct {
	cfg ConnConfig
	log zerolog.Logger

	mu sync.Mutex // guards the fields below
	c  *amqp.Connection
	ch *amqp.Channel

	reconnecting atomic.Bool
	ctx          context.Context
	cancel       context.CancelFunc
	wg           sync.WaitGroup
}

func (c *conn) channel() *amqp.Channel {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c == nil || c.c.IsClosed() || c.ch == nil || c.ch.IsClosed() {
		return nil
	}
	return c.ch
}

// Connected reports whether the connection is up.
func (c *conn) Connected() bool { return c.channel() != nil }

// reconnect starts a background (re)connection unless one runs.
func (c *conn) reconnect(attempts int64) {
	if !c.reconnecting.CompareAndSwap(false, true) {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer c.reconnecting.Store(false)
		wait := backoff(c.cfg.Backoff)
		for i := int64(0); attempts <= 0 || i < attempts; i++ {
			t := time.NewTimer(wait(int(min(i, 62))))
			select {
			case <-c.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			err := c.dial()
			if err == nil {
				c.log.Info().Int64("attempt", i+1).Msg("amqp producer connected")
				return
			}
			c.log.Debug().Err(err).Int64("attempt", i+1).Msg("amqp producer connection attempt failed")
		}
	}()
}

func (c *conn) dial() error {
	d := &netDialer{ctx: c.ctx}
	ac, err := amqp.DialConfig(c.cfg.URL, amqp.Config{Locale: "en_US", Dial: d.dial})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	ch, err := ac.Channel()
	if err != nil {
		ac.Close()
		return fmt.Errorf("open channel: %w", err)
	}
	// krakend-amqp passes exclusive as the exchange's "internal" flag.
	if err := ch.ExchangeDeclare(c.cfg.Exchange, "topic", c.cfg.Durable, c.cfg.Delete, c.cfg.Exclusive, c.cfg.NoWait, nil); err != nil {
		ac.Close()
		return fmt.Errorf("declare exchange %q: %w", c.cfg.Exchange, err)
	}
	c.mu.Lock()
	old := c.c
	c.c, c.ch = ac, ch
	c.mu.Unlock()
	if old != nil {
		old.Close()
	}
	if c.ctx.Err() != nil {
		ac.Close()
	}
	return nil
}

func (c *conn) close() {
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	if c.c != nil {
		c.c.Close()
	}
	c.c, c.ch = nil, nil
	c.mu.Unlock()
}

// Producers is the process's registry of producer connections. Safe for
// concurrent use; the zero value is not usable (NewProducers).
type Producers struct {
	log   zerolog.Logger
	conns pool[ConnConfig, *conn]
}

// NewProducers returns an empty registry.
func NewProducers(log zerolog.Logger) *Producers {
	return &Producers{log: log.With().Str("component", "amqp").Logger(), conns: newPool[ConnConfig, *conn]("amqp producers")}
}

// PublishConfig is what one producer backend adds to its connection.
type PublishConfig struct {
	Conn      ConnConfig
	Mandatory bool
	Immediate bool
	// StaticRoutingKey, when set, is the routing key of every message
	// (static_routing_key); otherwise the call's ArgRoutingKey is.
	StaticRoutingKey *string
}

// Producer publishes the calls of one backend. It is a proxy.Transport.
type Producer struct {
	cfg PublishConfig
	c   *conn
}

// Acquire returns a producer on the shared connection for cfg.Conn,
// connecting it in the background when it is new. Release it when the plan
// that uses it goes.
func (ps *Producers) Acquire(cfg PublishConfig) (*Producer, error) {
	c, err := ps.conns.acquire(cfg.Conn, func() *conn {
		ctx, cancel := context.WithCancel(context.Background())
		c := &conn{cfg: cfg.Conn, log: ps.log.With().Str("exchange", cfg.Conn.Exchange).Logger(), ctx: ctx, cancel: cancel}
		c.reconnect(startupRetries)
		return c
	})
	if err != nil {
		return nil, err
	}
	return &Producer{cfg: cfg, c: c}, nil
}

// Release gives back a producer; the connection closes with its last one.
func (ps *Producers) Release(p *Producer) {
	ps.conns.release(p.c.cfg)
}

// Close closes every connection. Idempotent.
func (ps *Producers) Close() {
	ps.conns.closeAll()
}

// Connected reports whether the producer's connection is up.
func (p *Producer) Connected() bool { return p.c.Connected() }

// skipped are the request headers that are HTTP framing, not message
// headers.
var skipped = map[string]bool{"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true, "Accept-Encoding": true}

// Do publishes req as krakend-amqp's producer does: the body, the headers
// the endpoint forwards (each a list of values), Content-Type, a
// timestamp, and the routing key, expiration, message id, reply-to and
// priority from the call's arguments. It answers 200 with a null body:
// KrakenD's producer returns a complete response without data.
func (p *Producer) Do(req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) error {
	ch := p.c.channel()
	if ch == nil {
		p.c.reconnect(p.c.cfg.MaxRetries)
		return ErrNotConnected
	}
	args := req.URI().QueryArgs()
	headers := amqp.Table{}
	var contentType string
	for k, v := range req.Header.All() {
		name := string(k)
		if skipped[name] {
			continue
		}
		if name == "Content-Type" && contentType == "" {
			contentType = string(v)
		}
		vs, _ := headers[name].([]any)
		headers[name] = append(vs, string(v))
	}
	body := req.Body()
	pub := amqp.Publishing{
		Headers:     headers,
		ContentType: contentType,
		Body:        append([]byte(nil), body...),
		Timestamp:   time.Now(),
		Expiration:  string(args.Peek(ArgExpiration)),
		ReplyTo:     string(args.Peek(ArgReplyTo)),
		MessageId:   string(args.Peek(ArgMessageID)),
	}
	if v := args.Peek(ArgPriority); len(v) > 0 {
		if n, err := strconv.Atoi(string(v)); err == nil {
			pub.Priority = uint8(n)
		}
	}
	key := string(args.Peek(ArgRoutingKey))
	if p.cfg.StaticRoutingKey != nil {
		key = *p.cfg.StaticRoutingKey
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := ch.PublishWithContext(ctx, p.cfg.Conn.Exchange, key, p.cfg.Mandatory, p.cfg.Immediate, pub); err != nil {
		if errors.Is(err, amqp.ErrClosed) {
			p.c.reconnect(p.c.cfg.MaxRetries)
		}
		return fmt.Errorf("publish: %w", err)
	}
	resp.Reset()
	resp.SetStatusCode(fasthttp.StatusOK)
	resp.Header.SetContentType("application/json")
	resp.SetBodyString("null")
	return nil
}

// backoff returns lura's wait before attempt i for a strategy.
func backoff(strategy string) func(i int) time.Duration {
	switch strings.ToLower(strategy) {
	case "linear":
		return func(i int) time.Duration { return time.Duration(i) * time.Second }
	case "linear-jitter":
		return func(i int) time.Duration { return jitter(i) }
	case "exponential":
		return func(i int) time.Duration { return time.Duration(1<<min(i, 32)) * time.Second }
	case "exponential-jitter":
		return func(i int) time.Duration { return jitter(1 << min(i, 32)) }
	}
	return func(int) time.Duration { return time.Second }
}

func jitter(i int) time.Duration {
	ms := i * 1000
	maxJitter := ms/3 + 1
	ms += rand.IntN(2*maxJitter) - maxJitter
	if ms <= 0 {
		ms = 1
	}
	return time.Duration(ms) * time.Millisecond
}
