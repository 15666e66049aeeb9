// Package svcmain is the body of every service's main: load the
// configuration, build the logger, set up tracing, connect to Redis, and run
// until SIGINT or SIGTERM, then flush the spans still queued. Services differ only in what they load and run, so each main.go is
// one call to Main.
//
// It must never hold service logic, and never print the Redis URL (it may
// carry a password).
package svcmain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/healthcheck"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/telemetry"
)

// Service describes one service for Main.
type Service[C any] struct {
	// Name prefixes the error printed on failure ("api: ...").
	Name string
	// Load reads and validates the configuration from the environment.
	Load func(environ map[string]string) (C, error)
	// Common extracts the settings every service shares.
	Common func(C) config.Common
	// Run serves until ctx ends.
	Run func(ctx context.Context, cfg C, rdb redis.UniversalClient, log *slog.Logger) error
	// Port returns the port /health is served on, for the healthcheck subcommand.
	Port func(C) int
}

// Main runs s and exits: 0 after a clean stop, 1 with a clear message on bad
// configuration or failure. `<binary> healthcheck` probes a running instance
// instead (see runHealthcheck).
func Main[C any](s Service[C]) {
	if len(os.Args) > 1 && os.Args[1] == healthcheck.Command {
		os.Exit(runHealthcheck(s, config.Environ(), os.Stderr))
	}
	if err := run(s); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", s.Name, err)
		os.Exit(1)
	}
}

// telemetryFlush bounds how long a stopping service waits for its last spans.
const telemetryFlush = 5 * time.Second

func run[C any](s Service[C]) error {
	environ := config.Environ()
	cfg, err := s.Load(environ)
	tcfg, terr := config.LoadTelemetry(environ, "yggdrasil-"+s.Name)
	if err := errors.Join(err, terr); err != nil {
		return err
	}
	common := s.Common(cfg)
	log, err := logging.New(common.Logger())
	if err != nil {
		return err
	}
	opts, err := redis.ParseURL(common.RedisAddrURL())
	if err != nil {
		// The parse error may quote the URL, password included: say less.
		return errors.New("REDIS_URL: not a valid Redis URL")
	}
	tel, err := telemetry.Setup(context.Background(), tcfg)
	if err != nil {
		return err
	}
	tel.Install(log)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), telemetryFlush)
		defer cancel()
		if err := tel.Shutdown(ctx); err != nil {
			log.Warn("telemetry: spans lost at shutdown", "err", err)
		}
	}()
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if tel.Enabled() {
		telemetry.TraceRedis(rdb, tel.TracerProvider())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return s.Run(ctx, cfg, rdb, log)
}
