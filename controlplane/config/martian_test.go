package config

import (
	"github.com/apigw/gateway/proto/feature"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// martianDoc is a config whose only backend has the given martian value.
func martianDoc(value string) string {
	return conf("", backendNS(`"modifier/martian": `+value))
}

const martianRoot = `endpoints[0].backend[0].extra_config["modifier/martian"]`

func TestValidateMartianRules(t *testing.T) {
	t.Parallel()
	group := martianRoot + `["fifo.Group"]`
	checkRules(t, []rule{
		{"header modifier", martianDoc(`{"header.Modifier": {"scope": ["request"], "name": "X-A", "value": "1"}}`), nil},
		{"long alias", conf("", backendNS(`"github.com/devopsfaith/krakend-martian": {"header.Modifier": {"name": "X-A", "value": ""}}`)), nil},
		{"every supported modifier", martianDoc(`{"fifo.Group": {"scope": ["request", "response"], "aggregateErrors": true, "modifiers": [
			{"header.Modifier": {"name": "X-A", "value": "1"}},
			{"header.Blacklist": {"scope": ["response"], "names": ["Server"]}},
			{"querystring.Modifier": {"scope": ["request"], "name": "q", "value": ""}},
			{"body.Modifier": {"contentType": "application/json", "body": "e30="}},
			{"fifo.Group": {"modifiers": [{"header.Modifier": {"name": "X-B", "value": "2"}}]}}]}}`), nil},

		// shape
		{"no modifier", martianDoc(`{}`), []pair{{martianRoot, KindInvalid}}},
		{"two modifiers", martianDoc(`{"header.Modifier": {"name": "X-A"}, "querystring.Modifier": {"name": "q"}}`),
			[]pair{{martianRoot, KindInvalid}}},
		{"not an object", martianDoc(`[]`), []pair{{martianRoot, KindInvalid}}},
		{"unsupported modifier", martianDoc(`{"body.Verifier": {}}`),
			[]pair{{martianRoot + `["body.Verifier"]`, KindUnsupported}}},
		{"modifier body not an object", martianDoc(`{"header.Modifier": "X-A: 1"}`),
			[]pair{{martianRoot + `["header.Modifier"]`, KindInvalid}}},
		{"unknown field", martianDoc(`{"header.Modifier": {"name": "X-A", "values": ["1"]}}`),
			[]pair{{martianRoot + `["header.Modifier"].values`, KindUnsupported}}},

		// scope
		{"unknown scope", martianDoc(`{"header.Modifier": {"scope": ["request", "both"], "name": "X-A"}}`),
			[]pair{{martianRoot + `["header.Modifier"].scope[1]`, KindUnsupported}}},
		{"empty scope", martianDoc(`{"header.Modifier": {"scope": [], "name": "X-A"}}`),
			[]pair{{martianRoot + `["header.Modifier"].scope`, KindInvalid}}},
		{"query string modifier on responses", martianDoc(`{"querystring.Modifier": {"scope": ["request", "response"], "name": "q"}}`),
			[]pair{{martianRoot + `["querystring.Modifier"].scope[1]`, KindInvalid}}},

		// fields
		{"header modifier without name", martianDoc(`{"header.Modifier": {"value": "1"}}`),
			[]pair{{martianRoot + `["header.Modifier"].name`, KindRequired}}},
		{"header modifier bad name", martianDoc(`{"header.Modifier": {"name": "X A", "value": "1"}}`),
			[]pair{{martianRoot + `["header.Modifier"].name`, KindInvalid}}},
		{"header value injection", martianDoc(`{"header.Modifier": {"name": "X-A", "value": "1\r\nX-B: 2"}}`),
			[]pair{{martianRoot + `["header.Modifier"].value`, KindInvalid}}},
		{"blacklist without names", martianDoc(`{"header.Blacklist": {}}`),
			[]pair{{martianRoot + `["header.Blacklist"].names`, KindRequired}}},
		{"blacklist bad name", martianDoc(`{"header.Blacklist": {"names": ["Server", "X A"]}}`),
			[]pair{{martianRoot + `["header.Blacklist"].names[1]`, KindInvalid}}},
		{"query string without name", martianDoc(`{"querystring.Modifier": {"value": "1"}}`),
			[]pair{{martianRoot + `["querystring.Modifier"].name`, KindRequired}}},
		{"body not base64", martianDoc(`{"body.Modifier": {"contentType": "text/plain", "body": "not base64!"}}`),
			[]pair{{martianRoot + `["body.Modifier"].body`, KindInvalid}}},
		{"body content type injection", martianDoc(`{"body.Modifier": {"contentType": "text/plain\n", "body": ""}}`),
			[]pair{{martianRoot + `["body.Modifier"].contentType`, KindInvalid}}},

		// groups
		{"empty group", martianDoc(`{"fifo.Group": {"modifiers": []}}`), []pair{{group + ".modifiers", KindRequired}}},
		{"group without modifiers", martianDoc(`{"fifo.Group": {}}`), []pair{{group + ".modifiers", KindRequired}}},
		{"group modifiers not a list", martianDoc(`{"fifo.Group": {"modifiers": {}}}`), []pair{{group + ".modifiers", KindInvalid}}},
		{"errors inside a group", martianDoc(`{"fifo.Group": {"aggregateErrors": "yes", "modifiers": [
			{"header.Modifier": {"name": "X-A"}},
			{"header.Modifier": {"value": "1"}},
			{"static.Modifier": {"explicitPaths": {"/a": "../b"}}},
			"header.Modifier",
			{"fifo.Group": {"modifiers": [{"querystring.Modifier": {"scope": ["response"], "name": "q"}}]}}]}}`),
			[]pair{
				{group + ".aggregateErrors", KindInvalid},
				{group + `.modifiers[1]["header.Modifier"].name`, KindRequired},
				{group + `.modifiers[2]["static.Modifier"].explicitPaths["/a"]`, KindInvalid},
				{group + `.modifiers[2]["static.Modifier"].rootPath`, KindRequired},
				{group + ".modifiers[3]", KindInvalid},
				{group + `.modifiers[4]["fifo.Group"].modifiers[0]["querystring.Modifier"].scope[0]`, KindInvalid},
			}},
		{"endpoint level", conf("", ep("/a", `"extra_config": {"modifier/martian": {}}`)),
			[]pair{{`endpoints[0].extra_config["modifier/martian"]`, KindUnsupported}}},
	})
}

func TestCompileMartian(t *testing.T) {
	t.Parallel()
	snap := compileDoc(t, martianDoc(`{"fifo.Group": {"aggregateErrors": true, "modifiers": [
		{"header.Modifier": {"scope": ["response", "request", "response"], "name": "x-a", "value": "1"}},
		{"header.Blacklist": {"names": ["server", "Server"]}},
		{"querystring.Modifier": {"name": "q", "value": "v"}},
		{"body.Modifier": {"scope": ["request"], "contentType": "application/json", "body": "eyJvayI6dHJ1ZX0="}}]}}`))
	both := []string{"request", "response"}
	want := &gatewayv1.MartianModifier{
		Scope: both,
		Kind: &gatewayv1.MartianModifier_FifoGroup{FifoGroup: &gatewayv1.MartianGroup{
			AggregateErrors: true,
			Modifiers: []*gatewayv1.MartianModifier{
				{Scope: both, Kind: &gatewayv1.MartianModifier_HeaderModifier{HeaderModifier: &gatewayv1.MartianHeader{Name: "X-A", Value: "1"}}},
				{Scope: both, Kind: &gatewayv1.MartianModifier_HeaderBlacklist{HeaderBlacklist: &gatewayv1.MartianHeaderList{Names: []string{"Server"}}}},
				{Scope: []string{"request"}, Kind: &gatewayv1.MartianModifier_QuerystringModifier{
					QuerystringModifier: &gatewayv1.MartianQueryString{Name: "q", Value: "v"}}},
				{Scope: []string{"request"}, Kind: &gatewayv1.MartianModifier_BodyModifier{
					BodyModifier: &gatewayv1.MartianBody{ContentType: "application/json", Body: []byte(`{"ok":true}`)}}},
			},
		}},
	}
	b := snap.GetEndpoints()[0].GetBackends()[0]
	if diff := cmp.Diff(want, b.GetMartian(), protocmp.Transform()); diff != "" {
		t.Errorf("martian (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{feature.ModifierMartian}, snap.GetFeatures()); diff != "" {
		t.Errorf("features (-want +got):\n%s", diff)
	}
}

func TestValidateJSONSchemaRules(t *testing.T) {
	t.Parallel()
	sp := `endpoints[0].extra_config["validation/json-schema"]`
	checkRules(t, []rule{
		{"schema", conf("", ep("/a", `"method": "POST", "extra_config": {"validation/json-schema": {"type": "object", "required": ["id"]}}`)), nil},
		{"long alias", conf("", ep("/a", `"extra_config": {"github.com/devopsfaith/krakend-jsonschema": {}}`)), nil},
		{"boolean schema", conf("", ep("/a", `"extra_config": {"validation/json-schema": true}`)), []pair{{sp, KindInvalid}}},
		{"list", conf("", ep("/a", `"extra_config": {"validation/json-schema": [{"type": "object"}]}`)), []pair{{sp, KindInvalid}}},
		{"string", conf("", ep("/a", `"extra_config": {"validation/json-schema": "{\"type\": \"object\"}"}`)), []pair{{sp, KindInvalid}}},
		{"backend level", conf("", backendNS(`"validation/json-schema": {}`)),
			[]pair{{`endpoints[0].backend[0].extra_config["validation/json-schema"]`, KindUnsupported}}},
	})
}

func TestCompileJSONSchema(t *testing.T) {
	t.Parallel()
	// Key order, whitespace and number spelling do not change the bytes.
	a := compileDoc(t, conf("", ep("/a", `"extra_config": {"validation/json-schema": {"type": "object", "properties": {"n": {"maximum": 1.0e2}}}}`)))
	b := compileDoc(t, conf("", ep("/a", `"extra_config": {"validation/json-schema": {"properties": {"n": {"maximum": 100}},   "type": "object"}}`)))
	want := `{"properties":{"n":{"maximum":100}},"type":"object"}`
	for _, s := range []*gatewayv1.Snapshot{a, b} {
		if got := string(s.GetEndpoints()[0].GetJsonSchema()); got != want {
			t.Errorf("json_schema = %s, want %s", got, want)
		}
		if diff := cmp.Diff([]string{feature.ValidationJSONSchema}, s.GetFeatures()); diff != "" {
			t.Errorf("features (-want +got):\n%s", diff)
		}
	}
}

// TestCompileMoreMartian: the modifiers KrakenD CE links beyond the first
// five, in the shapes martian's JSON takes (KrakenD's sample config uses
// header.RegexFilter).
func TestCompileMoreMartian(t *testing.T) {
	t.Parallel()
	snap := compileDoc(t, martianDoc(`{"fifo.Group": {"modifiers": [
		{"header.Append": {"name": "x-a", "value": "1"}},
		{"header.Copy": {"from": "x-a", "to": "x-b", "scope": ["request"]}},
		{"header.Id": {}},
		{"header.Filter": {"name": "x-env", "value": "beta", "modifier": {"header.Modifier": {"name": "X-Beta", "value": "1"}}, "else": {"header.Blacklist": {"names": ["X-Beta"]}}}},
		{"header.RegexFilter": {"scope": ["request"], "header": "User-Agent", "regex": "^curl", "modifier": {"header.Modifier": {"scope": ["request"], "name": "X-Curl", "value": "1"}}}},
		{"querystring.Filter": {"name": "debug", "modifier": {"querystring.Modifier": {"name": "verbose", "value": "1"}}}},
		{"url.Modifier": {"path": "/v2", "query": "a=1"}},
		{"stash.Modifier": {"headerName": "x-stash"}},
		{"priority.Group": {"modifiers": [{"priority": 10, "modifier": {"header.Modifier": {"name": "X-P", "value": "10"}}}]}}]}}`))
	both, rq := []string{"request", "response"}, []string{"request"}
	hdr := func(scope []string, name, value string) *gatewayv1.MartianModifier {
		return &gatewayv1.MartianModifier{Scope: scope, Kind: &gatewayv1.MartianModifier_HeaderModifier{HeaderModifier: &gatewayv1.MartianHeader{Name: name, Value: value}}}
	}
	want := []*gatewayv1.MartianModifier{
		{Scope: both, Kind: &gatewayv1.MartianModifier_HeaderAppend{HeaderAppend: &gatewayv1.MartianHeader{Name: "X-A", Value: "1"}}},
		{Scope: rq, Kind: &gatewayv1.MartianModifier_HeaderCopy{HeaderCopy: &gatewayv1.MartianCopy{From: "X-A", To: "X-B"}}},
		{Scope: rq, Kind: &gatewayv1.MartianModifier_HeaderId{HeaderId: &gatewayv1.MartianID{}}},
		{Scope: both, Kind: &gatewayv1.MartianModifier_HeaderFilter{HeaderFilter: &gatewayv1.MartianFilter{Name: "X-Env", Value: "beta",
			Modifier: hdr(both, "X-Beta", "1"),
			Else:     &gatewayv1.MartianModifier{Scope: both, Kind: &gatewayv1.MartianModifier_HeaderBlacklist{HeaderBlacklist: &gatewayv1.MartianHeaderList{Names: []string{"X-Beta"}}}}}}},
		{Scope: rq, Kind: &gatewayv1.MartianModifier_HeaderRegexFilter{HeaderRegexFilter: &gatewayv1.MartianRegexFilter{Header: "User-Agent", Regex: "^curl", Modifier: hdr(rq, "X-Curl", "1")}}},
		{Scope: both, Kind: &gatewayv1.MartianModifier_QuerystringFilter{QuerystringFilter: &gatewayv1.MartianFilter{Name: "debug",
			Modifier: &gatewayv1.MartianModifier{Scope: rq, Kind: &gatewayv1.MartianModifier_QuerystringModifier{QuerystringModifier: &gatewayv1.MartianQueryString{Name: "verbose", Value: "1"}}}}}},
		{Scope: rq, Kind: &gatewayv1.MartianModifier_UrlModifier{UrlModifier: &gatewayv1.MartianURL{Path: "/v2", Query: "a=1"}}},
		{Scope: both, Kind: &gatewayv1.MartianModifier_StashModifier{StashModifier: &gatewayv1.MartianStash{HeaderName: "X-Stash"}}},
		{Scope: both, Kind: &gatewayv1.MartianModifier_PriorityGroup{PriorityGroup: &gatewayv1.MartianPriorityGroup{Modifiers: []*gatewayv1.MartianPrioritized{{Priority: 10, Modifier: hdr(both, "X-P", "10")}}}}},
	}
	got := snap.GetEndpoints()[0].GetBackends()[0].GetMartian().GetFifoGroup().GetModifiers()
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("martian (-want +got):\n%s", diff)
	}
}

func TestValidateMoreMartianRules(t *testing.T) {
	t.Parallel()
	checkRules(t, []rule{
		{"filter without modifier", martianDoc(`{"header.Filter": {"name": "X", "value": "y"}}`), []pair{{martianRoot + `["header.Filter"].modifier`, KindRequired}}},
		{"bad regex", martianDoc(`{"header.RegexFilter": {"header": "X", "regex": "(", "modifier": {"header.Id": {}}}}`), []pair{{martianRoot + `["header.RegexFilter"].regex`, KindInvalid}}},
		{"id on responses", martianDoc(`{"header.Id": {"scope": ["response"]}}`), []pair{{martianRoot + `["header.Id"].scope[0]`, KindInvalid}}},
		{"url on responses", martianDoc(`{"url.Modifier": {"scope": ["response"], "path": "/x"}}`), []pair{{martianRoot + `["url.Modifier"].scope[0]`, KindInvalid}}},
		{"url scheme", martianDoc(`{"url.Modifier": {"scheme": "ftp"}}`), []pair{{martianRoot + `["url.Modifier"].scheme`, KindInvalid}}},
		{"stash response only", martianDoc(`{"stash.Modifier": {"scope": ["response"], "headerName": "X"}}`), []pair{{martianRoot + `["stash.Modifier"].scope`, KindInvalid}}},
		{"copy without to", martianDoc(`{"header.Copy": {"from": "X"}}`), []pair{{martianRoot + `["header.Copy"].to`, KindRequired}}},
		{"priority entry without modifier", martianDoc(`{"priority.Group": {"modifiers": [{"priority": 1}]}}`), []pair{{martianRoot + `["priority.Group"].modifiers[0].modifier`, KindRequired}}},
		{"static", martianDoc(`{"static.Modifier": {"rootPath": "a", "explicitPaths": {"/x": "/b/c.json", "/y": "d"}}}`), nil},
		{"static without rootPath", martianDoc(`{"static.Modifier": {"explicitPaths": {"/x": "b"}}}`), []pair{{martianRoot + `["static.Modifier"].rootPath`, KindRequired}}},
		{"static file outside rootPath", martianDoc(`{"static.Modifier": {"rootPath": "/srv", "explicitPaths": {"/a": "../etc/passwd", "/b": "x/../../y", "/c": "/", "/d": ""}}}`), []pair{
			{martianRoot + `["static.Modifier"].explicitPaths["/a"]`, KindInvalid},
			{martianRoot + `["static.Modifier"].explicitPaths["/b"]`, KindInvalid},
			{martianRoot + `["static.Modifier"].explicitPaths["/c"]`, KindInvalid},
			{martianRoot + `["static.Modifier"].explicitPaths["/d"]`, KindInvalid},
		}},
		{"static explicitPaths not strings", martianDoc(`{"static.Modifier": {"rootPath": "/srv", "explicitPaths": {"/a": 1}}}`), []pair{{martianRoot + `["static.Modifier"].explicitPaths["/a"]`, KindInvalid}}},
	})
}

// TestValidateLastMartianRules: cookie, status, port, url filters and
// verifiers, refused where martian's parser refuses them.
func TestValidateLastMartianRules(t *testing.T) {
	t.Parallel()
	checkRules(t, []rule{
		{"cookie without name", martianDoc(`{"cookie.Modifier": {"value": "b"}}`), []pair{{martianRoot + `["cookie.Modifier"].name`, KindRequired}}},
		{"cookie bad name", martianDoc(`{"cookie.Modifier": {"name": "a b"}}`), []pair{{martianRoot + `["cookie.Modifier"].name`, KindInvalid}}},
		{"cookie expires not RFC 3339", martianDoc(`{"cookie.Modifier": {"name": "a", "expires": "tomorrow"}}`), []pair{{martianRoot + `["cookie.Modifier"].expires`, KindInvalid}}},
		{"cookie filter without modifier", martianDoc(`{"cookie.Filter": {"name": "a"}}`), []pair{{martianRoot + `["cookie.Filter"].modifier`, KindRequired}}},
		{"status on requests", martianDoc(`{"status.Modifier": {"scope": ["request"], "statusCode": 404}}`), []pair{{martianRoot + `["status.Modifier"].scope[0]`, KindInvalid}}},
		{"status out of range", martianDoc(`{"status.Modifier": {"statusCode": 42}}`), []pair{{martianRoot + `["status.Modifier"].statusCode`, KindInvalid}}},
		{"port two choices", martianDoc(`{"port.Modifier": {"port": 80, "remove": true}}`), []pair{{martianRoot + `["port.Modifier"]`, KindInvalid}}},
		{"port none", martianDoc(`{"port.Modifier": {}}`), []pair{{martianRoot + `["port.Modifier"]`, KindInvalid}}},
		{"port too big", martianDoc(`{"port.Modifier": {"port": 70000}}`), []pair{{martianRoot + `["port.Modifier"].port`, KindInvalid}}},
		{"port on responses", martianDoc(`{"port.Modifier": {"scope": ["response"], "remove": true}}`), []pair{{martianRoot + `["port.Modifier"].scope[0]`, KindInvalid}}},
		{"port filter no port", martianDoc(`{"port.Filter": {"modifier": {"header.Id": {}}}}`), []pair{{martianRoot + `["port.Filter"].port`, KindInvalid}}},
		{"port filter has no else", martianDoc(`{"port.Filter": {"port": 80, "modifier": {"header.Id": {}}, "else": {"header.Id": {}}}}`), []pair{{martianRoot + `["port.Filter"].else`, KindUnsupported}}},
		{"url filter without modifier", martianDoc(`{"url.Filter": {"host": "a"}}`), []pair{{martianRoot + `["url.Filter"].modifier`, KindRequired}}},
		{"url regex bad", martianDoc(`{"url.RegexFilter": {"regex": "(", "modifier": {"header.Id": {}}}}`), []pair{{martianRoot + `["url.RegexFilter"].regex`, KindInvalid}}},
		{"verifier accepted", martianDoc(`{"status.Verifier": {"statusCode": 200}}`), nil},
	})
	c, err := Compile("v.json", []byte(martianDoc(`{"fifo.Group": {"modifiers": [{"header.Verifier": {"name": "X", "value": "1"}}, {"url.Verifier": {}}]}}`)))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, w := range c.Warnings {
		if w.GetKind() == KindNoEffect {
			paths = append(paths, w.GetPath())
		}
	}
	want := []string{
		martianRoot + `["fifo.Group"].modifiers[0]["header.Verifier"].name`,
		martianRoot + `["fifo.Group"].modifiers[0]["header.Verifier"].value`,
		martianRoot + `["fifo.Group"].modifiers[1]["url.Verifier"]`,
	}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("verifier warnings (-want +got):\n%s", diff)
	}
}
