package config

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/Masterminds/semver/v3"
)

// API configures services/api.
type API struct {
	Fleet
	// Port (PORT, default 3000).
	Port int `env:"PORT"`
	// APIKeys (API_KEYS, comma-separated, default none): keys that may
	// register runners. None means auth is off (refused in production).
	APIKeys []string `env:"API_KEYS" envSeparator:","`
	// AdminAPIKeys (ADMIN_API_KEYS, comma-separated, default none): operator
	// keys. None means the API_KEYS are operator keys too.
	AdminAPIKeys []string `env:"ADMIN_API_KEYS" envSeparator:","`
	// ExpectedRunnerVersion (EXPECTED_RUNNER_VERSION, default ""): semver
	// constraint or version runners must meet; empty means any version complies.
	ExpectedRunnerVersion string `env:"EXPECTED_RUNNER_VERSION"`
	// MaxRunners (MAX_RUNNERS, default 0 = no limit): live runners beyond which
	// registrations are refused with 503.
	MaxRunners int `env:"MAX_RUNNERS"`
	// MetricsPerRunner (METRICS_PER_RUNNER, default true): export per-runner
	// series; switch off for very large fleets.
	MetricsPerRunner bool `env:"METRICS_PER_RUNNER"`
	// MetricsCacheMs (METRICS_CACHE_MS, default 10000): how long the
	// per-runner collector reuses its last scan of the fleet.
	MetricsCacheMs int64 `env:"METRICS_CACHE_MS"`
	// BodyLimitBytes (BODY_LIMIT_BYTES, default 1048576): largest request body.
	BodyLimitBytes int `env:"BODY_LIMIT_BYTES"`
	// LongPollMaxMs (LONG_POLL_MAX_MS, default 30000): longest `wait` a task listing may hold.
	LongPollMaxMs int64 `env:"LONG_POLL_MAX_MS"`
	// LongPollMaxWaiters (LONG_POLL_MAX_WAITERS, default 10000): long polls one
	// API process holds at once; beyond it a long poll is refused with 503.
	LongPollMaxWaiters int `env:"LONG_POLL_MAX_WAITERS"`
	// BreakerFailures (BREAKER_FAILURES, default 5): consecutive Redis
	// failures after which the admission breaker opens.
	BreakerFailures int `env:"BREAKER_FAILURES"`
	// BreakerCooldownMs (BREAKER_COOLDOWN_MS, default 5000): how long the
	// admission breaker stays open before it probes Redis again.
	BreakerCooldownMs int64 `env:"BREAKER_COOLDOWN_MS"`
	// BreakerProbeEvery (no variable, default 250 ms): how often an open
	// admission breaker probes Redis with a PING.
	BreakerProbeEvery time.Duration
	// CountsCacheTTL (no variable, default 1 s): how long the fleet counts
	// behind MAX_RUNNERS and the admission gauges are reused.
	CountsCacheTTL time.Duration
	// HTTP (no variable): the server's timeouts; default read 15 s, write
	// 15 s beyond LONG_POLL_MAX_MS, idle 75 s, shutdown 10 s.
	HTTP HTTPServer
	// HooksURL (HOOKS_URL, default none): base URL of the hooks service
	// (e.g. http://hooks:3002), which the web console calls server-side for
	// the archived webhooks and their replay, with the operator's key. None:
	// the console's webhooks page says it is not configured.
	HooksURL string `env:"HOOKS_URL"`
}

// DefaultAPI returns the API defaults.
func DefaultAPI() API {
	return API{
		Fleet:              defaultFleet(),
		Port:               3000,
		MetricsPerRunner:   true,
		MetricsCacheMs:     10000,
		BodyLimitBytes:     1 << 20,
		LongPollMaxMs:      30000,
		LongPollMaxWaiters: 10000,
		BreakerFailures:    5,
		BreakerCooldownMs:  5000,
		BreakerProbeEvery:  250 * time.Millisecond,
		CountsCacheTTL:     time.Second,
		HTTP: HTTPServer{
			ReadTimeout: 15 * time.Second, WriteTimeout: 15 * time.Second,
			IdleTimeout: 75 * time.Second, ShutdownTimeout: 10 * time.Second,
		},
	}
}

