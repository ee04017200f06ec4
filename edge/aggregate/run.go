package aggregate

import (
	"errors"
	"time"

	"github.com/apigw/gateway/edge/cel"

	"github.com/apigw/gateway/edge/proxy"
	"github.com/apigw/gateway/edge/response"
)

// Backend states in Exchange.won besides a winning call index.
const (
	stateFailed = -1 // every copy failed
	stateNotRun = -2 // a sequential chain stopped before this backend
)

// Run executes the pipe for the inbound request that started at start and
// returns its result, valid until Release. Run must be called on the
// handler goroutine (it reads in) and at most once per Exchange.
func (ex *Exchange) Run(in *proxy.Inbound, start time.Time) *Result {
	p := ex.pipe
	for i := range ex.won {
		ex.won[i] = stateNotRun
		ex.fails[i] = 0
		ex.lastFail[i] = -1
	}
	if p.lua != nil {
		// krakend-lua's proxy stage wraps the whole pipe, shadows included.
		if p.lua.HasPre() && !ex.luaProxyPre(p.lua, in, start.Add(p.timeout)) {
			return &ex.result
		}
		if p.lua.SkipNext() {
			// An empty, incomplete response for post, then the client.
			ex.result.Value = response.Merge(ex.scratch, nil)
			if p.lua.HasPost() {
				ex.luaProxyPost(p.lua, start.Add(p.timeout))
			}
			return &ex.result
		}
	}
	for i := range p.shadows {
		p.shadows[i].Call.Shadow(in, p.shadows[i].Timeout)
	}
	switch {
	case len(p.backends) == 1:
		ex.runBackends(0, 1, in, start.Add(p.timeout), start)
	case p.sequential:
		ex.runSequential(in, start)
	default:
		ex.runBackends(0, len(p.backends), in, start.Add(p.merge), start)
	}
	ex.finish()
	if p.lua != nil && p.lua.HasPost() && ex.result.Failed == 0 {
		ex.luaProxyPost(p.lua, start.Add(p.timeout))
	}
	return &ex.result
}

// runSequential runs the backends one after the other within the merge
// deadline. A failure stops the chain; so does an incomplete answer
// (return_error_details), which is kept.
func (ex *Exchange) runSequential(in *proxy.Inbound, start time.Time) {
	outer := start.Add(ex.pipe.merge)
	for i := range ex.pipe.backends {
		ex.runBackends(i, i+1, in, outer, start)
		k := ex.won[i]
		if k < 0 {
			return
		}
		c := &ex.calls[k]
		ex.parts[i] = c.value // visible to the next url_pattern
		if !c.complete {
			return
		}
	}
}

// runBackends runs backends [from, to), each with ConcurrentCalls copies,
// and waits until each backend is decided (a copy produced data, or every
// copy failed) or the outer deadline passes. A single call runs inline on
// the caller's goroutine.
func (ex *Exchange) runBackends(from, to int, in *proxy.Inbound, outer, start time.Time) {
	p := ex.pipe
	inner := outer
	if p.cc > 1 {
		if d := start.Add(p.inner); d.Before(inner) {
			inner = d
		}
	}
	for i := from; i < to; i++ {
		ex.won[i] = stateFailed
	}
	first, last := from*p.cc, to*p.cc
	for k := first; k < last; k++ {
		ex.prepare(k, k/p.cc, in, inner)
	}
	if last-first == 1 {
		ex.safeWork(first)
		ex.decide(first)
		return
	}
	// Without concurrent copies the handler goroutine runs the last call
	// itself instead of idling: one goroutine less per request. (With
	// copies it must stay free to take the first answer.)
	inline := -1
	if p.cc == 1 {
		inline = last - 1
	}
	launched := last - first
	if inline >= 0 {
		launched--
	}
	ex.refs.Add(int32(launched))
	p.calls.Add(launched)
	for k := first; k < last; k++ {
		if k != inline {
			go ex.launchers[k]()
		}
	}
	pending := to - from
	if inline >= 0 {
		ex.safeWork(inline)
		if ex.decide(inline) {
			pending--
		}
	}
	if pending == 0 {
		return
	}
	ex.timer.Reset(time.Until(outer))
	for pending > 0 {
		select {
		case k := <-ex.done:
			if ex.decide(k) {
				pending--
			}
		case <-ex.timer.C:
			// Merge deadline: take what is already there (select picks at
			// random among ready cases), the rest counts as failed.
			for pending > 0 {
				select {
				case k := <-ex.done:
					if ex.decide(k) {
						pending--
					}
				default:
					return
				}
			}
			return
		}
	}
	ex.timer.Stop()
}

