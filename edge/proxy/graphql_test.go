package proxy

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// The GraphQL calls KrakenD CE 2.12.1 sent for the same configs and
// requests (recorded on loopback with an echoing backend): lura marshals
// {query, operationName, variables} with encoding/json, so variables are
// sorted, HTML-escaped, and their numbers went through float64.
const gqlQuery = "query Hero($id: ID!, $n: Int) { hero(id: $id) { name } }"

var gqlVars = `{"id":"{id}","n":1.0,"big":12345678901234567890,"e":1e3,"h":"<&>","nested":{"b":1,"a":[1,"x"]}}`

func TestGraphQLRequest(t *testing.T) {
	client := mustClient(t, "http://b.internal:8080")
	type want struct{ method, uri, ctype, body string }
	for _, tc := range []struct {
		name        string
		cfg         GraphQLConfig
		method, uri string
		body        string
		want        want
		wantErr     bool
	}{
		{"query with a parameter", GraphQLConfig{Query: gqlQuery, OperationName: "Hero", Variables: []byte(gqlVars)}, "GET", "/g/42", "ignored",
			want{"POST", "http://b.internal:8080/gql?fixed=1", "application/json",
				`{"query":"query Hero($id: ID!, $n: Int) { hero(id: $id) { name } }","operationName":"Hero","variables":{"big":12345678901234567000,"e":1000,"h":"\u003c\u0026\u003e","id":"42","n":1,"nested":{"a":[1,"x"],"b":1}}}`}, false},
		{"query, escaped parameter", GraphQLConfig{Query: "q", Variables: []byte(`{"id":"{Id}"}`)}, "GET", "/g/a%20b%3C", "",
			want{"POST", "http://b.internal:8080/gql?fixed=1", "application/json", `{"query":"q","variables":{"id":"a b\u003c"}}`}, false},
		{"query, fixed variables", GraphQLConfig{Query: gqlQuery, OperationName: "Hero", Variables: []byte(`{"a":1.5,"s":"x"}`)}, "GET", "/g/42", "",
			want{"POST", "http://b.internal:8080/gql?fixed=1", "application/json",
				`{"query":"query Hero($id: ID!, $n: Int) { hero(id: $id) { name } }","operationName":"Hero","variables":{"a":1.5,"s":"x"}}`}, false},
		{"query, no variables", GraphQLConfig{Query: gqlQuery}, "GET", "/g/42", "",
			want{"POST", "http://b.internal:8080/gql?fixed=1", "application/json", `{"query":"query Hero($id: ID!, $n: Int) { hero(id: $id) { name } }"}`}, false},
		{"mutation: body variables win, {param} is not replaced", GraphQLConfig{Mutation: true, Query: gqlQuery, OperationName: "Hero", Variables: []byte(gqlVars)},
			"POST", "/g/42", `{"id":"body","n":2.50,"extra":[1e2],"h":"<"}`,
			want{"POST", "http://b.internal:8080/gql?fixed=1", "application/json",
				`{"query":"query Hero($id: ID!, $n: Int) { hero(id: $id) { name } }","operationName":"Hero","variables":{"big":12345678901234567000,"e":1000,"extra":[100],"h":"\u003c","id":"body","n":2.5,"nested":{"a":[1,"x"],"b":1}}}`}, false},
		{"mutation without a body", GraphQLConfig{Mutation: true, Query: "q"}, "POST", "/g/42", "", want{}, true},
		{"mutation with an array", GraphQLConfig{Mutation: true, Query: "q"}, "POST", "/g/42", "[1]", want{}, true},
		{"mutation with null and variables", GraphQLConfig{Mutation: true, Query: "q", Variables: []byte(`{"a":1}`)}, "POST", "/g/42", "null", want{}, true},
		{"query as GET", GraphQLConfig{Get: true, Query: "{ a }", OperationName: "Op", Variables: []byte(`{"id":"{id}","n":1}`)}, "GET", "/g/42", "",
			want{"GET", "http://b.internal:8080/gql?fixed=1&operationName=Op&query=%7B+a+%7D&variables=%7B%22id%22%3A%2242%22%2C%22n%22%3A1%7D", "application/json", ""}, false},
		{"fixed query as GET", GraphQLConfig{Get: true, Query: "{ a }", Variables: []byte(`{"n":1}`)}, "GET", "/g/42", "",
			want{"GET", "http://b.internal:8080/gql?fixed=1&query=%7B+a+%7D&variables=%7B%22n%22%3A1%7D", "application/json", ""}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, params := inbound(t, "/g/{id}", tc.method, tc.uri, map[string]string{"Content-Type": "text/plain"}, tc.body)
			cfg := tc.cfg
			b, err := NewBackend(BackendConfig{Name: "b", Client: client, Method: "PUT", URLPattern: "/gql?fixed=1", ParamNames: params,
				EndpointHeaders: []string{"Content-Type"}, GraphQL: &cfg})
			if err != nil {
				t.Fatal(err)
			}
			req := new(fasthttp.Request)
			err = b.BuildRequest(req, client.Pick(), in, nil)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("BuildRequest: no error; body %s", req.Body())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := want{string(req.Header.Method()), string(req.URI().FullURI()), string(req.Header.ContentType()), string(req.Body())}
			if got != tc.want {
				t.Errorf("request\n got %+v\nwant %+v", got, tc.want)
			}
			if n := strings.Count(string(req.Header.Header()), "Content-Type:"); n != 1 {
				t.Errorf("%d Content-Type headers", n)
			}
		})
	}
}

