package sim

import (
	"context"
	"fmt"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/tools/ygg-sim/internal/stats"
)

// progress prints one line every ProgressEvery until ctx ends: windowed
// heartbeat rate and p99, errors, false offlines and the generator's lag.
func (e *engine) progress(ctx context.Context) {
	if e.cfg.Progress == nil {
		return
	}
	t := time.NewTicker(e.cfg.ProgressEvery)
	defer t.Stop()
	var lastOK, lastReg int64
	var lastPhase *phase
	last := e.s.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ph := e.cur.Load()
		now := e.s.Now()
		if ph != lastPhase {
			// Rates from the phase's start: its counters start at zero.
			lastOK, lastReg, lastPhase = 0, 0, ph
			last = max(last, ph.start)
		}
		secs := max((now - last).Seconds(), 0.001)
		last = now
		var ok, regOK int64
		var w stats.Quantiles
		if hb, found := ph.kinds.Lookup(kindHeartbeat); found {
			_, ok, _ = hb.Counts()
			w = hb.Window.Snapshot(true)
		}
		if reg, found := ph.kinds.Lookup(kindRegister); found {
			_, regOK, _ = reg.Counts()
		}
		var errs int64
		for _, n := range ph.kinds.Names() {
			_, _, e := ph.kinds.Kind(n).Counts()
			errs += e
		}
		lag := ph.lagWindow.Snapshot(true)
		fmt.Fprintf(e.cfg.Progress, "ygg-sim %5.0fs %-7s admitted %d/%d active %d | hb %6.0f/s p99 %6.1fms max %7.1fms | reg %5.0f/s | errors %d false-offline %d+%d | lag p99 %6.1fms max %7.1fms | busy %d ready %d waiting %d\n",
			e.s.Now().Seconds(), ph.name, e.admitted.Load(), len(e.fleet), e.active.Load(),
			float64(ok-lastOK)/secs, w.P99Ms, w.MaxMs, float64(regOK-lastReg)/secs, errs, ph.falseOffline.Load(), ph.offlineAfterBackoff.Load(),
			lag.P99Ms, lag.MaxMs, e.busy.Load(), e.s.Ready(), e.s.Len())
		lastOK, lastReg = ok, regOK
	}
}
