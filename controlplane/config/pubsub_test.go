package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/apigw/gateway/proto/feature"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// psEP is an endpoint whose one backend has host and the members given
// (extra_config included).
func psEP(host, members string) string {
	return `{"endpoint": "/p", "method": "POST", "backend": [{"url_pattern": "/", "host": [` + host + `], ` + members + `}]}`
}

func pubEC(topic string) string {
	return `"disable_host_sanitize": true, "extra_config": {"backend/pubsub/publisher": {"topic_url": "` + topic + `"}}`
}

func subEC(sub string) string {
	return `"disable_host_sanitize": true, "extra_config": {"backend/pubsub/subscriber": {"subscription_url": "` + sub + `"}}`
}

const psB = "endpoints[0].backend[0]"

func TestValidatePubSubRules(t *testing.T) {
	t.Parallel()
	pubKey := psB + `.extra_config["backend/pubsub/publisher"].topic_url`
	subKey := psB + `.extra_config["backend/pubsub/subscriber"].subscription_url`
	checkRules(t, []rule{
		{"nats publisher", conf("", psEP(`"nats://"`, pubEC("orders"))), nil},
		{"nats publisher natsv2", conf("", psEP(`"nats://"`, pubEC("orders?natsv2"))), nil},
		{"nats subscriber queue", conf("", psEP(`"nats://"`, subEC("orders?queue=w&natsv2=true"))), nil},
		{"rabbit publisher", conf("", psEP(`"rabbit://"`, pubEC("ex"))), nil},
		{"rabbit subscriber", conf("", psEP(`"rabbit://"`, subEC("q"))), nil},
		{"long alias", conf("", psEP(`"nats://"`, `"disable_host_sanitize": true, "extra_config": {"github.com/devopsfaith/krakend-pubsub/subscriber": {"subscription_url": "s"}}`)), nil},
		{"host sanitised", conf("", psEP(`"nats://"`, `"extra_config": {"backend/pubsub/publisher": {"topic_url": "o"}}`)),
			[]pair{{psB + ".disable_host_sanitize", KindRequired}}},
		{"service host", conf("", `{"endpoint": "/p", "backend": [{"url_pattern": "/", "extra_config": {"backend/pubsub/publisher": {"topic_url": "o"}}}]}`),
			[]pair{{psB + ".host", KindInvalid}}},
		{"kafka refused", conf("", psEP(`"kafka://"`, pubEC("t"))), []pair{{psB + ".host[0]", KindUnsupported}}},
		{"gcp refused", conf("", psEP(`"gcppubsub://"`, subEC("projects/p/subscriptions/s"))), []pair{{psB + ".host[0]", KindUnsupported}}},
		{"aws refused", conf("", psEP(`"awssqs://"`, subEC("sqs.us-east-2.amazonaws.com/1/q"))), []pair{{psB + ".host[0]", KindUnsupported}}},
		{"azure refused", conf("", psEP(`"azuresb://"`, pubEC("t"))), []pair{{psB + ".host[0]", KindUnsupported}}},
		{"mem refused", conf("", psEP(`"mem://"`, pubEC("t"))), []pair{{psB + ".host[0]", KindUnsupported}}},
		{"http scheme", conf("", psEP(`"http://"`, pubEC("t"))), []pair{{psB + ".host[0]", KindInvalid}}},
		{"no subject", conf("", psEP(`"nats://"`, pubEC(""))), []pair{{pubKey, KindRequired}}},
		{"queue on a topic", conf("", psEP(`"nats://"`, pubEC("o?queue=w"))), []pair{{pubKey, KindInvalid}}},
		{"unknown nats parameter", conf("", psEP(`"nats://"`, subEC("o?durable=1"))), []pair{{subKey, KindInvalid}}},
		{"natsv2 not a boolean", conf("", psEP(`"nats://"`, pubEC("o?natsv2=maybe"))), []pair{{pubKey, KindInvalid}}},
		{"rabbit parameter", conf("", psEP(`"rabbit://"`, subEC("q?prefetch_count=1"))), []pair{{subKey, KindInvalid}}},
		{"unknown key", conf("", psEP(`"nats://"`, `"disable_host_sanitize": true, "extra_config": {"backend/pubsub/publisher": {"topic": "o"}}`)),
			[]pair{{psB + `.extra_config["backend/pubsub/publisher"].topic`, KindUnsupported}, {pubKey, KindRequired}}},
		{"publisher and subscriber", conf("", psEP(`"nats://"`, `"disable_host_sanitize": true, "extra_config": {
			"backend/pubsub/publisher": {"topic_url": "o"}, "backend/pubsub/subscriber": {"subscription_url": "o"}}`)),
			[]pair{{psB + ".extra_config", KindInvalid}}},
	})
}

func TestCompilePubSub(t *testing.T) {
	t.Parallel()
	snap := compileDoc(t, conf("", psEP(`"nats://"`, subEC("orders?queue=w")), `{"endpoint": "/q", "method": "POST", "backend": [{"url_pattern": "/", "host": ["rabbit://"], `+pubEC("ex")+`}]}`))
	got := []*gatewayv1.PubSub{snap.GetEndpoints()[0].GetBackends()[0].GetPubsub(), snap.GetEndpoints()[1].GetBackends()[0].GetPubsub()}
	want := []*gatewayv1.PubSub{{Url: "nats://orders?queue=w", Subscriber: true}, {Url: "rabbit://ex"}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("pubsub (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{feature.BackendPubSub}, snap.GetFeatures()); diff != "" {
		t.Errorf("features (-want +got):\n%s", diff)
	}
}
