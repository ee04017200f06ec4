// Package propagation benchmarks fleet-wide revocation with real processes:
// a gw-controlplane, three gw-edge processes and a JWKS server on loopback.
// It measures the time from the admin Revoke call's reply to the moment the
// last edge rejects the revoked token, as clients see it. Run it with
// `make bench` (it has no tests; `go test` alone skips it).
package propagation
