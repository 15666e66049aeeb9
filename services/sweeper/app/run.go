// Package app wires the sweeper service together: the configuration, the
// store connection and the sweep loops with their HTTP endpoints
// (internal/sweep). Run serves until its context ends.
//
// It must never read the environment (config does) nor hold sweep logic.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/yggdrasil-cp/yggdrasil/services/sweeper/internal/sweep"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// Run serves /health, /ready, /metrics and /quarantine on cfg.Port and runs
// the sweeper loops until ctx ends, then shuts both down.
func Run(ctx context.Context, cfg config.Sweeper, conn *store.Conn, log *slog.Logger) error {
	svc, err := sweep.New(cfg, conn, log)
	if err != nil {
		return fmt.Errorf("sweeper: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr())
	if err != nil {
		return fmt.Errorf("sweeper: listen on %s: %w", cfg.ListenAddr(), err)
	}
	return svc.Serve(ctx, ln)
}