// TestGraphQLJWTVariables: a query's "{JWT.x}" variable takes the claim of
// the verified token when the endpoint's url_patterns name it (Claims), as
// krakend-jose exposes it to lura's GraphQL middleware; else "".
func TestGraphQLJWTVariables(t *testing.T) {
	client := mustClient(t, "http://b.internal:8080")
	for _, tc := range []struct {
		name     string
		cfg      GraphQLConfig
		claims   Claims
		uri, bdy string
	}{
		{"POST", GraphQLConfig{Query: "q", Claims: []string{"sub"}, Variables: []byte(`{"who":"{JWT.sub}","other":"{JWT.tenant}","id":"{id}"}`)},
			claimMap{"sub": `a/b "c"`, "tenant": "acme"}, "http://b.internal:8080/gql",
			`{"query":"q","variables":{"id":"7","other":"","who":"a/b \"c\""}}`},
		{"GET", GraphQLConfig{Get: true, Query: "q", Claims: []string{"sub"}, Variables: []byte(`{"who":"{JWT.sub}"}`)},
			claimMap{"sub": "u1"}, "http://b.internal:8080/gql?query=q&variables=%7B%22who%22%3A%22u1%22%7D", ""},
		{"no token", GraphQLConfig{Query: "q", Claims: []string{"sub"}, Variables: []byte(`{"who":"{JWT.sub}"}`)},
			nil, "http://b.internal:8080/gql", `{"query":"q","variables":{"who":""}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, params := inbound(t, "/g/{id}", "GET", "/g/7", nil, "")
			in.Claims = tc.claims
			cfg := tc.cfg
			b, err := NewBackend(BackendConfig{Name: "b", Client: client, Method: "GET", URLPattern: "/gql", ParamNames: params, GraphQL: &cfg})
			if err != nil {
				t.Fatal(err)
			}
			req := new(fasthttp.Request)
			if err := b.BuildRequest(req, client.Pick(), in, nil); err != nil {
				t.Fatal(err)
			}
			if uri, body := string(req.URI().FullURI()), string(req.Body()); uri != tc.uri || body != tc.bdy {
				t.Errorf("request %s %s\nwant %s %s", uri, body, tc.uri, tc.bdy)
			}
		})
	}
}
