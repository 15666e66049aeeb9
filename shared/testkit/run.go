package testkit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// StopTimeout is how long Stop waits for a cancelled function to return
// before it fails the test: a service that ignores its context is a bug the
// test should name, not a hang.
const StopTimeout = 15 * time.Second

// Running is a function started by Start, running until Stop or the end of
// the test.
type Running struct {
	t       testing.TB
	cancel  context.CancelFunc
	done    chan struct{}
	err     error
	once    sync.Once
	claimed bool // the caller took the error from Stop or Err
	mu      sync.Mutex
}

// Start runs run(ctx) in a goroutine. Its context ends when Stop is called
// or the test ends; at the end of the test, an error the caller did not take
// (from Stop or Err) fails the test. A run that returns context.Canceled
// after its context ended counts as a clean return.
func Start(t testing.TB, run func(ctx context.Context) error) *Running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{t: t, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		err := run(ctx)
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			err = nil
		}
		r.err = err
	}()
	t.Cleanup(func() {
		r.stop()
		r.mu.Lock()
		claimed := r.claimed
		r.mu.Unlock()
		if !claimed && r.err != nil {
			t.Errorf("testkit: the function started by Start returned %v", r.err)
		}
	})
	return r
}

// Serve is Start for the common case: the returned stop cancels the
// function, waits for it, and fails the test when it returned an error. The
// test's cleanup calls it too; calling it more than once is harmless.
func Serve(t testing.TB, run func(ctx context.Context) error) (stop func()) {
	t.Helper()
	r := Start(t, run)
	return func() {
		t.Helper()
		if err := r.Stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	}
}

// Stop cancels the function's context, waits for it to return (failing the
// test after StopTimeout) and returns its error. It may be called again: the
// later calls return the same error at once.
func (r *Running) Stop() error {
	r.t.Helper()
	r.stop()
	return r.Err()
}

// Cancel ends the function's context without waiting: a test that checks
// what happens during the shutdown cancels, looks, then calls Stop.
func (r *Running) Cancel() { r.once.Do(r.cancel) }

func (r *Running) stop() {
	r.t.Helper()
	r.Cancel()
	select {
	case <-r.done:
	case <-time.After(StopTimeout):
		r.t.Fatalf("testkit: the function started by Start did not return within %s of its context ending", StopTimeout)
	}
}

// Done is closed when the function has returned, whether or not Stop was
// called: a test selects on it to see a service that failed on its own.
func (r *Running) Done() <-chan struct{} { return r.done }

// Err returns the function's error once Done is closed, nil before.
func (r *Running) Err() error {
	select {
	case <-r.done:
	default:
		return nil
	}
	r.mu.Lock()
	r.claimed = true
	r.mu.Unlock()
	return r.err
}
