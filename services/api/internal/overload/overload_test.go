package overload

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestLimiterAdmitsUpToTheLimitAndShedsPastTheBudget(t *testing.T) {
	l := New(2, 30*time.Millisecond, time.Now)
	r1, ok1 := l.Acquire(context.Background())
	r2, ok2 := l.Acquire(context.Background())
	if !ok1 || !ok2 {
		t.Fatal("the first two requests were refused")
	}
	t0 := time.Now()
	if _, ok := l.Acquire(context.Background()); ok {
		t.Fatal("a third request got a slot while two are held")
	}
	if d := time.Since(t0); d < 25*time.Millisecond || d > time.Second {
		t.Fatalf("refused after %s, want about the 30 ms budget", d)
	}
	from, to, ok := l.Flush()
	if !ok || to.Before(from) {
		t.Fatalf("flush after a refusal = %v %v %v", from, to, ok)
	}
	if _, _, ok := l.Flush(); ok {
		t.Fatal("a second flush reported the same window again")
	}
	// A slot freed within the budget admits the waiter.
	done := make(chan bool)
	go func() { _, ok := l.Acquire(context.Background()); done <- ok }()
	time.Sleep(5 * time.Millisecond)
	r1()
	if !<-done {
		t.Fatal("a waiter was refused although a slot freed within its budget")
	}
	r2()
	if s := l.Stats(); s.Admitted != 3 || s.Shed != 1 || s.Inflight != 1 || s.Waiting != 0 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestStandingQueueWaitsATenthOfTheBudget(t *testing.T) {
	l := New(1, 500*time.Millisecond, time.Now)
	hold, _ := l.Acquire(context.Background())
	defer hold()
	// Keep the queue non-empty for longer than the standing interval.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); l.Acquire(context.Background()) }()
	time.Sleep(standingInterval + 50*time.Millisecond)
	t0 := time.Now()
	if _, ok := l.Acquire(context.Background()); ok {
		t.Fatal("admitted while the only slot is held")
	}
	if d := time.Since(t0); d > 200*time.Millisecond {
		t.Fatalf("a request behind a standing queue waited %s, want about 50 ms", d)
	}
	wg.Wait()
}

func TestNoLimitAdmitsEverything(t *testing.T) {
	l := New(0, 0, time.Now)
	for range 1000 {
		if _, ok := l.Acquire(context.Background()); !ok {
			t.Fatal("refused without a limit")
		}
	}
}

// TestOnsetSignalsTheFirstRefusalAfterAFlush: one signal per window, so
// the api records the start of an overload at once, not a tick later.
func TestOnsetSignalsTheFirstRefusalAfterAFlush(t *testing.T) {
	l := New(1, 0, time.Now)
	release, ok := l.Acquire(context.Background())
	if !ok {
		t.Fatal("the first request was refused")
	}
	defer release()
	select {
	case <-l.Onset():
		t.Fatal("onset before any refusal")
	default:
	}
	for range 3 {
		if _, ok := l.Acquire(context.Background()); ok {
			t.Fatal("admitted past the limit")
		}
	}
	select {
	case <-l.Onset():
	default:
		t.Fatal("no onset after refusals")
	}
	select {
	case <-l.Onset():
		t.Fatal("a second onset within the same window")
	default:
	}
	l.Flush()
	l.Acquire(context.Background())
	select {
	case <-l.Onset():
	default:
		t.Fatal("no onset for the first refusal after a Flush")
	}
}

func TestRetryAfterRange(t *testing.T) {
	for _, c := range []struct {
		interval, ttl, lo, hi time.Duration
	}{
		{2 * time.Second, 4 * time.Second, time.Second, 2 * time.Second},
		{15 * time.Second, 30 * time.Second, 7 * time.Second, 18 * time.Second},
		{500 * time.Millisecond, 1500 * time.Millisecond, time.Second, time.Second},
		{4 * time.Second, 8 * time.Second, 2 * time.Second, 4 * time.Second},
	} {
		lo, hi := RetryAfter(c.interval, c.ttl)
		if lo != c.lo || hi != c.hi {
			t.Errorf("RetryAfter(%s, %s) = [%s, %s], want [%s, %s]", c.interval, c.ttl, lo, hi, c.lo, c.hi)
		}
		// the longest wait plus 50 % client jitter stays inside one TTL
		if c.ttl >= 2*time.Second && hi*3/2 >= c.ttl {
			t.Errorf("RetryAfter(%s, %s): %s + 50 %% is past the lease", c.interval, c.ttl, hi)
		}
	}
}
