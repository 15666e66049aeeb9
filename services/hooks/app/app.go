// Package app wires the hooks service: the outbox relay, the asynq worker
// that delivers webhooks, and the HTTP server for /health, /ready, /metrics
// and the archived deliveries. Run is what main and the dev launcher call.
//
// It must never read the environment (config does) nor keep global state:
// several services share one process under the dev launcher.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/yggdrasil-cp/yggdrasil/services/hooks/internal/admin"
	"github.com/yggdrasil-cp/yggdrasil/services/hooks/internal/delivery"
	"github.com/yggdrasil-cp/yggdrasil/services/hooks/internal/metrics"
	"github.com/yggdrasil-cp/yggdrasil/services/hooks/internal/relay"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/httpmetrics"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// ConsumerGroup is the outbox consumer group every hooks process joins.
const ConsumerGroup = "hooks"

// RealmHooksCacheTTL is how long a realm's webhookUrls and secret are kept
// in process: a change of them reaches new events and attempts within it.
const RealmHooksCacheTTL = 5 * time.Second

// options are test seams; Run uses the zero value.
type options struct {
	listener  net.Listener             // serve here instead of :PORT
	beforeAck func(ids []string) error // relay crash simulation
	onReady   func(addr string)        // called once the HTTP server listens
	metrics   func(m *metrics.Metrics) // exposes the instruments to tests
}

// Run serves the hooks service until ctx ends, then stops the relay, lets
// deliveries in flight finish (up to HOOK_SHUTDOWN_TIMEOUT_MS; the rest go
// back to the queue) and stops the HTTP server. asynq shares conn's client
// (the one place a Redis client leaves the store), which Run
// does not close.
func Run(ctx context.Context, cfg config.Hooks, conn *store.Conn, log *slog.Logger) error {
	return run(ctx, cfg, conn, log, options{})
}

