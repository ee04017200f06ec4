// Package e2e runs the gateway's end-to-end and fault scenarios against real
// processes: gw-controlplane, gw-edge and gwctl built from this tree, real
// HTTP backends on loopback and real gRPC between them. It has no non-test
// code and imports nothing from the product.
package e2e
