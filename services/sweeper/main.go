// Command sweeper turns expired runner leases into offline transitions (see
// package app). It only wires configuration, logger and Redis together.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/services/sweeper/app"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sweeper:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.LoadSweeper(config.Environ())
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.Logger())
	if err != nil {
		return err
	}
	opts, err := redis.ParseURL(cfg.RedisAddrURL())
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return app.Run(ctx, cfg, rdb, log)
}
