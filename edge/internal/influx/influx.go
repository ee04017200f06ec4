// Package influx is KrakenD's `telemetry/influx` (krakend-influx v2) on
// the edge: every ttl it turns the latest telemetry/metrics snapshot
// (edge/stats) into InfluxDB 1.x points and writes them in one batch to
// the server's /write API (line protocol, second precision).
//
// The points are krakend-influx's: measurement, tags and fields below,
// all tagged with the host name.
//
//	requests     layer, name, complete, error   total, count (counters); max, min, mean,
//	                                            stddev, variance, p0.1 .. p0.99 (latency, ns)
//	responses    name, status                   total, count
//	router       direction (in, out)            current, total, gauge
//	router.response-size, router.response-time  name   the histogram fields
//	debug, runtime                              GCStats.*, MemStats.*, NumGoroutine ...
//	service.debug.GCStats.Pause, service.runtime.MemStats.PauseNs   the histogram fields
//
// count is total minus the total this writer last sent for the series.
// Empty histograms are not sent; a snapshot with no counters and no
// gauges is not sent at all.
//
// The writer runs on its own goroutine and never touches the request
// path. A failed write is logged and counted; up to buffer_size failed
// batches are kept and sent again, in one batch, after the next
// successful write; older ones are dropped and counted.
package influx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/apigw/gateway/edge/stats"
)

// Config is one telemetry/influx block.
type Config struct {
	Address    string // http(s)://host:port of the InfluxDB 1.x HTTP API
	Username   string
	Password   string
	DB         string        // database; krakend-influx's default "krakend"
	TTL        time.Duration // how often the snapshot is sent; default one minute
	BufferSize int           // failed batches kept for a retry
}

// Defaults, as krakend-influx.
const (
	DefaultDB    = "krakend"
	DefaultTTL   = time.Minute
	writeTimeout = 10 * time.Second
	userAgent    = "InfluxDBClient"
)

// Source gives the latest snapshot; nil while there is none.
type Source interface{ Latest() *stats.Snapshot }

// Metrics are the writer's Prometheus instruments, shared by successive
// writers of one process.
type Metrics struct {
	writes   *prometheus.CounterVec
	points   *prometheus.CounterVec
	buffered prometheus.Gauge
}

// NewMetrics registers the instruments on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gw_edge_influx_writes_total",
			Help: "telemetry/influx batch writes by result (ok, failed); a retry of buffered batches is one write.",
		}, []string{"result"}),
		points: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gw_edge_influx_points_total",
			Help: "telemetry/influx points by outcome: sent, or dropped (a failed batch that did not fit in buffer_size).",
		}, []string{"outcome"}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gw_edge_influx_buffered_batches",
			Help: "telemetry/influx failed batches kept for a retry (at most buffer_size).",
		}),
	}
	for _, c := range []prometheus.Collector{m.writes, m.points, m.buffered} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register influx metrics: %w", err)
		}
	}
	for _, r := range []string{"ok", "failed"} {
		m.writes.WithLabelValues(r)
	}
	for _, o := range []string{"sent", "dropped"} {
		m.points.WithLabelValues(o)
	}
	return m, nil
}

// Writer is one running telemetry/influx destination.
type Writer struct {
	cfg      Config
	src      Source
	log      zerolog.Logger
	m        *Metrics
	host     string
	writeURL string
	pingURL  string
	client   *http.Client

	// Owned by the loop goroutine.
	lastTotals map[string]int64 // series key -> total last sent
	pending    []batch

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

type batch struct {
	body   []byte
	points int
}

// ParseAddress checks an address as the InfluxDB client does: an http or
// https URL.
func ParseAddress(addr string) (*url.URL, error) {
	u, err := url.Parse(addr)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("unsupported protocol scheme %q: want http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("no host")
	}
	return u, nil
}

// Start pings the server (a failure is a warning, as in KrakenD: writes
// are tried anyway) and starts sending src's snapshots every cfg.TTL.
func Start(cfg Config, src Source, log zerolog.Logger, m *Metrics) (*Writer, error) {
	u, err := ParseAddress(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("telemetry/influx address %q: %w", cfg.Address, err)
	}
	if cfg.DB == "" {
		cfg.DB = DefaultDB
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.BufferSize < 0 {
		cfg.BufferSize = 0
	}
	host, err := os.Hostname()
	if err != nil {
		log.Error().Err(err).Msg("telemetry/influx: resolving the local host name")
	}
	wu, pu := *u, *u
	wu.Path = path.Join(u.Path, "write")
	wu.RawQuery = url.Values{"db": {cfg.DB}, "rp": {""}, "precision": {"s"}, "consistency": {""}}.Encode()
	pu.Path = path.Join(u.Path, "ping")
	pu.RawQuery = url.Values{"wait_for_leader": {"1s"}}.Encode()
	ctx, cancel := context.WithCancel(context.Background())
	w := &Writer{
		cfg: cfg, src: src, log: log, m: m, host: host,
		writeURL: wu.String(), pingURL: pu.String(),
		client:     &http.Client{Timeout: writeTimeout},
		lastTotals: map[string]int64{},
		cancel:     cancel,
		done:       make(chan struct{}),
	}
	go w.loop(ctx)
	return w, nil
}

// Config is the configuration the writer runs with (defaults applied).
func (w *Writer) Config() Config { return w.cfg }

// Close stops the writer; a write in flight is abandoned.
func (w *Writer) Close() {
	w.once.Do(func() {
		w.cancel()
		<-w.done
		w.client.CloseIdleConnections()
	})
}

func (w *Writer) loop(ctx context.Context) {
	defer close(w.done)
	if err := w.ping(ctx); err != nil && ctx.Err() == nil {
		w.log.Warn().Err(err).Str("address", w.cfg.Address).Msg("telemetry/influx: unable to ping the InfluxDB server")
	}
	t := time.NewTicker(w.cfg.TTL)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		w.tick(ctx)
	}
}

func (w *Writer) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.pingURL, nil)
	if err != nil {
		return err
	}
	w.auth(req)
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("ping answered %s", resp.Status)
	}
	return nil
}

