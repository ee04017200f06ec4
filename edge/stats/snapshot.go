package stats

import (
	"math"
	"slices"
	"time"
)

// Snapshot is the registry as one collection left it, krakend-metrics'
// Stats: the counters and integer gauges, and each histogram's summary
// taken just before the collection cleared it. telemetry/influx sends the
// latest one. Float gauges (GCCPUFraction) are not in it, as go-metrics'
// GaugeFloat64 is not in KrakenD's.
type Snapshot struct {
	Time       time.Time
	Counters   map[string]int64
	Gauges     map[string]int64
	Histograms map[string]HistogramData
}

// HistogramData is a histogram's sample summary (krakend-metrics'
// HistogramData): Percentiles are at SnapshotPercentiles.
type HistogramData struct {
	Max, Min               int64
	Mean, Stddev, Variance float64
	Percentiles            [7]float64
	Count                  int64 // values recorded since the last clear
}

// SnapshotPercentiles are krakend-metrics' snapshot percentiles.
var SnapshotPercentiles = [7]float64{0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99}

// Latest is the snapshot the last collection took; nil before the first.
func (s *Stats) Latest() *Snapshot { return s.latest.Load() }

// takeSnapshot reads every series; the caller clears the histograms after.
func (s *Stats) takeSnapshot(now time.Time) *Snapshot {
	snap := &Snapshot{Time: now, Counters: map[string]int64{}, Gauges: map[string]int64{}, Histograms: map[string]HistogramData{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, m := range s.byName {
		switch m := m.(type) {
		case *Counter:
			snap.Counters[name] = m.Count()
		case *Gauge:
			snap.Gauges[name] = m.Value()
		case *Histogram:
			snap.Histograms[name] = m.data()
		}
	}
	return snap
}

// data summarises the sample as go-metrics does: population variance,
// its square root, percentiles interpolated at p*(n+1); all zero when
// empty.
func (h *Histogram) data() HistogramData {
	h.mu.Lock()
	d := HistogramData{Count: h.count}
	vs := slices.Clone(h.values)
	h.mu.Unlock()
	if len(vs) == 0 {
		return d
	}
	slices.Sort(vs)
	d.Min, d.Max = vs[0], vs[len(vs)-1]
	var sum float64
	for _, v := range vs {
		sum += float64(v)
	}
	d.Mean = sum / float64(len(vs))
	var sq float64
	for _, v := range vs {
		x := float64(v) - d.Mean
		sq += x * x
	}
	d.Variance = sq / float64(len(vs))
	d.Stddev = math.Sqrt(d.Variance)
	copy(d.Percentiles[:], percentiles(vs, SnapshotPercentiles[:]))
	return d
}
