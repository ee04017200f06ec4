// Package agent runs the async agents of the edge's current plan: for each
// plan.Agent it holds a connection to the agent's broker (async/amqp on
// RabbitMQ), consumes its queue with consumer.workers goroutines at most
// consumer.max_rate messages a second, runs every message through the
// agent's pipe (plan.Agent.Process) and acknowledges it only when the pipe
// succeeded, unless auto_ack, as KrakenD's krakend-amqp agent does: a
// failed message is nacked and requeued (dropped with nack_discard).
//
// Lost or refused connections are retried after the connection's backoff
// strategy (lura's backoff: fallback 1s, linear, linear-jitter,
// exponential, exponential-jitter), up to connection.max_retries times
// (forever when 0); a session that lasted more than five seconds resets
// the count, as in KrakenD.
//
// Agents follow snapshot swaps (Runner.Sync): an agent whose name and
// connection settings are unchanged keeps its connection and only picks up
// the new pipe; a removed agent stops taking messages, lets the messages
// in flight finish and be acknowledged (bounded by the consumer timeout),
// then closes its connection, so the broker requeues what it had sent
// ahead; a changed agent is stopped that way and started again.
//
// agent imports edge/plan; nothing of the edge's HTTP front (edge/server)
// nor of the control plane.
package agent

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/apigw/gateway/edge/plan"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// State is where an agent's connection is.
type State string

// Agent states, as Status reports them.
const (
	StateConnecting State = "connecting" // dialing, declaring, waiting for its backoff
	StateConnected  State = "connected"  // consuming
	StateFailed     State = "failed"     // gave up after connection.max_retries
	StateStopped    State = "stopped"    // removed by a swap, or the runner closed
)

// Status is one agent's connection state.
type Status struct {
	Name  string
	State State
	// Since is when the agent entered State.
	Since time.Time
	// LastPing is the last time the connected agent reported itself alive
	// (every connection.health_interval); zero before its first
	// connection.
	LastPing time.Time
	// Retries counts the connection attempts that failed or ended since the
	// agent started.
	Retries uint64
	// LastError is why the last session ended ("" when none did).
	LastError string
}

// Config configures a Runner. The zero value is usable.
type Config struct {
	Logger zerolog.Logger
	// Registerer receives the gw_edge_agent_* metrics; nil keeps them
	// unregistered.
	Registerer prometheus.Registerer
}

// Runner runs the agents of the served plan. Sync, Status and Close are
// safe for concurrent use. A Runner must not be copied.
type Runner struct {
	log zerolog.Logger
	m   *metrics

	mu      sync.Mutex // guards the fields below; never held while waiting for an agent
	running map[string]*run
	closed  bool
}

// New returns a Runner with no agents.
func New(cfg Config) (*Runner, error) {
	m := newMetrics()
	if cfg.Registerer != nil {
		if err := m.register(cfg.Registerer); err != nil {
			return nil, fmt.Errorf("agent: register metrics: %w", err)
		}
	}
	return &Runner{
		log:     cfg.Logger.With().Str("component", "agent").Logger(),
		m:       m,
		running: map[string]*run{},
	}, nil
}

// Sync makes the running agents those of agents (the new plan's): new ones
// start, unchanged ones switch to the new pipe without reconnecting,
// changed and removed ones stop (Sync waits for them to drain). After
// Close it does nothing.
func (r *Runner) Sync(agents []*plan.Agent) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	var stopping []*run
	keep := make(map[string]bool, len(agents))
	var starting []*plan.Agent
	for _, a := range agents {
		keep[a.Name()] = true
		cur := r.running[a.Name()]
		key := identity(a.Spec())
		if cur != nil && cur.key == key {
			cur.pipe.Store(a)
			continue
		}
		if cur != nil {
			stopping = append(stopping, cur)
			delete(r.running, a.Name())
		}
		starting = append(starting, a)
	}
	for name, cur := range r.running {
		if !keep[name] {
			stopping = append(stopping, cur)
			delete(r.running, name)
		}
	}
	r.mu.Unlock()

	stopAll(stopping)
	for _, cur := range stopping {
		r.m.forget(cur.name)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	for _, a := range starting {
		cur := newRun(a, r.log, r.m)
		r.running[a.Name()] = cur
		cur.start()
	}
}