// LoadAPI reads the API configuration from environ (see Environ) over the
// defaults and validates it, reporting every problem at once.
func LoadAPI(environ map[string]string) (API, error) {
	cfg := DefaultAPI()
	// A value that does not parse keeps its default, so validating anyway
	// reports the other problems in the same run.
	if err := errors.Join(parse(&cfg, environ), cfg.Validate()); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// Validate reports every invalid value at once.
func (c API) Validate() error {
	errs := append(c.Fleet.validate(), c.HTTP.validate()...)
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("PORT: %d is not a port", c.Port))
	}
	if c.ExpectedRunnerVersion != "" {
		if _, err := semver.NewConstraint(c.ExpectedRunnerVersion); err != nil {
			errs = append(errs, fmt.Errorf("EXPECTED_RUNNER_VERSION: %q: %w", c.ExpectedRunnerVersion, err))
		}
	}
	if c.MaxRunners < 0 {
		errs = append(errs, fmt.Errorf("MAX_RUNNERS: %d is negative", c.MaxRunners))
	}
	if c.BodyLimitBytes < 1024 {
		errs = append(errs, fmt.Errorf("BODY_LIMIT_BYTES: %d is below 1024", c.BodyLimitBytes))
	}
	if c.LongPollMaxMs < 0 {
		errs = append(errs, fmt.Errorf("LONG_POLL_MAX_MS: %d is negative", c.LongPollMaxMs))
	}
	if c.LongPollMaxWaiters < 0 {
		errs = append(errs, fmt.Errorf("LONG_POLL_MAX_WAITERS: %d is negative", c.LongPollMaxWaiters))
	}
	if c.BreakerFailures < 0 {
		errs = append(errs, fmt.Errorf("BREAKER_FAILURES: %d is negative", c.BreakerFailures))
	}
	if c.BreakerCooldownMs < 0 {
		errs = append(errs, fmt.Errorf("BREAKER_COOLDOWN_MS: %d is negative", c.BreakerCooldownMs))
	}
	if c.BreakerProbeEvery <= 0 {
		errs = append(errs, fmt.Errorf("BreakerProbeEvery: %s is not positive (no variable sets it: build the configuration from DefaultAPI)", c.BreakerProbeEvery))
	}
	if c.CountsCacheTTL <= 0 {
		errs = append(errs, fmt.Errorf("CountsCacheTTL: %s is not positive (no variable sets it: build the configuration from DefaultAPI)", c.CountsCacheTTL))
	}
	for _, k := range append(append([]string{}, c.APIKeys...), c.AdminAPIKeys...) {
		if len(k) < 16 {
			errs = append(errs, errors.New("API_KEYS/ADMIN_API_KEYS: every key must be at least 16 characters"))
			break
		}
	}
	if c.HooksURL != "" {
		if u, err := url.Parse(c.HooksURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("HOOKS_URL: %q is not an http(s) URL", c.HooksURL))
		}
	}
	if c.Production() && len(c.APIKeys) == 0 && len(c.AdminAPIKeys) == 0 {
		errs = append(errs, errors.New("API_KEYS: NODE_ENV=production requires API keys; refusing to run with auth off"))
	}
	return errors.Join(errs...)
}

// LongPollMax is LongPollMaxMs as a duration.
func (c API) LongPollMax() time.Duration { return time.Duration(c.LongPollMaxMs) * time.Millisecond }

// ServerWriteTimeout is the HTTP server's write timeout: HTTP.WriteTimeout
// beyond the longest long poll, which must be answered before it.
func (c API) ServerWriteTimeout() time.Duration { return c.LongPollMax() + c.HTTP.WriteTimeout }
