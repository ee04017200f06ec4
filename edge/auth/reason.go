package auth

// Reason says why a token was accepted or rejected. It is meant for logs and
// metric labels (String is stable and low-cardinality) and must never be
// sent to a client: clients get the fixed 401/403 bodies.
type Reason uint8

// Reasons, in the order the checks run. Status maps each to 200, 401 or 403.
const (
	// ReasonOK: the token is valid, not revoked and authorised.
	ReasonOK Reason = iota
	// ReasonMissing: no token in the configured header nor in the cookie.
	ReasonMissing
	// ReasonMalformed: not a compact JWS (three base64url parts), a header
	// or payload that is not a JSON object, a registered claim of the wrong
	// type, a "crit" header, or a token larger than MaxTokenBytes.
	ReasonMalformed
	// ReasonAlgorithm: the header alg is not the endpoint's pinned alg
	// ("none" included).
	ReasonAlgorithm
	// ReasonUnknownKey: the key set has no key of the right type (and, when
	// the key carries "alg"/"use", the right alg and use) for the token's
	// key identifier. A background re-fetch of the JWKS has been requested.
	ReasonUnknownKey
	// ReasonNoKeys: the key source has not loaded a key set yet (first
	// fetch failed or still running).
	ReasonNoKeys
	// ReasonSignature: the signature does not verify with the selected key.
	ReasonSignature
	// ReasonExpired: exp is more than the leeway in the past.
	ReasonExpired
	// ReasonNotYetValid: nbf (or iat) is more than the leeway in the future.
	ReasonNotYetValid
	// ReasonNoExpiry: the token has no exp and the validator requires one
	// (require_exp, or an `auth/revoker` in the service).
	ReasonNoExpiry
	// ReasonLifetime: exp - iat exceeds the validator's maximum token
	// lifetime, or the token lacks exp or iat while a maximum is set.
	ReasonLifetime
	// ReasonIssuer: iss differs from the configured issuer.
	ReasonIssuer
	// ReasonAudience: aud lacks one of the configured audiences.
	ReasonAudience
	// ReasonRevoked: a "<claim>-<value>" of the token is in the revocation set.
	ReasonRevoked
	// ReasonRevocationsUnknown: the edge could not restore its revocation
	// set at boot and the control plane has not answered since, so whether
	// the token is revoked is unknown; it gets 503 (fail closed).
	ReasonRevocationsUnknown
	// ReasonRejected: a `validation/cel` expression on the claims rejected
	// the token (set by the caller, a krakend-jose rejecter: 401).
	ReasonRejected
	// ReasonRoles: none of the configured roles is in the roles claim (403).
	ReasonRoles
	// ReasonScopes: the scopes claim does not satisfy scopes_matcher (403).
	ReasonScopes
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonOK:                 "ok",
	ReasonMissing:            "missing",
	ReasonMalformed:          "malformed",
	ReasonAlgorithm:          "algorithm",
	ReasonUnknownKey:         "unknown_key",
	ReasonNoKeys:             "no_keys",
	ReasonSignature:          "signature",
	ReasonExpired:            "expired",
	ReasonNotYetValid:        "not_yet_valid",
	ReasonNoExpiry:           "no_exp",
	ReasonLifetime:           "lifetime",
	ReasonIssuer:             "issuer",
	ReasonAudience:           "audience",
	ReasonRevoked:            "revoked",
	ReasonRevocationsUnknown: "revocations_unknown",
	ReasonRejected:           "cel_rejected",
	ReasonRoles:              "roles",
	ReasonScopes:             "scopes",
}

// String returns the reason's stable snake_case name ("expired").
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Status returns the HTTP status for the reason: 200 for ReasonOK, 403 for
// ReasonRoles and ReasonScopes, 503 for ReasonRevocationsUnknown, 401 for
// everything else.
func (r Reason) Status() int {
	switch r {
	case ReasonOK:
		return 200
	case ReasonRoles, ReasonScopes:
		return 403
	case ReasonRevocationsUnknown:
		return 503
	default:
		return 401
	}
}

// Reasons lists every reason, for pre-registering metric label values.
func Reasons() []Reason {
	rs := make([]Reason, numReasons)
	for i := range rs {
		rs[i] = Reason(i)
	}
	return rs
}
