// Package app wires the API service together: the store, the runners
// application layer, authentication, metrics and the fiber HTTP server, plus
// the background loops (the dispatch subscription that wakes long polls and
// the admission breaker's probe). Run serves until its context ends.
//
// It must never read the environment (config does) nor hold global state:
// several services may run in one process.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/auth"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/httpapi"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/metrics"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/overload"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/runners"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/ui"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/validate"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// Server is the API: an HTTP app and its background loops.
type Server struct {
	app     *fiber.App
	svc     *runners.Service
	hub     *runners.Hub
	cfg     config.API
	log     *slog.Logger
	auth    *auth.Authenticator
	limiter *overload.Limiter
	outages *runners.OutageRecorder
	ui      *ui.Console
}

// Option changes how New builds the API.
type Option func(*options)

type options struct {
	tp   trace.TracerProvider
	prop propagation.TextMapPropagator
}

// WithTracing gives every request a server span from tp, continuing the
// caller's trace read with prop (nil: W3C trace context + baggage). Redis
// command spans come from the hook on conn (store.Conn.Trace), installed
// where the client is made. Without it New traces nothing.
func WithTracing(tp trace.TracerProvider, prop propagation.TextMapPropagator) Option {
	return func(o *options) { o.tp, o.prop = tp, prop }
}

// New builds the API over conn. cfg is used as given: start from
// config.DefaultAPI (or config.LoadAPI); New applies no defaults and refuses
// an invalid configuration.
func New(cfg config.API, conn *store.Conn, log *slog.Logger, opts ...Option) (*Server, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	stOpts := store.OptionsFrom(cfg.Fleet)
	stOpts.HeartbeatBatch, stOpts.HeartbeatPipelines = cfg.HeartbeatBatch, cfg.HeartbeatPipelines
	st := store.New(conn, stOpts)
	hub := runners.NewHub(st, []string{store.DispatchChannel(), store.TaskEventsChannel()}, cfg.LongPollMaxWaiters, log)
	outages := runners.NewOutageRecorder(func(ctx context.Context, from, to time.Time, source string) error {
		_, err := st.RecordOutage(ctx, from, to, source)
		return err
	}, cfg.OutageRecordEvery, log)
	breaker := runners.NewBreaker(cfg.BreakerFailures, time.Duration(cfg.BreakerCooldownMs)*time.Millisecond, time.Now,
		func(from, to time.Time) {
			log.Warn("admission breaker closed: redis answers again", "outage", to.Sub(from).Round(time.Millisecond))
			outages.Add(runners.OutageSourceAPI, from, to)
		})
	limiter := overload.New(cfg.MaxInflight, cfg.OverloadQueue(), time.Now)
	retryMin, retryMax := overload.RetryAfter(cfg.HeartbeatInterval(), cfg.LeaseTTL())
	svc, err := runners.New(st, runners.Config{
		LeaseTTL: cfg.LeaseTTL(), HeartbeatInterval: cfg.HeartbeatInterval(), MaxRunners: cfg.MaxRunners,
		ExpectedVersion: cfg.ExpectedRunnerVersion, LongPollMax: cfg.LongPollMax(), CountsCacheTTL: cfg.CountsCacheTTL,
		TracerProvider: o.tp,
		RegisterRate:   cfg.RegisterRate, RegisterBurst: cfg.RegisterBurst,
	}, hub, breaker, time.Now, log)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	a := auth.New(auth.Keys{API: cfg.APIKeys, Operator: cfg.AdminAPIKeys, APIKeysActForRunners: cfg.APIKeysActForRunners()},
		svc.TokenHash, store.ErrRunnerNotFound, validate.ID).WithRealmKeys(svc.LookupRealmKey, store.ErrRealmKeyNotFound)
	m := metrics.New(st, metrics.Options{
		Prefix: cfg.MetricsPrefix, PerRunner: cfg.MetricsPerRunner,
		CacheTTL: time.Duration(cfg.MetricsCacheMs) * time.Millisecond, Admission: svc.Admission,
		BreakerOpen: breaker.Open, Collectors: []prometheus.Collector{conn.Metrics(cfg.MetricsPrefix)},
	})
	app := httpapi.NewApp(svc, a, m, log, httpapi.Options{
		BodyLimit: cfg.BodyLimitBytes, ReadTimeout: cfg.HTTP.ReadTimeout, WriteTimeout: cfg.ServerWriteTimeout(),
		IdleTimeout:    cfg.HTTP.IdleTimeout,
		TracerProvider: o.tp, Propagator: o.prop,
		Limiter: limiter, RetryAfterMin: retryMin, RetryAfterMax: retryMax,
		StretchedInterval: overload.StretchedInterval(cfg.HeartbeatInterval(), cfg.LeaseTTL()),
		MetricsToken:      cfg.MetricsToken, ReadyTimeout: cfg.HTTP.ReadyTimeout,
	})
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: cfg.MetricsPrefix + "api_overload_shed_total",
		Help: "Runner requests refused with 503 because no request slot freed within OVERLOAD_QUEUE_MS.",
	}, func() float64 { return float64(limiter.Stats().Shed) }))
	console, err := ui.New(svc, a, st, log, ui.Options{HooksURL: cfg.HooksURL, StreamFor: consoleStreamFor(cfg)})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	console.Mount(app)
	return &Server{app: app, svc: svc, hub: hub, cfg: cfg, log: log, auth: a, limiter: limiter, outages: outages, ui: console}, nil
}

