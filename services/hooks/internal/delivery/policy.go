package delivery

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// ErrPermanent marks an answer that no retry will change (3xx, or a 4xx
// other than 408 and 429). It wraps asynq.SkipRetry, so the task goes
// straight to the archive.
var ErrPermanent = fmt.Errorf("permanent delivery failure: %w", asynq.SkipRetry)

// RetryableError is an attempt that failed in a way a later attempt may not:
// a network error or timeout, 408, 429 or 5xx. RetryAfter is the receiver's
// Retry-After (zero when absent), honoured by RetryDelay.
type RetryableError struct {
	Status     int // 0 for a network error
	RetryAfter time.Duration
	Err        error
}

func (e *RetryableError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("delivery attempt failed: %v", e.Err)
	}
	return fmt.Sprintf("delivery attempt failed: HTTP %d", e.Status)
}

func (e *RetryableError) Unwrap() error { return e.Err }

// Classify maps a response status to the handler's result: nil for 2xx, a
// *RetryableError for 408, 429 and 5xx, ErrPermanent (wrapped) otherwise.
func Classify(status int, header http.Header, now time.Time) error {
	switch {
	case status >= 200 && status < 300:
		return nil
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		return &RetryableError{Status: status, RetryAfter: ParseRetryAfter(header.Get("Retry-After"), now)}
	}
	return fmt.Errorf("HTTP %d: %w", status, ErrPermanent)
}

// ParseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date.
// Anything else, or a time in the past, is zero.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(365*24*time.Hour/time.Second) {
			n = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// RetryDelay is the asynq RetryDelayFunc: capped exponential backoff,
// base * 2^n (n = retries so far) up to ceiling, with ±20% jitter so that
// deliveries that failed together do not retry together. A Retry-After from
// the receiver replaces the backoff, capped at ceiling. asynq schedules
// retries on whole seconds (it truncates the retry time), so one second is
// added to a Retry-After to never come back early.
func RetryDelay(base, ceiling time.Duration) asynq.RetryDelayFunc {
	return func(n int, err error, _ *asynq.Task) time.Duration {
		var re *RetryableError
		if errors.As(err, &re) && re.RetryAfter > 0 {
			return min(re.RetryAfter+time.Second, ceiling)
		}
		return Backoff(base, ceiling, n, rand.Float64())
	}
}

// Backoff is base * 2^n capped at ceiling, scaled by a jitter factor in
// [0.8, 1.2) from r in [0, 1), and capped at ceiling again.
func Backoff(base, ceiling time.Duration, n int, r float64) time.Duration {
	d := ceiling
	if n >= 0 && n < 62 && base <= ceiling>>n {
		d = base << n
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*r))
	return max(min(d, ceiling), time.Millisecond)
}
