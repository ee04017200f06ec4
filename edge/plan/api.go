// Package plan compiles a Snapshot into an immutable request-serving Plan.
// SKELETON: replaced by the data-plane engineer.
package plan

import (
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Deps carries what outlives a single plan.
type Deps struct {
	Logger           zerolog.Logger
	Upstreams        *Upstreams
	DisabledFeatures []string
}

// BuildError lists why a snapshot cannot be served.
type BuildError struct{ Violations []*gatewayv1.FieldViolation }

func (e *BuildError) Error() string { return "plan: snapshot cannot be served" }

// Upstreams is a registry of upstream clients shared by plans.
type Upstreams struct{}

// NewUpstreams returns an empty registry.
func NewUpstreams() *Upstreams { return &Upstreams{} }

// Close closes every client.
func (u *Upstreams) Close() {}

// Plan serves requests from one snapshot.
type Plan struct{ svc *gatewayv1.Service }

// Build is a skeleton.
func Build(snap *gatewayv1.Snapshot, deps Deps) (*Plan, error) {
	return &Plan{svc: snap.GetService()}, nil
}

// SupportedFeatures is a skeleton.
func SupportedFeatures() []string { return nil }

// Serve is a skeleton.
func (p *Plan) Serve(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(404)
	ctx.SetBodyString(`{"error":"not_found"}`)
}

// HealthPath is a skeleton.
func (p *Plan) HealthPath() string { return "/__health" }

// Service returns the service settings.
func (p *Plan) Service() *gatewayv1.Service { return p.svc }

// Release is a skeleton.
func (p *Plan) Release() {}
