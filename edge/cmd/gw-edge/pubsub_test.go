package main

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/apigw/gateway/test/testenv"
)

// pubSubNATSConfig has a publisher (gob encoding), a natsv2 publisher, a
// subscriber and a queue-group subscriber, all on the NATS_SERVER_URL
// broker, with KrakenD's documented host shape.
const pubSubNATSConfig = `{"version": 3, "timeout": "1s", "endpoints": [
  {"endpoint": "/pub", "method": "POST", "input_headers": ["X-Tenant"],
   "backend": [{"host": ["nats://"], "disable_host_sanitize": true, "url_pattern": "/",
     "extra_config": {"backend/pubsub/publisher": {"topic_url": "orders"}}}]},
  {"endpoint": "/pubv2", "method": "POST", "input_headers": ["X-Tenant"],
   "backend": [{"host": ["nats://"], "disable_host_sanitize": true, "url_pattern": "/",
     "extra_config": {"backend/pubsub/publisher": {"topic_url": "orders.v2?natsv2"}}}]},
  {"endpoint": "/pubevents", "method": "POST", "input_headers": ["X-Tenant"],
   "backend": [{"host": ["nats://"], "disable_host_sanitize": true, "url_pattern": "/",
     "extra_config": {"github.com/devopsfaith/krakend-pubsub/publisher": {"topic_url": "events"}}}]},
  {"endpoint": "/sub",
   "backend": [{"host": ["nats://"], "disable_host_sanitize": true, "url_pattern": "/", "allow": ["id", "tenant"],
     "extra_config": {"backend/pubsub/subscriber": {"subscription_url": "events"}}}]},
  {"endpoint": "/subq",
   "backend": [{"host": ["nats://"], "disable_host_sanitize": true, "url_pattern": "/", "is_collection": true,
     "extra_config": {"backend/pubsub/subscriber": {"subscription_url": "jobs?queue=workers"}}}]}
]}`

func writeConfig(t *testing.T, doc string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "krakend.json")
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

type answer struct {
	code int
	hdr  http.Header
	body string
}

