package app_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind. Two
// goroutines of fasthttp v1.51 (under fiber) are not ours to end:
// updateServerDate refreshes the Date header once a second for the life of
// the process (started once, never stopped), and a stopped worker pool's
// cleaner sleeps MaxIdleWorkerDuration (10 s) before it sees the stop and
// returns (workerpool.go, Start). BenchmarkOverload's fasthttp client
// dials through the package's default dialer, whose address-cache cleaner
// lives for the process too (tcpdialer.go, tcpAddrsClean).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
	)
}
