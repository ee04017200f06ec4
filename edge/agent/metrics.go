package agent

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gw_edge_agent_* families, labelled by agent name.
type metrics struct {
	messages    *prometheus.CounterVec // agent, result
	reconnects  *prometheus.CounterVec
	connected   *prometheus.GaugeVec
	queued      *prometheus.GaugeVec
	consumed    *prometheus.CounterVec
	redelivered *prometheus.CounterVec
}

// Message results of gw_edge_agent_messages_total.
const (
	resultAcked     = "acked"     // the pipe succeeded, the message was acknowledged
	resultFailed    = "failed"    // the pipe failed (then requeued or discarded, or lost with auto_ack)
	resultRequeued  = "requeued"  // nacked back to the queue after a failure
	resultDiscarded = "discarded" // nacked without requeue (nack_discard)
)

func newMetrics() *metrics {
	return &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gw_edge_agent_messages_total",
			Help: "Messages async agents processed, by agent and result (acked, failed, requeued, discarded).",
		}, []string{"agent", "result"}),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gw_edge_agent_messages_consumed_total",
			Help: "Messages async agents received from their broker, by agent.",
		}, []string{"agent"}),
		redelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gw_edge_agent_messages_redelivered_total",
			Help: "Messages received again after an earlier delivery was not acknowledged (retried), by agent.",
		}, []string{"agent"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gw_edge_agent_reconnects_total",
			Help: "Broker sessions of async agents that failed or ended and were retried, by agent.",
		}, []string{"agent"}),
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gw_edge_agent_connected",
			Help: "1 while the async agent consumes from its broker, 0 otherwise.",
		}, []string{"agent"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gw_edge_agent_queue_messages",
			Help: "Messages waiting in the async agent's queue (its lag), read every health_interval.",
		}, []string{"agent"}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.messages, m.consumed, m.redelivered, m.reconnects, m.connected, m.queued}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	var errs []error
	for _, c := range m.collectors() {
		errs = append(errs, reg.Register(c))
	}
	return errors.Join(errs...)
}

// agentMetrics are one agent's children.
type agentMetrics struct {
	acked, failed, requeued, discarded prometheus.Counter
	consumed, redelivered, reconnects  prometheus.Counter
	conn, queued                       prometheus.Gauge
}

func (m *metrics) agent(name string) *agentMetrics {
	return &agentMetrics{
		acked:       m.messages.WithLabelValues(name, resultAcked),
		failed:      m.messages.WithLabelValues(name, resultFailed),
		requeued:    m.messages.WithLabelValues(name, resultRequeued),
		discarded:   m.messages.WithLabelValues(name, resultDiscarded),
		consumed:    m.consumed.WithLabelValues(name),
		redelivered: m.redelivered.WithLabelValues(name),
		reconnects:  m.reconnects.WithLabelValues(name),
		conn:        m.connected.WithLabelValues(name),
		queued:      m.queued.WithLabelValues(name),
	}
}

func (am *agentMetrics) connected(up bool) {
	if up {
		am.conn.Set(1)
	} else {
		am.conn.Set(0)
	}
}

// forget drops a removed agent's children.
func (m *metrics) forget(name string) {
	for _, r := range []string{resultAcked, resultFailed, resultRequeued, resultDiscarded} {
		m.messages.DeleteLabelValues(name, r)
	}
	m.consumed.DeleteLabelValues(name)
	m.redelivered.DeleteLabelValues(name)
	m.reconnects.DeleteLabelValues(name)
	m.connected.DeleteLabelValues(name)
	m.queued.DeleteLabelValues(name)
}
