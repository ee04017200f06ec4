package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// agent builds an async_agent entry: extra members, then the amqp driver
// (raw JSON object members; "" for none).
func agent(extra, amqp string) string {
	s := `{"backend": [{"url_pattern": "/ingest"}]`
	if extra != "" {
		s += ", " + extra
	}
	if amqp != "-" {
		drv := `"host": "amqp://guest:guest@127.0.0.1:5672/", "exchange": "ex"`
		if amqp != "" {
			drv += ", " + amqp
		}
		s += `, "extra_config": {"async/amqp": {` + drv + `}}`
	}
	return s + "}"
}

func agents(list ...string) string { return `"async_agent": [` + strings.Join(list, ",") + `]` }

func TestAsyncAgentRules(t *testing.T) {
	t.Parallel()
	checkRules(t, []rule{
		{"minimal agent", conf(agents(agent("", ""))), nil},
		{"no driver", conf(agents(agent("", "-"))), []pair{{"async_agent[0].extra_config", KindRequired}}},
		{"unknown namespace", conf(agents(`{"backend": [{"url_pattern": "/x"}], "extra_config": {"async/kafka": {}}}`)),
			[]pair{{"async_agent[0].extra_config", KindRequired}, {`async_agent[0].extra_config["async/kafka"]`, KindUnsupported}}},
		{"unknown key", conf(agents(agent(`"consumers": {}`, ""))), []pair{{"async_agent[0].consumers", KindUnsupported}}},
		{"unknown driver key", conf(agents(agent("", `"queue": "q"`))), []pair{{`async_agent[0].extra_config["async/amqp"].queue`, KindUnsupported}}},
		{"no host", conf(agents(`{"backend": [{"url_pattern": "/x"}], "extra_config": {"async/amqp": {"exchange": "e"}}}`)),
			[]pair{{`async_agent[0].extra_config["async/amqp"].host`, KindRequired}}},
		{"not an amqp URL", conf(agents(`{"backend": [{"url_pattern": "/x"}], "extra_config": {"async/amqp": {"host": "http://x", "exchange": "e"}}}`)),
			[]pair{{`async_agent[0].extra_config["async/amqp"].host`, KindInvalid}}},
		{"no exchange", conf(agents(`{"backend": [{"url_pattern": "/x"}], "extra_config": {"async/amqp": {"host": "amqp://h/"}}}`)),
			[]pair{{`async_agent[0].extra_config["async/amqp"].exchange`, KindRequired}}},
		{"negative prefetch", conf(agents(agent("", `"prefetch_count": -1`))), []pair{{`async_agent[0].extra_config["async/amqp"].prefetch_count`, KindInvalid}}},
		{"backoff any case", conf(agents(agent(`"connection": {"backoff_strategy": "Exponential-Jitter"}`, ""))), nil},
		{"unknown backoff", conf(agents(agent(`"connection": {"backoff_strategy": "random"}`, ""))), []pair{{"async_agent[0].connection.backoff_strategy", KindUnsupported}}},
		{"negative health interval", conf(agents(agent(`"connection": {"health_interval": "-1s"}`, ""))), nil},
		{"too many workers", conf(agents(agent(`"consumer": {"workers": 5000}`, ""))), []pair{{"async_agent[0].consumer.workers", KindTooMany}}},
		{"negative max_rate", conf(agents(agent(`"consumer": {"max_rate": -1}`, ""))), []pair{{"async_agent[0].consumer.max_rate", KindInvalid}}},
		{"negative timeout", conf(agents(agent(`"consumer": {"timeout": "-1s"}`, ""))), []pair{{"async_agent[0].consumer.timeout", KindInvalid}}},
		{"duplicate names", conf(agents(agent(`"name": "a"`, ""), agent(`"name": "a"`, ""))), []pair{{"async_agent[1].name", KindDuplicate}}},
		{"default names do not collide", conf(agents(agent("", ""), agent("", ""))), nil},
		{"no backend", conf(agents(`{"backend": [], "extra_config": {"async/amqp": {"host": "amqp://h/", "exchange": "e"}}}`)),
			[]pair{{"async_agent[0].backend", KindRequired}}},
		{"a message has no params", conf(agents(`{"backend": [{"url_pattern": "/x/{id}"}], "extra_config": {"async/amqp": {"host": "amqp://h/", "exchange": "e"}}}`)),
			[]pair{{"async_agent[0].backend[0].url_pattern", KindNotFound}}},
		{"backend checked as an endpoint's", conf(agents(`{"backend": [{"url_pattern": "/x", "encoding": "protobuf"}], "extra_config": {"async/amqp": {"host": "amqp://h/", "exchange": "e"}}}`)),
			[]pair{{"async_agent[0].backend[0].encoding", KindUnsupported}}},
		{"no host anywhere", `{"version": 3, ` + agents(agent("", "")) + `}`, []pair{{"async_agent[0].backend[0].host", KindRequired}}},
		{"not a list", conf(`"async_agent": {}`), []pair{{"async_agent", KindInvalid}}},
	})
}

