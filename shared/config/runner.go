package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
)

// UpdateExitCode is the exit status Ratatoskr uses after a successful
// self-update (EX_TEMPFAIL): the supervisor restarts it on the new version.
const UpdateExitCode = 75

// Runner configures the Ratatoskr runner agent. Flags given on its command
// line override these values (runner/main.go); Validate runs after both.
type Runner struct {
	// URL (YGGDRASIL_URL, default http://127.0.0.1:3000): the controller.
	URL string `env:"YGGDRASIL_URL"`
	// APIKey (YGGDRASIL_API_KEY, default none): a key from the controller's
	// API_KEYS, used only to register. Never logged, never passed to tasks.
	APIKey string `env:"YGGDRASIL_API_KEY"`
	// Name (RUNNER_NAME, default the hostname).
	Name string `env:"RUNNER_NAME"`
	// Version (RUNNER_VERSION, default the version built into the binary).
	// Leave it unset in production, or a new binary keeps reporting the old one.
	Version string `env:"RUNNER_VERSION"`
	// VersionFile (RUNNER_VERSION_FILE, default none): when set and the file
	// exists, its trimmed content is the version and wins over everything
	// else. Lets an update command change the version without a new binary.
	VersionFile string `env:"RUNNER_VERSION_FILE"`
	// Realm (RUNNER_REALM, default none).
	Realm string `env:"RUNNER_REALM"`
	// Labels (RUNNER_LABELS, default none): key=value pairs separated by commas.
	Labels map[string]string `env:"RUNNER_LABELS" envSeparator:"," envKeyValSeparator:"="`
	// Capacity (RUNNER_CAPACITY, default the number of CPUs): tasks run at once.
	Capacity int `env:"RUNNER_CAPACITY"`
	// Endpoint (RUNNER_ENDPOINT, default none): where this runner can be reached, if anywhere.
	Endpoint string `env:"RUNNER_ENDPOINT"`
	// StateDir (RUNNER_STATE_DIR, default $XDG_STATE_HOME/ratatoskr or
	// ~/.local/state/ratatoskr): runner id, token, epoch and unreported
	// results. One directory per agent: two agents never share one.
	StateDir string `env:"RUNNER_STATE_DIR"`
	// DrainTimeout (DRAIN_TIMEOUT, default 60s): how long SIGTERM lets running
	// tasks finish before they are killed and the runner deregisters.
	DrainTimeout time.Duration `env:"DRAIN_TIMEOUT"`
	// UpdateCommand (UPDATE_COMMAND, default none): run with sh -c when a
	// PendingUpdate carries no command of its own.
	UpdateCommand string `env:"UPDATE_COMMAND"`
	// UpdateTimeout (UPDATE_TIMEOUT, default 10m): longest an update command may run.
	UpdateTimeout time.Duration `env:"UPDATE_TIMEOUT"`
	// UpdateExitCode (UPDATE_EXIT_CODE, default 75): exit status after a successful update.
	UpdateExitCode int `env:"UPDATE_EXIT_CODE"`
	// LongPollWait (LONG_POLL_WAIT, default 20s): the `wait` of the task long
	// poll; 0 turns the long poll off (tasks then come with heartbeats only).
	LongPollWait time.Duration `env:"LONG_POLL_WAIT"`
	// HTTPTimeout (HTTP_TIMEOUT, default 30s): longest a request may take;
	// must exceed LONG_POLL_WAIT.
	HTTPTimeout time.Duration `env:"HTTP_TIMEOUT"`
	// BackoffBase (BACKOFF_BASE, default 500ms) and BackoffMax (BACKOFF_MAX,
	// default 30s): exponential backoff with full jitter after failed calls.
	BackoffBase time.Duration `env:"BACKOFF_BASE"`
	BackoffMax  time.Duration `env:"BACKOFF_MAX"`
	// OutputTailBytes (OUTPUT_TAIL_BYTES, default 65536): how much of the end
	// of stdout and of stderr a shell task's result keeps, each.
	OutputTailBytes int `env:"OUTPUT_TAIL_BYTES"`
	// TaskTimeout (TASK_TIMEOUT, default 0 = none): limit for tasks that set none.
	TaskTimeout time.Duration `env:"TASK_TIMEOUT"`
	// KillGrace (KILL_GRACE, default 5s): between SIGTERM and SIGKILL of a
	// task's process group when it is stopped.
	KillGrace time.Duration `env:"KILL_GRACE"`
	// LogLevel (LOG_LEVEL, default info) and LogFormat (LOG_FORMAT, default
	// simple, as the services).
	LogLevel  logging.Level `env:"LOG_LEVEL"`
	LogFormat string        `env:"LOG_FORMAT"`
}

