package service

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// metrics are the control plane's Prometheus series, on a registry owned by
// the Service (no global state, so tests and several services in one process
// do not collide).
type metrics struct {
	reg             *prometheus.Registry
	streamsOpen     prometheus.Gauge
	versionsCreated prometheus.Counter
	nacks           *prometheus.CounterVec
	snapshotBytes   prometheus.Gauge
	convergence     prometheus.Histogram

	revocationsAppended   prometheus.Counter
	revocationSeq         prometheus.Gauge
	revocationResets      prometheus.Counter
	revocationsCompacted  prometheus.Counter
	orphanChunks          prometheus.Counter
	revocationPropagation prometheus.Histogram

	syncCertExpiry prometheus.Gauge
	edgeCertExpiry *prometheus.GaugeVec
	streamsRefused *prometheus.CounterVec
	fleetEvicted   prometheus.Counter
	// fleetPublished and fleetPublishErrors: the fleet board (etcd).
	fleetPublished, fleetPublishErrors prometheus.Counter
	revocationRepairs                  prometheus.Counter
	streamsAged                        prometheus.Counter

	auditRecords *prometheus.CounterVec
	auditErrors  prometheus.Counter
}

func newMetrics(edges prometheus.Collector) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		streamsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gw_controlplane_streams_open",
			Help: "Open edge Sync streams.",
		}),
		versionsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gw_controlplane_config_versions_total",
			Help: "Configuration versions created by this process (pushes and rollbacks that stored a new version).",
		}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gw_controlplane_nacks_total",
			Help: "Snapshots rejected by edges, by reason (feature, schema, or the first violation's kind; other without violations). The control plane validates every config, so any NACK means version skew or a bug.",
		}, []string{"reason"}),
		snapshotBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gw_controlplane_snapshot_bytes",
			Help: "Size of the current snapshot payload sent to edges.",
		}),
		convergence: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gw_controlplane_config_convergence_seconds",
			Help:    "Time from a version's creation to each edge's ACK of it.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300},
		}),
		revocationsAppended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gw_controlplane_revocations_total",
			Help: "Revocations appended to the log by this process.",
		}),
		revocationSeq: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gw_controlplane_revocation_seq",
			Help: "Newest seq of the revocation log distributed to edges.",
		}),
		revocationResets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gw_controlplane_revocation_resets_total",
			Help: "Full revocation sets sent to edges that were too far behind, below the compaction point or ahead of the log.",
		}),
		revocationsCompacted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gw_controlplane_revocations_compacted_total",
			Help: "Expired revocations deleted from the log.",
		}),
		orphanChunks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gw_controlplane_store_orphan_contents_deleted_total",
			Help: "Chunked contents deleted from etcd because the commit they were written for never happened (it lost its race, or its process died).",
		}),
		revocationPropagation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gw_controlplane_revocation_propagation_seconds",
			Help:    "Time from a revocation's append to each connected edge's ACK of it (one sample per ACK, for the oldest entry it newly covers).",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60},
		}),
		syncCertExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gw_controlplane_sync_cert_expiry_timestamp_seconds",
			Help: "When the sync listener's TLS certificate expires (unix seconds; 0 without TLS).",
		}),
		edgeCertExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gw_controlplane_edge_cert_expiry_timestamp_seconds",
			Help: "When each connected edge's client certificate expires (unix seconds), by authenticated node id.",
		}, []string{"node_id"}),
		streamsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gw_controlplane_streams_refused_total",
			Help: "Sync streams refused before they were served, by reason: identity (Hello names another node than the certificate), hello (a field over its limits), rate (admission rate limit), fleet_full.",
		}, []string{"reason"}),
		fleetEvicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gw_controlplane_fleet_evicted_total",
			Help: "Disconnected edges dropped from the registry after the fleet TTL.",
		}),
		fleetPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gw_controlplane_fleet_published_entries_total",
			Help: "Entries (edges and this replica's own record) written to the fleet board the replicas share (etcd store only).",
		}),
		fleetPublishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gw_controlplane_fleet_publish_errors_total",
			Help: "Failed writes to the fleet board (retried at the next interval; a lost lease is replaced and everything written again).",
		}),
		revocationRepairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gw_controlplane_revocation_repairs_total",
			Help: "Revocation resets sent because an edge's reported set differed from the log at its seq.",
		}),
		streamsAged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gw_controlplane_streams_aged_total",
			Help: "Sync streams ended because they reached the maximum stream age (the edge reconnects, possibly to another replica).",
		}),
	}
	m.auditRecords = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gw_controlplane_audit_records_total",
		Help: "Audit records by action (push, rollback, revoke, issue_certificate, or the refused method) and outcome (created, unchanged, refused, failed): pushes by result are action=\"push\".",
	}, []string{"action", "outcome"})
	m.auditErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gw_controlplane_audit_write_errors_total",
		Help: "Audit records that could not be stored (they are still written to the audit log stream).",
	})
	for _, a := range []string{"push", "rollback", "revoke"} {
		for _, o := range []string{outcomeCreated, outcomeUnchanged, outcomeRefused, outcomeFailed} {
			m.auditRecords.WithLabelValues(a, o)
		}
	}
	for _, r := range []string{refusedIdentity, refusedHello, refusedRate, refusedFleetFull} {
		m.streamsRefused.WithLabelValues(r)
	}
	for _, r := range nackReasons {
		m.nacks.WithLabelValues(r)
	}
	m.reg.MustRegister(
		m.auditRecords, m.auditErrors,
		m.syncCertExpiry, m.edgeCertExpiry, m.streamsRefused, m.fleetEvicted, m.fleetPublished, m.fleetPublishErrors, m.revocationRepairs, m.streamsAged,
		m.streamsOpen, m.versionsCreated, m.nacks, m.snapshotBytes, m.convergence, edges,
		m.revocationsAppended, m.revocationSeq, m.revocationResets, m.revocationsCompacted, m.orphanChunks, m.revocationPropagation,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// edgeStates lists every value of the state label, so each series exists
// (with 0) before the first edge connects.
var edgeStates = []string{stateInSync, stateStale, stateRejected, stateDisconnected}

// edgesCollector computes gw_controlplane_edges{state} and
// gw_controlplane_edges_by_region{region,state} at scrape time from the
// fleet registry, so the gauges never drift from what Status reports.
type edgesCollector struct {
	desc, byRegion *prometheus.Desc
	count          func() map[regionState]int // edge counts by region and state
}

// regionState keys the edge counts.
type regionState struct{ region, state string }

func newEdgesCollector(count func() map[regionState]int) *edgesCollector {
	return &edgesCollector{
		desc: prometheus.NewDesc("gw_controlplane_edges", "Edges seen since the control plane started, by state.", []string{"state"}, nil),
		byRegion: prometheus.NewDesc("gw_controlplane_edges_by_region",
			"Edges seen since the control plane started, by the region they announced and state (only regions that have edges).", []string{"region", "state"}, nil),
		count: count,
	}
}

func (c *edgesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc; ch <- c.byRegion }

func (c *edgesCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.count()
	byState := make(map[string]int, len(edgeStates))
	regions := map[string]bool{}
	for k, n := range counts {
		byState[k.state] += n
		regions[k.region] = true
	}
	for _, s := range edgeStates {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(byState[s]), s)
	}
	for r := range regions {
		for _, s := range edgeStates {
			ch <- prometheus.MustNewConstMetric(c.byRegion, prometheus.GaugeValue, float64(counts[regionState{r, s}]), r, s)
		}
	}
}

// nackReasons are the reason label values precreated at 0; a violation
// kind not listed still gets its own series.
var nackReasons = []string{"feature", "schema", "invalid", "unsupported", "other"}

// nackReason classifies a NACK for gw_controlplane_nacks_total: an edge
// lacking a feature or the schema (version skew), else the kind of its
// first violation, else "other".
func nackReason(vs []*gatewayv1.FieldViolation) string {
	for _, v := range vs {
		switch p := v.GetPath(); {
		case strings.HasPrefix(p, "features"):
			return "feature"
		case p == "schema_version":
			return "schema"
		}
	}
	if len(vs) > 0 && vs[0].GetKind() != "" {
		return vs[0].GetKind()
	}
	return "other"
}