// prepare builds call k (a copy for backend i) on the handler goroutine.
func (ex *Exchange) prepare(k, i int, in *proxy.Inbound, deadline time.Time) {
	c := &ex.calls[k]
	b := &ex.pipe.backends[i]
	c.backend = i
	c.deadline = deadline
	c.host = b.Call.Client().Pick()
	c.buildErr = b.Call.BuildRequest(&c.req, c.host, in, ex.parts)
	if b.Lua != nil {
		ex.luaParams(k, i, in)
	}
	c.span = b.Call.StartTrace(&c.req, in)
	if chk, names := b.Call.CEL(); chk != nil {
		ex.celRequest(c, chk, names, in)
	}
}

// celRequest runs the backend's validation/cel request expressions on the
// handler goroutine (they read the inbound request) over the request as
// built for the backend.
func (ex *Exchange) celRequest(c *call, chk *cel.Checks, names []string, in *proxy.Inbound) {
	c.celAt = time.Now()
	if !chk.HasRequest() {
		return
	}
	o := cel.Outbound{Req: &c.req, ParamNames: names, SkipAcceptEncoding: in.Gzip,
		TemplateQuery: ex.pipe.backends[c.backend].Call.AppendTemplateQuery(nil, in, ex.parts)}
	for i := 0; i < in.Params.Len(); i++ {
		o.ParamValues = append(o.ParamValues, in.Params.Value(i))
	}
	if n, ok := chk.CheckRequest(&o, c.celAt); !ok {
		c.celReject, c.celIndex = true, n
	}
}

// celResponse runs the backend's response expressions on call c's data;
// a rejection turns the call into a failure.
func (ex *Exchange) celResponse(c *call, chk *cel.Checks, status int) {
	if !chk.HasResponse() {
		return
	}
	r := cel.Result{Complete: c.complete, Code: status, Value: c.value, Raw: c.raw}
	if n, ok := chk.CheckResponse(&r, c.celAt); !ok {
		c.ok, c.complete, c.value, c.raw, c.status = false, false, nil, nil, 0
		c.reason, c.err = proxy.ReasonRejected, n
	}
}

// launch runs call k on its own goroutine: the goroutine owns call slot k
// and scratch slot k until it signals, then drops its Exchange reference.
func (ex *Exchange) launch(k int) {
	p := ex.pipe // ex may be recycled by unref
	ex.safeWork(k)
	ex.done <- k
	ex.unref()
	p.calls.Done()
}

// safeWork runs work and turns a panic into a failed call: a bug in one
// backend's handling must not take the edge down.
func (ex *Exchange) safeWork(k int) {
	defer ex.recoverCall(k)
	ex.work(k)
}

// recoverCall is deferred by safeWork (recover must be called by the
// deferred function itself).
// It also stamps the call's arrival: the handler goroutine may learn of an
// inline call before the others, but the stamp says which ended first.
func (ex *Exchange) recoverCall(k int) {
	c := &ex.calls[k]
	if recover() != nil {
		if ex.pipe.panics != nil {
			ex.pipe.panics.Inc()
		}
		c.ok, c.complete, c.value, c.raw = false, false, nil, nil
		c.reason = proxy.ReasonInternal
	}
	c.arrival = ex.arrivals.Add(1)
}

