// Package auth verifies JWTs for the edge (KrakenD `auth/validator`
// semantics) and enforces fleet-wide token revocation (`auth/revoker`).
//
// Three long-lived objects and one per-endpoint object:
//
//   - Keys is the registry of JWKS key sources and of compiled validators.
//     It outlives plans: sources are keyed by URL (or local path) plus their
//     fetch settings and compiled validators by their whole JWTValidator
//     message, so a config push that keeps a validator keeps its keys and
//     its verified-token cache. JWKS documents are fetched off the request
//     path: once when a validator is first built, then in the background
//     every refresh period and, rate limited by failed_jwk_key_cooldown,
//     whenever a token names a key the set does not hold. An outage keeps
//     the last good keys.
//   - Revocations is the revocation set: a bloom filter for the fast
//     negative plus an exact set that confirms every bloom hit, behind one
//     atomic pointer (lock-free reads, copy-on-write writers). It is fed by
//     the control plane's deltas and resets; Export and Reset are the
//     round trip edge/lkg persists it with.
//   - Validator (New, once per endpoint) checks one request's token:
//     Verify/VerifyRequest return a *Token and a Reason whose Status is 200,
//     401 or 403. A verified token is cached by its exact bytes until it
//     expires or its key set changes, and a cache hit allocates nothing; the
//     revocation check runs on every call, cached or not.
//
// Reasons are for logs and metrics only; clients get the fixed error bodies.
//
// Import rule: auth must not import edge/proxy, edge/aggregate, edge/server,
// edge/watch, edge/plan or anything under controlplane. It depends only on
// the generated protos and third-party libraries (jwx v3, bloom v3,
// fasthttp, zerolog).
package auth
