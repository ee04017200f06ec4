// Package cel runs `validation/cel` (krakend-cel) on the edge: the
// expressions of one endpoint or backend, compiled into CEL programs once
// per plan from the Snapshot, and evaluated against KrakenD's variables
// (internal/celenv) on the request path.
//
// An expression rejects the request when it fails to evaluate (a missing
// variable or key, a type error) or yields anything but true; the error is
// krakend-cel's "request aborted by evaluator #N", N the index of the
// expression in its stage. A variable is built only when an expression
// reads it (Request and Response are read lazily), so a check that looks at
// one header does not pay for the query string or the response data. A
// route without CEL holds a nil *Checks and pays one nil check per stage.
//
// cel imports only the CEL library, internal/celenv and the generated
// proto; the plan and the aggregate pipe supply the variables.
package cel

import (
	"strconv"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/interpreter"

	"github.com/apigw/gateway/internal/celenv"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Checks is the compiled `validation/cel` of one endpoint or backend. A nil
// *Checks has no checks; methods accept it. Immutable and safe for
// concurrent use.
type Checks struct {
	request, response, jwt []cel.Program
}

// New compiles c; nil when c is nil or holds no expression. The control
// plane already type-checked every expression, so an error here means a
// snapshot from elsewhere (the edge NACKs it).
func New(c *gatewayv1.CelChecks) (*Checks, error) {
	if c == nil || len(c.GetRequest())+len(c.GetResponse())+len(c.GetJwt()) == 0 {
		return nil, nil
	}
	ch := &Checks{}
	var err error
	if ch.request, err = programs("request", c.GetRequest()); err != nil {
		return nil, err
	}
	if ch.response, err = programs("response", c.GetResponse()); err != nil {
		return nil, err
	}
	if ch.jwt, err = programs("jwt", c.GetJwt()); err != nil {
		return nil, err
	}
	return ch, nil
}

func programs(stage string, exprs []string) ([]cel.Program, error) {
	if len(exprs) == 0 {
		return nil, nil
	}
	env, err := celenv.Env()
	if err != nil {
		return nil, err
	}
	out := make([]cel.Program, len(exprs))
	for i, x := range exprs {
		ast, err := celenv.Compile(x)
		if err != nil {
			return nil, &CompileError{Stage: stage, Index: i, Err: err}
		}
		if out[i], err = env.Program(ast, cel.EvalOptions(cel.OptOptimize)); err != nil {
			return nil, &CompileError{Stage: stage, Index: i, Err: err}
		}
	}
	return out, nil
}

// CompileError names the expression that did not compile.
type CompileError struct {
	Stage string
	Index int
	Err   error
}

func (e *CompileError) Error() string {
	return e.Stage + "[" + strconv.Itoa(e.Index) + "]: " + e.Err.Error()
}

// HasRequest reports whether there are request-stage expressions.
func (c *Checks) HasRequest() bool { return c != nil && len(c.request) > 0 }

// HasResponse reports whether there are response-stage expressions.
func (c *Checks) HasResponse() bool { return c != nil && len(c.response) > 0 }

// HasJWT reports whether there are expressions on the token's claims.
func (c *Checks) HasJWT() bool { return c != nil && len(c.jwt) > 0 }

// Rejection is krakend-cel's error: the index of the expression that
// rejected the request within its stage.
type Rejection int

// Error returns KrakenD's text, which it also sends as the body with
// router.return_error_msg.
func (r Rejection) Error() string { return "request aborted by evaluator #" + strconv.Itoa(int(r)) }

// AppendText appends the error text without allocating.
func (r Rejection) AppendText(dst []byte) []byte {
	return strconv.AppendInt(append(dst, "request aborted by evaluator #"...), int64(r), 10)
}

// Request supplies the req_* variables. Each method is called at most
// once per evaluation of a stage that needs the variable.
type Request interface {
	Method() string
	Path() string
	Params() map[string]string
	Headers() map[string][]string
	Query() map[string][]string
}

// Response supplies the resp_* variables.
type Response interface {
	Completed() bool
	Status() int
	Headers() map[string][]string
	Data() map[string]any
}

// Now formats t as the `now` variable.
func Now(t time.Time) string { return t.Format(celenv.NowLayout) }

// CheckRequest runs the request stage; the first rejection is returned
// (ok true when every expression held). now is the time of the check
// (krakend-cel takes it once per call, for both stages), formatted only
// when an expression reads `now`.
func (c *Checks) CheckRequest(r Request, now time.Time) (Rejection, bool) {
	if !c.HasRequest() {
		return 0, true
	}
	a := activation{req: r, at: now}
	return run(c.request, &a)
}

// CheckResponse runs the response stage.
func (c *Checks) CheckResponse(r Response, now time.Time) (Rejection, bool) {
	if !c.HasResponse() {
		return 0, true
	}
	a := activation{resp: r, at: now}
	return run(c.response, &a)
}

// CheckJWT runs the expressions on the verified claims (numbers as
// float64, objects map[string]any, arrays []any); false rejects the token.
func (c *Checks) CheckJWT(claims map[string]any, now time.Time) bool {
	if !c.HasJWT() {
		return true
	}
	a := activation{jwt: claims, jwtSet: true, at: now}
	_, ok := run(c.jwt, &a)
	return ok
}

func run(ps []cel.Program, a *activation) (Rejection, bool) {
	for i, p := range ps {
		out, _, err := p.Eval(a)
		if err != nil {
			return Rejection(i), false
		}
		if v, ok := out.Value().(bool); !ok || !v {
			return Rejection(i), false
		}
	}
	return 0, true
}

// activation resolves the variables of one stage lazily; a variable of
// another stage is missing, so reading it fails the evaluation (as in
// krakend-cel, whose activations hold only their stage's variables).
type activation struct {
	req    Request
	resp   Response
	jwt    map[string]any
	jwtSet bool
	at     time.Time
	now    string // at formatted, once read
}

func (a *activation) ResolveName(name string) (any, bool) {
	if name == celenv.Now {
		if a.now == "" {
			a.now = Now(a.at)
		}
		return a.now, true
	}
	if r := a.req; r != nil {
		switch name {
		case celenv.ReqMethod:
			return r.Method(), true
		case celenv.ReqPath:
			return r.Path(), true
		case celenv.ReqParams:
			return r.Params(), true
		case celenv.ReqHeaders:
			return r.Headers(), true
		case celenv.ReqQuerystring:
			return r.Query(), true
		}
		return nil, false
	}
	if r := a.resp; r != nil {
		switch name {
		case celenv.RespCompleted:
			return r.Completed(), true
		case celenv.RespMetadataStatus:
			return int64(r.Status()), true
		case celenv.RespMetadataHeaders:
			return r.Headers(), true
		case celenv.RespData:
			return r.Data(), true
		}
		return nil, false
	}
	if a.jwtSet && name == celenv.JWT {
		return a.jwt, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }
