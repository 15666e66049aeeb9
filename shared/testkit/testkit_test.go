package testkit_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
)

func TestWaitForReturnsTheFirstValueWithoutError(t *testing.T) {
	var n atomic.Int32
	got := testkit.WaitFor(t, time.Second, func() (int32, error) {
		if v := n.Add(1); v >= 3 {
			return v, nil
		}
		return 0, errors.New("not yet")
	}, "three tries")
	if got != 3 {
		t.Fatalf("WaitFor = %d, want 3", got)
	}
	testkit.Eventually(t, time.Second, func() bool { return n.Load() >= 3 }, "n %s", ">= 3")
}

func TestSyncBufferCollectsConcurrentWrites(t *testing.T) {
	var b testkit.SyncBuffer
	stop := testkit.Serve(t, func(ctx context.Context) error {
		for i := 0; ctx.Err() == nil; i++ {
			fmt.Fprintf(&b, "%d\n", i)
			time.Sleep(time.Millisecond)
		}
		return ctx.Err() // context.Canceled after Stop counts as clean
	})
	testkit.Eventually(t, time.Second, func() bool { return len(b.String()) > 10 }, "writes")
	stop()
	stop()
}

func TestStartHandsBackTheFunctionsOwnError(t *testing.T) {
	boom := errors.New("boom")
	r := testkit.Start(t, func(context.Context) error { return boom })
	select {
	case <-r.Done():
	case <-time.After(time.Second):
		t.Fatal("Done not closed")
	}
	if err := r.Stop(); !errors.Is(err, boom) {
		t.Fatalf("Stop = %v, want boom", err)
	}
}
