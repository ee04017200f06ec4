package config

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/apigw/gateway/proto/feature"
)

// TestInflux: telemetry/influx compiles with krakend-influx's defaults
// (db krakend, ttl 1m) under either namespace spelling, needs
// telemetry/metrics (else a no_effect warning and nothing compiled), and
// rejects what KrakenD would refuse or crash on.
func TestInflux(t *testing.T) {
	t.Parallel()
	const metrics = `"telemetry/metrics": {}`
	for _, ns := range []string{"telemetry/influx", "github_com/letgoapp/krakend-influx"} {
		c, err := Compile("k.json", []byte(conf(`"extra_config": {`+metrics+`, "`+ns+`": {"address": "http://influx:8086"}}`, ep("/a", ""))))
		if err != nil {
			t.Fatal(err)
		}
		x := c.Snapshot.GetService().GetInflux()
		if x.GetAddress() != "http://influx:8086" || x.GetDb() != "krakend" || x.GetTtlMs() != 60000 || x.GetBufferSize() != 0 {
			t.Errorf("%s: defaults %v", ns, x)
		}
		if !slices.Contains(c.Snapshot.GetFeatures(), feature.TelemetryInflux) {
			t.Errorf("%s: feature %s not required", ns, feature.TelemetryInflux)
		}
	}

	c, err := Compile("k.json", []byte(conf(`"extra_config": {`+metrics+`, "telemetry/influx": {"address": "https://i:8086", "db": "gw", "ttl": "10s", "buffer_size": 5, "username": "u", "password": "p"}}`, ep("/a", ""))))
	if err != nil {
		t.Fatal(err)
	}
	if x := c.Snapshot.GetService().GetInflux(); x.GetDb() != "gw" || x.GetTtlMs() != 10000 || x.GetBufferSize() != 5 || x.GetUsername() != "u" || x.GetPassword() != "p" {
		t.Errorf("settings %v", x)
	}

	c, err = Compile("k.json", []byte(conf(`"extra_config": {"telemetry/influx": {"address": "http://i:8086"}}`, ep("/a", ""))))
	if err != nil {
		t.Fatal(err)
	}
	if c.Snapshot.GetService().GetInflux() != nil {
		t.Error("compiled without telemetry/metrics")
	}
	var warned []pair
	for _, w := range c.Warnings {
		warned = append(warned, pair{w.GetPath(), w.GetKind()})
	}
	if diff := cmp.Diff([]pair{{`extra_config["telemetry/influx"]`, KindNoEffect}}, warned); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}

	vs := violationsOf(t, "k.json", conf(`"extra_config": {`+metrics+`, "telemetry/influx": {"ttl": "0s", "buffer_size": -1}}`, ep("/a", "")))
	want := []pair{
		{`extra_config["telemetry/influx"].address`, KindRequired},
		{`extra_config["telemetry/influx"].buffer_size`, KindInvalid},
		{`extra_config["telemetry/influx"].ttl`, KindInvalid},
	}
	if diff := cmp.Diff(want, pairsOf(vs)); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
	for _, addr := range []string{"influx:8086", "udp://influx:8089", "http://"} {
		vs := violationsOf(t, "k.json", conf(`"extra_config": {`+metrics+`, "telemetry/influx": {"address": "`+addr+`"}}`, ep("/a", "")))
		if diff := cmp.Diff([]pair{{`extra_config["telemetry/influx"].address`, KindInvalid}}, pairsOf(vs)); diff != "" {
			t.Errorf("%s: violations (-want +got):\n%s", addr, diff)
		}
	}
}
