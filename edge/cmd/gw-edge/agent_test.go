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
