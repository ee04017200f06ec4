// Package celenv is the one definition of the CEL environment of
// `validation/cel`, shared by the control plane (which checks every
// expression when it validates a config) and the edge (which compiles the
// checked expressions into programs once per plan).
//
// The variables are the ones krakend-cel declares, with its types:
// now (string, RFC 3339 with milliseconds), req_method, req_path (string),
// req_params (map of string to string, names with their first letter
// upper-cased as lura writes them), req_headers and req_querystring (map of
// string to list of string), resp_completed (bool), resp_metadata_status
// (int), resp_metadata_headers (map of string to list of string), resp_data
// (map of string to dyn) and JWT (map of string to dyn).
//
// krakend-cel sorts an expression into the stages by substring, not by the
// variables it reads: one that contains "req" runs before the call, one
// that contains "resp" after it, one that contains "JWT" on the token's
// claims (endpoint level only). Stages reproduces that rule, so an
// expression can run in more than one stage, and a variable of another
// stage is missing there (its evaluation fails and rejects the request,
// as in KrakenD).
package celenv

import (
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
)

// Variable names.
const (
	Now                 = "now"
	ReqMethod           = "req_method"
	ReqPath             = "req_path"
	ReqParams           = "req_params"
	ReqHeaders          = "req_headers"
	ReqQuerystring      = "req_querystring"
	RespCompleted       = "resp_completed"
	RespMetadataStatus  = "resp_metadata_status"
	RespMetadataHeaders = "resp_metadata_headers"
	RespData            = "resp_data"
	JWT                 = "JWT"
)

// NowLayout is how `now` is formatted (krakend-cel's layout).
const NowLayout = "2006-01-02T15:04:05.999Z07:00"

var (
	envOnce sync.Once
	env     *cel.Env
	envErr  error
)

// Env returns the shared environment (immutable, safe for concurrent use).
func Env() (*cel.Env, error) {
	envOnce.Do(func() {
		strList := cel.ListType(cel.StringType)
		env, envErr = cel.NewEnv(
			cel.Variable(Now, cel.StringType),
			cel.Variable(ReqMethod, cel.StringType),
			cel.Variable(ReqPath, cel.StringType),
			cel.Variable(ReqParams, cel.MapType(cel.StringType, cel.StringType)),
			cel.Variable(ReqHeaders, cel.MapType(cel.StringType, strList)),
			cel.Variable(ReqQuerystring, cel.MapType(cel.StringType, strList)),
			cel.Variable(RespCompleted, cel.BoolType),
			cel.Variable(RespMetadataStatus, cel.IntType),
			cel.Variable(RespMetadataHeaders, cel.MapType(cel.StringType, strList)),
			cel.Variable(RespData, cel.MapType(cel.StringType, cel.DynType)),
			cel.Variable(JWT, cel.MapType(cel.StringType, cel.DynType)),
		)
	})
	return env, envErr
}

// Compile parses and type-checks expr. The error is CEL's own report
// (positions included).
func Compile(expr string) (*cel.Ast, error) {
	e, err := Env()
	if err != nil {
		return nil, err
	}
	ast, iss := e.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, iss.Err()
	}
	return ast, nil
}

// Stage is where an expression runs.
type Stage uint8

// The stages, as a bit set.
const (
	StageRequest  Stage = 1 << iota // before the call ("req")
	StageResponse                   // after the call ("resp")
	StageJWT                        // on the claims, endpoint level ("JWT")
)

// Stages returns the stages krakend-cel puts expr in (by substring).
// jwt says whether the JWT stage exists at that level (endpoint level).
func Stages(expr string, jwt bool) Stage {
	var s Stage
	if strings.Contains(expr, "req") {
		s |= StageRequest
	}
	if strings.Contains(expr, "resp") {
		s |= StageResponse
	}
	if jwt && strings.Contains(expr, JWT) {
		s |= StageJWT
	}
	return s
}
