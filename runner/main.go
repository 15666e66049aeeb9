// Command ratatoskr is the Yggdrasil runner agent. It only wires things
// together: configuration from the environment (shared/config) overridden by
// flags, the logger, the state directory, the shell executor, the agent
// loop, and the signals:
//
//	SIGTERM, SIGINT     drain: no new tasks, running ones get DRAIN_TIMEOUT, then deregister; exit 0
//	SIGQUIT, 2nd SIGTERM stop at once: kill the tasks' process groups; exit 1
//
// Exit statuses: 0 after a drain, 1 on error, 2 on bad configuration,
// UPDATE_EXIT_CODE (75) after a successful self-update (restart me).
//
// `ratatoskr healthcheck [flags]` is a probe for images without curl; see
// runHealthcheck.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/yggdrasil-cp/yggdrasil/runner/agent"
	"github.com/yggdrasil-cp/yggdrasil/runner/executor"
	"github.com/yggdrasil-cp/yggdrasil/runner/state"
	"github.com/yggdrasil-cp/yggdrasil/runner/sysinfo"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/healthcheck"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// version is set at build time: go build -ldflags "-X main.version=1.2.3".
var version = "0.1.0"

// stdout is where -version and -print-version print (a variable for tests).
var stdout io.Writer = os.Stdout

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == healthcheck.Command {
		return runHealthcheck(args[1:], stderr)
	}
	cfg, err := loadConfig(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "ratatoskr: %v\n", err)
		return 2
	}
	log, err := logging.NewTo(cfg.Logger(), stderr)
	if err != nil {
		fmt.Fprintf(stderr, "ratatoskr: %v\n", err)
		return 2
	}
	log = log.With("service", "ratatoskr")

	dir, err := state.Open(cfg.StateDir)
	if err != nil {
		log.Error("cannot open the state directory", "dir", cfg.StateDir, "err", err)
		return 1
	}
	defer dir.Close()

	shell := executor.NewShell(cfg.OutputTailBytes, cfg.TaskTimeout, cfg.KillGrace)
	res := sysinfo.Reader{DiskPath: cfg.StateDir}
	a, err := agent.New(agent.Config{
		URL: cfg.URL, APIKey: cfg.APIKey, Name: cfg.Name, Version: cfg.Version, Realm: cfg.Realm,
		Endpoint: cfg.Endpoint, Labels: cfg.Labels, Capacity: cfg.Capacity,
		LongPollWait: cfg.LongPollWait, DrainTimeout: cfg.DrainTimeout,
		UpdateCommand: cfg.UpdateCommand, UpdateTimeout: cfg.UpdateTimeout,
		BackoffBase: cfg.BackoffBase, BackoffMax: cfg.BackoffMax, HTTPTimeout: cfg.HTTPTimeout, KillGrace: cfg.KillGrace,
	}, agent.Deps{
		State:         dir,
		Executors:     map[string]agent.Executor{executor.TypeShell: agent.ShellExecutor(shell)},
		Resources:     func(ctx context.Context) *wire.SystemResources { return res.Read(ctx) },
		Log:           log,
		UpdateEnviron: shell.Environ,
	})
	if err != nil {
		log.Error("bad configuration", "err", err)
		return 2
	}

	drainCtx, drain := context.WithCancel(context.Background())
	hardCtx, kill := context.WithCancel(context.Background())
	defer drain()
	defer kill()
	go handleSignals(log, drain, kill)

	log.Info("ratatoskr starting", "version", cfg.Version, "url", cfg.URL, "name", cfg.Name, "realm", cfg.Realm,
		"capacity", cfg.Capacity, "state_dir", cfg.StateDir)
	err = a.Run(drainCtx, hardCtx)
	switch {
	case err == nil:
		log.Info("ratatoskr stopped")
		return 0
	case errors.Is(err, agent.ErrUpdated):
		log.Info("exiting for the update", "exit_code", cfg.UpdateExitCode)
		return cfg.UpdateExitCode
	case errors.Is(err, agent.ErrStopped):
		log.Warn("ratatoskr stopped at once")
		return 1
	default:
		log.Error("ratatoskr failed", "err", err)
		return 1
	}
}

// runHealthcheck is `ratatoskr healthcheck [flags]`, for a Docker HEALTHCHECK
// (the image has no curl). The agent serves nothing over HTTP, so healthy
// means what the agent needs to work: its configuration (environment and the
// same flags) loads and validates, and the controller at YGGDRASIL_URL
// answers GET /health with 200 within two seconds. It does not prove that the
// agent process itself is alive; in a container the agent is the main
// process, so the container stops when it does. A controller outage makes
// every runner unhealthy at once: use it as a signal, never as a reason to
// restart runners. Exit 0, printing nothing, or 1 with the reason.
func runHealthcheck(args []string, stderr io.Writer) int {
	cfg, err := loadConfig(args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "ratatoskr healthcheck: %v\n", err)
		return 1
	}
	if err := healthcheck.Get(context.Background(), strings.TrimRight(cfg.URL, "/")+"/health"); err != nil {
		fmt.Fprintf(stderr, "ratatoskr %v\n", err)
		return 1
	}
	return 0
}