func (w *Writer) auth(req *http.Request) {
	req.Header.Set("User-Agent", userAgent)
	if w.cfg.Username != "" {
		req.SetBasicAuth(w.cfg.Username, w.cfg.Password)
	}
}

// tick sends the latest snapshot, then, if that worked, the buffered
// batches.
func (w *Writer) tick(ctx context.Context) {
	snap := w.src.Latest()
	if snap == nil || len(snap.Counters) == 0 && len(snap.Gauges) == 0 {
		return
	}
	var buf bytes.Buffer
	n := w.encode(&buf, snap)
	b := batch{body: buf.Bytes(), points: n}
	if err := w.write(ctx, b.body); err != nil {
		if ctx.Err() != nil {
			return
		}
		w.log.Error().Err(err).Int("points", n).Msg("telemetry/influx: couldn't write to server")
		w.keep(b)
		return
	}
	w.count("ok", "sent", n)
	if len(w.pending) == 0 {
		return
	}
	retry := w.pending
	w.pending = nil
	var body []byte
	pts := 0
	for _, p := range retry {
		body = append(body, p.body...)
		pts += p.points
	}
	if err := w.write(ctx, body); err != nil {
		if ctx.Err() != nil {
			return
		}
		w.log.Error().Err(err).Int("points", pts).Msg("telemetry/influx: couldn't write the buffered points to server")
		w.keep(retry...)
		return
	}
	w.count("ok", "sent", pts)
	w.gauge()
}

// keep buffers failed batches, the newest BufferSize of them.
func (w *Writer) keep(bs ...batch) {
	if w.m != nil {
		w.m.writes.WithLabelValues("failed").Inc()
	}
	w.pending = append(w.pending, bs...)
	if extra := len(w.pending) - w.cfg.BufferSize; extra > 0 {
		dropped := 0
		for _, b := range w.pending[:extra] {
			dropped += b.points
		}
		w.pending = append(w.pending[:0:0], w.pending[extra:]...)
		if w.m != nil {
			w.m.points.WithLabelValues("dropped").Add(float64(dropped))
		}
	}
	w.gauge()
}

func (w *Writer) count(result, outcome string, points int) {
	if w.m == nil {
		return
	}
	w.m.writes.WithLabelValues(result).Inc()
	w.m.points.WithLabelValues(outcome).Add(float64(points))
}

func (w *Writer) gauge() {
	if w.m != nil {
		w.m.buffered.Set(float64(len(w.pending)))
	}
}

func (w *Writer) write(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.writeURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "")
	w.auth(req)
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusOK {
		return nil
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(msg, &e) == nil && e.Error != "" {
		return fmt.Errorf("%s: %s", resp.Status, e.Error)
	}
	return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
}

var (
	requestKey  = regexp.MustCompile(`^krakend\.proxy\.requests\.layer\.([a-zA-Z]+)\.name\.(.*)\.complete\.(true|false)\.error\.(true|false)$`)
	latencyKey  = regexp.MustCompile(`^krakend\.proxy\.latency\.layer\.([a-zA-Z]+)\.name\.(.*)\.complete\.(true|false)\.error\.(true|false)$`)
	responseKey = regexp.MustCompile(`^krakend\.router\.response\.(.*)\.status\.(\d{3})\.count$`)
	routerKey   = regexp.MustCompile(`^krakend\.router\.response\.(.*)\.(size|time)$`)
)

type point struct {
	measurement string
	tags        [][2]string // sorted by key
	fields      []field     // sorted by key
}

type field struct {
	key   string
	value string // rendered: 12i, 1.5
}

func intField(k string, v int64) field     { return field{k, strconv.FormatInt(v, 10) + "i"} }
func floatField(k string, v float64) field { return field{k, strconv.FormatFloat(v, 'f', -1, 64)} }

