package store

import (
	"testing"

	"github.com/apigw/gateway/test/leak"
)

// TestMain fails the package when a goroutine outlives the tests, and stops
// the etcd the tests started.
func TestMain(m *testing.M) { leak.VerifyTestMain(stopAfter{m}) }

// stopAfter runs the tests, then stops the shared etcd before the leak
// check looks at the goroutines.
type stopAfter struct{ m *testing.M }

func (s stopAfter) Run() int {
	defer stopSharedEtcd()
	return s.m.Run()
}