func TestAsyncAgentWarnings(t *testing.T) {
	t.Parallel()
	got := warningsOf(t, conf(agents(agent(`"encoding": "json"`, ""))))
	if diff := cmp.Diff([]pair{{"async_agent[0].encoding", KindNoEffect}}, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestAsyncAgentSnapshot(t *testing.T) {
	t.Parallel()
	snap := compileDoc(t, conf(`"timeout": "3s", `+agents(
		agent("", ""),
		agent(`"name": "orders", "consumer": {"topic": "o.*", "workers": 4, "timeout": "500ms", "max_rate": 2.5},
			"connection": {"max_retries": -3, "backoff_strategy": "LINEAR", "health_interval": "3s"}`,
			`"name": "q", "durable": true, "prefetch_count": 5, "nack_discard": true`),
	)))
	want := []*gatewayv1.AsyncAgent{
		{
			Name:       "AsyncAgent-00",
			Consumer:   &gatewayv1.AsyncConsumer{Workers: 1, TimeoutMs: 3000},
			Connection: &gatewayv1.AsyncConnection{HealthIntervalMs: 1000},
			Amqp:       &gatewayv1.AMQPConsumer{Host: "amqp://guest:guest@127.0.0.1:5672/", Exchange: "ex"},
		},
		{
			Name:       "orders",
			Consumer:   &gatewayv1.AsyncConsumer{Topic: "o.*", Workers: 4, TimeoutMs: 500, MaxRate: 2.5},
			Connection: &gatewayv1.AsyncConnection{BackoffStrategy: "linear", HealthIntervalMs: 3000},
			Amqp:       &gatewayv1.AMQPConsumer{Host: "amqp://guest:guest@127.0.0.1:5672/", Exchange: "ex", Name: "q", Durable: true, PrefetchCount: 5, NackDiscard: true},
		},
	}
	got := snap.GetAsyncAgents()
	if diff := cmp.Diff(want, got, protocmp.Transform(), protocmp.IgnoreFields(&gatewayv1.AsyncAgent{}, "endpoint")); diff != "" {
		t.Errorf("agents (-want +got):\n%s", diff)
	}
	if len(got) != 2 {
		t.Fatal("no agents")
	}
	e := got[1].GetEndpoint()
	if e.GetName() != "orders" || e.GetTimeoutMs() != 500 || e.GetPath() != "" || len(e.GetInputHeaders()) != 0 {
		t.Errorf("pipe endpoint = %v", e)
	}
	be := e.GetBackends()[0]
	if be.GetName() != "orders backend[0]" || be.GetMethod() != "GET" || be.GetEncoding() != "json" ||
		!cmp.Equal(be.GetHosts(), []string{"http://backend:8080"}) {
		t.Errorf("pipe backend = %v", be)
	}
	if !contains(snap.GetFeatures(), "async.amqp") {
		t.Errorf("features %v lack async.amqp", snap.GetFeatures())
	}
	if plain := compileDoc(t, conf("", ep("/a", ""))); contains(plain.GetFeatures(), "async.amqp") || len(plain.GetAsyncAgents()) != 0 {
		t.Errorf("a config without agents compiles agents or the feature")
	}
}

func producerEP(path, host, ns string) string {
	return `{"endpoint": "` + path + `", "method": "POST", "backend": [{"host": ["` + host + `"], "url_pattern": "/x", "extra_config": {"backend/amqp/producer": {` + ns + `}}}]}`
}

func TestAMQPProducerRules(t *testing.T) {
	t.Parallel()
	const mq = "amqp://guest:guest@127.0.0.1:5672/"
	checkRules(t, []rule{
		{"producer", conf("", producerEP("/p/{topic}", mq, `"exchange": "e", "routing_key": "Topic"`)), nil},
		{"long namespace name", conf("", `{"endpoint": "/p", "backend": [{"host": ["`+mq+`"], "url_pattern": "/x", "extra_config": {"github.com/devopsfaith/krakend-amqp/produce": {"exchange": "e"}}}]}`), nil},
		{"no exchange", conf("", producerEP("/p", mq, `"routing_key": "k", "static_routing_key": true`)),
			[]pair{{`endpoints[0].backend[0].extra_config["backend/amqp/producer"].exchange`, KindRequired}}},
		{"http host", conf("", producerEP("/p", "http://broker", `"exchange": "e"`)), []pair{{"endpoints[0].backend[0].host[0]", KindInvalid}}},
		{"unknown key", conf("", producerEP("/p", mq, `"exchange": "e", "routingkey": "x"`)),
			[]pair{{`endpoints[0].backend[0].extra_config["backend/amqp/producer"].routingkey`, KindUnsupported}}},
		{"bad backoff", conf("", producerEP("/p", mq, `"exchange": "e", "backoff_strategy": "soon"`)),
			[]pair{{`endpoints[0].backend[0].extra_config["backend/amqp/producer"].backoff_strategy`, KindUnsupported}}},
		{"consumer", conf("", `{"endpoint": "/c", "backend": [{"host": ["`+mq+`"], "url_pattern": "/x", "extra_config": {"backend/amqp/consumer": {"name": "q", "exchange": "e", "routing_key": ["a.#"]}}}]}`), nil},
		{"consumer without queue and exchange", conf("", `{"endpoint": "/c", "backend": [{"host": ["`+mq+`"], "url_pattern": "/x", "extra_config": {"backend/amqp/consumer": {}}}]}`),
			[]pair{{`endpoints[0].backend[0].extra_config["backend/amqp/consumer"].exchange`, KindRequired}, {`endpoints[0].backend[0].extra_config["backend/amqp/consumer"].name`, KindRequired}}},
		{"consumer and producer", conf("", `{"endpoint": "/c", "backend": [{"host": ["`+mq+`"], "url_pattern": "/x", "extra_config": {"backend/amqp/consumer": {"name": "q", "exchange": "e"}, "backend/amqp/producer": {"exchange": "e"}}}]}`),
			[]pair{{"endpoints[0].backend[0].extra_config", KindInvalid}}},
		// The backend stack's own checks apply to AMQP backends too.
		{"producer with a bad cel expression", conf("", `{"endpoint": "/p", "backend": [{"host": ["`+mq+`"], "url_pattern": "/x", "extra_config": {"backend/amqp/producer": {"exchange": "e"}, "validation/cel": [{"check_expr": "req_method =="}]}}]}`),
			[]pair{{`endpoints[0].backend[0].extra_config["validation/cel"][0].check_expr`, KindInvalid}}},
		{"consumer with a bad circuit breaker", conf("", `{"endpoint": "/c", "backend": [{"host": ["`+mq+`"], "url_pattern": "/x", "extra_config": {"backend/amqp/consumer": {"name": "q", "exchange": "e"}, "qos/circuit-breaker": {"interval": 60, "timeout": 10, "max_errors": -1}}}]}`),
			[]pair{{`endpoints[0].backend[0].extra_config["qos/circuit-breaker"].max_errors`, KindInvalid}}},
		{"consumer routing_key is a list", conf("", `{"endpoint": "/c", "backend": [{"host": ["`+mq+`"], "url_pattern": "/x", "extra_config": {"backend/amqp/consumer": {"name": "q", "exchange": "e", "routing_key": "a"}}}]}`),
			[]pair{{`endpoints[0].backend[0].extra_config["backend/amqp/consumer"].routing_key`, KindInvalid}}},
	})
}

func TestAMQPProducerWarnings(t *testing.T) {
	t.Parallel()
	got := warningsOf(t, conf("", producerEP("/p/{topic}", "amqp://h/", `"exchange": "e", "routing_key": "topic", "msg_id_key": "Topic", "name": "q"`)))
	want := []pair{
		{`endpoints[0].backend[0].extra_config["backend/amqp/producer"].name`, KindNoEffect},
		{`endpoints[0].backend[0].extra_config["backend/amqp/producer"].routing_key`, KindNoEffect},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// TestAMQPBackendHTTPOnlyNamespaces: martian and the http cache wrap
// KrakenD's HTTP client, which its AMQP backends never call: accepted and
// warned, on producers and consumers alike.
func TestAMQPBackendHTTPOnlyNamespaces(t *testing.T) {
	t.Parallel()
	const extra = `"modifier/martian": {"header.Modifier": {"scope": ["request"], "name": "X-A", "value": "1"}}, "qos/http-cache": {}`
	for name, ns := range map[string]string{
		"producer": `"backend/amqp/producer": {"exchange": "e"}`,
		"consumer": `"backend/amqp/consumer": {"name": "q", "exchange": "e"}`,
	} {
		got := warningsOf(t, conf("", `{"endpoint": "/p", "backend": [{"host": ["amqp://h/"], "url_pattern": "/x", "extra_config": {`+ns+`, `+extra+`}}]}`))
		want := []pair{
			{`endpoints[0].backend[0].extra_config["modifier/martian"]`, KindNoEffect},
			{`endpoints[0].backend[0].extra_config["qos/http-cache"]`, KindNoEffect},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: warnings (-want +got):\n%s", name, diff)
		}
	}
}

// TestAMQPConsumerGraphQL: KrakenD's GraphQL middleware wraps the backend
// proxy; a consumer sends no request, so there it is warned (a producer
// publishes the GraphQL request and is not warned).
func TestAMQPConsumerGraphQL(t *testing.T) {
	t.Parallel()
	const gql = `"backend/graphql": {"type": "query", "query": "{ a }"}`
	got := warningsOf(t, conf("", `{"endpoint": "/c", "backend": [{"host": ["amqp://h/"], "url_pattern": "/x", "extra_config": {"backend/amqp/consumer": {"name": "q", "exchange": "e"}, `+gql+`}}]}`))
	want := []pair{{`endpoints[0].backend[0].extra_config["backend/graphql"]`, KindNoEffect}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("consumer warnings (-want +got):\n%s", diff)
	}
	if got := warningsOf(t, conf("", `{"endpoint": "/p", "backend": [{"host": ["amqp://h/"], "url_pattern": "/x", "extra_config": {"backend/amqp/producer": {"exchange": "e"}, `+gql+`}}]}`)); len(got) != 0 {
		t.Errorf("producer warnings %v, want none", got)
	}
}

func TestAMQPProducerSnapshot(t *testing.T) {
	t.Parallel()
	snap := compileDoc(t, conf("", producerEP("/p/{topic}/{id}", "amqp://guest:guest@127.0.0.1:5672/",
		`"exchange": "e", "durable": true, "routing_key": "Topic", "msg_id_key": "Id", "exp_key": "Nope", "max_retries": -1, "backoff_strategy": "Linear"`)))
	be := snap.GetEndpoints()[0].GetBackends()[0]
	want := &gatewayv1.AMQPProducer{Exchange: "e", Durable: true, RoutingParam: "topic", MessageIdParam: "id", BackoffStrategy: "linear"}
	if diff := cmp.Diff(want, be.GetAmqpProducer(), protocmp.Transform()); diff != "" {
		t.Errorf("producer (-want +got):\n%s", diff)
	}
	if !cmp.Equal(be.GetHosts(), []string{"amqp://guest:guest@127.0.0.1:5672/"}) {
		t.Errorf("hosts = %v", be.GetHosts())
	}
	if !contains(snap.GetFeatures(), "backend.amqp.producer") {
		t.Errorf("features %v", snap.GetFeatures())
	}
}
