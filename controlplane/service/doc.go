// Package service implements the control plane's gRPC services:
//
//   - AdminService (gwctl): validate, push, diff, status, history and rollback
//     of configurations, and revoke and list revocations, behind a bearer
//     token (TokenAuth);
//   - SyncService (edges): one long-lived stream per edge that sends the
//     newest snapshot the edge lacks and records its ACKs and NACKs, and,
//     independently of config, every revocation the edge lacks as deltas
//     (or a reset) and records its revocation ACKs.
//
// A Service ties them to a store.Store: pushes become revisions and revokes
// become entries of the revocation log. A hub follows the store's config
// watch, builds one SnapshotEnvelope per version and wakes every stream; a
// revocation hub follows the log's watch, reads and encodes each new range
// of entries once and wakes every stream, which sends those shared bytes
// (revocations.go explains the delta and reset rules). A housekeeping loop
// deletes revocations that expired longer than a grace period ago. The fleet
// registry remembers every edge seen since the process started, for Status
// and the gw_controlplane_edges metric.
//
// errors.go is the only place where errors become gRPC status codes.
//
// service may import controlplane/config, controlplane/store and the
// generated protos; it must not import anything under edge/ or cli/, and it
// does no flag parsing or listening (controlplane/cmd/gw-controlplane does).
package service
