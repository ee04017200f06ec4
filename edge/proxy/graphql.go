package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/internal/zerocopy"
	"github.com/apigw/gateway/edge/response"
)

// GraphQLConfig is a backend's `backend/graphql` (lura's GraphQL
// middleware): the call carries a GraphQL request instead of the client's
// body.
type GraphQLConfig struct {
	// Mutation: the variables are the client's JSON body, completed with
	// Variables for the keys it lacks. Otherwise (query) they are
	// Variables, whose "{param}" strings take the endpoint parameter.
	Mutation bool
	// Get sends the request as query parameters (query, operationName,
	// variables) of a GET; otherwise it is the JSON body of a POST.
	Get           bool
	Query         string
	OperationName string
	// Variables is a JSON object (or empty).
	Variables []byte
	// Claims are the JWT claims a query's "{JWT.<claim>}" variables may
	// take from the request's verified token (Inbound.Claims): KrakenD's
	// JWT validator exposes a claim as the request parameter "JWT.<claim>"
	// only when one of the endpoint's url_patterns names it, so any other
	// "{JWT.x}" variable is "" there, as here.
	Claims []string
}

// graphQL is a compiled GraphQLConfig.
type graphQL struct {
	mutation bool
	get      bool
	query    string
	opName   string
	vars     map[string]any // as lura decodes them: numbers are float64
	// A query's body, built at compile time: the literal pieces around
	// the "{param}" variables, in encoding/json's order; slots[i] (an
	// endpoint parameter slot, -1 for a parameter the endpoint lacks)
	// goes between pieces[i] and pieces[i+1]. With no slot, pieces[0] is
	// the whole body.
	pieces [][]byte
	slots  []int
	claims []string // aligned with slots: the claim of a "{JWT.x}" slot, else ""
	// For GET: the variables of a query without slots, as JSON.
	varsJSON []byte
}

var (
	hdrContentType = []byte("Content-Type")
	valJSON        = []byte("application/json")
)

// gqlRequest is lura's GraphQLRequest: the field order and omitempty rules
// of the JSON it writes.
type gqlRequest struct {
	Query         string         `json:"query"`
	OperationName string         `json:"operationName,omitempty"`
	Variables     map[string]any `json:"variables,omitempty"`
}

// gqlSentinel marks where a parameter goes in the compiled body.
func gqlSentinel(i int) string { return fmt.Sprintf("\x00apigw-graphql-%d\x00", i) }

func compileGraphQL(cfg *GraphQLConfig, params []string) (*graphQL, error) {
	g := &graphQL{mutation: cfg.Mutation, get: cfg.Get, query: cfg.Query, opName: cfg.OperationName}
	if len(cfg.Variables) > 0 {
		if err := json.Unmarshal(cfg.Variables, &g.vars); err != nil {
			return nil, fmt.Errorf("graphql variables: %w", err)
		}
	}
	if g.mutation {
		return g, nil
	}
	// lura replaces a string variable "{name}" with the request parameter
	// whose name matches once both are title-cased (first letter).
	vars := make(map[string]any, len(g.vars))
	var slots []int
	keys := make([]string, 0, len(g.vars))
	for k := range g.vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := g.vars[k]
		if s, ok := v.(string); ok && len(s) >= 2 && s[0] == '{' && s[len(s)-1] == '}' {
			vars[k] = gqlSentinel(len(slots))
			name := s[1 : len(s)-1]
			claim := ""
			if c, ok := strings.CutPrefix(titleFirst(name), jwtPrefix); ok && slices.Contains(cfg.Claims, c) {
				claim = c
			}
			slots = append(slots, gqlParamSlot(params, name))
			g.claims = append(g.claims, claim)
			continue
		}
		vars[k] = v
	}
	body, err := json.Marshal(gqlRequest{Query: g.query, OperationName: g.opName, Variables: vars})
	if err != nil {
		return nil, fmt.Errorf("graphql: %w", err)
	}
	if g.get && len(slots) == 0 && len(vars) > 0 {
		if g.varsJSON, err = json.Marshal(vars); err != nil {
			return nil, fmt.Errorf("graphql: %w", err)
		}
	}
	rest := body
	for i := range slots {
		// json.Marshal writes the sentinel's NULs as \u0000.
		mark := []byte(`"` + strings.ReplaceAll(gqlSentinel(i), "\x00", `\u0000`) + `"`)
		at := strings.Index(string(rest), string(mark))
		if at < 0 {
			return nil, errors.New("graphql: internal: placeholder not found")
		}
		g.pieces = append(g.pieces, rest[:at])
		rest = rest[at+len(mark):]
	}
	g.pieces = append(g.pieces, rest)
	g.slots = slots
	return g, nil
}

