package config

import (
	"github.com/apigw/gateway/proto/feature"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// limitEP is an endpoint at path with a qos/ratelimit/router object.
func limitEP(path, members string) string {
	return ep(path, `"extra_config": {"qos/ratelimit/router": {`+members+`}}`)
}

// backendNS is an endpoint /a whose single backend has the given
// extra_config members.
func backendNS(members string) string {
	return `{"endpoint": "/a", "backend": [{"url_pattern": "/x", "extra_config": {` + members + `}}]}`
}

const clusterStore = `"extra_config": {"qos/ratelimit/cluster": {"address": "redis:6379"}}`

func TestValidateRouterRateLimitRules(t *testing.T) {
	t.Parallel()
	rl := func(field string) string { return `endpoints[0].extra_config["qos/ratelimit/router"]` + field }
	checkRules(t, []rule{
		{"global only", conf("", limitEP("/a", `"max_rate": 100`)), nil},
		{"client only", conf("", limitEP("/a", `"client_max_rate": 0.5`)), nil},
		{"every key", conf("", limitEP("/a/{id}", `"max_rate": 100, "capacity": 200, "client_max_rate": 10, "client_capacity": 20,
			"strategy": "param", "key": "id", "every": "1m", "num_shards": 16, "cleanup_period": "5m", "cleanup_threads": 2`)), nil},
		{"nothing limited", conf("", limitEP("/a", "")), []pair{{rl(".max_rate"), KindRequired}}},
		{"zero rates", conf("", limitEP("/a", `"max_rate": 0, "client_max_rate": 0`)), []pair{{rl(".max_rate"), KindRequired}}},
		{"negative rate", conf("", limitEP("/a", `"max_rate": -1, "client_max_rate": 5`)), []pair{{rl(".max_rate"), KindInvalid}}},
		{"huge rate", conf("", limitEP("/a", `"client_max_rate": 1e12`)), []pair{{rl(".client_max_rate"), KindTooMany}}},
		{"rate as a string", conf("", limitEP("/a", `"max_rate": "10"`)), []pair{{rl(".max_rate"), KindInvalid}}},
		{"capacity zero", conf("", limitEP("/a", `"max_rate": 10, "capacity": 0`)), []pair{{rl(".capacity"), KindInvalid}}},
		{"capacity without max_rate", conf("", limitEP("/a", `"client_max_rate": 10, "capacity": 5`)), []pair{{rl(".capacity"), KindInvalid}}},
		{"client_capacity without client_max_rate", conf("", limitEP("/a", `"max_rate": 10, "client_capacity": 5`)),
			[]pair{{rl(".client_capacity"), KindInvalid}}},
		{"client_capacity fractional", conf("", limitEP("/a", `"client_max_rate": 10, "client_capacity": 2.5`)),
			[]pair{{rl(".client_capacity"), KindInvalid}}},

		// strategy and key
		{"strategy defaults to ip", conf("", limitEP("/a", `"client_max_rate": 10`)), nil},
		{"ip strategy with a header key, no trusted proxies", conf("", limitEP("/a", `"client_max_rate": 10, "strategy": "ip", "key": "X-Real-Ip"`)),
			[]pair{{rl(".key"), KindInvalid}}},
		{"ip strategy with a header key and trusted proxies", conf(`"extra_config": {"router": {"trusted_proxies": ["10.0.0.0/8"]}}`,
			limitEP("/a", `"client_max_rate": 10, "strategy": "ip", "key": "X-Real-Ip"`)), nil},
		{"ip strategy with a bad header key", conf("", limitEP("/a", `"client_max_rate": 10, "strategy": "ip", "key": "X Real"`)),
			[]pair{{rl(".key"), KindInvalid}}},
		{"unknown strategy", conf("", limitEP("/a", `"client_max_rate": 10, "strategy": "cookie"`)), []pair{{rl(".strategy"), KindUnsupported}}},
		{"header strategy without key", conf("", limitEP("/a", `"client_max_rate": 10, "strategy": "header"`)), []pair{{rl(".key"), KindRequired}}},
		{"header strategy", conf("", limitEP("/a", `"client_max_rate": 10, "strategy": "header", "key": "x-api-key"`)), nil},
		{"param strategy without key", conf("", limitEP("/a/{id}", `"client_max_rate": 10, "strategy": "param"`)),
			[]pair{{rl(".key"), KindRequired}}},
		{"param strategy unknown param", conf("", limitEP("/a/{id}", `"client_max_rate": 10, "strategy": "param", "key": "user"`)),
			[]pair{{rl(".key"), KindNotFound}}},
		{"param strategy is case-sensitive", conf("", limitEP("/a/{id}", `"client_max_rate": 10, "strategy": "param", "key": "Id"`)),
			[]pair{{rl(".key"), KindNotFound}}},
		{"param strategy on a broken path reports the path only", conf("", limitEP("a/{id}", `"client_max_rate": 10, "strategy": "param", "key": "x"`)),
			[]pair{{"endpoints[0].endpoint", KindInvalid}}},
		{"strategy without client_max_rate", conf("", limitEP("/a", `"max_rate": 10, "strategy": "ip"`)), []pair{{rl(".strategy"), KindInvalid}}},
		{"key without client_max_rate", conf("", limitEP("/a", `"max_rate": 10, "key": "X-A"`)), []pair{{rl(".key"), KindInvalid}}},

		// periods and store sizing
		{"every below 1s", conf("", limitEP("/a", `"max_rate": 10, "every": "500ms"`)), []pair{{rl(".every"), KindInvalid}}},
		{"every zero", conf("", limitEP("/a", `"max_rate": 10, "every": "0s"`)), []pair{{rl(".every"), KindInvalid}}},
		{"every unparsable", conf("", limitEP("/a", `"max_rate": 10, "every": "1 minute"`)), []pair{{rl(".every"), KindInvalid}}},
		{"num_shards zero is one map", conf("", limitEP("/a", `"max_rate": 10, "num_shards": 0`)), nil},
		{"num_shards negative", conf("", limitEP("/a", `"max_rate": 10, "num_shards": -1`)), []pair{{rl(".num_shards"), KindInvalid}}},
		{"num_shards huge", conf("", limitEP("/a", `"max_rate": 10, "num_shards": 100000000`)), []pair{{rl(".num_shards"), KindTooMany}}},
		{"cleanup_period below 1s", conf("", limitEP("/a", `"max_rate": 10, "cleanup_period": "10ms"`)),
			[]pair{{rl(".cleanup_period"), KindInvalid}}},
		{"cleanup_threads negative", conf("", limitEP("/a", `"max_rate": 10, "cleanup_threads": -1`)),
			[]pair{{rl(".cleanup_threads"), KindInvalid}}},
		{"unknown key", conf("", limitEP("/a", `"max_rate": 10, "burst": 5`)), []pair{{rl(".burst"), KindUnsupported}}},

		// cluster
		{"cluster with the store", conf(clusterStore, limitEP("/a", `"client_max_rate": 10, "cluster": true`)), nil},
		{"cluster without the store", conf("", limitEP("/a", `"client_max_rate": 10, "cluster": true`)), []pair{{rl(".cluster"), KindNotFound}}},
		{"cluster without client buckets", conf(clusterStore, limitEP("/a", `"max_rate": 10, "cluster": true`)), []pair{{rl(".cluster"), KindInvalid}}},
		{"cluster false needs nothing", conf("", limitEP("/a", `"client_max_rate": 10, "cluster": false`)), nil},

		{"router limit at backend level", conf("", backendNS(`"qos/ratelimit/router": {"max_rate": 1}`)),
			[]pair{{`endpoints[0].backend[0].extra_config["qos/ratelimit/router"]`, KindUnsupported}}},
	})
}

func TestValidateClusterRateLimitRules(t *testing.T) {
	t.Parallel()
	cp := func(field string) string { return `extra_config["qos/ratelimit/cluster"]` + field }
	store := func(members string) string {
		return conf(`"extra_config": {"qos/ratelimit/cluster": {` + members + `}}`)
	}
	checkRules(t, []rule{
		{"address only", store(`"address": "10.0.0.5:6379"`), nil},
		{"every key", store(`"address": "[::1]:6379", "key_prefix": "gw:", "dial_timeout": "20ms"`), nil},
		{"address missing", store(""), []pair{{cp(".address"), KindRequired}}},
		{"address without port", store(`"address": "redis"`), []pair{{cp(".address"), KindInvalid}}},
		{"address with port 0", store(`"address": "redis:0"`), []pair{{cp(".address"), KindInvalid}}},
		{"address without host", store(`"address": ":6379"`), []pair{{cp(".address"), KindInvalid}}},
		{"address as a URL", store(`"address": "redis://redis:6379"`), []pair{{cp(".address"), KindInvalid}}},
		{"dial_timeout zero", store(`"address": "r:1", "dial_timeout": "0s"`), []pair{{cp(".dial_timeout"), KindInvalid}}},
		{"key_prefix with a space", store(`"address": "r:1", "key_prefix": "a b"`), []pair{{cp(".key_prefix"), KindInvalid}}},
		{"unknown key", store(`"address": "r:1", "password": "x"`), []pair{{cp(".password"), KindUnsupported}}},
	})
}

func TestValidateBackendQoSRules(t *testing.T) {
	t.Parallel()
	bp := func(ns, field string) string { return `endpoints[0].backend[0].extra_config["` + ns + `"]` + field }
	const cb = "qos/circuit-breaker"
	const hc = "qos/http-cache"
	const pl = "qos/ratelimit/proxy"
	checkRules(t, []rule{
		// qos/ratelimit/proxy
		{"proxy limit", conf("", backendNS(`"qos/ratelimit/proxy": {"max_rate": 0.5, "capacity": 3, "every": "100ms"}`)), nil},
		{"proxy limit empty", conf("", backendNS(`"qos/ratelimit/proxy": {}`)), []pair{{bp(pl, ".max_rate"), KindRequired}}},
		{"proxy limit zero", conf("", backendNS(`"qos/ratelimit/proxy": {"max_rate": 0}`)), []pair{{bp(pl, ".max_rate"), KindInvalid}}},
		{"proxy limit huge", conf("", backendNS(`"qos/ratelimit/proxy": {"max_rate": 1e10}`)), []pair{{bp(pl, ".max_rate"), KindTooMany}}},
		{"proxy capacity zero", conf("", backendNS(`"qos/ratelimit/proxy": {"max_rate": 1, "capacity": 0}`)),
			[]pair{{bp(pl, ".capacity"), KindInvalid}}},
		{"proxy every zero", conf("", backendNS(`"qos/ratelimit/proxy": {"max_rate": 1, "every": "0s"}`)),
			[]pair{{bp(pl, ".every"), KindInvalid}}},
		{"proxy limit at endpoint level", conf("", ep("/a", `"extra_config": {"qos/ratelimit/proxy": {"max_rate": 1}}`)),
			[]pair{{`endpoints[0].extra_config["qos/ratelimit/proxy"]`, KindUnsupported}}},

		// qos/circuit-breaker
		{"breaker", conf("", backendNS(`"qos/circuit-breaker": {"interval": 60, "timeout": 10, "max_errors": 1, "name": "b", "log_status_change": true}`)), nil},
		{"breaker long alias", conf("", backendNS(`"github.com/devopsfaith/krakend-circuitbreaker/gobreaker": {"interval": 0, "timeout": 5, "max_errors": 0}`)), nil},
		{"breaker empty", conf("", backendNS(`"qos/circuit-breaker": {}`)),
			[]pair{{bp(cb, ".interval"), KindRequired}, {bp(cb, ".max_errors"), KindRequired}, {bp(cb, ".timeout"), KindRequired}}},
		{"breaker all zero", conf("", backendNS(`"qos/circuit-breaker": {"interval": 0, "timeout": 0, "max_errors": 0}`)),
			[]pair{{bp(cb, ".timeout"), KindInvalid}}},
		{"breaker timeout zero", conf("", backendNS(`"qos/circuit-breaker": {"interval": 60, "timeout": 0, "max_errors": 3}`)),
			[]pair{{bp(cb, ".timeout"), KindInvalid}}},
		{"breaker negatives", conf("", backendNS(`"qos/circuit-breaker": {"interval": -1, "timeout": -1, "max_errors": -1}`)),
			[]pair{{bp(cb, ".interval"), KindInvalid}, {bp(cb, ".max_errors"), KindInvalid}, {bp(cb, ".timeout"), KindInvalid}}},
		{"breaker max_errors beyond uint32", conf("", backendNS(`"qos/circuit-breaker": {"interval": 1, "timeout": 1, "max_errors": 5000000000}`)),
			[]pair{{bp(cb, ".max_errors"), KindInvalid}}},
		{"breaker durations are seconds", conf("", backendNS(`"qos/circuit-breaker": {"interval": "60s", "timeout": 10, "max_errors": 1}`)),
			[]pair{{bp(cb, ".interval"), KindInvalid}}},

		// qos/http-cache
		{"cache empty", conf("", backendNS(`"qos/http-cache": {}`)), nil},
		{"cache long alias", conf("", backendNS(`"github.com/devopsfaith/krakend-httpcache": {"shared": true}`)), nil},
		{"cache max_size alone", conf("", backendNS(`"qos/http-cache": {"max_size": 1024}`)), nil},
		{"cache both bounds", conf("", backendNS(`"qos/http-cache": {"max_size": 1024, "max_items": 10}`)), nil},
		{"cache max_items alone", conf("", backendNS(`"qos/http-cache": {"max_items": 10}`)), []pair{{bp(hc, ".max_size"), KindRequired}}},
		{"cache max_size zero", conf("", backendNS(`"qos/http-cache": {"max_size": 0}`)), []pair{{bp(hc, ".max_size"), KindInvalid}}},
		{"cache max_items zero", conf("", backendNS(`"qos/http-cache": {"max_size": 10, "max_items": 0}`)), []pair{{bp(hc, ".max_items"), KindInvalid}}},
		{"cache on a POST backend", conf("", `{"endpoint": "/a", "method": "POST",
			"backend": [{"url_pattern": "/x", "extra_config": {"qos/http-cache": {}}}]}`), []pair{{bp(hc, ""), KindInvalid}}},
		{"cache on a GET backend of a POST endpoint", conf("", `{"endpoint": "/a", "method": "POST",
			"backend": [{"url_pattern": "/x", "method": "GET", "extra_config": {"qos/http-cache": {}}}]}`), nil},
		{"shared caches agree", conf("", backendNS(`"qos/http-cache": {"shared": true}`),
			`{"endpoint": "/b", "backend": [{"url_pattern": "/y", "extra_config": {"qos/http-cache": {"shared": true, "max_size": 67108864}}}]}`), nil},
		{"shared caches disagree", conf("", backendNS(`"qos/http-cache": {"shared": true}`),
			`{"endpoint": "/b", "backend": [{"url_pattern": "/y", "extra_config": {"qos/http-cache": {"shared": true, "max_size": 1024}}}]}`),
			[]pair{{`endpoints[1].backend[0].extra_config["qos/http-cache"]`, KindInvalid}}},
		{"private caches may differ", conf("", backendNS(`"qos/http-cache": {}`),
			`{"endpoint": "/b", "backend": [{"url_pattern": "/y", "extra_config": {"qos/http-cache": {"max_size": 1024}}}]}`), nil},
	})
}

// TestCompileQoSDefaults checks what the QoS namespaces compile to with
// their defaults resolved.
func TestCompileQoSDefaults(t *testing.T) {
	t.Parallel()
	snap := compileDoc(t, conf(clusterStore,
		limitEP("/r", `"max_rate": 2.7, "client_max_rate": 0.5, "cluster": true`),
		limitEP("/b/{id}", `"client_max_rate": 30, "strategy": "header", "key": "x-api-key", "num_shards": 0`),
		backendNS(`"qos/ratelimit/proxy": {"max_rate": 20}, "qos/circuit-breaker": {"interval": 60, "timeout": 10, "max_errors": 2},
			"qos/http-cache": {}`)))
	eps := snap.GetEndpoints()
	tests := []struct {
		name      string
		got, want any
	}{
		{"router limit with defaults", eps[0].GetRateLimit(), &gatewayv1.RouterRateLimit{
			MaxRate: 2.7, Capacity: 2, ClientMaxRate: 0.5, ClientCapacity: 1, Strategy: "ip",
			EveryMs: 1000, NumShards: 2048, CleanupPeriodMs: 60_000, Cluster: true,
		}},
		{"router limit by header", eps[1].GetRateLimit(), &gatewayv1.RouterRateLimit{
			ClientMaxRate: 30, ClientCapacity: 30, Strategy: "header", Key: "X-Api-Key",
			EveryMs: 1000, NumShards: 1, CleanupPeriodMs: 60_000,
		}},
		{"cluster store", snap.GetService().GetClusterRateLimit(), &gatewayv1.ClusterRateLimit{
			RedisAddress: "redis:6379", KeyPrefix: "apigw:rl:", DialTimeoutMs: 50,
		}},
		{"backend limit", eps[2].GetBackends()[0].GetRateLimit(), &gatewayv1.BackendRateLimit{MaxRate: 20, Capacity: 20, EveryMs: 1000}},
		{"breaker", eps[2].GetBackends()[0].GetCircuitBreaker(), &gatewayv1.CircuitBreaker{IntervalMs: 60_000, TimeoutMs: 10_000, MaxErrors: 2}},
		{"cache bounded by default", eps[2].GetBackends()[0].GetHttpCache(), &gatewayv1.HTTPCache{MaxSize: 64 << 20}},
		{"features", snap.GetFeatures(), []string{
			feature.QoSCircuitBreaker, feature.QoSHTTPCache, feature.QoSRateLimit, feature.QoSRateLimitCluster,
		}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, tc.got, protocmp.Transform()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}

	// The store alone is compiled but not listed as a used feature.
	alone := compileDoc(t, conf(clusterStore, ep("/a", "")))
	if alone.GetService().GetClusterRateLimit() == nil || len(alone.GetFeatures()) != 0 {
		t.Errorf("unused cluster store: service %v, features %v", alone.GetService().GetClusterRateLimit(), alone.GetFeatures())
	}
}
