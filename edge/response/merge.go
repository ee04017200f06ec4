package response

import (
	"fmt"

	"github.com/valyala/fastjson"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func merge(s *Scratch, parts []*fastjson.Value) *fastjson.Value {
	var only *fastjson.Value
	n := 0
	for _, p := range parts {
		if p != nil && p.Type() == fastjson.TypeObject {
			only = p
			n++
		}
	}
	switch n {
	case 0:
		return s.arena.NewObject() // lura's combineData: never nil data
	case 1:
		return only
	}
	out := s.arena.NewObject()
	o, _ := out.Object()
	for _, p := range parts {
		if p == nil || p.Type() != fastjson.TypeObject {
			continue
		}
		po, _ := p.Object()
		po.Visit(func(k []byte, v *fastjson.Value) { o.Set(b2s(k), v) })
	}
	return out
}

func newStatic(st *gatewayv1.Static) (*Static, error) {
	out := &Static{}
	switch st.GetStrategy() {
	case "success":
		out.strategy = StrategySuccess
	case "complete":
		out.strategy = StrategyComplete
	case "errored":
		out.strategy = StrategyErrored
	case "incomplete":
		out.strategy = StrategyIncomplete
	default: // "always", "" and unknown values: lura falls back to always
		out.strategy = StrategyAlways
	}
	data := st.GetData()
	if len(data) == 0 {
		data = []byte("{}")
	}
	if ok, at := validJSON(data); !ok {
		return nil, fmt.Errorf("static data: invalid JSON at offset %d", at)
	}
	// A private parser: the values must outlive any Scratch and are shared,
	// read-only, by every request.
	v, err := new(fastjson.Parser).ParseBytes(data)
	if err != nil {
		return nil, fmt.Errorf("static data: %w", err)
	}
	if v.Type() != fastjson.TypeObject {
		return nil, fmt.Errorf("static data: must be a JSON object, got %s", v.Type())
	}
	cook(v)
	out.data = v
	return out, nil
}

func (st *Static) match(hasResponse, errored, complete bool) bool {
	switch st.strategy {
	case StrategySuccess:
		return !errored
	case StrategyComplete:
		return !errored && hasResponse && complete
	case StrategyErrored:
		return errored
	case StrategyIncomplete:
		return !hasResponse || !complete
	}
	return true
}

func (st *Static) apply(s *Scratch, v *fastjson.Value) *fastjson.Value {
	if v == nil || v.Type() != fastjson.TypeObject {
		v = s.arena.NewObject()
	}
	o, _ := v.Object()
	so, _ := st.data.Object()
	so.Visit(func(k []byte, c *fastjson.Value) { o.Set(b2s(k), c) })
	return v
}
