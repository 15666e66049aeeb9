package config

import (
	"errors"
	"fmt"
	"time"
)

// Fleet is the configuration the API and the sweeper share: both act on the
// same runners, leases and tasks, so they read the same variables, with the
// same defaults and minimums, validated here once. It embeds Common, which
// the hooks service reads as well.
type Fleet struct {
	Common
	// LeaseTTLMs (LEASE_TTL_MS, default 60000, at least 100): how long a
	// lease lasts without a heartbeat; for the sweeper also the
	// correlated-loss window of the mass-expiry rule.
	LeaseTTLMs int64 `env:"LEASE_TTL_MS"`
	// HeartbeatIntervalMs (HEARTBEAT_INTERVAL_MS, default 15000, at least 10,
	// below LEASE_TTL_MS): the interval runners are told to heartbeat at; a
	// runner that has not renewed its lease for 1.5 intervals counts as
	// silent for the sweeper's fleet_silent rule.
	HeartbeatIntervalMs int64 `env:"HEARTBEAT_INTERVAL_MS"`
	// TaskRetentionMs (TASK_RETENTION_MS, default 604800000 = 7 days, at
	// least 1): how long a finished task stays readable, whoever finished it:
	// the runner, an operator, or the sweeper (lease expiry, task timeout,
	// quarantine release).
	TaskRetentionMs int64 `env:"TASK_RETENTION_MS"`

	// The store's other tunables. No variable sets them: they are fields so
	// that every value the store uses comes from this package.

	// IdempotencyTTL (no variable, default 24 h): how long an Idempotency-Key
	// keeps returning its task.
	IdempotencyTTL time.Duration
	// MaxTasksPerReply (no variable, default 64): most pending tasks one
	// heartbeat reply carries.
	MaxTasksPerReply int
	// CancelRetention (no variable, default 10 min): how long a cancelled
	// running task keeps being listed in cancelTaskIds when the runner never
	// acknowledges it.
	CancelRetention time.Duration
}

// Minimums of the shared lease settings. They are low enough for tests and
// the end-to-end harness to run with leases of a few hundred milliseconds.
const (
	MinLeaseTTLMs          = 100
	MinHeartbeatIntervalMs = 10
)

func defaultFleet() Fleet {
	return Fleet{
		Common:              defaultCommon(),
		LeaseTTLMs:          60000,
		HeartbeatIntervalMs: 15000,
		TaskRetentionMs:     int64(7 * 24 * time.Hour / time.Millisecond),
		IdempotencyTTL:      24 * time.Hour,
		MaxTasksPerReply:    64,
		CancelRetention:     10 * time.Minute,
	}
}

func (c Fleet) validate() []error {
	errs := c.Common.validate()
	if c.LeaseTTLMs < MinLeaseTTLMs {
		errs = append(errs, fmt.Errorf("LEASE_TTL_MS: %d is below %d", c.LeaseTTLMs, MinLeaseTTLMs))
	}
	if c.HeartbeatIntervalMs < MinHeartbeatIntervalMs {
		errs = append(errs, fmt.Errorf("HEARTBEAT_INTERVAL_MS: %d is below %d", c.HeartbeatIntervalMs, MinHeartbeatIntervalMs))
	}
	if c.HeartbeatIntervalMs >= c.LeaseTTLMs {
		errs = append(errs, fmt.Errorf("HEARTBEAT_INTERVAL_MS (%d) must be below LEASE_TTL_MS (%d)", c.HeartbeatIntervalMs, c.LeaseTTLMs))
	}
	if c.TaskRetentionMs < 1 {
		errs = append(errs, fmt.Errorf("TASK_RETENTION_MS: %d is below 1", c.TaskRetentionMs))
	}
	if c.IdempotencyTTL < time.Millisecond {
		errs = append(errs, errors.New("IdempotencyTTL: below 1ms (no variable sets it: build the configuration from its Default function)"))
	}
	if c.MaxTasksPerReply < 1 {
		errs = append(errs, errors.New("MaxTasksPerReply: below 1 (no variable sets it: build the configuration from its Default function)"))
	}
	if c.CancelRetention < time.Millisecond {
		errs = append(errs, errors.New("CancelRetention: below 1ms (no variable sets it: build the configuration from its Default function)"))
	}
	return errs
}

// LeaseTTL is LeaseTTLMs as a duration.
func (c Fleet) LeaseTTL() time.Duration { return time.Duration(c.LeaseTTLMs) * time.Millisecond }

// HeartbeatInterval is HeartbeatIntervalMs as a duration.
func (c Fleet) HeartbeatInterval() time.Duration {
	return time.Duration(c.HeartbeatIntervalMs) * time.Millisecond
}

// TaskRetention is TaskRetentionMs as a duration.
func (c Fleet) TaskRetention() time.Duration {
	return time.Duration(c.TaskRetentionMs) * time.Millisecond
}

// HTTPServer holds the timeouts of a service's HTTP server. No variable sets
// them; each service's Default function does, because the net/http and fiber
// defaults are unlimited.
type HTTPServer struct {
	// ReadHeaderTimeout bounds reading a request's headers (0: ReadTimeout;
	// fiber, which serves the API, has no separate one).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response. The API adds LONG_POLL_MAX_MS
	// to it (see API.ServerWriteTimeout): a long poll must be answered.
	WriteTimeout time.Duration
	// IdleTimeout bounds a keep-alive connection between requests.
	IdleTimeout time.Duration
	// ShutdownTimeout is how long a stopping server lets requests in flight finish.
	ShutdownTimeout time.Duration
	// ReadyTimeout bounds /ready's check of Redis (default 200 ms), so that a
	// readiness probe of 1 s gets a 503 rather than a timeout.
	ReadyTimeout time.Duration
}

func (h HTTPServer) validate() []error {
	var errs []error
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"ReadTimeout", h.ReadTimeout}, {"WriteTimeout", h.WriteTimeout},
		{"IdleTimeout", h.IdleTimeout}, {"ShutdownTimeout", h.ShutdownTimeout},
		{"ReadyTimeout", h.ReadyTimeout},
	} {
		if f.d <= 0 {
			errs = append(errs, fmt.Errorf("HTTP.%s: %s is not positive (no variable sets it: build the configuration from its Default function)", f.name, f.d))
		}
	}
	if h.ReadHeaderTimeout < 0 {
		errs = append(errs, fmt.Errorf("HTTP.ReadHeaderTimeout: %s is negative", h.ReadHeaderTimeout))
	}
	return errs
}
