package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// Hooks configures services/hooks: the outbox relay and the webhook worker.
type Hooks struct {
	Common
	// Port (PORT, default 3002): /health, /ready, /metrics and the archived
	// deliveries endpoints.
	Port int `env:"PORT"`
	// HookURLs (RUNNER_OFFLINE_HOOK, comma-separated, default none): every
	// URL receives every event. None means hooks are off: the outbox is still
	// drained and acknowledged.
	HookURLs []string `env:"RUNNER_OFFLINE_HOOK" envSeparator:","`
	// HookSecret (RUNNER_OFFLINE_HOOK_SECRET, default none): the Standard
	// Webhooks signing secret, "whsec_" + base64 of 24 to 64 bytes. Several
	// secrets separated by spaces or commas are all signed with (rotation;
	// see HookSecrets). None means deliveries are unsigned (refused in
	// production).
	HookSecret string `env:"RUNNER_OFFLINE_HOOK_SECRET"`
	// HookEvents (HOOK_EVENTS, comma-separated, default "*" = every type):
	// the event types delivered; others are acknowledged and dropped.
	HookEvents []string `env:"HOOK_EVENTS" envSeparator:","`
	// HookTimeoutMs (HOOK_TIMEOUT_MS, default 10000): per-attempt timeout.
	HookTimeoutMs int64 `env:"HOOK_TIMEOUT_MS"`
	// HookMaxRetries (HOOK_MAX_RETRIES, default 20): retries after the first
	// attempt before a delivery is archived; 20 spans about a day with the
	// default backoff.
	HookMaxRetries int `env:"HOOK_MAX_RETRIES"`
	// HookConcurrency (HOOK_CONCURRENCY, default 20): deliveries in flight per process.
	HookConcurrency int `env:"HOOK_CONCURRENCY"`
	// HookBackoffBaseMs (HOOK_BACKOFF_BASE_MS, default 5000): delay before the
	// first retry; it doubles on every retry.
	HookBackoffBaseMs int64 `env:"HOOK_BACKOFF_BASE_MS"`
	// HookBackoffMaxMs (HOOK_BACKOFF_MAX_MS, default 7200000 = 2 h): cap of the
	// retry delay, and of a receiver's Retry-After.
	HookBackoffMaxMs int64 `env:"HOOK_BACKOFF_MAX_MS"`
	// HookPollIntervalMs (HOOK_POLL_INTERVAL_MS, default 100): how often an
	// idle worker looks for new deliveries (asynq TaskCheckInterval).
	HookPollIntervalMs int64 `env:"HOOK_POLL_INTERVAL_MS"`
	// HookRetryCheckMs (HOOK_RETRY_CHECK_MS, default 1000): how often due
	// retries are moved back to the queue (asynq DelayedTaskCheckInterval).
	HookRetryCheckMs int64 `env:"HOOK_RETRY_CHECK_MS"`
	// HookClaimIdleMs (HOOK_CLAIM_IDLE_MS, default 30000): how long an outbox
	// entry stays read but unacknowledged before another relay claims it.
	HookClaimIdleMs int64 `env:"HOOK_CLAIM_IDLE_MS"`
	// HookDedupRetentionMs (HOOK_DEDUP_RETENTION_MS, default 86400000 = 24 h):
	// how long a delivered task is kept so that enqueueing the same event
	// again is recognised as a duplicate.
	HookDedupRetentionMs int64 `env:"HOOK_DEDUP_RETENTION_MS"`
	// HookShutdownTimeoutMs (HOOK_SHUTDOWN_TIMEOUT_MS, default 10000): how long
	// a stopping worker lets deliveries in flight finish before it puts them
	// back in the queue.
	HookShutdownTimeoutMs int64 `env:"HOOK_SHUTDOWN_TIMEOUT_MS"`
	// AdminAPIKeys (ADMIN_API_KEYS, comma-separated, default none): bearer
	// keys for the archived deliveries endpoints. None leaves them open
	// outside production and disables them in production. Keys shorter than
	// MinKeyLen are refused in production, warned about elsewhere.
	AdminAPIKeys []string `env:"ADMIN_API_KEYS" envSeparator:","`
	// RelayBatch (no variable, default 100): most outbox entries the relay
	// reads or claims at once.
	RelayBatch int
	// RelayBlock (no variable, default 500 ms): how long one outbox read
	// blocks; it bounds how long a stopping relay takes to notice.
	RelayBlock time.Duration
	// HTTP (no variable): the admin server's timeouts; default read header
	// 5 s, read 10 s, write 30 s, idle 60 s, shutdown 5 s.
	HTTP HTTPServer
}

