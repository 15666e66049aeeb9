package sweep

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
)

// Serve is Run on a listener the caller opened (tests use 127.0.0.1:0).
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.HTTP.ReadTimeout,
		WriteTimeout:      s.cfg.HTTP.WriteTimeout,
		IdleTimeout:       s.cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
	}
	s.log.Info("sweeper listening", "addr", ln.Addr().String(),
		"sweep_interval_ms", s.cfg.SweepIntervalMs, "lease_ttl_ms", s.cfg.LeaseTTLMs,
		"mass_expiry_percent", s.cfg.MassExpiryPercent, "mass_expiry_min", s.cfg.MassExpiryMin)

	loopCtx, stopLoops := context.WithCancel(ctx)
	defer stopLoops()
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Run(loopCtx) })

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	var err error
	served := false
	select {
	case <-ctx.Done():
	case e := <-serveErr:
		served = true
		err = fmt.Errorf("sweeper: serve: %w", e)
	}
	stopLoops()
	shutCtx, cancel := context.WithTimeout(context.Background(), s.cfg.HTTP.ShutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(shutCtx); serr != nil && err == nil {
		err = fmt.Errorf("sweeper: shutdown: %w", serr)
	}
	if !served {
		if e := <-serveErr; err == nil && e != nil && !errors.Is(e, http.ErrServerClosed) {
			err = fmt.Errorf("sweeper: serve: %w", e)
		}
	}
	wg.Wait()
	s.log.Info("sweeper stopped")
	return err
}