// work performs call k behind the backend's protection and rewriting
// (circuit breaker, backend rate limit, martian modifiers, HTTP cache; see
// proxy.Backend.Admit and RoundTrip), then the status check and decoding. The breaker learns the real
// outcome: success is a 200/201 answer that decoded, as in KrakenD, where
// every error of the backend stack counts. It only touches call slot k and
// scratch slot k.
func (ex *Exchange) work(k int) {
	c := &ex.calls[k]
	if s := ex.pipe.backends[c.backend].Lua; s != nil {
		ex.luaWork(k, s)
		return
	}
	call := ex.pipe.backends[c.backend].Call
	var start time.Time
	st := call.Stats()
	if st != nil {
		start = time.Now()
	}
	if c.buildErr != nil {
		// lura fails such a call before it is sent (a GraphQL mutation
		// whose client body is not a JSON object).
		c.err, c.reason = c.buildErr, proxy.ReasonRefused
		c.span.End(0, c.reason.String(), nil)
		st.Observe(start, false, true)
		return
	}
	t, err := call.Admit()
	if err == nil && c.celReject {
		// The breaker counts the rejection as a failure (it wraps
		// krakend-cel in KrakenD's backend stack).
		c.reason, c.err = proxy.ReasonRejected, c.celIndex
		call.Finish(t, true, false)
		c.span.End(0, c.reason.String(), nil)
		return
	}
	if err != nil {
		st.Observe(start, false, true)
		// Kept for the error text (return_error_msg): a backend rate
		// limit reads "rate limit exceded", as KrakenD writes it.
		c.refused, c.err = err == proxy.ErrOpen, err
		c.reason = proxy.ReasonRefused
		c.span.End(0, c.reason.String(), nil)
		return
	}
	lat := ex.pipe.backends[c.backend].Latency
	var sent time.Time
	if lat != nil {
		sent = time.Now()
	}
	reached, err := call.RoundTrip(c.host, &c.req, &c.resp, c.deadline)
	if lat != nil {
		lat.Observe(time.Since(sent).Seconds())
	}
	c.err = err
	if err == nil {
		ex.decode(k)
	} else {
		c.reason = proxy.ReasonOf(err)
	}
	call.Finish(t, reached, c.complete)
	status := 0
	if reached {
		status = c.resp.StatusCode()
	}
	reason := ""
	if !c.ok || c.status != 0 {
		reason = c.reason.String()
	}
	c.span.End(status, reason, &c.resp)
	st.Observe(start, reason == "", reason != "")
}

// decode checks the status of call k's response and decodes its body.
func (ex *Exchange) decode(k int) {
	c := &ex.calls[k]
	b := &ex.pipe.backends[c.backend]
	if b.Format.NoOp() {
		// A no-op backend among several, as lura's no-op response parser:
		// any status, no data.
		c.ok, c.complete = true, true
		return
	}
	status := c.resp.StatusCode()
	if !proxy.IsSuccess(status) {
		c.status = status
		c.reason = proxy.ReasonStatus
		if b.ErrorDetailsKey != "" {
			body, _ := proxy.Body(&c.resp, b.MaxBodySize)
			c.resp.Header.SetNoDefaultContentType(true)
			c.value = response.BackendError(ex.scratch, k, b.ErrorDetailsKey, status, body, c.resp.Header.ContentType())
			c.ok = true // data, but incomplete: KrakenD answers 200 + Completed false
			if chk, _ := b.Call.CEL(); chk != nil {
				ex.celResponse(c, chk, status)
			}
		}
		return
	}
	body, err := proxy.Body(&c.resp, b.MaxBodySize)
	if err != nil {
		c.reason = proxy.BodyReason(err)
		return
	}
	// Zero copy only when it provably yields KrakenD's bytes.
	chk, _ := b.Call.CEL()
	if ex.pipe.raw && response.ValidObject(body) && response.Canonical(body) {
		c.raw, c.ok, c.complete = body, true, true
		if chk != nil {
			ex.celResponse(c, chk, 0)
		}
		return
	}
	v, err := b.Format.Decode(ex.scratch, k, body)
	if err != nil {
		c.reason = proxy.ReasonDecode
		return
	}
	c.value = b.Format.Apply(ex.scratch, k, v)
	c.ok, c.complete = true, true
	if chk != nil {
		ex.celResponse(c, chk, 0)
	}
}

// decide records the outcome of call k and reports whether it decided its
// backend just now: the first copy with data wins; a backend fails when
// all its copies failed (the last failure is kept for return_error_code).
func (ex *Exchange) decide(k int) bool {
	c := &ex.calls[k]
	i := c.backend
	if ex.won[i] >= 0 || ex.fails[i] >= ex.pipe.cc {
		return false // already decided
	}
	if c.ok {
		ex.won[i] = k
		return true
	}
	ex.fails[i]++
	if ex.fails[i] == ex.pipe.cc {
		ex.lastFail[i] = k
		return true
	}
	return false
}

