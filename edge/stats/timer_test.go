package stats

import (
	"crypto/tls"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestRuntimeTimersAndTLS: /__stats carries go-metrics' timers of the
// runtime captures (KrakenD CE's keys: count, min, max, mean, std-dev,
// percentiles, the three moving averages and the mean rate), which move
// with each collection, and krakend-metrics' TLS version and cipher
// counters, registered on first use (KrakenD's output for a TLS 1.3
// request through its binary had exactly these two keys).
func TestRuntimeTimersAndTLS(t *testing.T) {
	s := New()
	doc := func() map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(s.AppendJSON(nil), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := doc()
	for _, timer := range []string{"krakend.service.runtime.ReadMemStats", "krakend.service.debug.ReadGCStats"} {
		for _, k := range []string{"count", "min", "max", "mean", "std-dev", "50-percentile", "75-percentile", "95-percentile",
			"99-percentile", "999-percentile", "one-minute", "five-minute", "fifteen-minute", "mean-rate"} {
			if v, ok := m[timer+"."+k]; !ok || v != 0.0 {
				t.Errorf("%s.%s = %v before any collection, want 0", timer, k, v)
			}
		}
	}
	for k := range m {
		if strings.Contains(k, "tls_") {
			t.Errorf("%s registered before any TLS request", k)
		}
	}
	s.Collect()
	s.Collect()
	s.tickTimers()
	m = doc()
	if m["krakend.service.runtime.ReadMemStats.count"] != 2.0 || m["krakend.service.debug.ReadGCStats.count"] != 2.0 {
		t.Errorf("timer counts %v %v, want 2", m["krakend.service.runtime.ReadMemStats.count"], m["krakend.service.debug.ReadGCStats.count"])
	}
	if mx, _ := m["krakend.service.runtime.ReadMemStats.max"].(float64); mx <= 0 {
		t.Errorf("ReadMemStats.max %v, want a duration in ns", mx)
	}
	// First tick: the rate is the interval's (2 in 5 s).
	if r := m["krakend.service.runtime.ReadMemStats.one-minute"]; r != 0.4 {
		t.Errorf("one-minute rate %v, want 0.4", r)
	}

	s.ConnectionTLS(tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	s.ConnectionTLS(tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)
	s.ConnectionTLS(tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	s.ConnectionTLS(0x0305, 0xffff)
	s.Connection()
	m = doc()
	for k, want := range map[string]float64{
		"krakend.router.tls_version.VersionTLS13.count":                               2,
		"krakend.router.tls_version.VersionTLS12.count":                               1,
		"krakend.router.tls_version..count":                                           1,
		"krakend.router.tls_cipher.TLS_AES_128_GCM_SHA256.count":                      2,
		"krakend.router.tls_cipher.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256.count": 1,
		"krakend.router.tls_cipher..count":                                            1,
		"krakend.router.connected":                                                    5,
	} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
}

// TestExpDecayKeepsReservoir: the sample keeps at most 1028 values and
// survives a rescale.
func TestExpDecayKeepsReservoir(t *testing.T) {
	now := time.Now()
	tm := newTimer(now)
	for i := range 3000 {
		tm.sample.update(now.Add(time.Duration(i)*2*time.Second), int64(i))
	}
	if n := len(tm.sample.values()); n != decayReservoir {
		t.Fatalf("%d values kept, want %d", n, decayReservoir)
	}
	if !tm.sample.t0.After(now) {
		t.Error("no rescale after an hour of updates")
	}
}
