// Package aggregate runs the backend side of one endpoint: a single call,
// a parallel fan-out merged in backend declaration order, or a sequential
// chain whose later calls use fields of earlier responses; with
// concurrent_calls (first good answer wins), return_error_details,
// endpoint flatmap, proxy.static and detached shadow copies. It marks
// partial results instead of dropping them, as KrakenD does with
// X-KrakenD-Completed.
//
// Deadlines follow KrakenD: the endpoint timeout bounds a single backend,
// a fan-out or chain gets 85 % of it (the merge deadline) and
// concurrent_calls copies 75 %. Every call uses fasthttp's DoDeadline, so
// no goroutine outlives its deadline by more than the time to decode what
// it already received.
//
// Concurrency model: a pooled Exchange holds everything one request needs
// (fasthttp requests and responses, the response.Scratch, result slots).
// Requests are built on the handler goroutine, so goroutines never touch
// the *fasthttp.RequestCtx; each goroutine owns one call slot and signals
// on a channel buffered to the number of calls. The Exchange is
// reference-counted: when the handler stops waiting (merge deadline, first
// concurrent answer) the stragglers finish their own call and the last one
// out returns the Exchange to its pool.
//
// aggregate imports edge/proxy, edge/response and edge/lua; it must not import
// edge/plan, edge/server, edge/watch or the control plane.
package aggregate

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/apigw/gateway/edge/cel"
	"github.com/apigw/gateway/edge/lua"
	"github.com/apigw/gateway/edge/proxy"
	"github.com/apigw/gateway/edge/response"
	"github.com/apigw/gateway/edge/tracing"
)

// Counter is the part of a metrics counter the pipe uses (a
// prometheus.Counter satisfies it).
type Counter interface{ Inc() }

// Observer is the part of a histogram the pipe uses (a
// prometheus.Observer satisfies it).
type Observer interface{ Observe(float64) }

// Backend is one non-shadow backend of an endpoint.
type Backend struct {
	Call   *proxy.Backend
	Format *response.Formatter
	// ErrorDetailsKey is "error_<alias>" for return_error_details, else "".
	ErrorDetailsKey string
	// ReturnErrorCode passes a failed single backend's status to the client.
	ReturnErrorCode bool
	// MaxBodySize bounds the decompressed body (0: unbounded).
	MaxBodySize int
	// Errors counts failed calls, indexed by why they failed; a nil entry
	// disables counting that reason.
	Errors [proxy.NumReasons]Counter
	// Latency observes each call's round trip in seconds (sent to answer
	// read, or to the transport's failure; calls refused before sending
	// are not observed); nil observes nothing.
	Latency Observer
	// ErrPrefix is "[METHOD url_pattern]:" as KrakenD words it in
	// return_error_msg texts (placeholders in its {{.Param}} form).
	ErrPrefix string
	// Lua is the backend's modifier/lua-backend; nil: none.
	Lua *lua.Script
}

// Shadow is one shadow backend: a detached copy whose result is discarded.
type Shadow struct {
	Call    *proxy.Backend
	Timeout time.Duration
}

// Config describes one endpoint's backend pipe.
type Config struct {
	Backends []Backend // in declaration order, at least one
	Shadows  []Shadow
	// Sequential chains the backends in order (proxy.sequential).
	Sequential bool
	// ConcurrentCalls fires that many identical calls per backend (>= 1).
	ConcurrentCalls int
	// Timeout is the endpoint timeout.
	Timeout time.Duration
	// Flatmap is the endpoint-level flatmap, applied after the merge when
	// there is more than one backend.
	Flatmap *response.Flatmap
	// Static is proxy.static, or nil.
	Static *response.Static
	// Raw allows a single identity backend's valid JSON object body to be
	// returned untouched (Result.Raw) instead of decoded and re-encoded.
	Raw bool
	// Panics counts backend calls that panicked (a bug; the call fails);
	// nil disables counting.
	Panics Counter
	// Lua is the endpoint's modifier/lua-proxy; nil: none.
	Lua *lua.Script
	// ParamNames are the endpoint parameters in router slot order, for the
	// request params Lua scripts see.
	ParamNames []string
	// Propagated are the sequential_propagated_params (ParsePropagated).
	Propagated []Propagated
}

