package auth_test

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/apigw/gateway/edge/auth"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Example shows the wiring: one Keys and one Revocations per edge process,
// one Validator per JWT endpoint (built with the plan, closed with it), and
// one VerifyRequest per request.
func Example() {
	log := zerolog.Nop()

	// Edge start-up.
	keys, _ := auth.NewKeys(auth.KeysConfig{Logger: log})
	defer keys.Close()
	rev := auth.NewRevocations(auth.RevocationsConfig{Logger: log})
	defer rev.Close()
	// The set saved by the last run (edge/lkg reads it from the data dir).
	var saved gatewayv1.RevocationReset
	if err := rev.Reset(saved.GetSeq(), saved.GetEntries()); err != nil {
		log.Warn().Err(err).Msg("saved revocations unusable; waiting for a reset")
	}

	// plan.Build, per snapshot: settings first, then one validator per endpoint.
	var snap gatewayv1.Snapshot
	rev.Configure(snap.GetService().GetRevoker())
	var validators []*auth.Validator
	for _, ep := range snap.GetEndpoints() {
		if ep.GetJwt() == nil {
			continue
		}
		// CheckSpec gives FieldViolations for a BuildError/NACK.
		if vs := auth.CheckSpec("endpoints[i].extra_config.auth/validator", ep.GetJwt()); len(vs) > 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		v, err := auth.New(ctx, auth.Config{Spec: ep.GetJwt(), Keys: keys, Revocations: rev, Name: ep.GetName()})
		cancel()
		if err != nil {
			continue // a violation (e.g. unreadable jwk_local_path)
		}
		validators = append(validators, v)
	}
	// plan.Release: close them (also when Build fails half-way).
	defer func() {
		for _, v := range validators {
			v.Close()
		}
	}()

	// Per request, in the endpoint handler.
	handle := func(ctx *fasthttp.RequestCtx, v *auth.Validator) {
		tok, reason := v.VerifyRequest(&ctx.Request.Header)
		if reason != auth.ReasonOK {
			ctx.SetStatusCode(reason.Status()) // 401 or 403 + the fixed body
			return                             // count reason.String() in a metric
		}
		tok.SetHeaders(&ctx.Request.Header) // propagate_claims
		if tenant, ok := tok.Value("tenant"); ok {
			_ = tenant // fills {JWT.tenant} in a backend url_pattern
		}
	}
	_ = handle

	// Sync stream: deltas, resets, persistence.
	var delta gatewayv1.RevocationDelta
	if err := rev.ApplyDelta(delta.GetEntries(), delta.GetFromSeq(), delta.GetToSeq()); err != nil {
		var gap *auth.SeqGapError
		if errors.As(err, &gap) {
			_ = gap // reconnect with Hello.revocation_seq = rev.Seq() to get a reset
		}
	}
	_ = rev.Export() // persisted by edge/lkg, then RevocationAck{seq: rev.Seq()}
}