// finish turns the decided calls into the Result: merge in backend order,
// endpoint flatmap, static data.
func (ex *Exchange) finish() {
	p := ex.pipe
	r := &ex.result
	n := len(p.backends)
	got, complete, errored, notRun := 0, true, false, false
	for i := 0; i < n; i++ {
		k := ex.won[i]
		switch {
		case k == stateNotRun:
			complete, notRun = false, true
			ex.parts[i] = nil
			continue
		case k < 0:
			complete, errored = false, true
			// Undecided at the merge deadline: a timeout. Otherwise the
			// reason of the last copy that failed.
			reason := proxy.ReasonTimeout
			if f := ex.lastFail[i]; f >= 0 {
				reason = ex.calls[f].reason
			}
			ex.failed(i, reason)
			ex.parts[i] = nil
			continue
		}
		c := &ex.calls[k]
		if c.status != 0 { // return_error_details data for a failed call
			ex.failed(i, proxy.ReasonStatus)
			// KrakenD renders that error as a struct: fields in order.
			ex.scratch.KeepOrder(c.value.Get(p.backends[i].ErrorDetailsKey))
		}
		if !c.complete {
			complete = false
		}
		ex.parts[i] = c.value
		got++
	}
	r.Complete = complete && got == n
	r.Errored = errored || notRun

	if n == 1 {
		switch k := ex.won[0]; {
		case k >= 0 && ex.calls[k].raw != nil:
			r.Raw = ex.calls[k].raw
		case k >= 0:
			r.Value = ex.calls[k].value
			r.MetaStatus = ex.calls[k].status
			if r.Value == nil { // JSON null: an answer without data, rendered {}
				r.Value = response.Merge(ex.scratch, nil)
			}
			if h := ex.calls[k].headers; len(h) > 0 {
				// lura passes a single backend's response up as is, with
				// the headers its Lua set.
				r.Headers = h
			}
		default:
			ex.failedSingle()
			// A single backend whose circuit is open: 503 with Retry-After
			// (KrakenD answers 500), unless static data covers the failure.
			if k := ex.lastFail[0]; k >= 0 && ex.calls[k].refused {
				r.Unavailable = true
				r.RetryAfter = max(p.backends[0].Call.RetryAfter(), 1)
			}
		}
	} else if got > 0 {
		r.Value = response.Merge(ex.scratch, ex.parts)
		r.Value = p.flatmap.Apply(ex.scratch, r.Value)
	}

	if p.static != nil && p.static.Match(got > 0, errored, r.Complete) {
		r.Value = p.static.Apply(ex.scratch, r.Value)
		r.Raw = nil
	}
}

// failed records that backend i failed for reason: counted in the result
// (the first failure's reason is kept) and in the backend's metrics.
func (ex *Exchange) failed(i int, reason proxy.Reason) {
	r := &ex.result
	if r.Failed == 0 {
		r.Reason = reason
	}
	r.Failed++
	if cnt := ex.pipe.backends[i].Errors[reason]; cnt != nil {
		cnt.Inc()
	}
}

// failedSingle fills the return_error_code fields for a single backend
// that answered with a failing status.
func (ex *Exchange) failedSingle() {
	b := &ex.pipe.backends[0]
	k := ex.lastFail[0]
	if k >= 0 && errors.Is(ex.calls[k].err, errLuaNilURL) {
		ex.result.Status = 500
		ex.result.Recovered = true
		return
	}
	if k >= 0 && isLuaError(ex.calls[k].err) {
		// A script's error is the single backend's answer (lura returns it
		// unmerged): custom_error's status, else 500.
		setLuaError(&ex.result, ex.calls[k].err)
		return
	}
	if !b.ReturnErrorCode || k < 0 {
		return
	}
	c := &ex.calls[k]
	if c.status == 0 {
		return
	}
	r := &ex.result
	r.Status = c.status
	r.ErrBody, _ = proxy.Body(&c.resp, b.MaxBodySize)
	c.resp.Header.SetNoDefaultContentType(true)
	r.ErrContentType = c.resp.Header.ContentType()
}
