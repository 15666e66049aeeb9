// Package svcmain is the body of every service's main: load the
// configuration, build the logger, connect to Redis, and run until SIGINT or
// SIGTERM. Services differ only in what they load and run, so each main.go is
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

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
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
}

// Main runs s and exits: 0 after a clean stop, 1 with a clear message on bad
// configuration or failure.
func Main[C any](s Service[C]) {
	if err := run(s); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", s.Name, err)
		os.Exit(1)
	}
}

func run[C any](s Service[C]) error {
	cfg, err := s.Load(config.Environ())
	if err != nil {
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
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return s.Run(ctx, cfg, rdb, log)
}
