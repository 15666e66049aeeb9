package testkit

import (
	"fmt"
	"testing"
	"time"
)

// The poll interval starts short, so a condition that holds almost at once
// costs almost nothing, and grows to a ceiling, so a long wait (an HTTP call
// per try in the end-to-end tests) does not load a shared machine.
const (
	firstInterval = 5 * time.Millisecond
	maxInterval   = 20 * time.Millisecond
)

// Eventually polls cond until it returns true, failing the test when timeout
// passes first. The message (format and args, as for fmt.Sprintf) says what
// was awaited.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	WaitFor(t, timeout, func() (struct{}, error) {
		if cond() {
			return struct{}{}, nil
		}
		return struct{}{}, errNotYet
	}, format, args...)
}

// EventuallyNil polls try until it returns nil, failing the test with the
// last error when timeout passes first.
func EventuallyNil(t testing.TB, timeout time.Duration, try func() error, format string, args ...any) {
	t.Helper()
	WaitFor(t, timeout, func() (struct{}, error) { return struct{}{}, try() }, format, args...)
}

// WaitFor polls try until it returns a nil error and returns its value,
// failing the test with the last error when timeout passes first.
func WaitFor[T any](t testing.TB, timeout time.Duration, try func() (T, error), format string, args ...any) T {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := firstInterval
	for {
		v, err := try()
		if err == nil {
			return v
		}
		if time.Now().After(deadline) {
			what := fmt.Sprintf(format, args...)
			if err == errNotYet {
				t.Fatalf("timed out after %s waiting for %s", timeout, what)
			} else {
				t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
			}
			return v
		}
		time.Sleep(interval)
		interval = min(2*interval, maxInterval)
	}
}

// errNotYet is Eventually's "false": it has nothing to add to the message.
var errNotYet = fmt.Errorf("condition not met")
