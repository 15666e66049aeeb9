package runners

import (
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }

func TestBreaker(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	b := NewBreaker(3, 5*time.Second, clk.now)
	want := func(state string) {
		t.Helper()
		if got := b.Snapshot().State; got != state {
			t.Fatalf("state = %s, want %s", got, state)
		}
	}
	b.Record(false)
	b.Record(false)
	b.Record(true) // a success resets the run of failures
	b.Record(false)
	b.Record(false)
	want(StateClosed)
	b.Record(false)
	want(StateOpen)
	if ra, ok := b.Allow(); ok || ra != 5*time.Second {
		t.Fatalf("Allow while open = %v %v", ra, ok)
	}
	b.Record(true) // outcomes while open do not close it
	want(StateOpen)
	clk.add(5 * time.Second)
	if _, ok := b.Allow(); !ok {
		t.Fatal("the first registration after the cool-down is the trial")
	}
	want(StateHalfOpen)
	if _, ok := b.Allow(); ok {
		t.Fatal("only one trial at a time")
	}
	b.Record(false)
	want(StateOpen)
	clk.add(5 * time.Second)
	if !b.StartProbe() {
		t.Fatal("probe due")
	}
	if b.StartProbe() {
		t.Fatal("one probe at a time")
	}
	b.Record(true)
	want(StateClosed)
	if _, ok := b.Allow(); !ok {
		t.Fatal("closed breaker refuses")
	}
}

func TestBreakerDisabled(t *testing.T) {
	b := NewBreaker(0, time.Second, time.Now)
	for i := 0; i < 100; i++ {
		b.Record(false)
	}
	if _, ok := b.Allow(); !ok {
		t.Fatal("disabled breaker refuses")
	}
}

func TestExpectedConstraint(t *testing.T) {
	for _, bad := range []string{"not a version", ">>1"} {
		if _, err := expectedConstraint(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestHubBound(t *testing.T) {
	h := NewHub(nil, "ch", 2, nil)
	a, _ := h.Wait("r")
	b, _ := h.Wait("r")
	if _, err := h.Wait("s"); err != ErrTooManyWaiters {
		t.Fatalf("third waiter: %v", err)
	}
	h.Notify("r")
	for _, w := range []*Waiter{a, b} {
		select {
		case <-w.C:
		default:
			t.Fatal("waiter not woken")
		}
	}
	a.Cancel()
	a.Cancel()
	if h.Waiting() != 1 {
		t.Fatalf("waiting = %d", h.Waiting())
	}
	b.Cancel()
	if h.Waiting() != 0 {
		t.Fatalf("waiting = %d", h.Waiting())
	}
}