// gqlParamSlot finds the endpoint parameter a "{name}" variable names, as
// lura matches it (first letters title-cased); -1 when there is none (lura
// then sends "").
func gqlParamSlot(params []string, name string) int {
	want := titleFirst(name)
	for i, p := range params {
		if titleFirst(p) == want {
			return i
		}
	}
	return -1
}

func titleFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToTitle(r)) + s[n:]
}

// appendBody appends the POST body of a query.
func (g *graphQL) appendBody(dst []byte, in *Inbound) []byte {
	dst = append(dst, g.pieces[0]...)
	for i := range g.slots {
		dst = response.AppendJSONString(dst, g.slotValue(i, in))
		dst = append(dst, g.pieces[i+1]...)
	}
	return dst
}

// slotValue is the value of variable slot i: the token's claim for a
// "{JWT.x}" slot (when the endpoint exposes it), else the endpoint
// parameter; nil (sent as "") when there is none. It does not allocate for
// a parameter or a top-level claim; the bytes are read at once.
func (g *graphQL) slotValue(i int, in *Inbound) []byte {
	if c := g.claims[i]; c != "" {
		if in.Claims == nil {
			return nil
		}
		v, _ := in.Claims.Value(c)
		return zerocopy.Bytes(v)
	}
	if p := g.slots[i]; p >= 0 && in.Params != nil {
		return in.Params.Value(p)
	}
	return nil
}

// request returns the GraphQL request of a call: the query's variables
// with the parameters, or the mutation's from the client body. Off the
// fixed-body fast path; it allocates.
func (g *graphQL) request(in *Inbound) (gqlRequest, error) {
	r := gqlRequest{Query: g.query, OperationName: g.opName}
	if g.mutation {
		vars := map[string]any{}
		if err := json.Unmarshal(in.Req.Body(), &vars); err != nil {
			return r, fmt.Errorf("graphql: request body: %w", err)
		}
		if vars == nil && len(g.vars) > 0 {
			// A null body: lura's handler panics writing the configured
			// variables into the nil map, and the call fails.
			return r, errors.New("graphql: the request body is null")
		}
		for k, v := range g.vars {
			if _, ok := vars[k]; !ok {
				vars[k] = v
			}
		}
		r.Variables = vars
		return r, nil
	}
	r.Variables = make(map[string]any, len(g.vars))
	for k, v := range g.vars {
		r.Variables[k] = v
	}
	slot := 0
	keys := make([]string, 0, len(g.vars))
	for k := range g.vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if s, ok := g.vars[k].(string); ok && len(s) >= 2 && s[0] == '{' && s[len(s)-1] == '}' {
			r.Variables[k] = string(g.slotValue(slot, in))
			slot++
		}
	}
	return r, nil
}

// build writes the GraphQL call into req: method, Content-Type
// application/json, and the body (POST) or the query parameters after the
// query already built (GET). query is the URI's query string so far.
func (g *graphQL) build(req *fasthttp.Request, in *Inbound, query []byte) ([]byte, error) {
	req.Header.SetCanonical(hdrContentType, valJSON)
	if !g.get {
		req.Header.SetMethod(fasthttp.MethodPost)
		if !g.mutation {
			in.gql = g.appendBody(in.gql[:0], in)
			req.SetBody(in.gql)
			return query, nil
		}
		r, err := g.request(in)
		if err != nil {
			return query, err
		}
		b, err := json.Marshal(r)
		if err != nil {
			return query, fmt.Errorf("graphql: %w", err)
		}
		req.SetBody(b)
		return query, nil
	}
	req.Header.SetMethod(fasthttp.MethodGet)
	vals := url.Values{"query": {g.query}}
	if g.opName != "" {
		vals.Set("operationName", g.opName)
	}
	switch {
	case g.mutation || len(g.slots) > 0:
		r, err := g.request(in)
		if err != nil {
			return query, err
		}
		if len(r.Variables) > 0 {
			b, err := json.Marshal(r.Variables)
			if err != nil {
				return query, fmt.Errorf("graphql: %w", err)
			}
			vals.Set("variables", string(b))
		}
	case len(g.varsJSON) > 0:
		vals.Set("variables", string(g.varsJSON))
	}
	if len(query) > 0 {
		query = append(query, '&')
	}
	return append(query, vals.Encode()...), nil
}
