// Package svcmain is the body of every service's main: load the
// configuration, build the logger, set up tracing, connect to Redis, and run
// until SIGINT or SIGTERM, then flush the spans still queued. Services differ
// only in what they load and run, so each main.go is one call to Main; the
// single-process launcher of `make run` (tools/devrun) uses the same Setup.
//
// It must never hold service logic, and never print the Redis URL or a
// Redis password.
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

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/healthcheck"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
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
	Run func(ctx context.Context, cfg C, conn *store.Conn, log *slog.Logger) error
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

func run[C any](s Service[C]) error {
	environ := config.Environ()
	cfg, err := s.Load(environ)
	tcfg, terr := config.LoadTelemetry(environ, "yggdrasil-"+s.Name)
	if err := errors.Join(err, terr); err != nil {
		return err
	}
	common := s.Common(cfg)
	p, err := Setup(context.Background(), common, tcfg)
	if err != nil {
		return err
	}
	defer p.Close()
	conn, err := p.Dial(common.Redis)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return s.Run(ctx, cfg, conn, p.Log)
}

// telemetryFlush bounds how long a stopping process waits for its last spans.
const telemetryFlush = 5 * time.Second

// Process is what a service process sets up before it serves: its logger,
// its tracing (installed as the process's global provider) and its
// connections to Redis. Close releases them in order.
type Process struct {
	Log   *slog.Logger
	tel   *telemetry.Telemetry
	conns []*store.Conn
}

// Setup builds the logger from common and the tracing from tcfg.
func Setup(ctx context.Context, common config.Common, tcfg config.Telemetry) (*Process, error) {
	log, err := logging.New(common.Logger())
	if err != nil {
		return nil, err
	}
	tel, err := telemetry.Setup(ctx, tcfg)
	if err != nil {
		return nil, err
	}
	tel.Install(log)
	return &Process{Log: log, tel: tel}, nil
}

// Dial builds the client of the Redis cfg names (one node or the primary
// behind Sentinels), with its commands traced when tracing is on. Close
// closes it.
func (p *Process) Dial(cfg config.Redis) (*store.Conn, error) {
	conn, err := store.Dial(cfg)
	if err != nil {
		return nil, err
	}
	if p.tel.Enabled() {
		conn.Trace(p.tel.TracerProvider())
	}
	p.conns = append(p.conns, conn)
	return conn, nil
}

// Close closes the connections, then flushes the spans still queued.
func (p *Process) Close() {
	for _, c := range p.conns {
		_ = c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), telemetryFlush)
	defer cancel()
	if err := p.tel.Shutdown(ctx); err != nil {
		p.Log.Warn("telemetry: spans lost at shutdown", "err", err)
	}
}