// consoleStreamFor is how long one console event stream lasts: below the
// server's write timeout, which would cut it mid-event.
func consoleStreamFor(cfg config.API) time.Duration {
	return max(cfg.ServerWriteTimeout()-cfg.HTTP.WriteTimeout/2, time.Second)
}

// App returns the fiber app (tests may serve it themselves).
func (s *Server) App() *fiber.App { return s.app }

// Serve serves on ln until ctx ends, then shuts down gracefully: long polls
// are answered at once, in-flight requests get HTTP.ShutdownTimeout to
// finish, and the background loops stop.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !s.auth.Enabled() {
		s.log.Warn("AUTH IS OFF: API_KEYS and ADMIN_API_KEYS are empty, so anyone who reaches this port can register, " +
			"dispatch and operate runners. Set API_KEYS (and ADMIN_API_KEYS) for anything but local development.")
	}
	for _, w := range s.cfg.Warnings() {
		s.log.Warn("INSECURE CONFIGURATION: " + w)
	}
	bg, stopBg := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(5)
	go func() { defer wg.Done(); _ = s.hub.Run(bg) }()
	go func() { defer wg.Done(); _ = s.ui.Feed().Run(bg) }()
	go func() { defer wg.Done(); _ = s.svc.RunProbe(bg, s.cfg.BreakerProbeEvery) }()
	go func() { defer wg.Done(); _ = s.outages.Run(bg) }()
	go func() { defer wg.Done(); s.watchOverload(bg) }()

	served := make(chan error, 1)
	go func() { served <- s.app.Listener(ln) }()
	s.log.Info("api listening", "addr", ln.Addr().String(), "auth", s.auth.Enabled(),
		"lease_ttl_ms", s.cfg.LeaseTTLMs, "max_runners", s.cfg.MaxRunners)

	var err error
	select {
	case err = <-served:
		if err != nil {
			err = fmt.Errorf("api: serve: %w", err)
		}
	case <-ctx.Done():
		s.svc.Close()
		s.ui.Close()
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.HTTP.ShutdownTimeout)
		if serr := s.app.ShutdownWithContext(sctx); serr != nil && !errors.Is(serr, context.DeadlineExceeded) {
			err = fmt.Errorf("api: shutdown: %w", serr)
		}
		cancel()
		<-served
	}
	s.svc.Close()
	s.ui.Close()
	stopBg()
	wg.Wait()
	s.log.Info("api stopped")
	return err
}

// watchOverload hands the windows in which the limiter shed requests to
// the outage recorder, once per OutageRecordEvery and at once when an
// overload begins, and logs each overload once when it starts and once
// when it ends.
func (s *Server) watchOverload(ctx context.Context) {
	t := time.NewTicker(s.cfg.OutageRecordEvery)
	defer t.Stop()
	var start time.Time
	var shedAtStart int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.limiter.Onset():
			if !start.IsZero() {
				continue // within an overload the ticker batches the windows
			}
		}
		from, to, ok := s.limiter.Flush()
		shed := s.limiter.Stats().Shed
		switch {
		case ok && start.IsZero():
			start, shedAtStart = from, shed
			s.log.Warn("overloaded: shedding runner requests with 503 + Retry-After", "max_inflight", s.cfg.MaxInflight,
				"queue_budget", s.cfg.OverloadQueue())
		case !ok && !start.IsZero():
			s.log.Warn("overload over", "duration", time.Since(start).Round(time.Millisecond), "shed", shed-shedAtStart)
			start = time.Time{}
		}
		if ok {
			s.outages.Add(runners.OutageSourceOverload, from, to)
		}
	}
}

// Run serves the API on cfg.Port until ctx ends. It traces with the
// process's global provider and propagator, which the process's main set up
// (shared/telemetry); left unset they are OpenTelemetry's no-ops.
func Run(ctx context.Context, cfg config.API, conn *store.Conn, log *slog.Logger) error {
	s, err := New(cfg, conn, log, WithTracing(otel.GetTracerProvider(), otel.GetTextMapPropagator()))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.ListenAddr())
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w", s.cfg.ListenAddr(), err)
	}
	return s.Serve(ctx, ln)
}
