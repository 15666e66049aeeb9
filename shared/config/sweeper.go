package config

import (
	"errors"
	"fmt"
	"time"
)

// Sweeper configures services/sweeper.
type Sweeper struct {
	// Fleet holds LEASE_TTL_MS, HEARTBEAT_INTERVAL_MS and TASK_RETENTION_MS:
	// give the sweeper the API's values. The lease TTL is the correlated-loss
	// window; the retention is that of the tasks the sweeper fails.
	Fleet
	// Port (PORT, default 3001): where /health, /ready, /metrics and
	// /quarantine are served.
	Port int `env:"PORT"`
	// SweepIntervalMs (SWEEP_INTERVAL_MS, default 100): how often the lease
	// and task deadline indexes are scanned. It bounds the detection lag when
	// keyspace events are late or lost.
	SweepIntervalMs int64 `env:"SWEEP_INTERVAL_MS"`
	// SweepBatch (SWEEP_BATCH, default 500): most due entries handled per
	// script call or pipeline; a tick drains the due range in batches of this size.
	SweepBatch int `env:"SWEEP_BATCH"`
	// TaskTimeoutGraceMs (TASK_TIMEOUT_GRACE_MS, default 5000): how long past
	// its timeoutMs a task may run before it is failed with "timeout".
	TaskTimeoutGraceMs int64 `env:"TASK_TIMEOUT_GRACE_MS"`
	// MassExpiryPercent (MASS_EXPIRY_PERCENT, default 50): quarantine instead
	// of failing when more than this share of the online runners lose their
	// lease within one lease TTL. 100 can never be exceeded: protection off.
	MassExpiryPercent int `env:"MASS_EXPIRY_PERCENT"`
	// MassExpiryMin (MASS_EXPIRY_MIN, default 10): and at least this many.
	MassExpiryMin int `env:"MASS_EXPIRY_MIN"`
	// MassExpiryHoldMs (MASS_EXPIRY_HOLD_MS, default 300000): how long
	// quarantined runners wait for a heartbeat before the normal offline transition.
	MassExpiryHoldMs int64 `env:"MASS_EXPIRY_HOLD_MS"`
	// AdminAPIKeys (ADMIN_API_KEYS, comma-separated, default none): operator
	// keys accepted by POST /quarantine/release. None leaves the endpoint open
	// outside production and disables it in production.
	AdminAPIKeys []string `env:"ADMIN_API_KEYS" envSeparator:","`
	// HTTP (no variable): the server's timeouts; default read header 5 s,
	// read 10 s, write 10 s, idle 60 s, shutdown 5 s.
	HTTP HTTPServer
}

// DefaultSweeper returns the sweeper defaults.
func DefaultSweeper() Sweeper {
	return Sweeper{
		Fleet:              defaultFleet(),
		Port:               3001,
		SweepIntervalMs:    100,
		SweepBatch:         500,
		TaskTimeoutGraceMs: 5000,
		MassExpiryPercent:  50,
		MassExpiryMin:      10,
		MassExpiryHoldMs:   300000,
		HTTP: HTTPServer{
			ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
			IdleTimeout: 60 * time.Second, ShutdownTimeout: 5 * time.Second,
			ReadyTimeout: 200 * time.Millisecond,
		},
	}
}

// LoadSweeper reads the sweeper configuration from environ (see Environ)
// over the defaults and validates it, reporting every problem at once.
func LoadSweeper(environ map[string]string) (Sweeper, error) {
	cfg := DefaultSweeper()
	// A value that does not parse keeps its default, so validating anyway
	// reports the other problems in the same run.
	if err := errors.Join(parse(&cfg, environ), cfg.Validate()); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// Validate reports every invalid value at once.
func (c Sweeper) Validate() error {
	errs := append(c.Fleet.validate(), c.HTTP.validate()...)
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("PORT: %d is not a port", c.Port))
	}
	if c.SweepIntervalMs < 10 || c.SweepIntervalMs > 60000 {
		errs = append(errs, fmt.Errorf("SWEEP_INTERVAL_MS: %d is outside 10..60000", c.SweepIntervalMs))
	}
	if c.SweepBatch < 1 || c.SweepBatch > 10000 {
		errs = append(errs, fmt.Errorf("SWEEP_BATCH: %d is outside 1..10000", c.SweepBatch))
	}
	if c.TaskTimeoutGraceMs < 0 {
		errs = append(errs, fmt.Errorf("TASK_TIMEOUT_GRACE_MS: %d is negative", c.TaskTimeoutGraceMs))
	}
	if c.MassExpiryPercent < 1 || c.MassExpiryPercent > 100 {
		errs = append(errs, fmt.Errorf("MASS_EXPIRY_PERCENT: %d is outside 1..100", c.MassExpiryPercent))
	}
	if c.MassExpiryMin < 1 {
		errs = append(errs, fmt.Errorf("MASS_EXPIRY_MIN: %d is below 1", c.MassExpiryMin))
	}
	if c.MassExpiryHoldMs < 0 {
		errs = append(errs, fmt.Errorf("MASS_EXPIRY_HOLD_MS: %d is negative", c.MassExpiryHoldMs))
	}
	for _, k := range c.AdminAPIKeys {
		if len(k) < 16 {
			errs = append(errs, errors.New("ADMIN_API_KEYS: every key must be at least 16 characters"))
			break
		}
	}
	return errors.Join(errs...)
}

// SweepInterval is SweepIntervalMs as a duration.
func (c Sweeper) SweepInterval() time.Duration {
	return time.Duration(c.SweepIntervalMs) * time.Millisecond
}

// TaskTimeoutGrace is TaskTimeoutGraceMs as a duration.
func (c Sweeper) TaskTimeoutGrace() time.Duration {
	return time.Duration(c.TaskTimeoutGraceMs) * time.Millisecond
}

// SilentAfter is how long a runner may go without renewing its lease before
// it counts as silent for the fleet_silent rule: 1.5 heartbeat intervals.
// Runners beat every interval minus up to 20 % jitter, so a healthy one is
// never older than one interval plus the request time; the extra half
// interval absorbs a slow API or one late beat. It must stay below
// LeaseTTL - HeartbeatInterval, the silence of the freshest runner when the
// first lease of an outage runs out, for the rule to trip before anyone is
// failed: true whenever LEASE_TTL_MS >= 2.5 x HEARTBEAT_INTERVAL_MS (the
// defaults are 4 x).
func (c Sweeper) SilentAfter() time.Duration { return c.HeartbeatInterval() * 3 / 2 }

// MassExpiryHold is MassExpiryHoldMs as a duration.
func (c Sweeper) MassExpiryHold() time.Duration {
	return time.Duration(c.MassExpiryHoldMs) * time.Millisecond
}