// ListenAddr is where the hooks service listens: HOST:PORT, with HOST
// defaulting to LoopbackHost while its admin endpoints are open (no
// ADMIN_API_KEYS outside production).
func (c Hooks) ListenAddr() string {
	return c.listenAddr(c.Port, len(configuredKeys(c.AdminAPIKeys)) == 0 && !c.Production())
}

// DefaultHooks returns the hooks defaults.
func DefaultHooks() Hooks {
	return Hooks{
		Common:                defaultCommon(),
		Port:                  3002,
		HookEvents:            []string{"*"},
		HookTimeoutMs:         10000,
		HookMaxRetries:        20,
		HookConcurrency:       20,
		HookBackoffBaseMs:     5000,
		HookBackoffMaxMs:      int64(2 * time.Hour / time.Millisecond),
		HookPollIntervalMs:    100,
		HookRetryCheckMs:      1000,
		HookClaimIdleMs:       30000,
		HookDedupRetentionMs:  int64(24 * time.Hour / time.Millisecond),
		HookShutdownTimeoutMs: 10000,
		RelayBatch:            100,
		RelayBlock:            500 * time.Millisecond,
		HTTP: HTTPServer{
			ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
			IdleTimeout: 60 * time.Second, ShutdownTimeout: 5 * time.Second,
			ReadyTimeout: 200 * time.Millisecond,
		},
	}
}

// LoadHooks reads the hooks configuration from environ (see Environ) over
// the defaults and validates it, reporting every problem at once.
func LoadHooks(environ map[string]string) (Hooks, error) {
	cfg := DefaultHooks()
	parseErr := parse(&cfg, environ)
	cfg.HookURLs = hookSplitList(strings.Join(cfg.HookURLs, ","))
	cfg.HookEvents = hookSplitList(strings.Join(cfg.HookEvents, ","))
	cfg.AdminAPIKeys = hookSplitList(strings.Join(cfg.AdminAPIKeys, ","))
	// A value that does not parse keeps its default, so validating anyway
	// reports the other problems in the same run.
	if err := errors.Join(parseErr, cfg.Validate()); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// hookSplitList splits on commas and whitespace and drops empty items.
func hookSplitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

// HookSecretPrefix starts every Standard Webhooks signing secret.
const HookSecretPrefix = "whsec_"

// DecodeHookSecret returns the key bytes of a "whsec_" + base64 secret.
func DecodeHookSecret(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, HookSecretPrefix)
	if !ok {
		return nil, fmt.Errorf("does not start with %q", HookSecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("the part after %q is not standard base64", HookSecretPrefix)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("decodes to %d bytes; the Standard Webhooks specification asks for 24 to 64", len(key))
	}
	return key, nil
}

var hookEventTypes = map[string]bool{
	"*": true, wire.EventRunnerOffline: true, wire.EventRunnerRegistered: true,
	wire.EventRunnerUnreachable: true, wire.EventRunnerRecovered: true,
	wire.EventRealmDraining: true, wire.EventRealmActive: true, wire.EventRealmClosed: true, wire.EventRealmDeleted: true,
}

// Validate reports every invalid value at once.
func (c Hooks) Validate() error {
	errs := append(c.Common.validate(), c.HTTP.validate()...)
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("PORT: %d is not a port", c.Port))
	}
	for _, u := range c.HookURLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("RUNNER_OFFLINE_HOOK: %q is not an http(s) URL", u))
		}
	}
	for i, s := range c.HookSecrets() {
		if _, err := DecodeHookSecret(s); err != nil {
			// Never print the secret itself.
			errs = append(errs, fmt.Errorf("RUNNER_OFFLINE_HOOK_SECRET: secret #%d %w", i+1, err))
		}
	}
	if c.Production() && len(c.HookURLs) > 0 && len(c.HookSecrets()) == 0 {
		errs = append(errs, errors.New("RUNNER_OFFLINE_HOOK_SECRET: NODE_ENV=production requires a signing secret when RUNNER_OFFLINE_HOOK is set; refusing to send unsigned webhooks"))
	}
	if len(c.HookEvents) == 0 {
		errs = append(errs, errors.New("HOOK_EVENTS: empty; use * for every event type"))
	}
	for _, e := range c.HookEvents {
		if !hookEventTypes[e] {
			errs = append(errs, fmt.Errorf("HOOK_EVENTS: unknown event type %q", e))
		}
	}
	if c.HookTimeoutMs < 100 {
		errs = append(errs, fmt.Errorf("HOOK_TIMEOUT_MS: %d is below 100", c.HookTimeoutMs))
	}
	if c.HookMaxRetries < 0 || c.HookMaxRetries > 100 {
		errs = append(errs, fmt.Errorf("HOOK_MAX_RETRIES: %d is not within 0..100", c.HookMaxRetries))
	}
	if c.HookConcurrency < 1 || c.HookConcurrency > 1000 {
		errs = append(errs, fmt.Errorf("HOOK_CONCURRENCY: %d is not within 1..1000", c.HookConcurrency))
	}
	if c.HookBackoffBaseMs < 1 {
		errs = append(errs, fmt.Errorf("HOOK_BACKOFF_BASE_MS: %d is below 1", c.HookBackoffBaseMs))
	}
	if c.HookBackoffMaxMs < c.HookBackoffBaseMs {
		errs = append(errs, fmt.Errorf("HOOK_BACKOFF_MAX_MS (%d) is below HOOK_BACKOFF_BASE_MS (%d)", c.HookBackoffMaxMs, c.HookBackoffBaseMs))
	}
	if c.HookPollIntervalMs < 1 {
		errs = append(errs, fmt.Errorf("HOOK_POLL_INTERVAL_MS: %d is below 1", c.HookPollIntervalMs))
	}
	if c.HookRetryCheckMs < 1 {
		errs = append(errs, fmt.Errorf("HOOK_RETRY_CHECK_MS: %d is below 1", c.HookRetryCheckMs))
	}
	if c.HookClaimIdleMs < 10 {
		errs = append(errs, fmt.Errorf("HOOK_CLAIM_IDLE_MS: %d is below 10", c.HookClaimIdleMs))
	}
	if c.HookDedupRetentionMs < 10*c.HookClaimIdleMs {
		errs = append(errs, fmt.Errorf("HOOK_DEDUP_RETENTION_MS (%d) must be at least 10 x HOOK_CLAIM_IDLE_MS (%d): a claimed entry must still find its task", c.HookDedupRetentionMs, c.HookClaimIdleMs))
	}
	if c.HookShutdownTimeoutMs < 1 {
		errs = append(errs, fmt.Errorf("HOOK_SHUTDOWN_TIMEOUT_MS: %d is below 1", c.HookShutdownTimeoutMs))
	}
	if c.RelayBatch < 1 {
		errs = append(errs, errors.New("RelayBatch: below 1 (no variable sets it: build the configuration from DefaultHooks)"))
	}
	if c.RelayBlock <= 0 {
		errs = append(errs, errors.New("RelayBlock: not positive (no variable sets it: build the configuration from DefaultHooks)"))
	}
	if _, err := checkKeyLength("ADMIN_API_KEYS", c.AdminAPIKeys, c.Production()); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Warnings lists what a valid configuration still does unsafely, for the
