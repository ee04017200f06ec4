package config

import (
	"github.com/apigw/gateway/internal/celenv"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// `validation/cel` (krakend-cel), endpoint and backend level: a list of
// {"check_expr": "..."} objects.

// CELCheck is one `validation/cel` entry.
type CELCheck struct {
	CheckExpr string
}

func (d *decoder) celChecks(n *node, p path) []CELCheck {
	var out []CELCheck
	d.list(n, p, func(i int, item *node, ip path) {
		var c CELCheck
		if d.want(item, ip, typeObject) {
			d.object(item, ip, objectSpec{fields: map[string]handler{
				"check_expr": d.str(&c.CheckExpr),
			}})
		}
		out = append(out, c)
	})
	return out
}

// celChecks type-checks every expression against krakend-cel's variables.
// KrakenD drops an expression that fails its type check (it only logs at
// debug level) and, for a syntax error, serves the endpoint or backend
// without any of its checks; both are violations here, with CEL's own
// message. An expression KrakenD never evaluates (it names none of the
// stages: "req", "resp", and at an endpoint with auth/validator "JWT") is
// kept and warned about.
//
// On a no-op endpoint (output_encoding no-op, streamed through) the edge
// runs only endpoint-level request expressions: response ones, and any at
// backend level, are refused (noop).
func (v *validator) celChecks(p path, checks []CELCheck, jwt bool, noop string) {
	for i, c := range checks {
		ep := p.index(i).field("check_expr")
		if c.CheckExpr == "" {
			v.vs.add(ep, KindRequired, "an expression is required")
			continue
		}
		if _, err := celenv.Compile(c.CheckExpr); err != nil {
			v.vs.add(ep, KindInvalid, "%v", err)
			continue
		}
		stages := celenv.Stages(c.CheckExpr, jwt)
		if noop != "" && (noop == "backend" || stages&celenv.StageResponse != 0) {
			v.vs.add(ep, KindUnsupported, "not supported on an endpoint with output_encoding no-op (its response is streamed, not decoded): "+
				"only endpoint-level expressions without \"resp\" run there")
			continue
		}
		if stages == 0 {
			why := `it contains none of "req" and "resp"`
			if jwt {
				why = `it contains none of "req", "resp" and "JWT"`
			}
			v.s.warnings.add(ep, KindNoEffect, "accepted but has no effect: KrakenD runs an expression by the stage names it contains, and %s", why)
		}
	}
}

// compileCEL sorts the expressions into krakend-cel's stages; nil when
// none runs anywhere.
func compileCEL(checks []CELCheck, jwt bool) *gatewayv1.CelChecks {
	out := &gatewayv1.CelChecks{}
	for _, c := range checks {
		s := celenv.Stages(c.CheckExpr, jwt)
		if s&celenv.StageRequest != 0 {
			out.Request = append(out.Request, c.CheckExpr)
		}
		if s&celenv.StageResponse != 0 {
			out.Response = append(out.Response, c.CheckExpr)
		}
		if s&celenv.StageJWT != 0 {
			out.Jwt = append(out.Jwt, c.CheckExpr)
		}
	}
	if len(out.Request)+len(out.Response)+len(out.Jwt) == 0 {
		return nil
	}
	return out
}
