package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
)

// API configures services/api.
type API struct {
	Fleet
	// Port (PORT, default 3000).
	Port int `env:"PORT"`
	// APIKeys (API_KEYS, comma-separated, default none): keys that may
	// register runners and, while RUNNER_AUTH lists api-key, act as any
	// runner. None (and no ADMIN_API_KEYS) means auth is off. Keys shorter
	// than MinKeyLen are refused in production, warned about elsewhere.
	APIKeys []string `env:"API_KEYS" envSeparator:","`
	// AdminAPIKeys (ADMIN_API_KEYS, comma-separated, default none): operator
	// keys. None means the API_KEYS are operator keys too (with a warning);
	// refused in production.
	AdminAPIKeys []string `env:"ADMIN_API_KEYS" envSeparator:","`
	// RunnerAuth (RUNNER_AUTH, comma-separated set, default "token,api-key"):
	// the credentials that act as a runner on its routes. "token" is the
	// runner's own token (always on); "api-key" also lets every API_KEYS key
	// act as any runner, as the original controller did. "token" alone is
	// strict: only a runner's own token acts for it.
	RunnerAuth []string `env:"RUNNER_AUTH" envSeparator:","`
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
	// BreakerFailures (BREAKER_FAILURES, default 1): consecutive Redis
	// failures after which the admission breaker opens. The first is enough:
	// the probe closes a breaker opened by a blip within BreakerProbeEvery.
	BreakerFailures int `env:"BREAKER_FAILURES"`
	// BreakerCooldownMs (BREAKER_COOLDOWN_MS, default 5000): how long an open
	// breaker waits before it lets one registration through as a trial (the
	// PING probe normally closes it long before).
	BreakerCooldownMs int64 `env:"BREAKER_COOLDOWN_MS"`
	// BreakerProbeEvery (no variable, default 250 ms): how often an open
	// admission breaker probes Redis with a PING (each waits at most this).
	BreakerProbeEvery time.Duration
	// OutageRecordEvery (no variable, default 1 s): the api writes the
	// outage and overload windows it saw to Redis at most this often.
	OutageRecordEvery time.Duration
	// MaxInflight (MAX_INFLIGHT, default 256, 0 = no limit): runner requests
	// (heartbeat, register, task updates) handled at once; the others wait
	// for a slot at most OverloadQueueMs, then get 503 + Retry-After.
	MaxInflight int `env:"MAX_INFLIGHT"`
	// OverloadQueueMs (OVERLOAD_QUEUE_MS, default 100): longest wait for a
	// slot. While the queue stands (it did not empty within the last 100 ms)
	// the wait is a tenth of it, CoDel-style, so a standing queue drains by
	// shedding instead of growing past the leases. OverloadQueue caps it at
	// a quarter of HEARTBEAT_INTERVAL_MS, so a heartbeat that waited and was
	// refused still has room in its lease.
	OverloadQueueMs int64 `env:"OVERLOAD_QUEUE_MS"`
	// HeartbeatBatch (HEARTBEAT_BATCH, default 64, at least 1): most
	// heartbeats of concurrent requests sent to Redis in one pipeline (each
	// still its own atomic script call); 1 sends every heartbeat alone.
	HeartbeatBatch int `env:"HEARTBEAT_BATCH"`
	// HeartbeatPipelines (HEARTBEAT_PIPELINES, default 8, at least 1): such
	// pipelines in flight at once; a heartbeat that finds one free is sent
	// at once, the others join the next pipeline.
	HeartbeatPipelines int `env:"HEARTBEAT_PIPELINES"`

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
	// RegisterRate (REGISTER_RATE, default 0 = no limit): registrations per
	// second each realm admits, through a token bucket in Redis shared by
	// every replica; beyond it a registration gets 429 with a jittered
	// Retry-After. A realm's registerRate policy overrides it.
	RegisterRate float64 `env:"REGISTER_RATE"`
	// RegisterBurst (REGISTER_BURST, default 100): the bucket's size, the
	// registrations a realm admits at once after a quiet spell. A realm's
	// registerBurst policy overrides it.
	RegisterBurst int `env:"REGISTER_BURST"`
}

// ListenAddr is where the api listens: HOST:PORT, with HOST defaulting to
// LoopbackHost while auth is off (no API_KEYS, no ADMIN_API_KEYS).
func (c API) ListenAddr() string {
	return c.listenAddr(c.Port, len(configuredKeys(c.APIKeys)) == 0 && len(configuredKeys(c.AdminAPIKeys)) == 0)
}

