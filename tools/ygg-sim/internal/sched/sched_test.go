package sched

import (
	"context"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestHeapOrdersByDueTime(t *testing.T) {
	var h heap
	r := rand.New(rand.NewPCG(1, 2))
	var want []time.Duration
	for i := 0; i < 5000; i++ {
		d := time.Duration(r.IntN(1_000_000))
		want = append(want, d)
		h.push(Item{At: d, Runner: int32(i)})
	}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	var got []time.Duration
	for len(h) > 0 {
		got = append(got, h.pop().At)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("pop order (-want +got):\n%s", diff)
	}
}

func TestPopDueReleasesOnlyDueItems(t *testing.T) {
	s := New()
	for _, at := range []time.Duration{30, 10, 20, 50, 40} {
		s.Schedule(Item{At: at * time.Millisecond})
	}
	tests := []struct {
		now      time.Duration
		max      int
		wantAt   []time.Duration
		wantNext time.Duration
		wantOK   bool
	}{
		{now: 5 * time.Millisecond, max: 10, wantAt: nil, wantNext: 10 * time.Millisecond, wantOK: true},
		{now: 25 * time.Millisecond, max: 10, wantAt: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}, wantNext: 30 * time.Millisecond, wantOK: true},
		{now: 60 * time.Millisecond, max: 2, wantAt: []time.Duration{30 * time.Millisecond, 40 * time.Millisecond}, wantNext: 50 * time.Millisecond, wantOK: true},
		{now: 60 * time.Millisecond, max: 2, wantAt: []time.Duration{50 * time.Millisecond}, wantOK: false},
	}
	for i, tc := range tests {
		out, next, ok := s.popDue(tc.now, nil, tc.max)
		var got []time.Duration
		for _, it := range out {
			got = append(got, it.At)
		}
		if diff := cmp.Diff(tc.wantAt, got); diff != "" {
			t.Errorf("step %d: released (-want +got):\n%s", i, diff)
		}
		if next != tc.wantNext || ok != tc.wantOK {
			t.Errorf("step %d: next = %v, %v; want %v, %v", i, next, ok, tc.wantNext, tc.wantOK)
		}
	}
}

// TestRunReleasesOnTime drives the real dispatcher: every item comes out in
// order, never early, and (on an idle machine) within a few milliseconds.
func TestRunReleasesOnTime(t *testing.T) {
	s := New()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	out := make(chan Fired)
	go func() {
		for {
			f, ok := s.Next()
			if !ok {
				close(out)
				return
			}
			out <- f
		}
	}()
	defer func() {
		cancel()
		<-done
		for range out { // Next returns false once Run has returned
		}
	}()

	const n = 200
	for i := n - 1; i >= 0; i-- { // scheduled in reverse: each one is the new earliest
		s.Schedule(Item{At: s.Now() + time.Duration(i)*time.Millisecond, Runner: int32(i)})
	}
	var worst time.Duration
	deadline := time.After(10 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case f, ok := <-out:
			if !ok {
				t.Fatal("Next stopped early")
			}
			if int(f.Runner) != i {
				t.Fatalf("item %d came out as number %d", f.Runner, i)
			}
			if f.FiredAt < f.At {
				t.Fatalf("item %d released %v early", i, f.At-f.FiredAt)
			}
			if lag := s.Now() - f.At; lag > worst {
				worst = lag
			}
		case <-deadline:
			t.Fatalf("only %d of %d items released", i, n)
		}
	}
	if worst > 500*time.Millisecond {
		t.Errorf("worst release lag %v", worst)
	}
}

// BenchmarkScheduleAndRelease is the scheduler's cost per job at fleet size:
// a heap of 250,000 waiting heartbeats, one pushed and one popped per op.
func BenchmarkScheduleAndRelease(b *testing.B) {
	s := New()
	for i := 0; i < 250_000; i++ {
		s.Schedule(Item{At: time.Duration(i) * time.Microsecond, Runner: int32(i)})
	}
	buf := make([]Item, 0, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf, _, _ = s.popDue(time.Duration(1<<62), buf[:0], 1)
		it := buf[0]
		it.At += 15 * time.Second
		s.Schedule(it)
	}
}
