package plan

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/proxy"
	"github.com/apigw/gateway/edge/tracing"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
	"github.com/apigw/gateway/proto/violation"
)

// MaxAgentWorkers bounds an agent's consumer.workers on the edge.
const MaxAgentWorkers = 1024

// Agent is the compiled pipe of one async agent: what runs for each
// message the agent consumes. It belongs to the Plan that built it and is
// safe for concurrent use; the edge's agent runner (edge/agent) owns the
// connection and calls Process.
type Agent struct {
	spec   *gatewayv1.AsyncAgent
	ep     *endpoint
	tracer *tracing.Tracer // nil without telemetry/opentelemetry
	span   string          // the message span's name
}

// Agents returns the snapshot's async agents in config order (nil for a
// nil Plan). The slice must not be modified.
func (p *Plan) Agents() []*Agent {
	if p == nil {
		return nil
	}
	return p.agents
}

// Name returns the agent's name, its identity across snapshots.
func (a *Agent) Name() string { return a.spec.GetName() }

// Spec returns the agent's compiled settings (consumer, connection,
// driver). It must not be modified.
func (a *Agent) Spec() *gatewayv1.AsyncAgent { return a.spec }

// PipeError is why a message's pipe failed: the backends' errors as
// KrakenD words them. The message is then not acknowledged.
type PipeError struct{ Text string }

func (e *PipeError) Error() string { return "agent pipe: " + e.Text }

// agentCtxPool holds the request contexts messages are wrapped in.
var agentCtxPool = sync.Pool{New: func() any { return new(fasthttp.RequestCtx) }}

// Process runs one message through the agent's pipe, as lura's async agent
// does: a request with the message as its body, no parameters and no
// headers, bounded by the consumer timeout. It returns nil when every
// backend succeeded (for a no-op pipe: when the backend answered), which
// is when the message may be acknowledged. It never panics.
func (a *Agent) Process(body []byte) (err error) {
	ep := a.ep
	start := time.Now()
	rc := agentCtxPool.Get().(*fasthttp.RequestCtx)
	st := statePool.Get().(*reqState)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("agent pipe: internal error (panic: %v)", r)
			// st and rc may be inconsistent: let the GC have them.
			return
		}
		if st.trace.Traced() {
			st.trace.End(rc)
			st.trace.Reset()
		}
		st.in.Clear()
		st.params.Reset()
		statePool.Put(st)
		rc.Request.Reset()
		rc.Response.Reset()
		agentCtxPool.Put(rc)
	}()
	rc.Request.Header.SetMethod(fasthttp.MethodPost)
	rc.Request.SetRequestURI("/")
	rc.Request.SetBody(body)
	in := &st.in
	in.Reset(&rc.Request, &st.params)
	// Each message is a trace of its own (telemetry/opentelemetry): a
	// server span named after the agent, the proxy span, a span per call.
	a.tracer.Start(&st.trace, rc)
	if st.trace.Traced() {
		in.Trace = &st.trace
		st.trace.SetRoute(a.span, a.spec.GetName())
	}
	defer func() {
		if err != nil {
			rc.Response.SetStatusCode(fasthttp.StatusInternalServerError)
		} else if rc.Response.StatusCode() == 0 {
			rc.Response.SetStatusCode(fasthttp.StatusOK)
		}
	}()
	if ep.noop != nil {
		for i := range ep.shadows {
			ep.shadows[i].Call.Shadow(in, ep.shadows[i].Timeout)
		}
		callErr := ep.noop.ServeNoOp(rc, in, start.Add(ep.timeout))
		if callErr == nil {
			ep.metrics.observe(rc.Response.StatusCode(), time.Since(start).Seconds())
			return nil
		}
		if c := ep.noopErrors[proxy.ReasonOf(callErr)]; c != nil {
			c.Inc()
		}
		ep.metrics.observe(fasthttp.StatusInternalServerError, time.Since(start).Seconds())
		var ce *proxy.CallError
		if errors.As(callErr, &ce) {
			return &PipeError{Text: string(proxy.AppendCallError(nil, ce.Method, ce.URL, ce.Err))}
		}
		return &PipeError{Text: callErr.Error()}
	}
	ex := ep.pipe.Acquire()
	st.trace.StartProxy(ep.trace, ep.proxySpan, &rc.Request.Header)
	r := ex.Run(in, start)
	st.trace.EndProxy(r.Complete, r.Failed)
	if !r.Complete {
		text := string(ex.AppendErrorText(nil))
		if text == "" {
			text = "a backend failed"
		}
		err = &PipeError{Text: text}
		ep.metrics.observe(fasthttp.StatusInternalServerError, time.Since(start).Seconds())
	} else {
		ep.metrics.observe(fasthttp.StatusOK, time.Since(start).Seconds())
	}
	ex.Release()
	return err
}

// agents compiles the snapshot's async agents.
func (b *builder) agents() []*Agent {
	var out []*Agent
	seen := map[string]int{}
	for i, spec := range b.snap.GetAsyncAgents() {
		path := fmt.Sprintf("async_agents[%d]", i)
		nviol := len(b.violations)
		name := spec.GetName()
		switch prev, dup := seen[name]; {
		case name == "":
			b.violate(path+".name", violation.Required, "an agent needs a name")
		case dup:
			b.violate(path+".name", violation.Duplicate, fmt.Sprintf("%q is also the name of async_agents[%d]", name, prev))
		default:
			seen[name] = i
		}
		if w := spec.GetConsumer().GetWorkers(); w < 1 || w > MaxAgentWorkers {
			b.violate(path+".consumer.workers", violation.Invalid, fmt.Sprintf("%d: must be between 1 and %d", w, MaxAgentWorkers))
		}
		if spec.GetConsumer().GetTimeoutMs() <= 0 {
			b.violate(path+".consumer.timeout_ms", violation.Invalid, "must be positive")
		}
		switch strings.ToLower(spec.GetConnection().GetBackoffStrategy()) {
		case "", "fallback", "linear", "linear-jitter", "exponential", "exponential-jitter":
		default:
			b.violate(path+".connection.backoff_strategy", violation.Unsupported, fmt.Sprintf("%q is not a backoff strategy of this edge", spec.GetConnection().GetBackoffStrategy()))
		}
		if spec.GetAmqp().GetHost() == "" {
			b.violate(path+".amqp", violation.Required, "an agent needs the async/amqp driver (its host)")
		}
		if spec.GetEndpoint() == nil {
			b.violate(path+".endpoint", violation.Required, "an agent needs its pipe")
			continue
		}
		b.inAgent = true
		ep := b.endpointAt(path+".endpoint", spec.GetEndpoint(), nil)
		b.inAgent = false
		if ep == nil || len(b.violations) > nviol {
			continue
		}
		if b.tracer != nil {
			ep.proxySpan = "proxy " + name
		}
		out = append(out, &Agent{spec: spec, ep: ep, tracer: b.tracer, span: "AsyncAgent " + name})
	}
	return out
}
