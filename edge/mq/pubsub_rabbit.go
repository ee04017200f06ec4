package mq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"
)

// rabbitConn is the RABBIT_SERVER_URL connection of the rabbit:// Pub/Sub
// backends (gocloud's rabbitpubsub): dialled in the background, and again
// whenever it closes. Topics and subscriptions open their channels on it.
type rabbitConn struct {
	log    zerolog.Logger
	server string
	ctx    context.Context

	mu   sync.Mutex // guards the fields below
	c    *amqp.Connection
	err  error
	gen  uint64 // incremented with every new connection
	subs map[*rabbitSub]struct{}

	dialing atomic.Bool
	wg      sync.WaitGroup
}

func (ps *PubSub) rabbitConn() *rabbitConn {
	ps.rabbitMu.Lock()
	defer ps.rabbitMu.Unlock()
	if ps.rabbit == nil {
		ps.rabbit = &rabbitConn{log: ps.log, server: ps.servers.Rabbit, ctx: ps.ctx, subs: map[*rabbitSub]struct{}{}}
		if ps.servers.Rabbit == "" {
			ps.rabbit.err = ErrNoServer("RABBIT_SERVER_URL")
		} else {
			ps.rabbit.redial()
		}
	}
	return ps.rabbit
}

// redial connects in the background unless a dial runs already, retrying
// every redialWait until it succeeds or the registry closes.
func (rc *rabbitConn) redial() {
	if !rc.dialing.CompareAndSwap(false, true) {
		return
	}
	rc.wg.Add(1)
	go func() {
		defer rc.wg.Done()
		defer rc.dialing.Store(false)
		for first := true; ; first = false {
			if !first {
				t := time.NewTimer(redialWait)
				select {
				case <-rc.ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			d := &netDialer{ctx: rc.ctx}
			c, err := amqp.DialConfig(rc.server, amqp.Config{Locale: "en_US", Dial: d.dial})
			if rc.ctx.Err() != nil {
				if c != nil {
					c.Close()
				}
				return
			}
			rc.mu.Lock()
			if err != nil {
				rc.err = fmt.Errorf("failed to dial RABBIT_SERVER_URL %q: %w", redact(rc.server), err)
				rc.mu.Unlock()
				rc.log.Debug().Err(err).Msg("rabbit connection attempt failed")
				continue
			}
			rc.c, rc.err = c, nil
			rc.gen++
			subs := make([]*rabbitSub, 0, len(rc.subs))
			for s := range rc.subs {
				subs = append(subs, s)
			}
			rc.mu.Unlock()
			rc.log.Info().Str("server", redact(rc.server)).Msg("rabbit connected")
			closed := c.NotifyClose(make(chan *amqp.Error, 1))
			rc.wg.Add(1)
			go func() {
				defer rc.wg.Done()
				select {
				case err := <-closed:
					if err != nil {
						rc.log.Warn().Err(err).Msg("rabbit connection lost; reconnecting")
					}
					rc.redial()
				case <-rc.ctx.Done():
				}
			}()
			for _, s := range subs {
				_ = s.ensure()
			}
			return
		}
	}()
}

// conn returns the open connection and its generation, or why there is
// none.
func (rc *rabbitConn) conn() (*amqp.Connection, uint64, error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.c == nil || rc.c.IsClosed() {
		if rc.err != nil {
			return nil, 0, rc.err
		}
		return nil, 0, ErrNotConnected
	}
	return rc.c, rc.gen, nil
}

func (rc *rabbitConn) close() {
	// The registry's context is cancelled: the dialler stops.
	rc.wg.Wait()
	rc.mu.Lock()
	c := rc.c
	rc.c = nil
	rc.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// rabbitTopic publishes to an exchange as rabbitpubsub does: on a channel in
// confirm mode, routing key "", mandatory, the metadata as string headers,
// waiting for the broker's confirmation; an unroutable message (returned)
// or a missing exchange fails the call. One publish at a time, as
// rabbitpubsub's SendBatch.
type rabbitTopic struct {
	rc       *rabbitConn
	exchange string

	mu     sync.Mutex // serialises send; guards the fields below
	ch     *amqp.Channel
	gen    uint64
	confs  chan amqp.Confirmation
	rets   chan amqp.Return
	closed chan *amqp.Error
}

func (rc *rabbitConn) topic(exchange string) *rabbitTopic {
	return &rabbitTopic{rc: rc, exchange: exchange}
}

// channel returns an open confirm-mode channel, opening one when needed.
// Called with t.mu held.
func (t *rabbitTopic) channel() error {
	c, gen, err := t.rc.conn()
	if err != nil {
		return err
	}
	if t.ch != nil && t.gen == gen && !t.ch.IsClosed() {
		return nil
	}
	t.dropChannel()
	ch, err := c.Channel()
	if err != nil {
		return err
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return err
	}
	t.ch, t.gen = ch, gen
	t.confs = ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	t.rets = ch.NotifyReturn(make(chan amqp.Return, 1))
	t.closed = ch.NotifyClose(make(chan *amqp.Error, 1))
	return nil
}

func (t *rabbitTopic) dropChannel() {
	if t.ch != nil {
		t.ch.Close()
	}
	t.ch = nil
}

func (t *rabbitTopic) send(deadline time.Time, md map[string]string, body []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.channel(); err != nil {
		return err
	}
	h := amqp.Table{}
	for k, v := range md {
		h[k] = v
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := t.ch.PublishWithContext(ctx, t.exchange, "", true, false, amqp.Publishing{Headers: h, Body: body}); err != nil {
		t.dropChannel()
		return fmt.Errorf("publish: %w", err)
	}
	var returned error
	for {
		select {
		case <-ctx.Done():
			t.dropChannel() // a confirmation may still come: start over
			return ctx.Err()
		case r, ok := <-t.rets:
			if !ok {
				t.rets = nil
				continue
			}
			returned = fmt.Errorf("message returned from %s: %s (code %d)", r.Exchange, r.ReplyText, r.ReplyCode)
		case conf, ok := <-t.confs:
			if !ok {
				var err error = errors.New("channel closed")
				select {
				case e := <-t.closed:
					if e != nil {
						err = e
					}
				case <-time.After(100 * time.Millisecond):
				}
				t.ch = nil
				return fmt.Errorf("publish to %q: %w", t.exchange, err)
			}
			// amqp091 hands a basic.return over before the confirm that
			// follows it, but select may pick the confirm first: look once.
			if returned == nil && t.rets != nil {
				select {
				case r, ok := <-t.rets:
					if ok {
						returned = fmt.Errorf("message returned from %s: %s (code %d)", r.Exchange, r.ReplyText, r.ReplyCode)
					} else {
						t.rets = nil
					}
				default:
				}
			}
			switch {
			case !conf.Ack:
				return errors.New("the broker refused the message (nack)")
			case returned != nil:
				return returned
			}
			return nil
		}
	}
}

func (t *rabbitTopic) close() {
	t.mu.Lock()
	t.dropChannel()
	t.mu.Unlock()
}

// rabbitSub consumes a queue as rabbitpubsub does (consumer tag cN, manual
// acknowledgement, no prefetch limit). The queue is not declared: it must
// exist, as with KrakenD.
type rabbitSub struct {
	rc    *rabbitConn
	queue string

	mu   sync.Mutex // guards the fields below
	ch   *amqp.Channel
	gen  uint64
	msgs <-chan amqp.Delivery
	done bool
}

var rabbitConsumers atomic.Int64

func (rc *rabbitConn) subscribe(queue string) *rabbitSub {
	s := &rabbitSub{rc: rc, queue: queue}
	rc.mu.Lock()
	rc.subs[s] = struct{}{}
	rc.mu.Unlock()
	_ = s.ensure()
	return s
}

// ensure opens the consuming channel when there is none on the current
// connection.
func (s *rabbitSub) ensure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return errors.New("subscription closed")
	}
	c, gen, err := s.rc.conn()
	if err != nil {
		return err
	}
	if s.ch != nil && s.gen == gen && !s.ch.IsClosed() {
		return nil
	}
	if s.ch != nil {
		s.ch.Close()
		s.ch = nil
	}
	ch, err := c.Channel()
	if err != nil {
		return err
	}
	msgs, err := ch.Consume(s.queue, fmt.Sprintf("c%d", rabbitConsumers.Add(1)), false, false, false, false, nil)
	if err != nil {
		ch.Close()
		return fmt.Errorf("consume %q: %w", s.queue, err)
	}
	s.ch, s.gen, s.msgs = ch, gen, msgs
	return nil
}

func (s *rabbitSub) receive(deadline time.Time) ([]byte, func(), error) {
	if err := s.ensure(); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	msgs := s.msgs
	s.mu.Unlock()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-t.C:
		return nil, nil, ErrNoMessage
	case d, ok := <-msgs:
		if !ok {
			return nil, nil, ErrNotConnected
		}
		return d.Body, func() { _ = d.Ack(false) }, nil
	}
}

func (s *rabbitSub) close() {
	s.rc.mu.Lock()
	delete(s.rc.subs, s)
	s.rc.mu.Unlock()
	s.mu.Lock()
	s.done = true
	if s.ch != nil {
		s.ch.Close() // the broker requeues what it had delivered unacknowledged
	}
	s.ch, s.msgs = nil, nil
	s.mu.Unlock()
}
