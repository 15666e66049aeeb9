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
// a stale epoch) over every store call; after threshold of them (by default
// the first) it opens and registrations are refused. While it is open the
// probe loop PINGs Redis every probe interval (StartProbe, then Record): the
// first answer closes it, so registrations are admitted again within one
// probe interval of Redis answering. Without a probe loop, the first
// registration after cooldown is the trial. Heartbeats are never refused by
// the breaker.
//
// The outage a breaker saw, from the first failed call of the run that
// opened it to the call that closed it, is handed to onOutage (which must
// not block: the caller records it in Redis later).
type Breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time
	onOutage  func(from, to time.Time)

	mu        sync.Mutex
	state     string
	failures  int
	firstFail time.Time // first failure of the current run
	since     time.Time // closed: when it closed; otherwise the outage's first failure
}

// NewBreaker returns a closed breaker. threshold 0 disables it. onOutage
// may be nil.
func NewBreaker(threshold int, cooldown time.Duration, now func() time.Time, onOutage func(from, to time.Time)) *Breaker {
	return &Breaker{threshold: threshold, cooldown: cooldown, now: now, onOutage: onOutage, state: StateClosed, since: now()}
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

// Open reports whether the breaker is not closed (Redis failing).
func (b *Breaker) Open() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state != StateClosed
}

func (b *Breaker) retryAfterLocked() time.Duration {
	switch b.state {
	case StateOpen, StateHalfOpen:
		return time.Second
	}
	return 0
}

// Allow asks whether a registration may go ahead. When the breaker is open
// and the cool-down has passed, this call becomes the half-open trial.
// Otherwise ok is false and retryAfter says when to come back: one second,
// since the probe closes the breaker as soon as Redis answers.
func (b *Breaker) Allow() (retryAfter time.Duration, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case StateClosed:
		return 0, true
	case StateOpen:
		if b.now().Sub(b.since) >= b.cooldown {
			b.state = StateHalfOpen
			return 0, true
		}
	}
	return time.Second, false
}

// StartProbe moves an open breaker to half-open and reports true when the
// caller should run the probe (and Record its outcome). Only one probe or
// trial runs at a time.
func (b *Breaker) StartProbe() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == StateOpen {
		b.state = StateHalfOpen
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
		if b.failures == 0 {
			b.firstFail = b.now()
		}
		b.failures++
		if b.failures >= b.threshold {
			b.state, b.since = StateOpen, b.firstFail
		}
	case StateHalfOpen:
		if ok {
			b.closeLocked()
		} else {
			b.state = StateOpen
		}
	case StateOpen:
		// Outcomes while open neither extend nor shorten the outage: only the
		// probe (or the trial registration) decides.
	}
}

func (b *Breaker) closeLocked() {
	from, to := b.firstFail, b.now()
	b.failures = 0
	b.state, b.since = StateClosed, to
	if b.onOutage != nil {
		b.onOutage(from, to)
	}
}
