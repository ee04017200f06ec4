package e2e

import (
	"os"
	"testing"

	"github.com/apigw/gateway/test/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CleanupBuild()
	testenv.CloseSharedRabbitMQ()
	os.Exit(code)
}
