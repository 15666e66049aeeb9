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
	// RunnerRetentionMs (RUNNER_RETENTION_MS, default 604800000 = 7 days, at
	// least 1): how long an offline runner is kept; the sweeper then deletes
	// it with its indexes (its tasks keep TASK_RETENTION_MS). The api's
	// DELETE /runners/:id deletes one at once and needs no setting.
	RunnerRetentionMs int64 `env:"RUNNER_RETENTION_MS"`
	// RunnerPurgeInterval (no variable, default 1 min): how often the sweeper
	// looks for runners past RUNNER_RETENTION_MS (at least as often as the
	// retention itself, when it is shorter) and trims the fleet task index.
	RunnerPurgeInterval time.Duration
	// FailoverGraceMs (FAILOVER_GRACE_MS, default 0 = one LEASE_TTL_MS): after
	// a control-plane outage (a Redis restart or failover, the API's breaker
	// open, an overload, the sweeper's own lost connection), every lease that
	// fell due during it, or falls due within one lease TTL after it, is
	// re-armed to now + this grace before anything is swept.
	FailoverGraceMs int64 `env:"FAILOVER_GRACE_MS"`
	// AdminAPIKeys (ADMIN_API_KEYS, comma-separated, default none): operator
	// keys accepted by POST /quarantine/release. None leaves the endpoint open
	// outside production and disables it in production. Keys shorter than
	// MinKeyLen are refused in production, warned about elsewhere.
	AdminAPIKeys []string `env:"ADMIN_API_KEYS" envSeparator:","`
	// HTTP (no variable): the server's timeouts; default read header 5 s,
	// read 10 s, write 10 s, idle 60 s, shutdown 5 s.
	HTTP HTTPServer
}

// ListenAddr is where the sweeper listens: HOST:PORT, with HOST defaulting
// to LoopbackHost while POST /quarantine/release is open (no
// ADMIN_API_KEYS outside production).
func (c Sweeper) ListenAddr() string {
	return c.listenAddr(c.Port, len(configuredKeys(c.AdminAPIKeys)) == 0 && !c.Production())
}

// DefaultSweeper returns the sweeper defaults.
func DefaultSweeper() Sweeper {
	return Sweeper{
		Fleet:               defaultFleet(),
		Port:                3001,
		SweepIntervalMs:     100,
		SweepBatch:          500,
		TaskTimeoutGraceMs:  5000,
		MassExpiryPercent:   50,
		MassExpiryMin:       10,
		MassExpiryHoldMs:    300000,
		RunnerRetentionMs:   int64(7 * 24 * time.Hour / time.Millisecond),
		RunnerPurgeInterval: time.Minute,
		FailoverGraceMs:     0, // one LEASE_TTL_MS, whatever it is set to
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
	if c.RunnerRetentionMs < 1 {
		errs = append(errs, fmt.Errorf("RUNNER_RETENTION_MS: %d is below 1", c.RunnerRetentionMs))
	}
	if c.RunnerPurgeInterval <= 0 {
		errs = append(errs, errors.New("RunnerPurgeInterval: not positive (no variable sets it: build the configuration from DefaultSweeper)"))
	}
	if c.FailoverGraceMs < 0 || c.FailoverGraceMs > maxFailoverGraceMs {
		errs = append(errs, fmt.Errorf("FAILOVER_GRACE_MS: %d is outside 0..%d", c.FailoverGraceMs, maxFailoverGraceMs))
	}
	if c.MassExpiryHoldMs < 0 {
		errs = append(errs, fmt.Errorf("MASS_EXPIRY_HOLD_MS: %d is negative", c.MassExpiryHoldMs))
	}
	if _, err := checkKeyLength("ADMIN_API_KEYS", c.AdminAPIKeys, c.Production()); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Warnings lists what a valid configuration still does unsafely, for the
// service to log once at start-up: ADMIN_API_KEYS keys shorter than
// MinKeyLen (refused in production). No warning holds a key.
func (c Sweeper) Warnings() []string {
	if w, _ := checkKeyLength("ADMIN_API_KEYS", c.AdminAPIKeys, c.Production()); w != "" {
		return []string{w}
	}
	return nil
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

// RunnerRetention is RunnerRetentionMs as a duration.
func (c Sweeper) RunnerRetention() time.Duration {
	return time.Duration(c.RunnerRetentionMs) * time.Millisecond
}

// PurgeEvery is how often the retention purge runs: RunnerPurgeInterval, or
// the retention when that is shorter, so that a runner never outlives it by
// much more than the retention again.
func (c Sweeper) PurgeEvery() time.Duration { return min(c.RunnerPurgeInterval, c.RunnerRetention()) }

// maxFailoverGraceMs bounds FAILOVER_GRACE_MS: an hour of grace hides dead
// runners for an hour after every outage.
const maxFailoverGraceMs = 3600000

// FailoverGrace is how long the leases an outage covered are re-armed for:
// FailoverGraceMs, or one lease TTL when it is 0 (the default).
func (c Sweeper) FailoverGrace() time.Duration {
	if c.FailoverGraceMs == 0 {
		return c.LeaseTTL()
	}
	return time.Duration(c.FailoverGraceMs) * time.Millisecond
}

// MassExpiryHold is MassExpiryHoldMs as a duration.
func (c Sweeper) MassExpiryHold() time.Duration {
	return time.Duration(c.MassExpiryHoldMs) * time.Millisecond
}
