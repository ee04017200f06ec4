package main

import (
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"

	"github.com/apigw/gateway/edge/agent"
	"github.com/apigw/gateway/edge/auth"
	"github.com/apigw/gateway/edge/mq"
	"github.com/apigw/gateway/edge/plan"
	"github.com/apigw/gateway/edge/qos"
	"github.com/apigw/gateway/edge/server"
	"github.com/apigw/gateway/edge/tracing"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// registries is the state that outlives every plan: upstream clients, JWKS
// keys and verified tokens, rate limiters and breakers, the revocation set
// and the data-plane metrics. One set per process, handed to every
// plan.Build through the Applier, so a swap keeps what unchanged routes use.
type registries struct {
	deps    plan.Deps
	closers []func()
}

// newRegistries builds the registries; rev is the revocation set (loaded
// from disk in managed mode), which the registries close on close.
func newRegistries(reg prometheus.Registerer, log zerolog.Logger, disabled []string, rev *auth.Revocations) (*registries, error) {
	r := &registries{}
	r.deps.DisabledFeatures = disabled
	r.deps.Revocations = rev
	r.closers = append(r.closers, rev.Close)

	m, err := plan.NewMetrics(reg)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("register plan metrics: %w", err)
	}
	r.deps.Metrics = m

	keys, err := auth.NewKeys(auth.KeysConfig{Logger: log})
	if err != nil {
		r.close()
		return nil, err
	}
	r.deps.Keys = keys
	r.closers = append(r.closers, keys.Close)

	q, err := qos.New(qos.Config{Logger: log, OnBreakerStateChange: m.BreakerChanged})
	if err != nil {
		r.close()
		return nil, err
	}
	r.deps.QoS = q
	r.closers = append(r.closers, func() { q.Close() })

	prods := mq.NewProducers(log)
	r.deps.Producers = prods
	r.closers = append(r.closers, prods.Close)
	cons := mq.NewConsumers(log)
	r.deps.Consumers = cons
	r.closers = append(r.closers, cons.Close)
	ps := mq.NewPubSub(log, mq.PubSubServersFromEnv())
	r.deps.PubSub = ps
	r.closers = append(r.closers, ps.Close)

	ups := plan.NewUpstreams()
	r.deps.Upstreams = ups
	r.closers = append(r.closers, ups.Close)

	// telemetry/opentelemetry: OTEL_PROPAGATORS picks the trace context
	// formats (b3, b3multi) as it does for krakend-otel; exporter errors
	// (an unreachable collector) are logged, never fatal.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn().Err(err).Msg("opentelemetry")
	}))
	if err := tracing.CheckPropagators(os.Getenv("OTEL_PROPAGATORS")); err != nil {
		r.close()
		return nil, err
	}
	tr := tracing.NewRegistry(tracing.Options{Logger: log, Propagators: os.Getenv("OTEL_PROPAGATORS"), Version: plan.Version})
	r.deps.Tracers = tr
	r.closers = append(r.closers, tr.Close)
	return r, nil
}

// close releases the registries in reverse order of creation; call it once
// the server has stopped (no plan serves any more).
func (r *registries) close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
	r.closers = nil
}

// agentTarget is the Applier's Target: it swaps each plan into the HTTP
// server, then makes the plan's async agents the running ones (an agent
// the new plan keeps unchanged keeps its broker connection).
type agentTarget struct {
	srv    *server.Server
	agents *agent.Runner
}

func (t agentTarget) Swap(p *plan.Plan, version uint64, sha string) {
	t.srv.Swap(p, version, sha)
	t.agents.Sync(p.Agents())
}

func (t agentTarget) Current() (uint64, string) { return t.srv.Current() }

// newAgents returns the process's agent runner, its metrics on reg.
func newAgents(reg prometheus.Registerer, log zerolog.Logger) (*agent.Runner, error) {
	return agent.New(agent.Config{Logger: log, Registerer: reg})
}

// agentStates converts the runner's agent states for the sync stream.
func agentStates(r *agent.Runner) []*gatewayv1.AgentState {
	var out []*gatewayv1.AgentState
	for _, s := range r.Status() {
		st := &gatewayv1.AgentState{
			Name: s.Name, State: string(s.State), SinceUnixMs: s.Since.UnixMilli(),
			Retries: s.Retries, LastError: s.LastError,
		}
		if !s.LastPing.IsZero() {
			st.LastPingUnixMs = s.LastPing.UnixMilli()
		}
		out = append(out, st)
	}
	return out
}
