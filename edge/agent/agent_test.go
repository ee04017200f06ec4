package agent_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/apigw/gateway/controlplane/config"
	"github.com/apigw/gateway/edge/agent"
	"github.com/apigw/gateway/edge/plan"
	"github.com/apigw/gateway/test/leak"
	"github.com/apigw/gateway/test/testenv"
)

// TestMain runs the package's tests against one broker, stopped before
// the goroutine check.
func TestMain(m *testing.M) { goleak.VerifyTestMain(withBroker{m}, leak.Options()...) }

type withBroker struct{ m *testing.M }

func (w withBroker) Run() int {
	code := w.m.Run()
	testenv.CloseSharedRabbitMQ()
	return code
}

// recorder is a backend that records every message body it receives and
// answers with status(body, attempt).
type recorder struct {
	mu     sync.Mutex // guards seen
	seen   map[string]int
	status func(body string, attempt int) int
	delay  time.Duration
	url    string
}

func newRecorder(t *testing.T, status func(string, int) int) *recorder {
	r := &recorder{seen: map[string]int{}, status: status}
	b := testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.seen[string(body)]++
		n := r.seen[string(body)]
		r.mu.Unlock()
		if r.delay > 0 {
			time.Sleep(r.delay)
		}
		code := http.StatusOK
		if r.status != nil {
			code = r.status(string(body), n)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, `{"ok":true}`)
	}))
	r.url = b.URL
	return r
}

func (r *recorder) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.seen))
	for k, v := range r.seen {
		out[k] = v
	}
	return out
}

// agentPlan compiles a config with one agent on the broker and builds its
// plan; driver holds extra async/amqp members.
func agentPlan(t *testing.T, brokerURL, backendURL, name, exchange, driver, consumer string) *plan.Plan {
	t.Helper()
	if consumer == "" {
		consumer = `"topic": "msg.*", "workers": 2, "timeout": "2s"`
	}
	if driver != "" {
		driver = ", " + driver
	}
	doc := fmt.Sprintf(`{"version": 3, "async_agent": [{
		"name": %q,
		"consumer": {%s},
		"connection": {"backoff_strategy": "linear", "health_interval": "1s"},
		"backend": [{"host": [%q], "url_pattern": "/ingest", "method": "POST"}],
		"extra_config": {"async/amqp": {"host": %q, "name": %q, "exchange": %q, "durable": true%s}}
	}]}`, name, consumer, backendURL, brokerURL, name+"-queue", exchange, driver)
	c, err := config.Compile("agent.json", []byte(doc))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	p, err := plan.Build(c.Snapshot, plan.Deps{})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	t.Cleanup(p.Release)
	if len(p.Agents()) != 1 {
		t.Fatalf("plan has %d agents", len(p.Agents()))
	}
	return p
}