// Pipe is a compiled endpoint pipe. Immutable and safe for concurrent use.
type Pipe struct {
	backends   []Backend
	shadows    []Shadow
	sequential bool
	cc         int // concurrent calls per backend
	timeout    time.Duration
	merge      time.Duration // 85 % of timeout
	inner      time.Duration // 75 % of timeout (concurrent calls)
	flatmap    *response.Flatmap
	static     *response.Static
	raw        bool
	panics     Counter
	lua        *lua.Script
	paramNames []string
	propagated []Propagated
	// calls counts the call goroutines still running (stragglers
	// included): the pipe owns them and Wait waits for them.
	calls sync.WaitGroup
	pool  sync.Pool // *Exchange sized for this pipe
}

// New compiles cfg.
func New(cfg Config) (*Pipe, error) {
	if len(cfg.Backends) == 0 {
		return nil, errors.New("aggregate: no backend")
	}
	if cfg.Timeout <= 0 {
		return nil, errors.New("aggregate: timeout must be positive")
	}
	for _, b := range cfg.Backends {
		if b.Call == nil || b.Format == nil {
			return nil, errors.New("aggregate: backend without call or formatter")
		}
	}
	cc := cfg.ConcurrentCalls
	if cc < 1 {
		cc = 1
	}
	p := &Pipe{
		backends:   cfg.Backends,
		shadows:    cfg.Shadows,
		sequential: cfg.Sequential && len(cfg.Backends) > 1,
		cc:         cc,
		timeout:    cfg.Timeout,
		merge:      cfg.Timeout * 85 / 100,
		inner:      cfg.Timeout * 75 / 100,
		static:     cfg.Static,
		raw:        cfg.Raw && len(cfg.Backends) == 1 && cc == 1 && cfg.Static == nil,
		panics:     cfg.Panics,
		lua:        cfg.Lua,
		paramNames: cfg.ParamNames,
		propagated: cfg.Propagated,
	}
	if p.lua != nil {
		p.raw = false
	}
	for _, b := range cfg.Backends {
		if b.Lua != nil {
			p.raw = false
		}
	}
	if len(cfg.Backends) > 1 {
		p.flatmap = cfg.Flatmap
	}
	p.pool.New = p.newExchange
	return p, nil
}

// Wait blocks until every call goroutine the pipe started has returned; a
// straggler (a call whose answer came too late to be used) ends by its call
// deadline, the endpoint timeout. Call it once no request uses the pipe any
// more (after the plan holding it was released and its requests drained):
// it must not race with Run.
func (p *Pipe) Wait() { p.calls.Wait() }

// Result is the outcome of a pipe run. Its slices and values live in the
// Exchange and are valid until Exchange.Release.
type Result struct {
	// Value is the merged (and flatmapped, static-merged) data; nil when the
	// pipe produced no data.
	Value *fastjson.Value
	// Raw is set instead of Value when Config.Raw applied: the backend's
	// own body, a valid JSON object.
	Raw []byte
	// Complete is true when every backend answered successfully.
	Complete bool
	// Failed counts backends that failed (error, timeout, bad status, bad body).
	Failed int
	// Reason is why the first failed backend failed (ReasonNone when none
	// did), as the proxy classified it.
	Reason proxy.Reason
	// Status, when non-zero, is the failed single backend's status to
	// answer with (return_error_code); ErrBody and ErrContentType are its
	// body and Content-Type (for router.return_error_msg).
	Status         int
	ErrBody        []byte
	ErrContentType []byte
	// Recovered is set when the only backend's Lua pre set an unparsable
	// url(): KrakenD's executor panics on lura's nil URL and gin's Recovery
	// answers a bare 500 (no body, no X-KrakenD-Completed, whatever
	// return_error_msg says).
	Recovered bool
	// Unavailable is set when the only backend's circuit breaker refused
	// the call: answer 503 with Retry-After (seconds, at least 1), not 500.
	Unavailable bool
	RetryAfter  int64
	// Errored is set when a backend failed without data (or a sequential
	// chain stopped): lura's merge returned an error, so krakend-cel skips
	// the endpoint's response expressions.
	Errored bool
	// MetaStatus is lura's Response.Metadata.StatusCode for validation/cel's
	// resp_metadata_status: a single backend's failing status when
	// return_error_details turned it into data, else 0.
	MetaStatus int
	// Headers are response headers Lua scripts set (lura's
	// Response.Metadata.Headers), written when there is data; nil: none.
	Headers map[string][]string
}

// HasData reports whether the pipe produced something to render.
func (r *Result) HasData() bool { return r.Value != nil || r.Raw != nil }

