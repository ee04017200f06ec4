package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a Prometheus registry holding the Go runtime and
// process collectors, ready for the edge's own metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// metrics are the server's instruments (the lifecycle's are edge/apply's).
type metrics struct {
	reg     *prometheus.Registry
	version prometheus.Gauge
	applied prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry, buildVersion string) (*metrics, error) {
	m := &metrics{
		reg: reg,
		version: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gw_edge_snapshot_version",
			Help: "Version of the snapshot the edge serves (0 before the first one).",
		}),
		applied: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gw_edge_snapshot_applied_timestamp_seconds",
			Help: "Unix time at which the edge started serving its current snapshot (0 before the first one); time() minus it is the snapshot's age.",
		}),
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "gw_edge_build_info",
		Help:        "Build of this edge binary (always 1).",
		ConstLabels: prometheus.Labels{"version": buildVersion},
	})
	info.Set(1)
	for _, c := range []prometheus.Collector{m.version, m.applied, info} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register edge metrics: %w", err)
		}
	}
	return m, nil
}

// metricsListener is a net/http server exposing the registry.
type metricsListener struct {
	addr string // as configured
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

func (ml *metricsListener) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := ml.srv.Shutdown(ctx); err != nil {
		ml.srv.Close()
	}
	<-ml.done
}

// setMetricsAddr makes the metrics listener run at addr ("" stops it). It
// restarts the listener only when the address changes. reconfMu must be held
// (or the server not yet shared, in New).
func (s *Server) setMetricsAddr(addr string) error {
	if s.metricsLn != nil && s.metricsLn.addr == addr {
		return nil
	}
	if s.metricsLn != nil {
		s.metricsLn.stop()
		s.log.Info().Str("addr", s.metricsLn.ln.Addr().String()).Msg("metrics listener stopped")
		s.metricsLn = nil
	}
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{Registry: s.m.reg}))
	// KrakenD's telemetry/metrics endpoint, while the snapshot asks for it.
	mux.HandleFunc("GET /__stats", func(w http.ResponseWriter, r *http.Request) {
		if !s.statsServed.Load() {
			http.NotFound(w, r)
			return
		}
		s.stats.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /__stats/", func(w http.ResponseWriter, r *http.Request) {
		if !s.statsServed.Load() || r.URL.Path != "/__stats/" {
			http.NotFound(w, r)
			return
		}
		http.Redirect(w, r, "/__stats", http.StatusMovedPermanently) // gin's trailing-slash redirect
	})
	ml := &metricsListener{
		addr: addr,
		ln:   ln,
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute},
		done: make(chan struct{}),
	}
	s.wg.Go(func() {
		defer close(ml.done)
		if err := ml.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("metrics listener")
		}
	})
	s.metricsLn = ml
	s.log.Info().Str("addr", ln.Addr().String()).Msg("metrics listening")
	return nil
}
