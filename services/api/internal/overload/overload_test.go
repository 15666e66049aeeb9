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