// DefaultRunner returns the agent defaults; builtVersion is the version
// compiled into the binary.
func DefaultRunner(builtVersion string) Runner {
	return Runner{
		URL:             "http://127.0.0.1:3000",
		Version:         builtVersion,
		Capacity:        runtime.NumCPU(),
		DrainTimeout:    60 * time.Second,
		UpdateTimeout:   10 * time.Minute,
		UpdateExitCode:  UpdateExitCode,
		LongPollWait:    20 * time.Second,
		HTTPTimeout:     30 * time.Second,
		BackoffBase:     500 * time.Millisecond,
		BackoffMax:      30 * time.Second,
		OutputTailBytes: 64 << 10,
		KillGrace:       5 * time.Second,
		LogLevel:        logging.LevelInfo,
		LogFormat:       logging.FormatSimple,
	}
}

// LoadRunner reads the agent configuration from environ over the defaults.
// It does not validate: the caller applies its flags, then calls Validate.
func LoadRunner(environ map[string]string, builtVersion string) (Runner, error) {
	cfg := DefaultRunner(builtVersion)
	if err := parse(&cfg, environ); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if cfg.StateDir == "" {
		cfg.StateDir = defaultStateDir(environ)
	}
	if cfg.Name == "" {
		cfg.Name = Hostname()
	}
	return cfg, nil
}

func defaultStateDir(environ map[string]string) string {
	if d := strings.TrimSpace(environ["XDG_STATE_HOME"]); d != "" {
		return filepath.Join(d, "ratatoskr")
	}
	if h := strings.TrimSpace(environ["HOME"]); h != "" {
		return filepath.Join(h, ".local", "state", "ratatoskr")
	}
	return ".ratatoskr"
}

// Hostname is the default runner name.
func Hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "ratatoskr"
	}
	return h
}

// Validate reports every invalid value at once.
func (c Runner) Validate() error {
	var errs []error
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("YGGDRASIL_URL: %q is not an http:// or https:// URL", c.URL))
	}
	if strings.TrimSpace(c.Name) == "" {
		errs = append(errs, errors.New("RUNNER_NAME: empty"))
	}
	if strings.TrimSpace(c.Version) == "" {
		errs = append(errs, errors.New("RUNNER_VERSION: empty"))
	}
	if c.Capacity < 1 {
		errs = append(errs, fmt.Errorf("RUNNER_CAPACITY: %d is below 1", c.Capacity))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("RUNNER_STATE_DIR: empty"))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("DRAIN_TIMEOUT: %s is negative", c.DrainTimeout))
	}
	if c.UpdateTimeout <= 0 {
		errs = append(errs, fmt.Errorf("UPDATE_TIMEOUT: %s must be positive", c.UpdateTimeout))
	}
	if c.UpdateExitCode < 1 || c.UpdateExitCode > 125 {
		errs = append(errs, fmt.Errorf("UPDATE_EXIT_CODE: %d is not in 1..125", c.UpdateExitCode))
	}
	if c.LongPollWait < 0 {
		errs = append(errs, fmt.Errorf("LONG_POLL_WAIT: %s is negative", c.LongPollWait))
	}
	if c.HTTPTimeout <= c.LongPollWait {
		errs = append(errs, fmt.Errorf("HTTP_TIMEOUT (%s) must exceed LONG_POLL_WAIT (%s)", c.HTTPTimeout, c.LongPollWait))
	}
	if c.BackoffBase <= 0 || c.BackoffMax < c.BackoffBase {
		errs = append(errs, fmt.Errorf("BACKOFF_BASE (%s) must be positive and at most BACKOFF_MAX (%s)", c.BackoffBase, c.BackoffMax))
	}
	if c.OutputTailBytes < 1024 {
		errs = append(errs, fmt.Errorf("OUTPUT_TAIL_BYTES: %d is below 1024", c.OutputTailBytes))
	}
	if c.TaskTimeout < 0 {
		errs = append(errs, fmt.Errorf("TASK_TIMEOUT: %s is negative", c.TaskTimeout))
	}
	if c.KillGrace < 0 {
		errs = append(errs, fmt.Errorf("KILL_GRACE: %s is negative", c.KillGrace))
	}
	errs = append(errs, validateLogger(c.Logger())...)
	return errors.Join(errs...)
}

// Logger returns the logger configuration.
func (c Runner) Logger() logging.Config {
	return logging.Config{Level: c.LogLevel, Format: c.LogFormat}
}
