package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy is how often and how patiently [Retry] tries again.
type RetryPolicy struct {
	// Attempts is the number of tries in all (1 = no retry).
	Attempts int
	// Base is the first backoff; each retry doubles it, with full jitter,
	// up to Max. A Retry-After of the answer replaces it when longer (but
	// never beyond Max).
	Base, Max time.Duration
}

// DefaultRetry is 4 tries, backing off from 200 ms to at most 5 s.
var DefaultRetry = RetryPolicy{Attempts: 4, Base: 200 * time.Millisecond, Max: 5 * time.Second}

// WithRetry retries the client's idempotent calls (GET, HEAD, PUT, DELETE,
// and a POST carrying an Idempotency-Key, such as a Dispatch with a key) by
// policy. Other calls are never retried: a repeated registration or
// heartbeat is not the same request.
func WithRetry(policy RetryPolicy) Option { return func(c *Client) { c.retry = policy } }

// Retryable tells whether err may go away by itself: a transport error (not
// the caller's context ending), or an answer of 429, 502, 503 or 504.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrInvalidFilter) {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		switch e.Status {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	return true
}

// Retry calls f until it succeeds, returns an error that is not
// [Retryable], ctx ends, or policy.Attempts are spent; it returns the last
// result. Use it for idempotent calls only.
func Retry[T any](ctx context.Context, policy RetryPolicy, f func(context.Context) (T, error)) (T, error) {
	attempts := max(policy.Attempts, 1)
	backoff := policy.Base
	var (
		v   T
		err error
	)
	for i := 0; i < attempts; i++ {
		if v, err = f(ctx); err == nil || !Retryable(err) || i == attempts-1 {
			return v, err
		}
		wait := time.Duration(0)
		if backoff > 0 {
			wait = rand.N(backoff) + 1
		}
		if ra := RetryAfterOf(err); ra > wait {
			wait = ra
		}
		if policy.Max > 0 && wait > policy.Max {
			wait = policy.Max
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
		if backoff *= 2; policy.Max > 0 && backoff > policy.Max {
			backoff = policy.Max
		}
	}
	return v, err
}

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date
// (RFC 9110 §10.2.3), relative to now. Anything else, or a date in the
// past, is 0.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

func idempotent(method string, hdr map[string]string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions:
		return true
	}
	return hdr["Idempotency-Key"] != ""
}
