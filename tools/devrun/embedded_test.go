package main

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	sweeperapp "github.com/yggdrasil-cp/yggdrasil/services/sweeper/app"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// TestEmbeddedRedisExpiresLeases: on the embedded dev Redis of `make run`
// (miniredis: no keyspace events, no INFO server, no run_id) the sweeper
// still takes a runner whose lease ran out offline, from its deadline index.
func TestEmbeddedRedisExpiresLeases(t *testing.T) {
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true)
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	conn, err := store.Dial(config.Redis{URL: "redis://" + m.Addr() + "/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	cfg := config.DefaultSweeper()
	cfg.Port = 0
	cfg.Host = "127.0.0.1"
	cfg.LeaseTTLMs, cfg.HeartbeatIntervalMs, cfg.SweepIntervalMs = 300, 100, 20
	cfg.MassExpiryPercent = 100
	stop := testkit.Serve(t, func(ctx context.Context) error {
		return sweeperapp.Run(ctx, cfg, conn, logging.Discard())
	})
	defer stop()

	st := store.New(conn, store.OptionsFrom(config.DefaultAPI().Fleet))
	ctx := context.Background()
	if _, _, err := st.Register(ctx, store.RegisterParams{
		ID: "dev-1", Name: "dev", Version: "1.0.0", TokenHash: "h", LeaseTTL: 300 * time.Millisecond,
	}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() bool {
		r, err := st.GetRunner(ctx, "dev-1")
		return err == nil && r.Status == wire.RunnerOffline
	}, "the runner offline on the embedded Redis")
}
