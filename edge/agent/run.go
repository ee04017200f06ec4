package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/apigw/gateway/edge/plan"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// consumerTag is the tag krakend-amqp consumes with.
const consumerTag = "krakend"

// dialTimeout bounds one TCP connect to the broker (amqp091's default).
const dialTimeout = 30 * time.Second

// run is one running agent: its goroutine, its connection settings and
// the pipe of the newest plan that declares it.
type run struct {
	name string
	key  string
	spec *gatewayv1.AsyncAgent
	pipe atomic.Pointer[plan.Agent]
	log  zerolog.Logger
	m    *agentMetrics
	ctx  context.Context
	// cancel stops the agent; done closes when its goroutine returned.
	cancel context.CancelFunc
	done   chan struct{}

	mu sync.Mutex // guards the fields below
	st Status
}

func newRun(a *plan.Agent, log zerolog.Logger, m *metrics) *run {
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{
		name:   a.Name(),
		key:    identity(a.Spec()),
		spec:   a.Spec(),
		log:    log.With().Str("agent", a.Name()).Logger(),
		m:      m.agent(a.Name()),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	r.pipe.Store(a)
	r.st = Status{Name: a.Name(), State: StateConnecting, Since: time.Now()}
	return r
}

func (r *run) start() { go r.loop() }

func (r *run) status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

func (r *run) setState(s State) {
	r.mu.Lock()
	if r.st.State != s {
		r.st.State, r.st.Since = s, time.Now()
	}
	r.mu.Unlock()
	r.m.connected(s == StateConnected)
}

func (r *run) ping() {
	r.mu.Lock()
	r.st.LastPing = time.Now()
	r.mu.Unlock()
}

// loop is krakend-amqp's StartAgent: wait the backoff of attempt i, run a
// session, and retry while the connection's max_retries allow; a session
// longer than minSession starts the count over.
func (r *run) loop() {
	defer close(r.done)
	defer r.setState(StateStopped)
	conn := r.spec.GetConnection()
	wait := backoff(conn.GetBackoffStrategy())
	maxRetries := conn.GetMaxRetries()
	r.log.Info().Msg("async agent starting")
	for i := 0; maxRetries <= 0 || int64(i) <= maxRetries; i++ {
		r.setState(StateConnecting)
		t := time.NewTimer(wait(i))
		select {
		case <-r.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		began := time.Now()
		err := r.session()
		if r.ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		r.st.Retries++
		if err != nil {
			r.st.LastError = err.Error()
		}
		r.mu.Unlock()
		r.m.reconnects.Inc()
		r.log.Error().Err(err).Int("attempt", i).Msg("async agent session ended; reconnecting after the backoff")
		if time.Since(began) > minSession {
			i = 0
		}
	}
	r.log.Error().Int64("max_retries", maxRetries).Msg("async agent gave up: too many retries")
	r.setState(StateFailed)
	<-r.ctx.Done()
}

// session connects, declares the exchange and the queue, binds and
// consumes until the connection is lost, an ack fails or the agent stops.
// On a stop it lets the messages in flight finish first.
func (r *run) session() error {
	drv := r.spec.GetAmqp()
	dialer := net.Dialer{Timeout: dialTimeout}
	ctx := r.ctx
	conn, err := amqp.DialConfig(drv.GetHost(), amqp.Config{
		Locale: "en_US",
		Dial: func(network, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		Properties: amqp.Table{"connection_name": "gw-edge agent " + r.name},
	})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	// krakend-amqp passes exclusive as the exchange's "internal" flag.
	if err := ch.ExchangeDeclare(drv.GetExchange(), "topic", drv.GetDurable(), drv.GetDelete(), drv.GetExclusive(), drv.GetNoWait(), nil); err != nil {
		return fmt.Errorf("declare exchange %q: %w", drv.GetExchange(), err)
	}
	q, err := ch.QueueDeclare(drv.GetName(), drv.GetDurable(), drv.GetDelete(), drv.GetExclusive(), drv.GetNoWait(), nil)
	if err != nil {
		return fmt.Errorf("declare queue %q: %w", drv.GetName(), err)
	}
	topic := r.spec.GetConsumer().GetTopic()
	if err := ch.QueueBind(q.Name, topic, drv.GetExchange(), false, nil); err != nil {
		return fmt.Errorf("bind queue %q to %q with %q: %w", q.Name, drv.GetExchange(), topic, err)
	}
	if drv.GetPrefetchCount() != 0 || drv.GetPrefetchSize() != 0 {
		if err := ch.Qos(int(drv.GetPrefetchCount()), int(drv.GetPrefetchSize()), false); err != nil {
			return fmt.Errorf("qos: %w", err)
		}
	}
	msgs, err := ch.Consume(q.Name, consumerTag, drv.GetAutoAck(), drv.GetExclusive(), drv.GetNoLocal(), drv.GetNoWait(), nil)
	if err != nil {
		return fmt.Errorf("consume %q: %w", q.Name, err)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	r.setState(StateConnected)
	r.ping()
	r.log.Info().Str("queue", q.Name).Str("exchange", drv.GetExchange()).Str("topic", topic).Msg("async agent consuming")

	workers := int(max(r.spec.GetConsumer().GetWorkers(), 1))
	var lim *limiter
	if rate := r.spec.GetConsumer().GetMaxRate(); rate > 0 {
		lim = newLimiter(rate)
	}
	// sessionCtx ends the workers' wait for messages: on a stop, or when
	// one of them could not acknowledge.
	sessionCtx, endSession := context.WithCancel(ctx)
	defer endSession()
	var ackErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.work(sessionCtx, msgs, lim, drv, func(err error) {
				ackErr.CompareAndSwap(nil, &err)
				endSession()
			})
		}()
	}

	health := time.NewTicker(time.Duration(max(r.spec.GetConnection().GetHealthIntervalMs(), 1000)) * time.Millisecond)
	defer health.Stop()
	var end error
	workersDone := make(chan struct{})
	go func() { wg.Wait(); close(workersDone) }()
loop:
	for {
		select {
		case <-sessionCtx.Done():
			break loop
		case e := <-closed:
			if e != nil {
				end = fmt.Errorf("connection closed: %w", e)
			} else {
				end = errors.New("connection closed")
			}
			break loop
		case <-workersDone:
			end = errors.New("delivery channel closed")
			break loop
		case <-health.C:
			r.ping()
			r.observeQueue(conn, q.Name)
		}
	}
	// Stop the deliveries, then let each worker finish (and acknowledge)
	// the message it holds; closing the connection afterwards returns
	// every message sent ahead to the queue.
	if end == nil {
		_ = ch.Cancel(consumerTag, false)
	}
	endSession()
	<-workersDone
	if p := ackErr.Load(); p != nil && end == nil {
		end = *p
	}
	if end == nil && ctx.Err() != nil {
		return nil
	}
	return end
}

// work processes deliveries until ctx is done or msgs closes. report ends
// the session when an ack or nack fails (krakend-amqp's shouldExit).
func (r *run) work(ctx context.Context, msgs <-chan amqp.Delivery, lim *limiter, drv *gatewayv1.AMQPConsumer, report func(error)) {
	for {
		var d amqp.Delivery
		var ok bool
		select {
		case <-ctx.Done():
			return
		case d, ok = <-msgs:
			if !ok {
				return
			}
		}
		r.m.consumed.Inc()
		if d.Redelivered {
			r.m.redelivered.Inc()
		}
		if lim != nil && !lim.wait(ctx) {
			// Stopping while rate limited: the message was not processed;
			// give it back (auto_ack has already lost it, as in KrakenD).
			if !drv.GetAutoAck() {
				_ = d.Nack(false, true)
			}
			return
		}
		err := r.pipe.Load().Process(d.Body)
		if err != nil {
			r.m.failed.Inc()
			r.log.Error().Err(err).Msg("async agent message failed")
		}
		if drv.GetAutoAck() {
			continue // the broker considered it delivered already
		}
		if err == nil {
			if aerr := d.Ack(false); aerr != nil {
				report(fmt.Errorf("ack: %w", aerr))
				return
			}
			r.m.acked.Inc()
			continue
		}
		if nerr := d.Nack(false, !drv.GetNackDiscard()); nerr != nil {
			report(fmt.Errorf("nack: %w", nerr))
			return
		}
		if drv.GetNackDiscard() {
			r.m.discarded.Inc()
		} else {
			r.m.requeued.Inc()
		}
	}
}

// observeQueue records how many messages wait in the queue (the agent's
// lag), read with a passive declare on a channel of its own so a failure
// never closes the consuming one.
func (r *run) observeQueue(conn *amqp.Connection, queue string) {
	probe, err := conn.Channel()
	if err != nil {
		return
	}
	defer probe.Close()
	q, err := probe.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		return
	}
	r.m.queued.Set(float64(q.Messages))
}
