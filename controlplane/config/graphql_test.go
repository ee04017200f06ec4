package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/apigw/gateway/proto/feature"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// gqlEP is an endpoint /g/{id} whose backend has backend/graphql members.
func gqlEP(members string) string {
	return `{"endpoint": "/g/{id}", "backend": [{"url_pattern": "/graphql", "extra_config": {"backend/graphql": {` + members + `}}}]}`
}

// gqlJWTEP is gqlEP with auth/validator and a second backend at url (a
// JSON string), the graphql one's variables vars.
func gqlJWTEP(url, vars string) string {
	return `{"endpoint": "/g/{id}", "backend": [{"url_pattern": "/graphql", "extra_config": {"backend/graphql":
		{"type": "query", "query": "{ a }", "variables": ` + vars + `}}}, {"url_pattern": ` + url + `}],
		"extra_config": {"auth/validator": {"alg": "RS256", "jwk_url": "https://idp.example.com/jwks.json"}}}`
}

func gqlPath(field string) string {
	return `endpoints[0].backend[0].extra_config["backend/graphql"]` + field
}

func TestValidateGraphQLRules(t *testing.T) {
	t.Parallel()
	qfile := filepath.Join(t.TempDir(), "q.graphql")
	if err := os.WriteFile(qfile, []byte("{ hero { name } }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkRulesWith(t, Options{ReadFile: OSReadFile}, []rule{
		{"query", conf("", gqlEP(`"type": "query", "query": "{ a }", "variables": {"id": "{id}", "n": 1}, "operationName": "A"`)), nil},
		{"title-cased parameter", conf("", gqlEP(`"type": "QUERY", "query": "{ a }", "variables": {"id": "{Id}"}, "method": "get"`)), nil},
		{"mutation", conf("", gqlEP(`"type": "mutation", "query": "mutation { a }", "variables": {"x": "{nope}"}, "method": "POST"`)), nil},
		{"query_path", conf("", gqlEP(`"type": "query", "query_path": "`+qfile+`"`)), nil},
		{"long alias", conf("", `{"endpoint": "/g", "backend": [{"url_pattern": "/graphql", "extra_config":
			{"github.com/devopsfaith/krakend/transport/http/client/graphql": {"type": "query", "query": "{ a }"}}}]}`), nil},
		{"no type", conf("", gqlEP(`"query": "{ a }"`)), []pair{{gqlPath(".type"), KindRequired}}},
		{"unknown type", conf("", gqlEP(`"type": "subscription", "query": "{ a }"`)), []pair{{gqlPath(".type"), KindUnsupported}}},
		{"unknown method", conf("", gqlEP(`"type": "query", "query": "{ a }", "method": "PUT"`)), []pair{{gqlPath(".method"), KindUnsupported}}},
		{"no query", conf("", gqlEP(`"type": "query"`)), []pair{{gqlPath(".query"), KindRequired}}},
		{"query and query_path", conf("", gqlEP(`"type": "query", "query": "{ a }", "query_path": "`+qfile+`"`)), []pair{{gqlPath(".query_path"), KindInvalid}}},
		{"missing query file", conf("", gqlEP(`"type": "query", "query_path": "/nonexistent/q.graphql"`)), []pair{{gqlPath(".query_path"), KindNotFound}}},
		{"unknown parameter", conf("", gqlEP(`"type": "query", "query": "{ a }", "variables": {"x": "{nope}"}`)),
			[]pair{{gqlPath(`.variables["x"]`), KindNotFound}}},
		{"JWT claim named by a url_pattern", conf("", gqlJWTEP(`"/u/{JWT.sub}"`, `{"who": "{JWT.sub}"}`)), nil},
		{"JWT claim no url_pattern names", conf("", gqlJWTEP(`"/u/{JWT.sub}"`, `{"who": "{JWT.tenant}"}`)),
			[]pair{{gqlPath(`.variables["who"]`), KindNotFound}}},
		{"JWT claim without auth/validator", conf("", `{"endpoint": "/g/{id}", "backend": [{"url_pattern": "/graphql",
			"extra_config": {"backend/graphql": {"type": "query", "query": "{ a }", "variables": {"who": "{JWT.sub}"}}}},
			{"url_pattern": "/u/{JWT.sub}"}]}`), []pair{{gqlPath(`.variables["who"]`), KindNotFound},
			{"endpoints[0].backend[1].url_pattern", KindNotFound}}},
		{"variables not an object", conf("", gqlEP(`"type": "query", "query": "{ a }", "variables": [1]`)), []pair{{gqlPath(".variables"), KindInvalid}}},
	})
}

// TestGraphQLQueryPathThroughReadFile: query_path is read where the
// configuration is compiled (Options.ReadFile), as Lua sources are: the
// control plane, which reads no files, serves what gwctl sent, and without
// the file the path is a violation.
func TestGraphQLQueryPathThroughReadFile(t *testing.T) {
	t.Parallel()
	doc := conf("", gqlEP(`"type": "query", "query_path": "q.graphql"`))
	if diff := cmp.Diff([]string{"q.graphql"}, ReferencedFiles("k.json", []byte(doc), nil)); diff != "" {
		t.Errorf("ReferencedFiles (-want +got):\n%s", diff)
	}
	sent := SourceFiles([]*gatewayv1.LuaSource{{Name: "q.graphql", Text: "{ sent }"}})
	c, err := CompileWith("k.json", []byte(doc), Options{ReadFile: sent})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Snapshot.GetEndpoints()[0].GetBackends()[0].GetGraphql().GetQuery(); got != "{ sent }" {
		t.Errorf("query = %q, want the text sent with the configuration", got)
	}
	if got := pairsOf(violationsOf(t, "k.json", doc)); !cmp.Equal(got, []pair{{gqlPath(".query_path"), KindNotFound}}) {
		t.Errorf("without files: violations %v, want query_path not_found", got)
	}
}

func TestCompileGraphQL(t *testing.T) {
	t.Parallel()
	qfile := filepath.Join(t.TempDir(), "q.graphql")
	if err := os.WriteFile(qfile, []byte("{ hero }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := CompileWith("k.json", []byte(conf("", gqlEP(`"type": "Mutation", "query_path": "`+qfile+`", "variables": {"b": 2, "a": "{id}"}, "operationName": "H", "method": "get"`))), Options{ReadFile: OSReadFile})
	if err != nil {
		t.Fatal(err)
	}
	snap := c.Snapshot
	want := &gatewayv1.GraphQL{Mutation: true, Get: true, Query: "{ hero }\n", OperationName: "H", Variables: []byte(`{"a":"{id}","b":2}`)}
	if diff := cmp.Diff(want, snap.GetEndpoints()[0].GetBackends()[0].GetGraphql(), protocmp.Transform()); diff != "" {
		t.Errorf("graphql (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{feature.BackendGraphQL}, snap.GetFeatures()); diff != "" {
		t.Errorf("features (-want +got):\n%s", diff)
	}
}
