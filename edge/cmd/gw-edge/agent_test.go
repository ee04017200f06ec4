package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/apigw/gateway/test/testenv"
)

// playgroundConfig is a config in the shape of the KrakenD playground's
// (our own content): comments, service settings, an endpoint and an async
// agent on RabbitMQ whose backend gets every message.
const playgroundConfig = `{
  "$schema": "https://www.krakend.io/schema/v2.12/krakend.json",
  "version": 3,
  "name": "Playground-shaped gateway",
  "port": 8080,
  "cache_ttl": "3600s",
  "timeout": "3s",
  "host": ["%[1]s"],
  "extra_config": {
    "telemetry/logging": {"level": "DEBUG", "prefix": "[KRAKEND]", "syslog": false, "stdout": true}
  },
  "endpoints": [
    {"@comment": "A plain endpoint next to the agent", "endpoint": "/status", "backend": [{"url_pattern": "/status"}]}
  ],
  "async_agent": [
    {
      "@comment": "Processes every order event published on the orders exchange",
      "name": "order-events",
      "connection": {"max_retries": 10, "backoff_strategy": "exponential-jitter", "health_interval": "1s"},
      "consumer": {"topic": "order.*", "workers": 2, "timeout": "1500ms", "max_rate": 100},
      "backend": [{"host": ["%[1]s"], "url_pattern": "/events/order", "method": "POST", "encoding": "json", "group": "event"}],
      "extra_config": {
        "async/amqp": {
          "name": "order-events-queue",
          "host": "%[2]s",
          "exchange": "orders",
          "durable": true,
          "delete": false,
          "exclusive": false,
          "no_wait": false,
          "auto_ack": false,
          "prefetch_count": 5
        }
      }
    }
  ]
}`