func call(t *testing.T, method, url, body string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("X-Tenant", "acme")
	req.Header.Set("X-Dropped", "1")
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// waitOK repeats a call until it answers 200 (the edge connects to the
// broker in the background).
func waitOK(t *testing.T, method, url, body string) answer {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		a := call(t, method, url, body)
		if a.code == http.StatusOK || time.Now().After(deadline) {
			return a
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// gobMessage decodes natspubsub's encoding: gob metadata, then gob body.
func gobMessage(t *testing.T, data []byte) (map[string]string, string) {
	t.Helper()
	dec := gob.NewDecoder(bytes.NewReader(data))
	var md map[string]string
	var body []byte
	if err := dec.Decode(&md); err != nil {
		t.Fatalf("message %q is not gob metadata: %v", data, err)
	}
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("message %q has no gob body: %v", data, err)
	}
	return md, string(body)
}

// TestStandalonePubSubNATS: publishers and subscribers on a real
// nats-server answer as KrakenD 2.12.1's did on the same config (compared by
// hand: publisher 200 null not completed, subscriber 200 with the message
// completed, 500 with an empty body when no message comes before the
// timeout), and the messages are gocloud's wire format, so KrakenD reads
// what the edge publishes and the other way round.
func TestStandalonePubSubNATS(t *testing.T) {
	n := testenv.StartNATS(t)
	t.Setenv("NATS_SERVER_URL", n.URL)
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	orders, _ := nc.SubscribeSync("orders")
	ordersV2, _ := nc.SubscribeSync("orders.v2")
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	r := start(t, "run", "-c", writeConfig(t, pubSubNATSConfig), "--listen", "127.0.0.1:0", "--log-format", "json")
	base := "http://" + r.addr

	a := waitOK(t, http.MethodPost, base+"/pub", `{"id":1}`)
	if a.code != http.StatusOK || a.body != "null" || a.hdr.Get("X-Krakend-Completed") != "false" || a.hdr.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("POST /pub = %d %q %v, want 200 null not completed (as KrakenD)", a.code, a.body, a.hdr)
	}
	m, err := orders.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	md, body := gobMessage(t, m.Data)
	if body != `{"id":1}` || md["X-Tenant"] != "acme" || md["X-Forwarded-For"] == "" || md["User-Agent"] == "" {
		t.Errorf("published %q with metadata %v", body, md)
	}
	if _, ok := md["X-Dropped"]; ok {
		t.Errorf("a header the endpoint does not forward was published: %v", md)
	}

	if a := call(t, http.MethodPost, base+"/pubv2", `{"id":2}`); a.code != http.StatusOK || a.body != "null" {
		t.Fatalf("POST /pubv2 = %d %q", a.code, a.body)
	}
	m, err = ordersV2.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != `{"id":2}` || m.Header.Get("X-Tenant") != "acme" {
		t.Errorf("natsv2 message %q headers %v", m.Data, m.Header)
	}

	// A subscriber answers one message per call: a plain NATS message, and
	// a gob one published by the edge itself; filtered as any backend.
	if err := nc.Publish("events", []byte(`{"id":3,"tenant":"t","secret":"x"}`)); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	a = call(t, http.MethodGet, base+"/sub", "")
	if a.code != http.StatusOK || a.body != `{"id":3,"tenant":"t"}` || a.hdr.Get("X-Krakend-Completed") != "true" {
		t.Errorf("GET /sub = %d %q %v", a.code, a.body, a.hdr)
	}
	if a := call(t, http.MethodPost, base+"/pubevents", `{"id":4}`); a.code != http.StatusOK {
		t.Fatalf("POST /pubevents = %d %q", a.code, a.body)
	}
	if a := call(t, http.MethodGet, base+"/sub", ""); a.code != http.StatusOK || a.body != `{"id":4}` {
		t.Errorf("GET /sub after /pubevents = %d %q", a.code, a.body)
	}
	// No message before the endpoint's timeout: 500, empty body (KrakenD).
	began := time.Now()
	a = call(t, http.MethodGet, base+"/sub", "")
	if a.code != http.StatusInternalServerError || a.body != "" {
		t.Errorf("GET /sub without a message = %d %q, want 500 and no body", a.code, a.body)
	}
	if waited := time.Since(began); waited < 900*time.Millisecond {
		t.Errorf("GET /sub without a message answered after %v, before the 1s timeout", waited)
	}
	// A body the backend encoding refuses fails the call.
	_ = nc.Publish("events", []byte(`not json`))
	_ = nc.Flush()
	if a := call(t, http.MethodGet, base+"/sub", ""); a.code != http.StatusInternalServerError {
		t.Errorf("GET /sub with an undecodable message = %d %q, want 500", a.code, a.body)
	}
	// A queue-group subscription, decoded as a collection.
	_ = nc.Publish("jobs", []byte(`[{"job":1}]`))
	_ = nc.Flush()
	if a := call(t, http.MethodGet, base+"/subq", ""); a.code != http.StatusOK || a.body != `{"collection":[{"job":1}]}` {
		t.Errorf("GET /subq = %d %q", a.code, a.body)
	}

	// The broker goes down mid-way: nats.go buffers publishes while it
	// reconnects (200, as KrakenD), subscribers wait for the timeout; once
	// the broker is back, both work again on the same subscription.
	n.Stop()
	if a := call(t, http.MethodPost, base+"/pub", `{"id":5}`); a.code != http.StatusOK {
		t.Errorf("POST /pub with the broker down = %d %q, want 200 (buffered, as KrakenD)", a.code, a.body)
	}
	if a := call(t, http.MethodGet, base+"/sub", ""); a.code != http.StatusInternalServerError {
		t.Errorf("GET /sub with the broker down = %d %q, want 500", a.code, a.body)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	nc2, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_ = nc2.Publish("events", []byte(`{"id":6}`))
		_ = nc2.Flush()
		a := call(t, http.MethodGet, base+"/sub", "")
		if a.code == http.StatusOK {
			if a.body != `{"id":6}` {
				t.Errorf("GET /sub after the broker came back = %q", a.body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the subscriber never recovered: %d %q\n%s", a.code, a.body, r.stdout)
		}
	}
	if code := r.stop(t); code != exitOK {
		t.Errorf("exit %d\n%s", code, r.stderr)
	}
}

// TestStandalonePubSubNATSDownAtStart: with the broker down when the edge
// starts, calls fail (500, as KrakenD's) until it comes up; then the edge
// connects and they succeed. KrakenD dials once and keeps failing.
func TestStandalonePubSubNATSDownAtStart(t *testing.T) {
	n := testenv.StartNATS(t)
	n.Stop()
	t.Setenv("NATS_SERVER_URL", n.URL)
	r := start(t, "run", "-c", writeConfig(t, pubSubNATSConfig), "--listen", "127.0.0.1:0", "--log-format", "json")
	base := "http://" + r.addr
	if a := call(t, http.MethodPost, base+"/pub", `{}`); a.code != http.StatusInternalServerError || a.body != "" {
		t.Errorf("POST /pub with the broker down at start = %d %q, want 500 (as KrakenD)", a.code, a.body)
	}
	if a := call(t, http.MethodGet, base+"/sub", ""); a.code != http.StatusInternalServerError {
		t.Errorf("GET /sub with the broker down at start = %d %q, want 500", a.code, a.body)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	if a := waitOK(t, http.MethodPost, base+"/pubevents", `{"id":7}`); a.code != http.StatusOK {
		t.Fatalf("POST /pubevents never recovered: %d %q", a.code, a.body)
	}
	// The subscription was made on connection: the next message is there.
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.Publish("events", []byte(`{"id":8}`))
	_ = nc.Flush()
	got := map[string]bool{}
	for range 2 {
		a := call(t, http.MethodGet, base+"/sub", "")
		got[fmt.Sprintf("%d %s", a.code, a.body)] = true
	}
	if !got[`200 {"id":8}`] {
		t.Errorf("after the broker came up, GET /sub answered %v", got)
	}
	if code := r.stop(t); code != exitOK {
		t.Errorf("exit %d\n%s", code, r.stderr)
	}
}

// TestStandalonePubSubRabbit: rabbit:// publishers publish to an existing
// exchange (routing key "", mandatory, confirmed) with the forwarded
// headers as string headers; an unroutable message or a missing exchange
// fails the call (500); subscribers take one message of an existing queue
// per call and acknowledge it, all as KrakenD 2.12.1 answered on the same
// broker and config (compared by hand).
func TestStandalonePubSubRabbit(t *testing.T) {
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
	for _, ex := range []string{"ps.rx", "ps.lonely"} {
		if err := ch.ExchangeDeclare(ex, "fanout", false, true, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"ps.rq", "ps.rsub"} {
		if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		defer ch.QueueDelete(q, false, false, false)
	}
	if err := ch.QueueBind("ps.rq", "", "ps.rx", false, nil); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RABBIT_SERVER_URL", mq.URL)
	pub := func(path, ex string) string {
		return fmt.Sprintf(`{"endpoint": %q, "method": "POST", "input_headers": ["X-Tenant"], "backend": [{"host": ["rabbit://"], "disable_host_sanitize": true,
		  "url_pattern": "/", "extra_config": {"backend/pubsub/publisher": {"topic_url": %q}}}]}`, path, ex)
	}
	sub := func(path, q string) string {
		return fmt.Sprintf(`{"endpoint": %q, "backend": [{"host": ["rabbit://"], "disable_host_sanitize": true,
		  "url_pattern": "/", "extra_config": {"backend/pubsub/subscriber": {"subscription_url": %q}}}]}`, path, q)
	}
	doc := `{"version": 3, "timeout": "1s", "endpoints": [` + strings.Join([]string{
		pub("/pub", "ps.rx"), pub("/publonely", "ps.lonely"), pub("/pubmissing", "ps.missing"),
		sub("/sub", "ps.rsub"), sub("/submissing", "ps.nosuchq"),
	}, ",") + `]}`
	r := start(t, "run", "-c", writeConfig(t, doc), "--listen", "127.0.0.1:0", "--log-format", "json")
	base := "http://" + r.addr

	a := waitOK(t, http.MethodPost, base+"/pub", `{"id":1}`)
	if a.code != http.StatusOK || a.body != "null" || a.hdr.Get("X-Krakend-Completed") != "false" {
		t.Fatalf("POST /pub = %d %q %v, want 200 null not completed (as KrakenD)", a.code, a.body, a.hdr)
	}
	d, ok, err := ch.Get("ps.rq", true)
	if err != nil || !ok {
		t.Fatalf("no message on the bound queue: %v %v", ok, err)
	}
	if string(d.Body) != `{"id":1}` || d.Headers["X-Tenant"] != "acme" || d.Headers["X-Forwarded-For"] == nil || d.ContentType != "" {
		t.Errorf("message %q headers %v content type %q", d.Body, d.Headers, d.ContentType)
	}
	if _, ok := d.Headers["X-Dropped"]; ok {
		t.Errorf("a header the endpoint does not forward was published: %v", d.Headers)
	}
	for _, p := range []string{"/publonely", "/pubmissing"} {
		if a := call(t, http.MethodPost, base+p, `{}`); a.code != http.StatusInternalServerError || a.body != "" {
			t.Errorf("POST %s = %d %q, want 500 (unroutable or no exchange, as KrakenD)", p, a.code, a.body)
		}
	}
	// The channel closed by the missing exchange is opened again.
	if a := call(t, http.MethodPost, base+"/pub", `{"id":2}`); a.code != http.StatusOK {
		t.Errorf("POST /pub after a failed publish = %d %q", a.code, a.body)
	}

	publish := func(body string) {
		t.Helper()
		if err := ch.PublishWithContext(context.Background(), "", "ps.rsub", false, false, amqp.Publishing{Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	publish(`{"s":1}`)
	if a := call(t, http.MethodGet, base+"/sub", ""); a.code != http.StatusOK || a.body != `{"s":1}` || a.hdr.Get("X-Krakend-Completed") != "true" {
		t.Errorf("GET /sub = %d %q %v", a.code, a.body, a.hdr)
	}
	if a := call(t, http.MethodGet, base+"/sub", ""); a.code != http.StatusInternalServerError || a.body != "" {
		t.Errorf("GET /sub without a message = %d %q, want 500", a.code, a.body)
	}
	if a := call(t, http.MethodGet, base+"/submissing", ""); a.code != http.StatusInternalServerError {
		t.Errorf("GET /submissing = %d %q, want 500 (no such queue)", a.code, a.body)
	}
	// An undecodable message fails its call and stays unacknowledged (held
	// by the edge's channel, as KrakenD's); the next one is served.
	publish(`not json`)
	publish(`{"s":2}`)
	if a := call(t, http.MethodGet, base+"/sub", ""); a.code != http.StatusInternalServerError {
		t.Errorf("GET /sub with an undecodable message = %d %q, want 500", a.code, a.body)
	}
	if a := call(t, http.MethodGet, base+"/sub", ""); a.code != http.StatusOK || a.body != `{"s":2}` {
		t.Errorf("GET /sub after the undecodable message = %d %q", a.code, a.body)
	}
	// Acknowledged: nothing is left ready or unacknowledged but the
	// undecodable one, which the broker requeues when the edge stops.
	if code := r.stop(t); code != exitOK {
		t.Errorf("exit %d\n%s", code, r.stderr)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		q, err := ch.QueueDeclarePassive("ps.rsub", false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if q.Messages == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the edge stopped, ps.rsub has %d messages, want the undecodable one back", q.Messages)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d, ok, _ := ch.Get("ps.rsub", true); !ok || string(d.Body) != "not json" {
		t.Errorf("requeued message = %q %v", d.Body, ok)
	}
}

// TestStandalonePubSubRabbitRestart: with its own broker, down when the
// edge starts (calls fail with 500, as KrakenD's, which never recovers),
// then up (the edge connects), then restarted mid-way (calls fail while it
// is down, and the edge redials once it is back, re-opening the publisher
// channel and the subscription).
func TestStandalonePubSubRabbitRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own RabbitMQ")
	}
	mq, err := testenv.NewRabbitMQ()
	if errors.Is(err, testenv.ErrNoRabbitMQ) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer mq.Close()
	declare := func() {
		t.Helper()
		conn, err := amqp.Dial(mq.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.ExchangeDeclare("ps.ex", "fanout", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare("ps.q", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind("ps.q", "", "ps.ex", false, nil); err != nil {
			t.Fatal(err)
		}
	}
	declare()
	mq.Stop()
	t.Setenv("RABBIT_SERVER_URL", mq.URL)
	doc := `{"version": 3, "timeout": "1s", "endpoints": [
	  {"endpoint": "/pub", "method": "POST", "backend": [{"host": ["rabbit://"], "disable_host_sanitize": true, "url_pattern": "/",
	    "extra_config": {"backend/pubsub/publisher": {"topic_url": "ps.ex"}}}]},
	  {"endpoint": "/sub", "backend": [{"host": ["rabbit://"], "disable_host_sanitize": true, "url_pattern": "/",
	    "extra_config": {"backend/pubsub/subscriber": {"subscription_url": "ps.q"}}}]}]}`
	r := start(t, "run", "-c", writeConfig(t, doc), "--listen", "127.0.0.1:0", "--log-format", "json")
	base := "http://" + r.addr
	if a := call(t, http.MethodPost, base+"/pub", `{"n":0}`); a.code != http.StatusInternalServerError || a.body != "" {
		t.Errorf("POST /pub with the broker down at start = %d %q, want 500", a.code, a.body)
	}
	if a := call(t, http.MethodGet, base+"/sub", ""); a.code != http.StatusInternalServerError {
		t.Errorf("GET /sub with the broker down at start = %d %q, want 500", a.code, a.body)
	}
	roundTrip := func(n int) {
		t.Helper()
		body := fmt.Sprintf(`{"n":%d}`, n)
		if a := waitOK(t, http.MethodPost, base+"/pub", body); a.code != http.StatusOK {
			t.Fatalf("POST /pub never succeeded: %d %q\n%s", a.code, a.body, r.stdout)
		}
		if a := waitOK(t, http.MethodGet, base+"/sub", ""); a.code != http.StatusOK || a.body != body {
			t.Fatalf("GET /sub = %d %q, want %s\n%s", a.code, a.body, body, r.stdout)
		}
	}
	if err := mq.Start(); err != nil {
		t.Fatal(err)
	}
	roundTrip(1)
	mq.Stop()
	if a := call(t, http.MethodPost, base+"/pub", `{"n":-1}`); a.code != http.StatusInternalServerError {
		t.Errorf("POST /pub with the broker down mid-way = %d %q, want 500", a.code, a.body)
	}
	if a := call(t, http.MethodGet, base+"/sub", ""); a.code != http.StatusInternalServerError {
		t.Errorf("GET /sub with the broker down mid-way = %d %q, want 500", a.code, a.body)
	}
	if err := mq.Start(); err != nil {
		t.Fatal(err)
	}
	roundTrip(2)
	if code := r.stop(t); code != exitOK {
		t.Errorf("exit %d\n%s", code, r.stderr)
	}
}
