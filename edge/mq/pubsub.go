package mq

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"net/url"
	"os"
	pathpkg "path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// PubSubServers are the brokers of the Pub/Sub backends. As krakend-pubsub
// (gocloud's default URL openers), a backend's URL names only the subject,
// exchange or queue; the server is the edge process's.
type PubSubServers struct {
	NATS   string // NATS_SERVER_URL
	Rabbit string // RABBIT_SERVER_URL
}

// PubSubServersFromEnv reads NATS_SERVER_URL and RABBIT_SERVER_URL, the
// variables KrakenD reads.
func PubSubServersFromEnv() PubSubServers {
	return PubSubServers{NATS: os.Getenv("NATS_SERVER_URL"), Rabbit: os.Getenv("RABBIT_SERVER_URL")}
}

// redialWait is the wait between two attempts to reach a Pub/Sub server
// that has never answered (nats.go reconnects by itself afterwards).
const redialWait = time.Second

// PubSub is the process's registry of Pub/Sub clients: one connection per
// server, dialled once on first use and kept up (nats.go reconnects by
// itself; a closed RabbitMQ connection is dialled again), and the
// subscriptions, reference counted by the plans that use them so a push
// that keeps a subscriber keeps its subscription and what it has buffered.
// Safe for concurrent use; the zero value is not usable (NewPubSub).
type PubSub struct {
	log     zerolog.Logger
	servers PubSubServers

	natsOnce sync.Once
	nats     *natsConn
	rabbitMu sync.Mutex
	rabbit   *rabbitConn
	subs     pool[string, pubSubSub]
	topics   pool[string, pubSubTopic]
	ctx      context.Context
	cancel   context.CancelFunc
}

// pubSubSub and pubSubTopic are a driver's subscription and topic.
type pubSubSub interface {
	receive(deadline time.Time) ([]byte, func(), error) // body, ack
	close()
}

type pubSubTopic interface {
	send(deadline time.Time, metadata map[string]string, body []byte) error
	close()
}

// NewPubSub returns an empty registry for servers.
func NewPubSub(log zerolog.Logger, servers PubSubServers) *PubSub {
	ctx, cancel := context.WithCancel(context.Background())
	return &PubSub{
		log: log.With().Str("component", "pubsub").Logger(), servers: servers,
		subs: newPool[string, pubSubSub]("pubsub subscriptions"), topics: newPool[string, pubSubTopic]("pubsub topics"),
		ctx: ctx, cancel: cancel,
	}
}

// PubSubClient is one Pub/Sub backend: a publisher sends each call's
// request, a subscriber answers each call with one message. It is a
// proxy.Transport.
type PubSubClient struct {
	url   string
	sub   pubSubSub
	topic pubSubTopic
	// valid is the backend decoder's check: a message it refuses fails the
	// call and is not acknowledged, as in KrakenD.
	valid func([]byte) bool
}

// ParsePubSubURL splits a backend's URL (host[0] + topic_url) into its
// driver scheme and name (subject, exchange or queue) and checks its query
// as gocloud v0.37's openers do.
func ParsePubSubURL(raw string, subscriber bool) (scheme, name string, q url.Values, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", nil, err
	}
	name = pathpkg.Join(u.Host, u.Path)
	q = u.Query()
	switch u.Scheme {
	case "nats":
		for k := range q {
			if l := strings.ToLower(k); l != "natsv2" && (!subscriber || l != "queue") {
				return "", "", nil, fmt.Errorf("invalid query parameter %s", k)
			}
		}
	case "rabbit":
		for k := range q {
			return "", "", nil, fmt.Errorf("invalid query parameter %q", k)
		}
	default:
		return "", "", nil, fmt.Errorf("no Pub/Sub driver for scheme %q (served: nats, rabbit)", u.Scheme)
	}
	if name == "" || name == "." {
		return "", "", nil, errors.New("the URL names no subject, exchange or queue")
	}
	return u.Scheme, name, q, nil
}