func newRunner(t *testing.T) *agent.Runner {
	t.Helper()
	r, err := agent.New(agent.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func statusOf(r *agent.Runner, name string) agent.Status {
	for _, s := range r.Status() {
		if s.Name == name {
			return s
		}
	}
	return agent.Status{}
}

func waitState(t *testing.T, r *agent.Runner, name string, want agent.State, timeout time.Duration) agent.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := statusOf(r, name)
		if s.State == want {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %s: state %q after %v, want %q (last error %q)", name, s.State, timeout, want, s.LastError)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publish sends bodies to exchange with routing key.
func publish(t *testing.T, brokerURL, exchange, key string, bodies ...string) {
	t.Helper()
	conn, err := amqp.Dial(brokerURL)
	if err != nil {
		t.Fatalf("dial broker: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, b := range bodies {
		if err := ch.PublishWithContext(ctx, exchange, key, false, false, amqp.Publishing{ContentType: "application/json", Body: []byte(b), DeliveryMode: amqp.Persistent}); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
}

// queued returns how many messages wait in queue (and have not been sent
// to a consumer).
func queued(t *testing.T, brokerURL, queue string) int {
	t.Helper()
	conn, err := amqp.Dial(brokerURL)
	if err != nil {
		t.Fatalf("dial broker: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("inspect queue %s: %v", queue, err)
	}
	return q.Messages
}

func bodies(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`{"%s":%d}`, prefix, i)
	}
	return out
}

func eventually(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAgentConsumesEachMessageOnce(t *testing.T) {
	t.Parallel()
	mq := testenv.SharedRabbitMQ(t)
	rec := newRecorder(t, nil)
	p := agentPlan(t, mq.URL, rec.url, "once", "ex-once", "", "")
	r := newRunner(t)
	r.Sync(p.Agents())
	waitState(t, r, "once", agent.StateConnected, 20*time.Second)

	const n = 50
	msgs := bodies("once", n)
	publish(t, mq.URL, "ex-once", "msg.created", msgs...)
	publish(t, mq.URL, "ex-once", "other.created", `{"unbound":true}`)
	eventually(t, 20*time.Second, "every message reaches the backend", func() bool { return len(rec.counts()) >= n })
	// Acknowledged: nothing is left in, or returns to, the queue.
	time.Sleep(300 * time.Millisecond)
	for body, c := range rec.counts() {
		if c != 1 {
			t.Errorf("backend saw %s %d times, want once", body, c)
		}
	}
	if _, ok := rec.counts()[`{"unbound":true}`]; ok {
		t.Error("a message whose routing key does not match the topic reached the backend")
	}
	if q := queued(t, mq.URL, "once-queue"); q != 0 {
		t.Errorf("%d messages left in the queue", q)
	}
	if s := statusOf(r, "once"); s.Retries != 0 || s.LastPing.IsZero() {
		t.Errorf("status %+v: want no retries and a health ping", s)
	}
	if pings := r.Pings(); pings["once"].IsZero() {
		t.Errorf("pings %v lack the agent", pings)
	}
}

func TestAgentRedeliversFailedMessages(t *testing.T) {
	t.Parallel()
	mq := testenv.SharedRabbitMQ(t)
	// The backend fails each message's first delivery.
	rec := newRecorder(t, func(_ string, attempt int) int {
		if attempt == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	p := agentPlan(t, mq.URL, rec.url, "retry", "ex-retry", "", "")
	r := newRunner(t)
	r.Sync(p.Agents())
	waitState(t, r, "retry", agent.StateConnected, 20*time.Second)
	msgs := bodies("retry", 5)
	publish(t, mq.URL, "ex-retry", "msg.x", msgs...)
	eventually(t, 20*time.Second, "every message is redelivered after its failure", func() bool {
		c := rec.counts()
		for _, m := range msgs {
			if c[m] < 2 {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond)
	for _, m := range msgs {
		if c := rec.counts()[m]; c != 2 {
			t.Errorf("backend saw %s %d times, want 2 (a failure, then the redelivery)", m, c)
		}
	}
	if q := queued(t, mq.URL, "retry-queue"); q != 0 {
		t.Errorf("%d messages left in the queue", q)
	}
}

func TestAgentNackDiscardAndAutoAck(t *testing.T) {
	t.Parallel()
	mq := testenv.SharedRabbitMQ(t)
	for _, tc := range []struct{ name, driver string }{
		{"discard", `"nack_discard": true`},
		{"autoack", `"auto_ack": true`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t, func(string, int) int { return http.StatusBadGateway })
			p := agentPlan(t, mq.URL, rec.url, tc.name, "ex-"+tc.name, tc.driver, "")
			r := newRunner(t)
			r.Sync(p.Agents())
			waitState(t, r, tc.name, agent.StateConnected, 20*time.Second)
			msgs := bodies(tc.name, 3)
			publish(t, mq.URL, "ex-"+tc.name, "msg.x", msgs...)
			eventually(t, 20*time.Second, "every message reaches the backend", func() bool { return len(rec.counts()) == 3 })
			time.Sleep(500 * time.Millisecond)
			for _, m := range msgs {
				if c := rec.counts()[m]; c != 1 {
					t.Errorf("backend saw %s %d times, want once (failed messages are not requeued)", m, c)
				}
			}
			if q := queued(t, mq.URL, tc.name+"-queue"); q != 0 {
				t.Errorf("%d messages left in the queue", q)
			}
		})
	}
}

func TestAgentSwapKeepsConnectionAndRemovalDrains(t *testing.T) {
	t.Parallel()
	mq := testenv.SharedRabbitMQ(t)
	first := newRecorder(t, nil)
	second := newRecorder(t, nil)
	second.delay = 150 * time.Millisecond
	r := newRunner(t)
	r.Sync(agentPlan(t, mq.URL, first.url, "swap", "ex-swap", "", "").Agents())
	before := waitState(t, r, "swap", agent.StateConnected, 20*time.Second)

	// Same agent, another pipe: the connection stays, the new pipe serves.
	r.Sync(agentPlan(t, mq.URL, second.url, "swap", "ex-swap", "", "").Agents())
	after := statusOf(r, "swap")
	if after.State != agent.StateConnected || !after.Since.Equal(before.Since) || after.Retries != 0 {
		t.Errorf("after a swap keeping the agent: %+v, was %+v (want the same connection)", after, before)
	}
	const n = 40
	msgs := bodies("swap", n)
	publish(t, mq.URL, "ex-swap", "msg.x", msgs...)
	eventually(t, 20*time.Second, "the new pipe gets messages", func() bool { return len(second.counts()) >= 4 })
	if len(first.counts()) != 0 {
		t.Errorf("the old pipe got %d messages after the swap", len(first.counts()))
	}

	// A swap without the agent: Sync returns once its workers drained.
	r.Sync(nil)
	if got := r.Status(); len(got) != 0 {
		t.Errorf("status after removal = %+v", got)
	}
	processed := len(second.counts())
	time.Sleep(400 * time.Millisecond)
	if now := len(second.counts()); now != processed {
		t.Errorf("the backend got %d messages after the agent was removed", now-processed)
	}
	// Every message the backend processed was acknowledged; the others
	// are back in the queue.
	if q := queued(t, mq.URL, "swap-queue"); q != n-processed {
		t.Errorf("queue holds %d messages, want %d (published %d, processed %d)", q, n-processed, n, processed)
	}
	// The agent back: the rest is consumed, nothing twice.
	r.Sync(agentPlan(t, mq.URL, second.url, "swap", "ex-swap", "", "").Agents())
	eventually(t, 30*time.Second, "the rest is consumed", func() bool { return len(second.counts()) == n })
	for body, c := range second.counts() {
		if c != 1 {
			t.Errorf("backend saw %s %d times", body, c)
		}
	}
}

func TestAgentMaxRate(t *testing.T) {
	t.Parallel()
	mq := testenv.SharedRabbitMQ(t)
	rec := newRecorder(t, nil)
	p := agentPlan(t, mq.URL, rec.url, "rate", "ex-rate", "", `"topic": "#", "workers": 4, "max_rate": 10`)
	r := newRunner(t)
	r.Sync(p.Agents())
	waitState(t, r, "rate", agent.StateConnected, 20*time.Second)
	publish(t, mq.URL, "ex-rate", "any", bodies("rate", 40)...)
	// 10 tokens to start with and 10 a second: well under 40 after 1.5s.
	time.Sleep(1500 * time.Millisecond)
	if got := len(rec.counts()); got >= 40 || got == 0 {
		t.Errorf("backend got %d of 40 messages in 1.5s at max_rate 10", got)
	}
	eventually(t, 20*time.Second, "all messages eventually", func() bool { return len(rec.counts()) == 40 })
}

func TestAgentReconnectsAfterBrokerRestart(t *testing.T) {
	t.Parallel()
	mq, err := testenv.NewRabbitMQ()
	if err == testenv.ErrNoRabbitMQ {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mq.Close)
	rec := newRecorder(t, nil)
	p := agentPlan(t, mq.URL, rec.url, "restart", "ex-restart", "", "")
	r := newRunner(t)
	r.Sync(p.Agents())
	waitState(t, r, "restart", agent.StateConnected, 20*time.Second)
	publish(t, mq.URL, "ex-restart", "msg.a", bodies("before", 5)...)
	eventually(t, 20*time.Second, "messages before the restart", func() bool { return len(rec.counts()) == 5 })

	mq.Stop()
	waitState(t, r, "restart", agent.StateConnecting, 20*time.Second)
	// Linear backoff: 0s, 1s, 2s, ... while the broker is down.
	time.Sleep(2 * time.Second)
	if s := statusOf(r, "restart"); s.Retries < 2 || s.LastError == "" {
		t.Errorf("while the broker is down: %+v, want retries and an error", s)
	}
	if err := mq.Start(); err != nil {
		t.Fatal(err)
	}
	waitState(t, r, "restart", agent.StateConnected, 40*time.Second)
	publish(t, mq.URL, "ex-restart", "msg.b", bodies("after", 5)...)
	eventually(t, 20*time.Second, "messages after the restart", func() bool { return len(rec.counts()) == 10 })
	for body, c := range rec.counts() {
		if c != 1 {
			t.Errorf("backend saw %s %d times", body, c)
		}
	}
}

func TestAgentGivesUpAfterMaxRetries(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, nil)
	// Nothing listens there: every attempt fails at once.
	doc := fmt.Sprintf(`{"version": 3, "async_agent": [{"name": "nobroker",
		"connection": {"max_retries": 2, "backoff_strategy": "linear"},
		"backend": [{"host": [%q], "url_pattern": "/x"}],
		"extra_config": {"async/amqp": {"host": "amqp://guest:guest@127.0.0.1:1/", "exchange": "e"}}}]}`, rec.url)
	c, err := config.Compile("a.json", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Build(c.Snapshot, plan.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	r := newRunner(t)
	r.Sync(p.Agents())
	// Attempts after 0s, 1s and 2s: failed after about 3s.
	s := waitState(t, r, "nobroker", agent.StateFailed, 15*time.Second)
	if s.Retries != 3 || !strings.Contains(s.LastError, "dial") {
		t.Errorf("status %+v: want 3 failed attempts (max_retries 2 retries the first)", s)
	}
}

// TestAgentPipeFailsOnBadBody checks that a backend answer the pipe
// cannot decode (json encoding) fails the message, as lura's decoder does.
func TestAgentPipeFailsOnBadBody(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	b := testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		io.WriteString(w, "not json")
	}))
	doc := fmt.Sprintf(`{"version": 3, "async_agent": [{"name": "bad",
		"backend": [{"host": [%q], "url_pattern": "/x"}],
		"extra_config": {"async/amqp": {"host": "amqp://127.0.0.1:1/", "exchange": "e"}}}]}`, b.URL)
	c, err := config.Compile("a.json", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Build(c.Snapshot, plan.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	if err := p.Agents()[0].Process([]byte(`{"a":1}`)); err == nil {
		t.Error("Process of a message whose backend answers non-JSON = nil, want an error")
	}
	if calls.Load() != 1 {
		t.Errorf("backend called %d times", calls.Load())
	}
}
