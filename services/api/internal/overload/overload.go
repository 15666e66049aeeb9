// Package overload is the api's admission controller for the runner routes
// (heartbeat first): a bounded number of requests are handled at once, the
// others wait for a slot for a short budget and are refused past it, so an
// api offered more than it can serve answers the excess at once (503 +
// Retry-After) instead of letting heartbeats queue past their leases.
//
// Where requests queue: fasthttp serves each connection from its own
// goroutine, so the queue that grows under overload is not the accept
// backlog but the goroutines competing for the two cores and for Redis.
// The limiter makes that queue explicit and measured: the time a request
// waited for a slot is its queueing delay. Like CoDel, it tells a standing
// queue (one that has not emptied for an interval) from a burst: a burst
// may wait the whole budget, a standing queue only a tenth of it, so it
// drains by shedding instead of growing.
//
// It must never talk to Redis or block past its budget; shedding is counted
// with atomics only, and the windows in which it shed are handed out once
// per Flush, never per request.
package overload

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// standingInterval is how long the queue must stay non-empty to count as
// standing (CoDel's interval).
const standingInterval = 100 * time.Millisecond

// Limiter is the admission controller. The zero value is not usable: use New.
type Limiter struct {
	slots  chan struct{}
	budget time.Duration
	now    func() time.Time

	waiting    atomic.Int64
	emptyAt    atomic.Int64 // unix ns when the queue was last seen empty
	shed       atomic.Int64 // requests refused, ever
	admitted   atomic.Int64
	firstShed  atomic.Int64 // unix ns of the first refusal since the last Flush (0: none)
	lastShed   atomic.Int64 // unix ns of the last refusal
	waitNanos  atomic.Int64 // total queueing delay of admitted requests
	windowOpen sync.Mutex   // serialises Flush
	onset      chan struct{}
}

// New returns a limiter of maxInflight slots (0: no limit, every request is
// admitted at once) and a queue-wait budget.
func New(maxInflight int, budget time.Duration, now func() time.Time) *Limiter {
	l := &Limiter{budget: budget, now: now, onset: make(chan struct{}, 1)}
	if maxInflight > 0 {
		l.slots = make(chan struct{}, maxInflight)
	}
	l.emptyAt.Store(now().UnixNano())
	return l
}

// Acquire waits for a slot. It returns release (call it once the request is
// answered) and ok; when ok is false the request must be refused at once.
func (l *Limiter) Acquire(ctx context.Context) (release func(), ok bool) {
	if l.slots == nil {
		return func() {}, true
	}
	select {
	case l.slots <- struct{}{}:
		l.admitted.Add(1)
		return l.release, true
	default:
	}
	start := l.now()
	if l.waiting.Add(1) == 1 {
		l.emptyAt.Store(start.UnixNano()) // the queue was empty until now
	}
	budget := l.budget
	if start.UnixNano()-l.emptyAt.Load() > int64(standingInterval) {
		budget /= 10
	}
	defer func() {
		if l.waiting.Add(-1) == 0 {
			l.emptyAt.Store(l.now().UnixNano())
		}
	}()
	if budget > 0 {
		t := time.NewTimer(budget)
		defer t.Stop()
		select {
		case l.slots <- struct{}{}:
			l.admitted.Add(1)
			l.waitNanos.Add(int64(l.now().Sub(start)))
			return l.release, true
		case <-t.C:
		case <-ctx.Done():
		}
	}
	l.refused()
	return nil, false
}

func (l *Limiter) release() { <-l.slots }

func (l *Limiter) refused() {
	now := l.now().UnixNano()
	l.shed.Add(1)
	if l.firstShed.CompareAndSwap(0, now) {
		select {
		case l.onset <- struct{}{}:
		default:
		}
	}
	l.lastShed.Store(now)
}

// Onset is signalled by the first refusal after a Flush, so that the
// beginning of an overload can be recorded at once: a runner refused a
// moment before its lease ends must not wait a whole flush interval for
// the window that earns it the failover grace.
func (l *Limiter) Onset() <-chan struct{} { return l.onset }

// Shedding reports whether the limiter refused a request within the last
// d.
func (l *Limiter) Shedding(d time.Duration) bool {
	last := l.lastShed.Load()
	return last != 0 && l.now().UnixNano()-last < int64(d)
}

// StretchedInterval is the heartbeat interval the api hands out while it
// sheds: three quarters of the lease (never shorter than interval). Like
// Nomad, which lengthens its heartbeat TTL with the fleet to bound the
// heartbeats per second, an overloaded api asks the runners it serves to
// come back later, so that a fleet offering twice its capacity offers
// about 1.3 times instead and fewer refusals eat into the requests
// served. A quarter of the lease is left for the next heartbeat's trip;
// runners it refuses are covered by the failover grace.
func StretchedInterval(interval, leaseTTL time.Duration) time.Duration {
	return max(interval, leaseTTL*3/4)
}

// RetryAfter is the range the Retry-After of a refusal is drawn from, for
// a fleet heartbeating every interval under leases of leaseTTL: from half
// an interval (a refused runner does not come back sooner than it would
// have sent its next heartbeat, roughly) to 60 % of the lease. The upper
// end leaves room inside the failover grace the refusal earns (one lease
// TTL from the grant, which comes after the refusal): a runner waiting the
// longest Retry-After plus the 50 % jitter a client may add (ygg-sim does)
// is back at 90 % of a TTL. Whole seconds (the header's unit), at least 1.
func RetryAfter(interval, leaseTTL time.Duration) (lo, hi time.Duration) {
	lo = max(time.Second, (interval / 2).Truncate(time.Second))
	hi = max(lo, (leaseTTL * 6 / 10).Truncate(time.Second))
	return lo, hi
}

// Stats are the limiter's counters.
type Stats struct {
	Inflight, Waiting int
	Admitted, Shed    int64
	// QueueDelay is the total time admitted requests waited for a slot.
	QueueDelay time.Duration
}

// Stats returns the counters.
func (l *Limiter) Stats() Stats {
	s := Stats{Waiting: int(l.waiting.Load()), Admitted: l.admitted.Load(), Shed: l.shed.Load(),
		QueueDelay: time.Duration(l.waitNanos.Load())}
	if l.slots != nil {
		s.Inflight = len(l.slots)
	}
	return s
}

// Flush returns the window in which requests were refused since the last
// Flush (from the first refusal to the last), and ok false when none was.
func (l *Limiter) Flush() (from, to time.Time, ok bool) {
	l.windowOpen.Lock()
	defer l.windowOpen.Unlock()
	first := l.firstShed.Swap(0)
	if first == 0 {
		return time.Time{}, time.Time{}, false
	}
	last := l.lastShed.Load()
	if last < first {
		last = first
	}
	return time.Unix(0, first), time.Unix(0, last), true
}
