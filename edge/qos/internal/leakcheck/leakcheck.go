// Package leakcheck is a test helper for the edge/qos packages: TestMain
// calls Main to fail the run when a goroutine started by qos code is still
// running after all tests (STYLE §5: no goroutine outlives its component).
//
// It imports only the standard library and is used from tests only.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// marker identifies goroutines whose stack runs qos code.
const marker = "github.com/apigw/gateway/edge/qos/"

// Main runs the tests, then waits up to 2 s for qos goroutines to exit and
// exits non-zero (printing their stacks) if some remain.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := wait(2 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leakcheck: goroutines still running after tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func wait(limit time.Duration) string {
	deadline := time.Now().Add(limit)
	for {
		leaked := find()
		if leaked == "" || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func find() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, marker) || strings.Contains(g, marker+"internal/leakcheck.") {
			continue
		}
		out = append(out, g)
	}
	return strings.Join(out, "\n\n")
}
