package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/apigw/gateway/proto/feature"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func TestValidateBotDetectorRules(t *testing.T) {
	t.Parallel()
	svc := func(members string) string {
		return conf(`"extra_config": {"security/bot-detector": {` + members + `}}`)
	}
	sp := func(field string) string { return `extra_config["security/bot-detector"]` + field }
	endpoint := func(members string) string {
		return conf("", ep("/a", `"extra_config": {"security/bot-detector": {`+members+`}}`))
	}
	checkRules(t, []rule{
		{"empty", svc(""), nil},
		{"every key", svc(`"allow": ["c"], "deny": ["a", "b"], "patterns": ["(facebookexternalhit)/.*"],
			"cache_size": 10000, "empty_user_agent_is_bot": true`), nil},
		{"long alias", conf(`"extra_config": {"github_com/devopsfaith/krakend-botdetector": {"deny": ["a"]}}`), nil},
		{"bad patterns", svc(`"patterns": ["ok", "(unclosed", "a{2,1}"]`),
			[]pair{{sp(".patterns[1]"), KindInvalid}, {sp(".patterns[2]"), KindInvalid}}},
		{"negative cache_size", svc(`"cache_size": -1`), []pair{{sp(".cache_size"), KindInvalid}}},
		{"huge cache_size", svc(`"cache_size": 2000000`), []pair{{sp(".cache_size"), KindInvalid}}},
		{"unknown key", svc(`"denylist": ["a"]`), []pair{{sp(".denylist"), KindUnsupported}}},
		{"wrong type", svc(`"deny": "a"`), []pair{{sp(".deny"), KindInvalid}}},
		{"endpoint level", endpoint(`"deny": ["a"], "cache_size": 5`), nil},
		{"endpoint bad pattern", endpoint(`"patterns": ["["]`),
			[]pair{{`endpoints[0].extra_config["security/bot-detector"].patterns[0]`, KindInvalid}}},
		{"not at backend level", conf("", `{"endpoint": "/a", "backend": [{"host": ["http://127.0.0.1:1"], "url_pattern": "/",
			"extra_config": {"security/bot-detector": {}}}]}`),
			[]pair{{`endpoints[0].backend[0].extra_config["security/bot-detector"]`, KindUnsupported}}},
	})
}

func TestCompileBotDetector(t *testing.T) {
	t.Parallel()
	doc := conf(`"extra_config": {"security/bot-detector": {"deny": ["a", "b"], "allow": ["c"],
		"patterns": ["(facebookexternalhit)/.*"], "cache_size": 100}}`,
		ep("/a", `"extra_config": {"security/bot-detector": {"empty_user_agent_is_bot": true}}`),
		ep("/b", ""))
	c, err := Compile("k.json", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := &gatewayv1.BotDetector{Deny: []string{"a", "b"}, Allow: []string{"c"}, Patterns: []string{"(facebookexternalhit)/.*"}, CacheSize: 100}
	if diff := cmp.Diff(want, c.Snapshot.GetService().GetBotDetector(), protocmp.Transform()); diff != "" {
		t.Errorf("service bot detector (-want +got):\n%s", diff)
	}
	eps := c.Snapshot.GetEndpoints()
	if diff := cmp.Diff(&gatewayv1.BotDetector{EmptyUserAgentIsBot: true}, eps[0].GetBotDetector(), protocmp.Transform()); diff != "" {
		t.Errorf("endpoint bot detector (-want +got):\n%s", diff)
	}
	if eps[1].GetBotDetector() != nil {
		t.Errorf("an endpoint without the namespace got %v", eps[1].GetBotDetector())
	}
	if diff := cmp.Diff([]string{feature.SecurityBotDetector}, c.Snapshot.GetFeatures()); diff != "" {
		t.Errorf("features (-want +got):\n%s", diff)
	}
}