// TestStandaloneRunsPlaygroundAgent is the "done when": the
// playground-shaped config is accepted by gw-edge run and its agent
// consumes from a real RabbitMQ, calling its backend once per message.
func TestStandaloneRunsPlaygroundAgent(t *testing.T) {
	mq := testenv.SharedRabbitMQ(t)
	var mu sync.Mutex
	seen := map[string]int{}
	b := testenv.StartBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/events/order" {
			mu.Lock()
			seen[string(body)]++
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	dir := t.TempDir()
	cfg := filepath.Join(dir, "krakend.json")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(playgroundConfig, b.URL, mq.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, "run", "-c", cfg, "--listen", "127.0.0.1:0", "--log-format", "json")

	// The agent reports itself in the health answer once connected
	// (exponential-jitter waits about a second before the first attempt).
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := get(t, "http://"+r.addr+"/__health")
		if strings.Contains(body, `"order-events":"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health never lists the agent: %s\n%s", body, r.stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	conn, err := amqp.Dial(mq.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 20
	for i := range n {
		if err := ch.PublishWithContext(ctx, "orders", "order.created", false, false, amqp.Publishing{Body: []byte(fmt.Sprintf(`{"order":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		got := len(seen)
		mu.Unlock()
		if got == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend got %d of %d messages\n%s", got, n, r.stdout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	for body, c := range seen {
		if c != 1 {
			t.Errorf("backend got %s %d times", body, c)
		}
	}
	mu.Unlock()
	if code, body := get(t, "http://"+r.addr+"/status"); code != 200 {
		t.Errorf("GET /status = %d %s", code, body)
	}
	if code := r.stop(t); code != exitOK {
		t.Errorf("exit %d\n%s", code, r.stderr)
	}
}

// TestStandaloneAMQPProducer: a producer backend publishes the request's
// body with the routing key, expiration, message id and priority from the
// endpoint's parameters and the forwarded headers, and the endpoint
// answers as KrakenD's does (200, null, not completed).
func TestStandaloneAMQPProducer(t *testing.T) {
	mq := testenv.SharedRabbitMQ(t)
	conn, err := amqp.Dial(mq.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("produced", "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "#", "produced", false, nil); err != nil {
		t.Fatal(err)
	}
	msgs, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`{"version": 3, "endpoints": [
		{"endpoint": "/orders/{topic}/{ttl}/{id}/{prio}", "method": "POST", "input_headers": ["Content-Type", "X-Tenant"],
		 "backend": [{"host": [%[1]q], "url_pattern": "/unused",
		   "extra_config": {"backend/amqp/producer": {"exchange": "produced", "durable": true,
		     "routing_key": "Topic", "exp_key": "Ttl", "msg_id_key": "Id", "priority_key": "Prio"}}}]},
		{"endpoint": "/static", "method": "POST",
		 "backend": [{"host": [%[1]q], "url_pattern": "/unused",
		   "extra_config": {"backend/amqp/producer": {"exchange": "produced", "durable": true, "routing_key": "fixed.key", "static_routing_key": true}}}]},
		{"endpoint": "/checked/{id}", "method": "POST",
		 "backend": [{"host": [%[1]q], "url_pattern": "/unused",
		   "extra_config": {"backend/amqp/producer": {"exchange": "produced", "durable": true, "routing_key": "checked.key", "static_routing_key": true},
		     "validation/cel": [{"check_expr": "req_params.Id == 'ok'"}]}}]}
	]}`, mq.URL)
	cfg := filepath.Join(t.TempDir(), "krakend.json")
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, "run", "-c", cfg, "--listen", "127.0.0.1:0", "--log-format", "json")
	post := func(path, ct, body string) (int, http.Header, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+r.addr+path, strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("X-Tenant", "acme")
		req.Header.Set("X-Dropped", "1")
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	// The producer connects in the background (KrakenD's first attempt
	// waits a second): until then the endpoint answers 500.
	deadline := time.Now().Add(15 * time.Second)
	var code int
	var hdr http.Header
	var body string
	for {
		code, hdr, body = post("/orders/order.created/60000/m-7/4", "text/plain", "hello broker")
		if code == http.StatusOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != http.StatusOK || body != "null" || hdr.Get("X-Krakend-Completed") != "false" || hdr.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("POST = %d %q %v, want 200 null (as KrakenD)", code, body, hdr)
	}
	select {
	case m := <-msgs:
		if m.RoutingKey != "order.created" || string(m.Body) != "hello broker" || m.ContentType != "text/plain" ||
			m.Expiration != "60000" || m.MessageId != "m-7" || m.Priority != 4 || m.Timestamp.IsZero() {
			t.Errorf("message = key %q body %q ct %q exp %q id %q prio %d", m.RoutingKey, m.Body, m.ContentType, m.Expiration, m.MessageId, m.Priority)
		}
		if v, _ := m.Headers["X-Tenant"].([]any); len(v) != 1 || v[0] != "acme" {
			t.Errorf("X-Tenant header = %v", m.Headers["X-Tenant"])
		}
		if _, ok := m.Headers["X-Dropped"]; ok {
			t.Error("a header the endpoint does not forward was published")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message published")
	}
	if code, _, body := post("/static", "application/json", `{"a":1}`); code != http.StatusOK || body != "null" {
		t.Errorf("POST /static = %d %q", code, body)
	}
	select {
	case m := <-msgs:
		if m.RoutingKey != "fixed.key" || string(m.Body) != `{"a":1}` {
			t.Errorf("static message = key %q body %q", m.RoutingKey, m.Body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message published on the static key")
	}
	// validation/cel wraps the producer as it wraps KrakenD's AMQP
	// backend: a rejected call fails (500) and publishes nothing, so the
	// next message on the queue is the accepted call's.
	if code, _, _ := post("/checked/no", "text/plain", "rejected"); code != http.StatusInternalServerError {
		t.Errorf("POST /checked/no = %d, want 500 (backend validation/cel rejects it)", code)
	}
	if code, _, body := post("/checked/ok", "text/plain", "accepted"); code != http.StatusOK || body != "null" {
		t.Errorf("POST /checked/ok = %d %q", code, body)
	}
	select {
	case m := <-msgs:
		if m.RoutingKey != "checked.key" || string(m.Body) != "accepted" {
			t.Errorf("after a rejected and an accepted call, the message is key %q body %q; want only the accepted one", m.RoutingKey, m.Body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message published for the accepted call")
	}
	if code := r.stop(t); code != exitOK {
		t.Errorf("exit %d\n%s", code, r.stderr)
	}
}

// TestStandaloneAMQPConsumer: each call of a consumer backend takes one
// message from its queue; a message the backend encoding refuses fails the
// call (500) and goes back to the queue, as in KrakenD.
func TestStandaloneAMQPConsumer(t *testing.T) {
	mq := testenv.SharedRabbitMQ(t)
	doc := fmt.Sprintf(`{"version": 3, "timeout": "1500ms", "endpoints": [
		{"endpoint": "/consume", "backend": [{"host": [%q], "url_pattern": "/unused",
		 "extra_config": {"backend/amqp/consumer": {"name": "consumed-q", "exchange": "consumed", "durable": true, "routing_key": ["c.#"]}}}]}
	]}`, mq.URL)
	cfg := filepath.Join(t.TempDir(), "krakend.json")
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, "run", "-c", cfg, "--listen", "127.0.0.1:0", "--log-format", "json")
	// The queue exists once the consumer connected (about a second).
	conn, err := amqp.Dial(mq.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		_, err = ch.QueueDeclarePassive("consumed-q", true, false, false, false, nil)
		if err == nil {
			ch.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer never declared its queue: %v\n%s", err, r.stdout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{`{"b":2,"a":1}`, `not json`} {
		if err := ch.PublishWithContext(context.Background(), "consumed", "c.x", false, false, amqp.Publishing{Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	if code, body := get(t, "http://"+r.addr+"/consume"); code != 200 || body != `{"a":1,"b":2}` {
		t.Errorf("first GET = %d %q, want the first message", code, body)
	}
	for i := range 2 {
		if code, body := get(t, "http://"+r.addr+"/consume"); code != 500 || body != "" {
			t.Errorf("GET %d of an undecodable message = %d %q, want 500 and the message requeued", i, code, body)
		}
	}
	ch2, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// Leave the shared broker's queue empty.
	if _, err := ch2.QueuePurge("consumed-q", false); err != nil {
		t.Fatal(err)
	}
	if code := r.stop(t); code != exitOK {
		t.Errorf("exit %d\n%s", code, r.stderr)
	}
}