// service to log once at start-up: ADMIN_API_KEYS keys shorter than
// MinKeyLen (refused in production). No warning holds a key.
func (c Hooks) Warnings() []string {
	if w, _ := checkKeyLength("ADMIN_API_KEYS", c.AdminAPIKeys, c.Production()); w != "" {
		return []string{w}
	}
	return nil
}

// HookTimeout is HookTimeoutMs as a duration.
func (c Hooks) HookTimeout() time.Duration { return hookDuration(c.HookTimeoutMs) }

// HookBackoffBase is HookBackoffBaseMs as a duration.
func (c Hooks) HookBackoffBase() time.Duration { return hookDuration(c.HookBackoffBaseMs) }

// HookBackoffMax is HookBackoffMaxMs as a duration.
func (c Hooks) HookBackoffMax() time.Duration { return hookDuration(c.HookBackoffMaxMs) }

// HookPollInterval is HookPollIntervalMs as a duration.
func (c Hooks) HookPollInterval() time.Duration { return hookDuration(c.HookPollIntervalMs) }

// HookRetryCheck is HookRetryCheckMs as a duration.
func (c Hooks) HookRetryCheck() time.Duration { return hookDuration(c.HookRetryCheckMs) }

// HookClaimIdle is HookClaimIdleMs as a duration.
func (c Hooks) HookClaimIdle() time.Duration { return hookDuration(c.HookClaimIdleMs) }

// HookDedupRetention is HookDedupRetentionMs as a duration.
func (c Hooks) HookDedupRetention() time.Duration { return hookDuration(c.HookDedupRetentionMs) }

// HookShutdownTimeout is HookShutdownTimeoutMs as a duration.
func (c Hooks) HookShutdownTimeout() time.Duration { return hookDuration(c.HookShutdownTimeoutMs) }

// DeliversEvent reports whether events of type typ are delivered.
func (c Hooks) DeliversEvent(typ string) bool {
	for _, e := range c.HookEvents {
		if e == "*" || e == typ {
			return true
		}
	}
	return false
}

func hookDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// HookSecrets returns the signing secrets of HookSecret, split on spaces and
// commas: every one signs each delivery, so a receiver can rotate its secret.
func (c Hooks) HookSecrets() []string { return hookSplitList(c.HookSecret) }
