// Package leak is the goroutine-leak check that every package's TestMain
// runs (STYLE §7): after the tests, no goroutine may be left running,
// because every goroutine must have an owner that stops it. It wraps
// go.uber.org/goleak with the few library goroutines that linger by design
// after their owner has stopped. Test support only: nothing in the product
// imports it.
package leak

import (
	"go.uber.org/goleak"
)

// Options are goleak's options for this repository. fasthttp's worker-pool,
// idle-connection and client-map cleaners notice their owner has stopped only after
// their current sleep (up to 10 s); its server-date ticker and its default
// dialer's address-cache cleaner are process-wide singletons that live as
// long as the process. None of them is a leak of ours.
func Options() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*Client).mCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
	}
}

// VerifyTestMain runs the tests and fails the run when a goroutine outlives
// them.
func VerifyTestMain(m goleak.TestingM) { goleak.VerifyTestMain(m, Options()...) }
