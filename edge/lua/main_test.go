package lua_test

import (
	"testing"

	"github.com/apigw/gateway/test/leak"
)

// TestMain fails the package when a goroutine outlives the tests.
func TestMain(m *testing.M) { leak.VerifyTestMain(m) }
