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
	var outages [][2]time.Time
	b := NewBreaker(3, 5*time.Second, clk.now, func(from, to time.Time) { outages = append(outages, [2]time.Time{from, to}) })
	want := func(state string) {
		t.Helper()
		if got := b.Snapshot().State; got != state {
			t.Fatalf("state = %s, want %s", got, state)
		}
	}
	b.Record(false)
	b.Record(false)
	b.Record(true) // a success resets the run of failures
	first := clk.t.Add(time.Second)
	clk.t = first
	b.Record(false)
	clk.add(100 * time.Millisecond)
	b.Record(false)
	want(StateClosed)
	b.Record(false)
	want(StateOpen)
	if s := b.Snapshot(); !s.Since.Equal(first) {
		t.Fatalf("open since %s, want the run's first failure %s", s.Since, first)
	}
	if ra, ok := b.Allow(); ok || ra != time.Second {
		t.Fatalf("Allow while open = %v %v", ra, ok)
	}
	b.Record(true) // outcomes while open do not close it: the probe decides
	want(StateOpen)
	// The probe runs at once, not after the cool-down.
	if !b.StartProbe() {
		t.Fatal("no probe while open")
	}
	want(StateHalfOpen)
	if b.StartProbe() {
		t.Fatal("one probe at a time")
	}
	if _, ok := b.Allow(); ok {
		t.Fatal("a registration got through during the probe")
	}
	b.Record(false)
	want(StateOpen)
	if s := b.Snapshot(); !s.Since.Equal(first) {
		t.Fatalf("a failed probe moved since to %s", s.Since)
	}
	clk.add(250 * time.Millisecond)
	if !b.StartProbe() {
		t.Fatal("probe due")
	}
	b.Record(true)
	want(StateClosed)
	if len(outages) != 1 || !outages[0][0].Equal(first) || !outages[0][1].Equal(clk.t) {
		t.Fatalf("outages = %v, want one from %s to %s", outages, first, clk.t)
	}
	if _, ok := b.Allow(); !ok {
		t.Fatal("closed breaker refuses")
	}
	// Without a probe, the first registration after the cool-down is the trial.
	for range 3 {
		b.Record(false)
	}
	clk.add(5 * time.Second)
	if _, ok := b.Allow(); !ok {
		t.Fatal("the first registration after the cool-down is the trial")
	}
	if _, ok := b.Allow(); ok {
		t.Fatal("only one trial at a time")
	}
	b.Record(true)
	want(StateClosed)
}

func TestBreakerDisabled(t *testing.T) {
	b := NewBreaker(0, time.Second, time.Now, nil)
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
	h := NewHub(nil, []string{"ch"}, 2, nil)
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
