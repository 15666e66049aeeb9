// Command devrun is `make run`: it runs the API, the sweeper and the hooks
// worker in one process for development. It uses REDIS_URL (or the Sentinels
// of REDIS_SENTINEL_ADDRS) when set, else a Redis on localhost:6379, else an embedded in-process Redis (miniredis),
// which is for development only: it keeps nothing and is not Redis.
//
// When RUNNER_OFFLINE_HOOK is empty it also starts a local webhook receiver
// that logs every delivery, and points the hooks worker at it.
//
// Tracing (OTEL_EXPORTER_OTLP_ENDPOINT) uses one TracerProvider for the three
// services, named yggdrasil-dev unless OTEL_SERVICE_NAME says otherwise; each
// span's instrumentation scope tells which service made it.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"golang.org/x/sync/errgroup"

	apiapp "github.com/yggdrasil-cp/yggdrasil/services/api/app"
	hooksapp "github.com/yggdrasil-cp/yggdrasil/services/hooks/app"
	sweeperapp "github.com/yggdrasil-cp/yggdrasil/services/sweeper/app"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/svcmain"
	"github.com/yggdrasil-cp/yggdrasil/tools/devrun/devreceiver"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devrun:", err)
		os.Exit(1)
	}
}

func run() error {
	defer takeForeground()()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	environ := config.Environ()
	dev, err := config.LoadDev(environ)
	if err != nil {
		return err
	}
	apiCfg, err := config.LoadAPI(config.WithPort(environ, dev.APIPort))
	if err != nil {
		return err
	}
	telCfg, err := config.LoadTelemetry(environ, "yggdrasil-dev")
	if err != nil {
		return err
	}
	proc, err := svcmain.Setup(ctx, apiCfg.Common, telCfg)
	if err != nil {
		return err
	}
	defer proc.Close()
	log := proc.Log

	redisCfg, cleanup, err := chooseRedis(ctx, log, apiCfg.Redis, dev.Embedded)
	if err != nil {
		return err
	}
	defer cleanup()
	if !redisCfg.Sentinel() {
		// the other services' configurations must agree with the choice
		environ["REDIS_URL"] = redisCfg.URL
		for _, k := range []string{"REDIS_SENTINEL_ADDRS", "REDIS_MASTER_NAME", "REDIS_SENTINEL_PASSWORD"} {
			delete(environ, k)
		}
	}
	apiCfg.Redis = redisCfg
	if apiCfg.HooksURL == "" { // the console's webhooks page reaches the hooks service run here
		apiCfg.HooksURL = "http://127.0.0.1:" + strconv.Itoa(dev.HooksPort)
	}

	g, ctx := errgroup.WithContext(ctx)
	if environ["RUNNER_OFFLINE_HOOK"] == "" {
		addr := "127.0.0.1:" + strconv.Itoa(dev.ReceiverPort)
		environ["RUNNER_OFFLINE_HOOK"] = "http://" + addr + "/hooks"
		recv := &http.Server{Addr: addr, Handler: devreceiver.New(environ["RUNNER_OFFLINE_HOOK_SECRET"], log.With("service", "dev-receiver")), ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error { return serveUntil(ctx, recv) })
		log.Info("dev webhook receiver logs every delivery", "url", environ["RUNNER_OFFLINE_HOOK"])
	}
	sweeperCfg, err := config.LoadSweeper(config.WithPort(environ, dev.SweeperPort))
	if err != nil {
		return err
	}
	hooksCfg, err := config.LoadHooks(config.WithPort(environ, dev.HooksPort))
	if err != nil {
		return err
	}

	conn, err := proc.Dial(redisCfg)
	if err != nil {
		return err
	}

	g.Go(func() error { return apiapp.Run(ctx, apiCfg, conn, log.With("service", "api")) })
	g.Go(func() error { return sweeperapp.Run(ctx, sweeperCfg, conn, log.With("service", "sweeper")) })
	g.Go(func() error { return hooksapp.Run(ctx, hooksCfg, conn, log.With("service", "hooks")) })
	log.Info("yggdrasil is running",
		"api", "http://127.0.0.1:"+strconv.Itoa(dev.APIPort),
		"console", "http://127.0.0.1:"+strconv.Itoa(dev.APIPort)+"/ui",
		"sweeper", "http://127.0.0.1:"+strconv.Itoa(dev.SweeperPort),
		"hooks", "http://127.0.0.1:"+strconv.Itoa(dev.HooksPort))
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// redisSource is where `make run` keeps its state.
type redisSource int

const (
	// redisConfigured is the Redis of REDIS_URL or REDIS_SENTINEL_ADDRS.
	redisConfigured redisSource = iota
	// redisEmbedded is an in-process miniredis that keeps nothing.
	redisEmbedded
)

// redisChoice decides, before any connection: a Redis only when one was
// named (REDIS_URL, REDIS_SENTINEL_ADDRS) and DEV_EMBEDDED_REDIS is off;
// otherwise the embedded one. A Redis that merely answers on localhost:6379
// is never taken: it may be another project's, and the sweeper would write
// its keys there and change its notify-keyspace-events.
func redisChoice(configured config.Redis, forceEmbedded bool) redisSource {
	if (configured.URL != "" || configured.Sentinel()) && !forceEmbedded {
		return redisConfigured
	}
	return redisEmbedded
}

// chooseRedis returns the Redis to use and a cleanup function.
func chooseRedis(ctx context.Context, log *slog.Logger, configured config.Redis, forceEmbedded bool) (config.Redis, func(), error) {
	if redisChoice(configured, forceEmbedded) == redisConfigured {
		if err := store.Probe(ctx, configured); err != nil {
			// neither the error nor configured's String quotes a password
			return configured, nil, fmt.Errorf("Redis %s is configured but does not answer: %w", configured, err)
		}
		log.Warn("using the configured Redis: the controller writes its keys under {ygg}: there, and the sweeper "+
			"adds Ex to its notify-keyspace-events (a server-wide setting) when missing", "redis", configured)
		return configured, func() {}, nil
	}
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true) // TTLs run on the wall clock, so leases really expire
	if err := m.Start(); err != nil {
		return configured, nil, fmt.Errorf("embedded redis: %w", err)
	}
	log.Warn("**************************************************************************")
	log.Warn("REDIS_URL is not set: running on an EMBEDDED IN-PROCESS REDIS (miniredis).")
	log.Warn("DEVELOPMENT ONLY: state is lost on exit, no keyspace events, not for production.")
	log.Warn("For a real Redis set REDIS_URL, e.g. REDIS_URL=redis://localhost:6379.", "embedded", m.Addr())
	log.Warn("**************************************************************************")
	local := configured
	local.URL = config.DefaultRedisURL
	if !forceEmbedded && store.Probe(ctx, local) == nil {
		log.Info("a Redis answers on localhost:6379; it is left alone (set REDIS_URL=redis://localhost:6379 to use it)")
	}
	return config.Redis{URL: "redis://" + m.Addr() + "/0"}, m.Close, nil
}

func serveUntil(ctx context.Context, srv *http.Server) error {
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
