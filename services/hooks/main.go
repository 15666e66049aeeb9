// Command hooks is the Yggdrasil webhook worker: it relays lifecycle events
// from the Redis outbox into an asynq queue and delivers them, signed per the
// Standard Webhooks specification, to every URL in RUNNER_OFFLINE_HOOK.
// Configuration comes from the environment only (see shared/config); it exits
// 1 with a clear message on bad configuration.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/services/hooks/app"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hooks:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.LoadHooks(config.Environ())
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.Logger())
	if err != nil {
		return err
	}
	opts, err := redis.ParseURL(cfg.RedisAddrURL())
	if err != nil {
		// The parse error may quote the URL, password included: say less.
		return errors.New("REDIS_URL: not a valid Redis URL")
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return app.Run(ctx, cfg, rdb, log)
}
