package config

import (
	"encoding/json"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// GraphQL is the backend-level `backend/graphql` namespace (lura's GraphQL
// middleware).
type GraphQL struct {
	Type          string
	Query         string
	QueryPath     string
	Variables     []byte // canonical JSON object; nil when absent
	OperationName string
	Method        string
}

func (d *decoder) graphQL(n *node, p path) *GraphQL {
	g := &GraphQL{}
	d.object(n, p, objectSpec{fields: map[string]handler{
		"type":          d.str(&g.Type),
		"query":         d.str(&g.Query),
		"query_path":    d.str(&g.QueryPath),
		"variables":     d.rawObject(&g.Variables),
		"operationName": d.str(&g.OperationName),
		"method":        d.str(&g.Method),
	}})
	return g
}

var (
	graphQLTypes   = []string{"query", "mutation"}
	graphQLMethods = []string{"POST", "GET"}
)

func (v *validator) graphQL(p path, g *GraphQL, r route, e *Endpoint) {
	switch {
	case g.Type == "":
		v.vs.add(p.field("type"), KindRequired, "type is required (query or mutation); KrakenD calls the backend without GraphQL otherwise")
	case !oneOf(strings.ToLower(g.Type), graphQLTypes):
		v.vs.unsupportedValue(p.field("type"), g.Type, graphQLTypes)
	}
	if g.Method != "" && !oneOf(strings.ToUpper(g.Method), graphQLMethods) {
		v.vs.add(p.field("method"), KindUnsupported, "%q: allowed: POST (the default), GET (KrakenD silently uses POST)", g.Method)
	}
	switch {
	case g.QueryPath != "" && g.Query != "":
		v.vs.add(p.field("query_path"), KindInvalid, "query and query_path are exclusive (KrakenD silently uses query_path)")
	case g.QueryPath != "":
		// KrakenD reads the file when it starts, relative to its working
		// directory; it is read through Options.ReadFile like Lua sources
		// (gwctl sends it along), and its text is embedded in the snapshot.
		if text, ok := v.readFile(p.field("query_path"), g.QueryPath, "GraphQL query"); ok {
			g.Query = text
		}
	case g.Query == "":
		v.vs.add(p.field("query"), KindRequired, "set query (the GraphQL document) or query_path (a file holding it)")
	}
	if strings.ToLower(g.Type) != "query" || !r.ok || g.Variables == nil {
		return
	}
	var vars map[string]any
	_ = json.Unmarshal(g.Variables, &vars)
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s, ok := vars[k].(string)
		if !ok || len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
			continue
		}
		name := s[1 : len(s)-1]
		if claim, ok := strings.CutPrefix(titleFirst(name), "JWT."); ok {
			// krakend-jose exposes a claim as the parameter "JWT.<claim>"
			// only for the claims the endpoint's url_patterns name.
			if e.ExtraConfig.JWT == nil || !urlPatternsName(e, "{JWT."+claim+"}") {
				v.vs.add(p.field("variables").key(k), KindNotFound, "%s: KrakenD exposes a JWT claim to the variables only on an endpoint with auth/validator "+
					"whose backends' url_pattern names {JWT.%s}; KrakenD sends \"\"", s, claim)
			}
			continue
		}
		found := false
		for _, prm := range r.params {
			if titleFirst(prm) == titleFirst(name) {
				found = true
			}
		}
		if !found {
			v.vs.add(p.field("variables").key(k), KindNotFound, "%s is not a parameter of the endpoint (parameters: %s); KrakenD sends \"\"", s, paramList(r.params))
		}
	}
}

// urlPatternsName reports whether a url_pattern of e's backends contains
// placeholder.
func urlPatternsName(e *Endpoint, placeholder string) bool {
	for _, b := range e.Backend {
		if b != nil && strings.Contains(b.URLPattern, placeholder) {
			return true
		}
	}
	return false
}

// titleFirst title-cases the first letter, as lura matches a "{param}"
// variable with the request's parameters.
func titleFirst(s string) string {
	c, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToTitle(c)) + s[n:]
}

func compileGraphQL(g *GraphQL) *gatewayv1.GraphQL {
	return &gatewayv1.GraphQL{
		Mutation:      strings.ToLower(g.Type) == "mutation",
		Get:           strings.ToUpper(g.Method) == "GET",
		Query:         g.Query,
		OperationName: g.OperationName,
		Variables:     g.Variables,
	}
}
