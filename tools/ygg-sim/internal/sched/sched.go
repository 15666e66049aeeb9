// Package sched is the simulator's timer: one min-heap of waiting jobs and a
// single dispatcher goroutine that moves each job, when it falls due, to a
// ready queue that a fixed pool of workers drains. 250,000 simulated runners
// cost 250,000 heap entries of 40 bytes, not 250,000 goroutines and timers.
//
// The ready queue is unbounded so the dispatcher never waits for a worker:
// a job's release time (Fired.FiredAt) then measures only the timer's and the
// generator's own lateness, and the wait that follows only the workers'
// (every connection busy).
//
// It only orders and releases jobs; it must never do I/O or know what a job
// means. Times are offsets from the scheduler's start on the monotonic clock.
package sched

import (
	"context"
	"sync"
	"time"
)

// Item is one job due at At (an offset from Start). Runner, Kind, Gen and
// Task are opaque to the scheduler.
type Item struct {
	At     time.Duration
	Runner int32
	Kind   uint8
	Gen    uint32
	Task   string
}

// Fired is an Item released by the dispatcher at FiredAt.
type Fired struct {
	Item
	FiredAt time.Duration
}

// heap is a binary min-heap on At, typed so pushes do not box.
type heap []Item

func (h *heap) push(it Item) {
	*h = append(*h, it)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p].At <= s[i].At {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *heap) pop() Item {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s[n] = Item{} // drop the Task string reference
	s = s[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s[r].At < s[l].At {
			m = r
		}
		if s[i].At <= s[m].At {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// Scheduler releases Items when they fall due. It is safe for concurrent use.
type Scheduler struct {
	start time.Time
	mu    sync.Mutex
	h     heap
	wake  chan struct{}

	rmu    sync.Mutex
	rcond  *sync.Cond
	ready  []Fired // FIFO: ready[rhead:]
	rhead  int
	closed bool
}

// New returns a scheduler whose clock starts now.
func New() *Scheduler {
	s := &Scheduler{start: time.Now(), wake: make(chan struct{}, 1)}
	s.rcond = sync.NewCond(&s.rmu)
	return s
}

// release appends due items to the ready queue and wakes workers.
func (s *Scheduler) release(items []Item, at time.Duration) {
	s.rmu.Lock()
	if s.rhead > 0 && s.rhead == len(s.ready) {
		s.ready, s.rhead = s.ready[:0], 0
	} else if s.rhead > 4096 && s.rhead > len(s.ready)/2 {
		n := copy(s.ready, s.ready[s.rhead:])
		clear(s.ready[n:])
		s.ready, s.rhead = s.ready[:n], 0
	}
	for _, it := range items {
		s.ready = append(s.ready, Fired{Item: it, FiredAt: at})
	}
	s.rmu.Unlock()
	// One wake-up per job: a Broadcast would wake every idle worker for each
	// batch, and all but a few would find the queue empty again.
	for range items {
		s.rcond.Signal()
	}
}

// Next blocks until a released job is ready, and returns it; ok is false
// once Run has returned.
func (s *Scheduler) Next() (f Fired, ok bool) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for s.rhead == len(s.ready) {
		if s.closed {
			return Fired{}, false
		}
		s.rcond.Wait()
	}
	f = s.ready[s.rhead]
	s.ready[s.rhead] = Fired{}
	s.rhead++
	return f, true
}

// Ready is the number of released jobs no worker has taken yet.
func (s *Scheduler) Ready() int {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return len(s.ready) - s.rhead
}

// Now is the scheduler's clock: the time since New.
func (s *Scheduler) Now() time.Duration { return time.Since(s.start) }

// Start is the wall time of offset 0.
func (s *Scheduler) Start() time.Time { return s.start }

// Len is the number of jobs waiting.
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.h)
}

// Schedule adds it; it may be due already.
func (s *Scheduler) Schedule(it Item) {
	s.mu.Lock()
	first := len(s.h) == 0 || it.At < s.h[0].At
	s.h.push(it)
	s.mu.Unlock()
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// popDue moves up to max due items into buf and returns it, with the time of
// the next item still waiting (ok false when none is).
func (s *Scheduler) popDue(now time.Duration, buf []Item, max int) (out []Item, next time.Duration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.h) > 0 && s.h[0].At <= now && len(buf) < max {
		buf = append(buf, s.h.pop())
	}
	if len(s.h) > 0 {
		return buf, s.h[0].At, true
	}
	return buf, 0, false
}

// Run releases due items to Next until ctx ends; then Next returns false.
func (s *Scheduler) Run(ctx context.Context) {
	defer func() {
		s.rmu.Lock()
		s.closed = true
		s.rmu.Unlock()
		s.rcond.Broadcast()
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	buf := make([]Item, 0, 512)
	for {
		if ctx.Err() != nil {
			return
		}
		now := s.Now()
		var next time.Duration
		var ok bool
		buf, next, ok = s.popDue(now, buf[:0], cap(buf))
		if len(buf) > 0 {
			s.release(buf, now)
			continue
		}
		wait := time.Hour
		if ok {
			wait = next - now
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			if !timer.Stop() {
				<-timer.C
			}
		case <-timer.C:
		}
	}
}