// DefaultAPI returns the API defaults.
func DefaultAPI() API {
	return API{
		Fleet:              defaultFleet(),
		Port:               3000,
		RunnerAuth:         []string{RunnerAuthToken, RunnerAuthAPIKey},
		MetricsPerRunner:   true,
		MetricsCacheMs:     10000,
		BodyLimitBytes:     1 << 20,
		LongPollMaxMs:      30000,
		LongPollMaxWaiters: 10000,
		BreakerFailures:    1,
		BreakerCooldownMs:  5000,
		BreakerProbeEvery:  250 * time.Millisecond,
		OutageRecordEvery:  time.Second,
		MaxInflight:        256,
		OverloadQueueMs:    100,
		HeartbeatBatch:     64,
		HeartbeatPipelines: 8,
		CountsCacheTTL:     time.Second,
		RegisterBurst:      100,
		HTTP: HTTPServer{
			ReadTimeout: 15 * time.Second, WriteTimeout: 15 * time.Second,
			IdleTimeout: 75 * time.Second, ShutdownTimeout: 10 * time.Second,
			ReadyTimeout: 200 * time.Millisecond,
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
	if c.OutageRecordEvery <= 0 {
		errs = append(errs, fmt.Errorf("OutageRecordEvery: %s is not positive (no variable sets it: build the configuration from DefaultAPI)", c.OutageRecordEvery))
	}
	if c.MaxInflight < 0 {
		errs = append(errs, fmt.Errorf("MAX_INFLIGHT: %d is negative", c.MaxInflight))
	}
	if c.OverloadQueueMs < 0 {
		errs = append(errs, fmt.Errorf("OVERLOAD_QUEUE_MS: %d is negative", c.OverloadQueueMs))
	}
	if c.HeartbeatBatch < 1 {
		errs = append(errs, fmt.Errorf("HEARTBEAT_BATCH: %d is below 1", c.HeartbeatBatch))
	}
	if c.HeartbeatPipelines < 1 {
		errs = append(errs, fmt.Errorf("HEARTBEAT_PIPELINES: %d is below 1", c.HeartbeatPipelines))
	}
	if c.CountsCacheTTL <= 0 {
		errs = append(errs, fmt.Errorf("CountsCacheTTL: %s is not positive (no variable sets it: build the configuration from DefaultAPI)", c.CountsCacheTTL))
	}
	for _, v := range []struct {
		name string
		keys []string
	}{{"API_KEYS", c.APIKeys}, {"ADMIN_API_KEYS", c.AdminAPIKeys}} {
		if _, err := checkKeyLength(v.name, v.keys, c.Production()); err != nil {
			errs = append(errs, err)
		}
	}
	if c.RegisterRate < 0 || c.RegisterRate > 1e6 {
		errs = append(errs, fmt.Errorf("REGISTER_RATE: %g is not between 0 (no limit) and 1000000", c.RegisterRate))
	}
	if c.RegisterBurst < 1 || c.RegisterBurst > 1e6 {
		errs = append(errs, fmt.Errorf("REGISTER_BURST: %d is not between 1 and 1000000", c.RegisterBurst))
	}
	if c.HooksURL != "" {
		if u, err := url.Parse(c.HooksURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("HOOKS_URL: %q is not an http(s) URL", c.HooksURL))
		}
	}
	if c.Production() && len(configuredKeys(c.AdminAPIKeys)) == 0 {
		errs = append(errs, errors.New("ADMIN_API_KEYS: NODE_ENV=production requires operator keys; refusing to run with "+
			"auth off or with the API_KEYS as operator keys (they would dispatch shell commands to every runner)"))
	}
	errs = append(errs, c.validateRunnerAuth()...)
	return errors.Join(errs...)
}

func (c API) validateRunnerAuth() []error {
	var errs []error
	token := false
	for _, v := range c.RunnerAuth {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case RunnerAuthToken:
			token = true
		case RunnerAuthAPIKey:
		default:
			errs = append(errs, fmt.Errorf("RUNNER_AUTH: %q is not %s or %s", v, RunnerAuthToken, RunnerAuthAPIKey))
		}
	}
	if !token {
		errs = append(errs, fmt.Errorf("RUNNER_AUTH: must list %s (%q or %q): the runner's own token is always accepted",
			RunnerAuthToken, RunnerAuthToken, RunnerAuthToken+","+RunnerAuthAPIKey))
	}
	return errs
}

// APIKeysActForRunners reports whether RUNNER_AUTH lets an API key act as any
// runner on the runner routes (heartbeat, update, offline, task updates and
// the runner's own reads).
func (c API) APIKeysActForRunners() bool {
	for _, v := range c.RunnerAuth {
		if strings.EqualFold(strings.TrimSpace(v), RunnerAuthAPIKey) {
			return true
		}
	}
	return false
}

// Warnings lists what a valid configuration still does unsafely, for the
// service to log once at start-up: keys shorter than MinKeyLen (refused in
// production) and API keys that are operator keys because ADMIN_API_KEYS is
// empty (refused in production). No warning holds a key.
func (c API) Warnings() []string {
	var out []string
	for _, v := range []struct {
		name string
		keys []string
	}{{"API_KEYS", c.APIKeys}, {"ADMIN_API_KEYS", c.AdminAPIKeys}} {
		if w, _ := checkKeyLength(v.name, v.keys, c.Production()); w != "" {
			out = append(out, w)
		}
	}
	if len(configuredKeys(c.AdminAPIKeys)) == 0 && len(configuredKeys(c.APIKeys)) > 0 {
		out = append(out, "ADMIN_API_KEYS is empty: every API_KEYS key is an operator key too, so every runner's key "+
			"can list runners, dispatch shell commands to any runner and request updates (refused with NODE_ENV=production); "+
			"set ADMIN_API_KEYS")
	}
	return out
}

// OverloadQueue is the longest wait for a request slot: OverloadQueueMs, at
// most a quarter of the heartbeat interval.
func (c API) OverloadQueue() time.Duration {
	return min(time.Duration(c.OverloadQueueMs)*time.Millisecond, c.HeartbeatInterval()/4)
}

// LongPollMax is LongPollMaxMs as a duration.
func (c API) LongPollMax() time.Duration { return time.Duration(c.LongPollMaxMs) * time.Millisecond }

// ServerWriteTimeout is the HTTP server's write timeout: HTTP.WriteTimeout
// beyond the longest long poll, which must be answered before it.
func (c API) ServerWriteTimeout() time.Duration { return c.LongPollMax() + c.HTTP.WriteTimeout }
