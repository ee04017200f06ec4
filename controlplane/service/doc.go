// Package service implements the control plane's gRPC services:
//
//   - AdminService (gwctl): validate, push, diff, status, history and rollback
//     of configurations, behind a bearer token (TokenAuth);
//   - SyncService (edges): one long-lived stream per edge that sends the
//     newest snapshot the edge lacks and records its ACKs and NACKs.
//
// A Service ties them to a store.Store: pushes become revisions, and a hub
// follows the store's watch, builds one SnapshotEnvelope per version and
// wakes every stream. The fleet registry remembers every edge seen since the
// process started, for Status and the gw_controlplane_edges metric.
//
// errors.go is the only place where errors become gRPC status codes.
//
// service may import controlplane/config, controlplane/store and the
// generated protos; it must not import anything under edge/ or cli/, and it
// does no flag parsing or listening (controlplane/cmd/gw-controlplane does).
package service