// handleSignals: the first SIGTERM/SIGINT drains; a second one, or SIGQUIT,
// stops at once.
func handleSignals(log *slog.Logger, drain, kill context.CancelFunc) {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	draining := false
	for sig := range ch {
		if sig == syscall.SIGQUIT || draining {
			log.Warn("stopping at once", "signal", sig.String())
			kill()
			continue
		}
		log.Info("draining", "signal", sig.String())
		draining = true
		drain()
	}
}

// loadConfig reads the environment, then lets flags override it.
func loadConfig(args []string, stderr io.Writer) (config.Runner, error) {
	cfg, err := config.LoadRunner(config.Environ(), version)
	if err != nil {
		return cfg, err
	}
	fs := flag.NewFlagSet("ratatoskr", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.URL, "url", cfg.URL, "controller URL (YGGDRASIL_URL)")
	fs.StringVar(&cfg.Name, "name", cfg.Name, "runner name (RUNNER_NAME)")
	fs.StringVar(&cfg.Version, "report-version", cfg.Version, "reported version (RUNNER_VERSION; default: built in)")
	showVersion := versionFlag{reported: &cfg.Version}
	fs.Var(&showVersion, "version", "print the version and exit (-version=X, as before, is -report-version X)")
	fs.StringVar(&cfg.VersionFile, "version-file", cfg.VersionFile, "file whose content overrides the version (RUNNER_VERSION_FILE)")
	fs.StringVar(&cfg.Realm, "realm", cfg.Realm, "realm (RUNNER_REALM)")
	fs.StringVar(&cfg.Endpoint, "endpoint", cfg.Endpoint, "endpoint (RUNNER_ENDPOINT)")
	fs.IntVar(&cfg.Capacity, "capacity", cfg.Capacity, "tasks run at once (RUNNER_CAPACITY)")
	fs.StringVar(&cfg.StateDir, "state-dir", cfg.StateDir, "state directory (RUNNER_STATE_DIR)")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "grace for running tasks on SIGTERM (DRAIN_TIMEOUT)")
	fs.StringVar(&cfg.UpdateCommand, "update-command", cfg.UpdateCommand, "default self-update command (UPDATE_COMMAND)")
	fs.DurationVar(&cfg.LongPollWait, "long-poll", cfg.LongPollWait, "task long-poll wait, 0 = off (LONG_POLL_WAIT)")
	logLevel := fs.String("log-level", string(cfg.LogLevel), "error, warn, info or debug (LOG_LEVEL)")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "json or simple (LOG_FORMAT)")
	labels := labelFlag{m: cfg.Labels}
	fs.Var(&labels, "label", "key=value label, repeatable (RUNNER_LABELS=k=v,k=v)")
	printVersion := fs.Bool("print-version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	cfg.LogLevel = logging.Level(*logLevel)
	cfg.Labels = labels.m
	if cfg.VersionFile != "" {
		b, err := os.ReadFile(cfg.VersionFile)
		switch {
		case err == nil && strings.TrimSpace(string(b)) != "":
			cfg.Version = strings.TrimSpace(string(b))
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return cfg, fmt.Errorf("RUNNER_VERSION_FILE: %w", err)
		}
	}
	if showVersion.print {
		fmt.Fprintf(stdout, "ratatoskr %s\n", version)
		if cfg.Version != version {
			fmt.Fprintf(stdout, "reports %s (RUNNER_VERSION, -report-version or -version-file)\n", cfg.Version)
		}
		return cfg, flag.ErrHelp
	}
	if *printVersion {
		fmt.Fprintln(stdout, cfg.Version)
		return cfg, flag.ErrHelp
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// versionFlag is -version (or --version): alone, as with every CLI, it
// prints the version and exits 0. It used to take the version to report,
// so -version=X still sets that (-report-version X is its name now).
type versionFlag struct {
	print    bool
	reported *string
}

func (v *versionFlag) String() string   { return "" }
func (v *versionFlag) IsBoolFlag() bool { return true }
func (v *versionFlag) Set(s string) error {
	switch s {
	case "true":
		v.print = true
	case "false":
	default:
		*v.reported = s
	}
	return nil
}

type labelFlag struct {
	m   map[string]string
	set bool
}

func (l *labelFlag) String() string {
	if l == nil {
		return ""
	}
	var parts []string
	for k, v := range l.m {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (l *labelFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("label %q is not key=value", s)
	}
	if !l.set || l.m == nil {
		// flags replace the environment's labels rather than merge with them
		l.m = map[string]string{}
		l.set = true
	}
	l.m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	return nil
}
