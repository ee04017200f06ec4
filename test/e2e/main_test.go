// Package e2e runs the gateway's end-to-end scenarios against real
// processes: gw-controlplane, gw-edge and gwctl built from this tree, real
// HTTP backends on loopback, real gRPC between them.
package e2e

import (
	"os"
	"testing"

	"github.com/apigw/gateway/test/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CleanupBuild()
	os.Exit(code)
}