// call is one backend call slot of an Exchange.
type call struct {
	backend  int // index into Pipe.backends
	host     *proxy.Host
	deadline time.Time
	req      fasthttp.Request
	resp     fasthttp.Response

	// outcome, written by the call's goroutine before it signals
	ok       bool // produced data (success, or return_error_details)
	complete bool
	refused  bool         // the circuit breaker refused the call (never sent)
	status   int          // non-zero when the backend answered with a failing status
	reason   proxy.Reason // why the call failed (ReasonNone when it did not)
	err      error        // the transport (or modifier) error, for return_error_msg
	buildErr error        // BuildRequest's error: the call fails unsent
	arrival  uint64       // when the call ended, from Exchange.arrivals (1 = first)
	value    *fastjson.Value
	raw      []byte
	span     tracing.Call // the call's client span (zero when untraced)
	// celReject is set by prepare when a validation/cel request
	// expression rejected the call (celIndex says which): work then fails
	// it behind the breaker and rate limit, as KrakenD's stack does.
	celReject bool
	celIndex  cel.Rejection
	celAt     time.Time
	// Lua: the request params the backend's script sees, and the response
	// headers its post set (nil without Lua).
	params  map[string]string
	headers map[string][]string
}

func (c *call) reset() {
	c.host = nil
	c.req.Reset()
	c.resp.Reset()
	c.ok, c.complete, c.refused, c.status, c.reason, c.err, c.buildErr = false, false, false, 0, proxy.ReasonNone, nil, nil
	c.arrival = 0
	c.value, c.raw = nil, nil
	c.span = tracing.Call{}
	c.celReject, c.celIndex, c.celAt = false, 0, time.Time{}
	clear(c.headers)
}

// Exchange is the per-request workspace of a Pipe. Acquire one per
// request with Pipe.Acquire, Run it once, render from Scratch and Result,
// then Release it. It is not safe for concurrent use by the caller (the
// pipe's own goroutines coordinate through it).
type Exchange struct {
	pipe     *Pipe
	scratch  *response.Scratch
	calls    []call
	parts    []*fastjson.Value // per backend, for the merge and sequential placeholders
	won      []int             // per backend: winning call index, or stateFailed / stateNotRun
	fails    []int             // per backend: failed copies
	lastFail []int             // per backend: the last failed call, -1 none
	done     chan int          // call indexes, buffered to len(calls)
	// launchers[k] runs call k; built once per Exchange so that starting a
	// goroutine does not allocate a closure per request.
	launchers []func()
	timer     *time.Timer
	refs      atomic.Int32
	// arrivals numbers the calls as they end, in any goroutine: the order
	// in which KrakenD's merge would have received them (return_error_msg
	// lines come in that order).
	arrivals atomic.Uint64
	result   Result
	headers  map[string][]string // Result.Headers of the lua-proxy post
	override proxy.LuaOverride   // the lua-proxy pre's changes (Inbound.Lua)
}

func (p *Pipe) newExchange() any {
	n := len(p.backends) * p.cc
	t := time.NewTimer(time.Hour)
	t.Stop()
	ex := &Exchange{
		pipe:     p,
		calls:    make([]call, n),
		parts:    make([]*fastjson.Value, len(p.backends)),
		won:      make([]int, len(p.backends)),
		fails:    make([]int, len(p.backends)),
		lastFail: make([]int, len(p.backends)),
		done:     make(chan int, n),
		timer:    t,
	}
	ex.launchers = make([]func(), n)
	for k := range ex.launchers {
		ex.launchers[k] = func() { ex.launch(k) }
	}
	return ex
}

// Acquire returns a ready Exchange for one request.
func (p *Pipe) Acquire() *Exchange {
	ex := p.pool.Get().(*Exchange)
	ex.refs.Store(1)
	ex.scratch = response.AcquireScratch(len(ex.calls))
	return ex
}

// Scratch returns the response workspace holding the result values.
func (ex *Exchange) Scratch() *response.Scratch { return ex.scratch }

// Release gives the Exchange back. Goroutines still running keep it alive
// until they finish; ex must not be used after Release.
func (ex *Exchange) Release() { ex.unref() }

func (ex *Exchange) unref() {
	if ex.refs.Add(-1) != 0 {
		return
	}
	// Every goroutine has signalled and gone: drain what the handler did
	// not wait for, and reset for the next request.
	for len(ex.done) > 0 {
		<-ex.done
	}
	for i := range ex.calls {
		ex.calls[i].reset()
	}
	clear(ex.parts)
	ex.arrivals.Store(0)
	ex.result = Result{}
	response.ReleaseScratch(ex.scratch)
	ex.scratch = nil
	ex.pipe.pool.Put(ex)
}
