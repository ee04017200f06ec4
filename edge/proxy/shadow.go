package proxy

import (
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/modifier"
	"github.com/apigw/gateway/edge/qos/breaker"
)

// shadowCall is one detached copy of a request sent to a shadow backend.
// It owns copies of everything it sends, never the client's request.
type shadowCall struct {
	req      fasthttp.Request
	resp     fasthttp.Response
	host     *Host
	client   *Client
	backend  *Backend
	ticket   breaker.Ticket
	deadline time.Time
}

var shadowPool = sync.Pool{New: func() any { return new(shadowCall) }}

// Shadow sends a copy of the call b would make for in, detached from the
// client request: it runs on its own goroutine with its own timeout, and
// its result is discarded (KrakenD's proxy.shadow). It never blocks: when
// the Client already has MaxShadowCalls in flight, or is closed, the copy
// is dropped and Shadow returns false. A shadow backend keeps its own
// circuit breaker, rate limit and martian request modifiers (a refused
// copy is dropped too), never its cache. The goroutine is owned by the Client, whose Close waits for it.
func (b *Backend) Shadow(in *Inbound, timeout time.Duration) bool {
	c := b.client
	select {
	case c.shadowSem <- struct{}{}:
	default:
		return false
	}
	t, err := b.Admit()
	if err != nil {
		<-c.shadowSem
		return false
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		b.Finish(t, false, false)
		<-c.shadowSem
		return false
	}
	c.shadowWG.Add(1)
	c.mu.Unlock()

	sc := shadowPool.Get().(*shadowCall)
	sc.client = c
	sc.backend, sc.ticket = b, t
	sc.host = c.Pick()
	sc.deadline = time.Now().Add(timeout)
	if err := b.BuildRequest(&sc.req, sc.host, in, nil); err != nil {
		// A GraphQL mutation without a JSON body: nothing to send.
		b.Finish(t, false, false)
		sc.finish()
		return true
	}
	if err := b.mod.ModifyRequest(&sc.req); err == modifier.ErrSkipRoundTrip {
		// A static.Modifier answers the call: nothing to send.
		b.Finish(t, false, false)
		sc.finish()
		return true
	} // other errors never happen in practice; a shadow has no one to tell
	go sc.run()
	return true
}

func (sc *shadowCall) run() {
	defer sc.finish()
	err := sc.host.Do(&sc.req, &sc.resp, sc.deadline)
	sc.backend.Finish(sc.ticket, true, err == nil && sc.resp.StatusCode() < fasthttp.StatusInternalServerError)
}

// finish is deferred by run: it swallows a panic (a shadow call must never
// take the edge down), recycles sc and tells the Client the call is over.
func (sc *shadowCall) finish() {
	_ = recover()
	c := sc.client
	sc.req.Reset()
	sc.resp.Reset()
	sc.host, sc.client, sc.backend, sc.ticket = nil, nil, nil, 0
	shadowPool.Put(sc)
	<-c.shadowSem
	c.shadowWG.Done()
}