func run(ctx context.Context, cfg config.Hooks, conn *store.Conn, log *slog.Logger, opt options) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("hooks: %w", err)
	}
	signer, err := delivery.NewSigner(cfg.HookSecrets())
	if err != nil {
		return fmt.Errorf("hooks: %w", err)
	}
	for _, w := range cfg.Warnings() {
		log.Warn("hooks: INSECURE CONFIGURATION: " + w)
	}
	if len(cfg.HookURLs) == 0 {
		log.Warn("hooks: RUNNER_OFFLINE_HOOK is empty: events go only to the realms' own webhookUrls; the rest are drained from the outbox")
	} else if !signer.Enabled() {
		log.Warn("hooks: RUNNER_OFFLINE_HOOK_SECRET is empty: webhooks are sent unsigned (refused in production)")
	}

	m := metrics.New(cfg.MetricsPrefix, time.Duration(cfg.HookTimeoutMs)*time.Millisecond)
	m.Registry.MustRegister(conn.Metrics(cfg.MetricsPrefix))
	if opt.metrics != nil {
		opt.metrics(m)
	}
	outbox := store.NewOutboxReader(conn, ConsumerGroup, consumerName())
	// asynq speaks Redis itself: it gets the same client as the store.
	rdb := conn.Redis()
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	inspector := asynq.NewInspectorFromRedisClient(rdb)
	defer inspector.Close()
	m.Registry.MustRegister(metrics.NewBacklog(cfg.MetricsPrefix, outbox, inspector, delivery.Queue, log))

	var healthMu sync.Mutex
	var asynqHealth error
	asynqLevel := asynq.WarnLevel
	if log.Enabled(ctx, slog.LevelDebug) {
		asynqLevel = asynq.DebugLevel
	}
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:              cfg.HookConcurrency,
		Queues:                   map[string]int{delivery.Queue: 1},
		TaskCheckInterval:        cfg.HookPollInterval(),
		DelayedTaskCheckInterval: cfg.HookRetryCheck(),
		RetryDelayFunc:           delivery.RetryDelay(cfg.HookBackoffBase(), cfg.HookBackoffMax()),
		ShutdownTimeout:          cfg.HookShutdownTimeout(),
		Logger:                   asynqLogger{log.With("component", "asynq")},
		LogLevel:                 asynqLevel,
		HealthCheckInterval:      5 * time.Second,
		HealthCheckFunc: func(err error) {
			healthMu.Lock()
			asynqHealth = err
			healthMu.Unlock()
		},
	})
	// Each realm's own webhookUrls and secret (its policies), read from the
	// store and kept for RealmHooksCacheTTL by the relay and the handler.
	st := store.New(conn, store.Options{})
	realms := delivery.NewRealmCache(st.GetRealmHooks, RealmHooksCacheTTL)
	handler := delivery.NewHandler(signer, cfg.HookTimeout(), cfg.HookConcurrency, m, log,
		delivery.WithRealms(realms, cfg.Production()))
	defer handler.Close()
	mux := asynq.NewServeMux()
	mux.Handle(delivery.TaskType, handler)

	rl := relay.New(relay.Config{
		URLs: cfg.HookURLs, Realms: realms, Delivers: cfg.DeliversEvent, MaxRetry: cfg.HookMaxRetries,
		Timeout: cfg.HookTimeout(), Retention: cfg.HookDedupRetention(), ClaimIdle: cfg.HookClaimIdle(),
		Batch: cfg.RelayBatch, Block: cfg.RelayBlock, BeforeAck: opt.beforeAck,
	}, outbox, client, m, log)

	ready := func() error {
		if !rl.Ready() {
			return errors.New("relay not reading the outbox")
		}
		pctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ReadyTimeout)
		defer cancel()
		if err := conn.Ping(pctx); err != nil {
			return errors.New("redis does not answer")
		}
		healthMu.Lock()
		defer healthMu.Unlock()
		if asynqHealth != nil {
			return errors.New("asynq health check failing")
		}
		return nil
	}
	httpSrv := &http.Server{
		Handler: admin.Handler(admin.Config{
			AdminKeys: cfg.AdminAPIKeys, Production: cfg.Production(), Ready: ready, MetricsToken: cfg.MetricsToken,
			Registry: m.Registry, Inspector: inspector, Log: log,
			HTTP: httpmetrics.New(m.Registry, cfg.MetricsPrefix),
		}),
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout, ReadTimeout: cfg.HTTP.ReadTimeout,
		WriteTimeout: cfg.HTTP.WriteTimeout, IdleTimeout: cfg.HTTP.IdleTimeout, MaxHeaderBytes: 64 << 10,
	}
	ln := opt.listener
	if ln == nil {
		ln, err = net.Listen("tcp", cfg.ListenAddr())
		if err != nil {
			return fmt.Errorf("hooks: listen on %s: %w", cfg.ListenAddr(), err)
		}
	}

	if err := srv.Start(mux); err != nil {
		_ = ln.Close()
		return fmt.Errorf("hooks: start asynq server: %w", err)
	}
	httpErr := make(chan error, 1)
	go func() {
		if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			httpErr <- err
		}
		close(httpErr)
	}()
	if opt.onReady != nil {
		opt.onReady(ln.Addr().String())
	}
	log.Info("hooks: serving", "addr", ln.Addr().String(), "urls", len(cfg.HookURLs), "signed", signer.Enabled(),
		"concurrency", cfg.HookConcurrency, "max_retries", cfg.HookMaxRetries)

	relayCtx, stopRelay := context.WithCancel(ctx)
	defer stopRelay()
	relayErr := make(chan error, 1)
	go func() { relayErr <- rl.Run(relayCtx) }()

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-relayErr:
		runErr = err
		relayErr = nil
	case err := <-httpErr:
		runErr = fmt.Errorf("hooks: http server: %w", err)
	}

	// Stop taking events first, then let deliveries finish, then go dark.
	stopRelay()
	if relayErr != nil {
		<-relayErr
	}
	srv.Shutdown()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	_ = httpSrv.Shutdown(sctx)
	log.Info("hooks: stopped")
	return runErr
}

// consumerName names this process in the outbox consumer group: host and
// pid for operators, plus a random suffix because the dev launcher and the
// tests may run the service more than once in one process.
func consumerName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
}

// asynqLogger sends asynq's logs to slog. Fatal logs an error and does not
// exit: only main decides when the process ends.
type asynqLogger struct{ log *slog.Logger }

func (l asynqLogger) Debug(args ...any) { l.log.Debug(fmt.Sprint(args...)) }
func (l asynqLogger) Info(args ...any)  { l.log.Info(fmt.Sprint(args...)) }
func (l asynqLogger) Warn(args ...any)  { l.log.Warn(fmt.Sprint(args...)) }
func (l asynqLogger) Error(args ...any) { l.log.Error(fmt.Sprint(args...)) }
func (l asynqLogger) Fatal(args ...any) { l.log.Error(fmt.Sprint(args...)) }