// Acquire returns the client of one backend. Release it when the plan that
// uses it goes.
func (ps *PubSub) Acquire(rawURL string, subscriber bool, valid func([]byte) bool) (*PubSubClient, error) {
	if ps.ctx.Err() != nil {
		return nil, errors.New("pubsub: closed")
	}
	scheme, name, q, err := ParsePubSubURL(rawURL, subscriber)
	if err != nil {
		return nil, err
	}
	c := &PubSubClient{url: rawURL, valid: valid}
	switch scheme {
	case "nats":
		v2, err := natsV2(q)
		if err != nil {
			return nil, err
		}
		nc := ps.natsConn()
		if subscriber {
			c.sub, err = ps.subs.acquire(rawURL, func() pubSubSub { return nc.subscribe(name, q.Get("queue"), v2) })
		} else {
			c.topic, err = ps.topics.acquire(rawURL, func() pubSubTopic { return &natsTopic{c: nc, subject: name, v2: v2} })
		}
		if err != nil {
			return nil, err
		}
	case "rabbit":
		rc := ps.rabbitConn()
		if subscriber {
			c.sub, err = ps.subs.acquire(rawURL, func() pubSubSub { return rc.subscribe(name) })
		} else {
			c.topic, err = ps.topics.acquire(rawURL, func() pubSubTopic { return rc.topic(name) })
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Release gives a client back; a subscription closes with its last user.
func (ps *PubSub) Release(c *PubSubClient) {
	if c.sub != nil {
		ps.subs.release(c.url)
	} else {
		ps.topics.release(c.url)
	}
}

// Close closes every subscription and connection. Idempotent.
func (ps *PubSub) Close() {
	ps.subs.closeAll()
	ps.topics.closeAll()
	ps.cancel()
	ps.natsOnce.Do(func() {}) // no connection after Close
	if ps.nats != nil {
		ps.nats.close()
	}
	ps.rabbitMu.Lock()
	rc := ps.rabbit
	ps.rabbitMu.Unlock()
	if rc != nil {
		rc.close()
	}
}

// natsV2 reads the natsv2 query parameter as gocloud does: present without a
// value (or empty) is true.
func natsV2(q url.Values) (bool, error) {
	for k, v := range q {
		if strings.ToLower(k) != "natsv2" {
			continue
		}
		if len(v) != 1 {
			return false, errors.New("natsv2: one value at most")
		}
		if v[0] == "" {
			return true, nil
		}
		return strconv.ParseBool(v[0])
	}
	return false, nil
}

// ErrNoServer fails the calls of a driver whose server variable is unset.
type ErrNoServer string

func (e ErrNoServer) Error() string { return string(e) + " environment variable not set" }

// Do publishes the request (publisher) or answers one message (subscriber).
func (c *PubSubClient) Do(req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) error {
	if c.topic != nil {
		// krakend-pubsub: the metadata is the first value of each header the
		// backend request carries; the body is the request's body.
		md := map[string]string{}
		for k, v := range req.Header.All() {
			name := string(k)
			if skipped[name] {
				continue
			}
			if _, dup := md[name]; !dup {
				md[name] = string(v)
			}
		}
		if err := c.topic.send(deadline, md, append([]byte(nil), req.Body()...)); err != nil {
			return err
		}
		resp.Reset()
		resp.SetStatusCode(fasthttp.StatusOK)
		resp.Header.SetContentType("application/json")
		resp.SetBodyString("null")
		return nil
	}
	body, ack, err := c.sub.receive(deadline)
	if err != nil {
		return err
	}
	if c.valid != nil && !c.valid(body) {
		// KrakenD returns the decoding error without acknowledging.
		return errors.New("message body refused by the backend encoding")
	}
	if ack != nil {
		ack()
	}
	resp.Reset()
	resp.SetStatusCode(fasthttp.StatusOK)
	resp.Header.SetContentType("application/json")
	resp.SetBody(body)
	return nil
}

// --- NATS ---

// natsConn is the NATS_SERVER_URL connection: dialled in the background
// until it first succeeds, then kept up by nats.go's reconnects (forever:
// KrakenD's nats.go gives up after 60 attempts and fails every later call).
type natsConn struct {
	log    zerolog.Logger
	server string

	mu   sync.Mutex // guards the fields below
	nc   *nats.Conn
	err  error                 // the last dial error, for the calls made before a connection
	subs map[*natsSub]struct{} // subscribed as soon as the connection is up
	done chan struct{}         // closed by close
	wg   sync.WaitGroup
}

func (ps *PubSub) natsConn() *natsConn {
	ps.natsOnce.Do(func() {
		ps.nats = &natsConn{log: ps.log, server: ps.servers.NATS, subs: map[*natsSub]struct{}{}, done: make(chan struct{})}
		if ps.servers.NATS == "" {
			ps.nats.err = ErrNoServer("NATS_SERVER_URL")
			return
		}
		ps.nats.wg.Add(1)
		go ps.nats.dial()
	})
	return ps.nats
}

func (c *natsConn) dial() {
	defer c.wg.Done()
	for {
		nc, err := nats.Connect(c.server, nats.Name("gw-edge"), nats.MaxReconnects(-1), nats.Timeout(5*time.Second),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				c.log.Warn().Err(err).Msg("nats disconnected; reconnecting")
			}),
			nats.ReconnectHandler(func(*nats.Conn) { c.log.Info().Msg("nats reconnected") }))
		c.mu.Lock()
		select {
		case <-c.done:
			c.mu.Unlock()
			if nc != nil {
				nc.Close()
			}
			return
		default:
		}
		if err == nil {
			c.nc, c.err = nc, nil
			for s := range c.subs {
				s.subscribe(nc)
			}
			c.mu.Unlock()
			c.log.Info().Str("server", redact(c.server)).Msg("nats connected")
			return
		}
		c.err = fmt.Errorf("failed to dial NATS_SERVER_URL %q: %w", redact(c.server), err)
		c.mu.Unlock()
		c.log.Debug().Err(err).Msg("nats connection attempt failed")
		t := time.NewTimer(redialWait)
		select {
		case <-c.done:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// conn returns the connection, or the reason there is none.
func (c *natsConn) conn() (*nats.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc == nil {
		if c.err == nil {
			return nil, ErrNotConnected
		}
		return nil, c.err
	}
	return c.nc, nil
}

func (c *natsConn) close() {
	c.mu.Lock()
	select {
	case <-c.done:
	default:
		close(c.done)
	}
	nc := c.nc
	c.mu.Unlock()
	c.wg.Wait()
	if nc != nil {
		nc.Close()
	}
}

func (c *natsConn) subscribe(subject, queue string, v2 bool) *natsSub {
	s := &natsSub{c: c, subject: subject, queue: queue, v2: v2}
	c.mu.Lock()
	c.subs[s] = struct{}{}
	if c.nc != nil {
		s.subscribe(c.nc)
	}
	c.mu.Unlock()
	return s
}

type natsTopic struct {
	c       *natsConn
	subject string
	v2      bool
}

// send publishes as gocloud's natspubsub does: without natsv2 the raw body
// when there is no metadata, else the gob-encoded metadata then body; with
// natsv2 the body with the metadata as (query-escaped) NATS headers. nats.go
// buffers while it reconnects, so a publish then succeeds (as KrakenD's).
func (t *natsTopic) send(_ time.Time, md map[string]string, body []byte) error {
	nc, err := t.c.conn()
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: t.subject, Data: body}
	if t.v2 {
		msg.Header = nats.Header{}
		for k, v := range md {
			msg.Header[url.QueryEscape(k)] = []string{url.QueryEscape(v)}
		}
	} else if len(md) > 0 {
		var buf bytes.Buffer
		enc := gob.NewEncoder(&buf)
		if err := enc.Encode(md); err != nil {
			return err
		}
		if err := enc.Encode(body); err != nil {
			return err
		}
		msg.Data = buf.Bytes()
	}
	return nc.PublishMsg(msg)
}

func (t *natsTopic) close() {}

// natsSub is one NATS subscription (a queue subscription with ?queue=).
// NATS delivers at most once: what arrives while no call waits stays in the
// subscription's buffer for the next call.
type natsSub struct {
	c       *natsConn
	subject string
	queue   string
	v2      bool

	mu  sync.Mutex // guards sub
	sub *nats.Subscription
}

// subscribe is called with c.mu held.
func (s *natsSub) subscribe(nc *nats.Conn) {
	var sub *nats.Subscription
	var err error
	if s.queue != "" {
		sub, err = nc.QueueSubscribeSync(s.subject, s.queue)
	} else {
		sub, err = nc.SubscribeSync(s.subject)
	}
	if err != nil {
		s.c.log.Error().Err(err).Str("subject", s.subject).Msg("nats subscribe")
		return
	}
	s.mu.Lock()
	s.sub = sub
	s.mu.Unlock()
}

func (s *natsSub) receive(deadline time.Time) ([]byte, func(), error) {
	s.mu.Lock()
	sub := s.sub
	s.mu.Unlock()
	if sub == nil {
		if _, err := s.c.conn(); err != nil {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("not subscribed to %q", s.subject)
	}
	wait := time.Until(deadline)
	if wait <= 0 {
		return nil, nil, ErrNoMessage
	}
	msg, err := sub.NextMsg(wait)
	if err != nil {
		if errors.Is(err, nats.ErrTimeout) {
			return nil, nil, ErrNoMessage
		}
		return nil, nil, err
	}
	if s.v2 {
		return msg.Data, nil, nil
	}
	body, err := decodeGobMessage(msg.Data)
	return body, nil, err // NATS has no acknowledgement
}

// decodeGobMessage reads natspubsub's (v1) encoding: gob metadata then gob
// body; data that does not start with gob metadata is a plain body.
func decodeGobMessage(data []byte) ([]byte, error) {
	dec := gob.NewDecoder(bytes.NewReader(data))
	var md map[string]string
	if err := dec.Decode(&md); err != nil {
		return data, nil
	}
	var body []byte
	if err := dec.Decode(&body); err != nil {
		return nil, fmt.Errorf("decode message body: %w", err)
	}
	return body, nil
}

func (s *natsSub) close() {
	s.c.mu.Lock()
	delete(s.c.subs, s)
	s.c.mu.Unlock()
	s.mu.Lock()
	sub := s.sub
	s.sub = nil
	s.mu.Unlock()
	if sub != nil {
		_ = sub.Unsubscribe()
	}
}

// redact hides a URL's password.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}
