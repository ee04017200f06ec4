package security_test

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports enforces the package's import rule: nothing of this module
// but the generated protos and the leaf helpers of edge/internal (no edge/plan, edge/server, edge/watch,
// edge/aggregate, edge/proxy, controlplane), so that edge/plan can import
// it without a cycle.
func TestImports(t *testing.T) {
	t.Parallel()
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range p.Imports {
		if strings.HasPrefix(imp, "github.com/apigw/gateway/") && !strings.HasPrefix(imp, "github.com/apigw/gateway/proto/gen/") &&
			!strings.HasPrefix(imp, "github.com/apigw/gateway/edge/internal/") {
			t.Errorf("imports %s", imp)
		}
	}
}