// Close stops every agent, waiting for their messages in flight. It is
// idempotent; Sync does nothing afterwards.
func (r *Runner) Close() {
	r.mu.Lock()
	r.closed = true
	stopping := make([]*run, 0, len(r.running))
	for name, cur := range r.running {
		stopping = append(stopping, cur)
		delete(r.running, name)
	}
	r.mu.Unlock()
	stopAll(stopping)
}

// Status returns every running agent's state, sorted by name.
func (r *Runner) Status() []Status {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	runs := make([]*run, 0, len(r.running))
	for _, cur := range r.running {
		runs = append(runs, cur)
	}
	r.mu.Unlock()
	out := make([]Status, 0, len(runs))
	for _, cur := range runs {
		out = append(out, cur.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Pings returns the last health report of every agent that connected at
// least once (KrakenD's health answer lists them under "agents"); nil for
// a nil Runner.
func (r *Runner) Pings() map[string]time.Time {
	if r == nil {
		return nil
	}
	out := map[string]time.Time{}
	for _, s := range r.Status() {
		if !s.LastPing.IsZero() {
			out[s.Name] = s.LastPing
		}
	}
	return out
}

func stopAll(runs []*run) {
	for _, cur := range runs {
		cur.cancel()
	}
	for _, cur := range runs {
		<-cur.done
	}
}

// identity is what must be equal for an agent to keep its connection
// across a swap: everything but its pipe.
func identity(spec *gatewayv1.AsyncAgent) string {
	c := proto.CloneOf(spec)
	c.Endpoint = nil
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		// A message we built ourselves always marshals; fall back to a key
		// that never matches, which only costs a reconnect.
		return fmt.Sprintf("unmarshalable %p", spec)
	}
	return string(b)
}

// minSession is how long a session must last for the retry count to start
// over (krakend-amqp's minExecutionTime).
const minSession = 5 * time.Second

// backoff returns lura's wait before attempt i for a strategy.
func backoff(strategy string) func(i int) time.Duration {
	switch strings.ToLower(strategy) {
	case "linear":
		return func(i int) time.Duration { return time.Duration(i) * time.Second }
	case "linear-jitter":
		return func(i int) time.Duration { return jitter(i) }
	case "exponential":
		return func(i int) time.Duration { return time.Duration(1<<min(i, maxShift)) * time.Second }
	case "exponential-jitter":
		return func(i int) time.Duration { return jitter(1 << min(i, maxShift)) }
	}
	return func(int) time.Duration { return time.Second }
}

// maxShift keeps 2^i seconds inside a time.Duration (lura overflows after
// 33 straight failures, when the wait is already beyond a century).
const maxShift = 32

// jitter is lura's: i seconds, plus or minus a third.
func jitter(i int) time.Duration {
	ms := i * 1000
	maxJitter := ms/3 + 1
	ms += rand.IntN(2*maxJitter) - maxJitter
	if ms <= 0 {
		ms = 1
	}
	return time.Duration(ms) * time.Millisecond
}

// limiter is the consumer.max_rate token bucket (krakend-ratelimit's: a
// capacity of the rate, at least 1), waited on before each message.
type limiter struct {
	mu     sync.Mutex // guards the fields below
	rate   float64
	cap    float64
	tokens float64
	last   time.Time
}

func newLimiter(rate float64) *limiter {
	c := float64(uint64(rate))
	if c < 1 {
		c = 1
	}
	return &limiter{rate: rate, cap: c, tokens: c, last: time.Now()}
}

// wait blocks until a token is taken or ctx is done (false).
func (l *limiter) wait(ctx context.Context) bool {
	for {
		l.mu.Lock()
		now := time.Now()
		l.tokens = min(l.cap, l.tokens+now.Sub(l.last).Seconds()*l.rate)
		l.last = now
		if l.tokens >= 1 {
			l.tokens--
			l.mu.Unlock()
			return true
		}
		need := time.Duration((1 - l.tokens) / l.rate * float64(time.Second))
		l.mu.Unlock()
		t := time.NewTimer(need)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}