// encode writes the snapshot's points in line protocol and returns how
// many there are.
func (w *Writer) encode(buf *bytes.Buffer, snap *stats.Snapshot) int {
	ts := strconv.FormatInt(snap.Time.Unix(), 10)
	n := 0
	emit := func(p point) {
		writePoint(buf, p, ts)
		n++
	}
	host := [2]string{"host", w.host}
	layerTags := func(m []string) [][2]string {
		return [][2]string{{"complete", m[3]}, {"error", m[4]}, host, {"layer", m[1]}, {"name", m[2]}}
	}

	for _, k := range sortedKeys(snap.Counters) {
		total := snap.Counters[k]
		if m := requestKey.FindStringSubmatch(k); m != nil {
			emit(point{"requests", layerTags(m), w.delta("requests."+k, total)})
		} else if m := responseKey.FindStringSubmatch(k); m != nil {
			emit(point{"responses", [][2]string{host, {"name", m[1]}, {"status", m[2]}}, w.delta("responses."+k, total)})
		}
	}
	for _, dir := range []struct{ name, key string }{{"in", "krakend.router.connected"}, {"out", "krakend.router.disconnected"}} {
		emit(point{"router", [][2]string{{"direction", dir.name}, host}, []field{
			intField("current", snap.Counters[dir.key]), intField("total", snap.Counters[dir.key+"-total"]),
		}})
	}

	for _, dir := range []struct{ name, key string }{{"in", "krakend.router.connected-gauge"}, {"out", "krakend.router.disconnected-gauge"}} {
		emit(point{"router", [][2]string{{"direction", dir.name}, host}, []field{intField("gauge", snap.Gauges[dir.key])}})
	}
	var debug, runtime []field
	for _, k := range sortedKeys(snap.Gauges) {
		switch {
		case strings.HasPrefix(k, "krakend.service.debug."):
			debug = append(debug, intField(strings.TrimPrefix(k, "krakend.service.debug."), snap.Gauges[k]))
		case strings.HasPrefix(k, "krakend.service.runtime."):
			runtime = append(runtime, intField(strings.TrimPrefix(k, "krakend.service.runtime."), snap.Gauges[k]))
		}
	}
	if len(debug) > 0 {
		emit(point{"debug", [][2]string{host}, debug})
	}
	if len(runtime) > 0 {
		emit(point{"runtime", [][2]string{host}, runtime})
	}

	for _, k := range sortedKeys(snap.Histograms) {
		h := snap.Histograms[k]
		if empty(h) {
			continue
		}
		if m := latencyKey.FindStringSubmatch(k); m != nil {
			emit(point{"requests", layerTags(m), histogramFields(h)})
		} else if m := routerKey.FindStringSubmatch(k); m != nil {
			emit(point{"router.response-" + m[2], [][2]string{host, {"name", m[1]}}, histogramFields(h)})
		}
	}
	for _, k := range []string{"krakend.service.debug.GCStats.Pause", "krakend.service.runtime.MemStats.PauseNs"} {
		if h, ok := snap.Histograms[k]; ok {
			emit(point{strings.TrimPrefix(k, "krakend."), [][2]string{host}, histogramFields(h)})
		}
	}
	return n
}

// delta gives a counter's total and its count since the last send.
func (w *Writer) delta(key string, total int64) []field {
	last := w.lastTotals[key]
	w.lastTotals[key] = total
	return []field{intField("count", total-last), intField("total", total)}
}

// empty is krakend-influx's test for a histogram with nothing recorded.
func empty(h stats.HistogramData) bool {
	return h.Max == 0 && h.Min == 0 && h.Mean == 0 && h.Stddev == 0 && h.Variance == 0 &&
		h.Percentiles[0] == 0 && h.Percentiles[len(h.Percentiles)-1] == 0
}

// histogramFields are krakend-influx's: the summary truncated to
// integers, the percentiles as floats.
func histogramFields(h stats.HistogramData) []field {
	fs := []field{
		intField("max", h.Max), intField("mean", int64(h.Mean)), intField("min", h.Min),
	}
	for i, p := range stats.SnapshotPercentiles {
		fs = append(fs, floatField("p"+strconv.FormatFloat(p, 'g', -1, 64), h.Percentiles[i]))
	}
	return append(fs, intField("stddev", int64(h.Stddev)), intField("variance", int64(h.Variance)))
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Line protocol escaping: measurements escape commas and spaces; tag keys,
// tag values and field keys also escape equals signs.
var (
	measurementEscaper = strings.NewReplacer(`,`, `\,`, ` `, `\ `)
	keyEscaper         = strings.NewReplacer(`,`, `\,`, ` `, `\ `, `=`, `\=`)
)

func writePoint(buf *bytes.Buffer, p point, ts string) {
	buf.WriteString(measurementEscaper.Replace(p.measurement))
	for _, t := range p.tags {
		if t[1] == "" {
			continue // InfluxDB drops empty tag values
		}
		buf.WriteByte(',')
		buf.WriteString(keyEscaper.Replace(t[0]))
		buf.WriteByte('=')
		buf.WriteString(keyEscaper.Replace(t[1]))
	}
	for i, f := range p.fields {
		if i == 0 {
			buf.WriteByte(' ')
		} else {
			buf.WriteByte(',')
		}
		buf.WriteString(keyEscaper.Replace(f.key))
		buf.WriteByte('=')
		buf.WriteString(f.value)
	}
	buf.WriteByte(' ')
	buf.WriteString(ts)
	buf.WriteByte('\n')
}
