package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/apigw/gateway/test/leak"
	"github.com/apigw/gateway/test/testenv"
)

// TestMain fails the package when a goroutine outlives the tests; the
// package's one RabbitMQ broker (if a test started it) stops first.
func TestMain(m *testing.M) { goleak.VerifyTestMain(withBroker{m}, leak.Options()...) }

type withBroker struct{ m *testing.M }

func (w withBroker) Run() int {
	code := w.m.Run()
	testenv.CloseSharedRabbitMQ()
	return code
}
