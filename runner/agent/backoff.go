package agent

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is exponential backoff with full jitter: the n-th wait is uniform
// in [0, min(max, base*2^n)). A fleet that lost its controller at the same
// instant thus comes back spread over the window instead of in step.
type backoff struct {
	base, max time.Duration
	attempt   int
	rand      func() float64
}

func newBackoff(base, max time.Duration) *backoff {
	return &backoff{base: base, max: max, rand: rand.Float64}
}

// ceiling is the upper bound of the next wait.
func (b *backoff) ceiling() time.Duration {
	d := b.max
	if b.attempt < 32 {
		if c := b.base << b.attempt; c > 0 && c < b.max {
			d = c
		}
	}
	return d
}

// next returns the next wait and moves on.
func (b *backoff) next() time.Duration { return b.within(0) }

// within is next with the window also bounded by limit (> 0): used while a
// lease is at stake, so that retries keep coming within a heartbeat interval.
func (b *backoff) within(limit time.Duration) time.Duration {
	c := b.ceiling()
	if limit > 0 && limit < c {
		c = limit
	}
	b.attempt++
	return time.Duration(b.rand() * float64(c))
}

func (b *backoff) reset() { b.attempt = 0 }

// jitter returns d shortened by up to 20 %: heartbeats spread out, and
// never arrive later than the interval the controller asked for.
func jitter(d time.Duration) time.Duration {
	return d - time.Duration(rand.Float64()*0.2*float64(d))
}

// sleep waits d or until ctx ends; it reports whether the full wait elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
