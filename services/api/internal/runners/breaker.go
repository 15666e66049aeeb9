package runners

import (
	"sync"
	"time"
)

// Breaker states as /admission reports them.
const (
	StateClosed     = "closed"
	StateOpen       = "open"
	StateHalfOpen   = "half-open"
	StateFull       = "full"
	StateQuarantine = "quarantine"
)

// Breaker is the admission circuit breaker. It counts consecutive
// infrastructure failures (Redis not answering; never domain errors such as
// a stale epoch) over every store call; after threshold of them it opens and
// registrations are refused. After cooldown one trial (a registration or the
// background probe) is let through: success closes it, failure re-opens it.
// Heartbeats are never refused by the breaker.
type Breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time

	mu       sync.Mutex
	state    string
	failures int
	since    time.Time
	trial    bool
}

// NewBreaker returns a closed breaker. threshold 0 disables it.
func NewBreaker(threshold int, cooldown time.Duration, now func() time.Time) *Breaker {
	return &Breaker{threshold: threshold, cooldown: cooldown, now: now, state: StateClosed, since: now()}
}

// BreakerState is a snapshot of the breaker.
type BreakerState struct {
	State      string
	Since      time.Time
	Failures   int
	RetryAfter time.Duration
}

// Snapshot returns the current state.
func (b *Breaker) Snapshot() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BreakerState{State: b.state, Since: b.since, Failures: b.failures, RetryAfter: b.retryAfterLocked()}
}

func (b *Breaker) retryAfterLocked() time.Duration {
	switch b.state {
	case StateOpen:
		if d := b.cooldown - b.now().Sub(b.since); d > 0 {
			return d
		}
		return 0
	case StateHalfOpen:
		return time.Second
	}
	return 0
}

// Allow asks whether a registration may go ahead. When the breaker is open
// and the cool-down has passed, this call becomes the half-open trial.
// Otherwise ok is false and retryAfter says when to come back.
func (b *Breaker) Allow() (retryAfter time.Duration, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case StateClosed:
		return 0, true
	case StateOpen:
		if b.now().Sub(b.since) >= b.cooldown {
			b.setLocked(StateHalfOpen)
			b.trial = true
			return 0, true
		}
	}
	ra := b.retryAfterLocked()
	if ra < time.Second {
		ra = time.Second
	}
	return ra, false
}

// StartProbe moves an open breaker whose cool-down has passed to half-open
// and reports true when the caller should run the probe (and Record it).
func (b *Breaker) StartProbe() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == StateOpen && b.now().Sub(b.since) >= b.cooldown {
		b.setLocked(StateHalfOpen)
		b.trial = true
		return true
	}
	return false
}

// Record reports the outcome of one store call: ok means Redis answered.
func (b *Breaker) Record(ok bool) {
	if b.threshold <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case StateClosed:
		if ok {
			b.failures = 0
			return
		}
		b.failures++
		if b.failures >= b.threshold {
			b.setLocked(StateOpen)
		}
	case StateHalfOpen:
		b.trial = false
		if ok {
			b.failures = 0
			b.setLocked(StateClosed)
		} else {
			b.setLocked(StateOpen)
		}
	case StateOpen:
		// Outcomes while open neither extend nor shorten the cool-down: only
		// the half-open trial decides.
	}
}

func (b *Breaker) setLocked(state string) {
	if b.state != state {
		b.state = state
		b.since = b.now()
	}
}
