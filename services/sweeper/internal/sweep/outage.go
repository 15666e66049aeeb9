package sweep

import (
	"context"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// outageState is what the guard remembers between scans (tick loop only).
type outageState struct {
	// lastOK is Redis' clock at this sweeper's latest successful check or
	// gate call: where an outage of its own connection begins.
	lastOK time.Time
	// checked is the local time of the latest restart check.
	checked time.Time
}

// guard runs before every lease scan and makes sure no sweep acts on leases
// that an outage took away. It checks Redis' run_id (store.CheckRestart,
// which records a restart or failover as an outage window) on every tick,
// before any scan after this sweeper saw a Redis error, and before the
// first scan after a pause (a scan more than one tick after the previous
// check); it records this sweeper's own lost connection (from its latest
// successful call to now); and it grants the failover grace to every
// outage window waiting for it, whoever recorded it. Windows recorded by
// others between two checks are caught by the gate itself, which sweeps
// nothing while one waits (SweepDecision.GraceDue).
//
// It returns false when Redis did not answer: the caller sweeps nothing.
func (s *Service) guard(ctx context.Context, tick bool) bool {
	failed := s.redisFailed.Load()
	if !tick && !failed && !s.outage.checked.IsZero() && time.Since(s.outage.checked) < s.cfg.SweepInterval() {
		return true
	}
	rc, err := s.st.CheckRestart(ctx)
	if err != nil {
		s.fail(ctx, "outage_check", err)
		return false
	}
	if rc.Restarted {
		s.m.outages.WithLabelValues(store.OutageRestart).Inc()
		s.log.Warn("redis restarted or failed over (run_id changed): outage recorded, leases it covered get the failover grace",
			"outage_from", rc.Window.From, "outage_to", rc.Window.To,
			"outage_ms", rc.Window.To.Sub(rc.Window.From).Milliseconds())
	}
	if failed && !s.outage.lastOK.IsZero() && !rc.Restarted {
		// a restart window already covers this sweeper's own gap
		w, err := s.st.RecordOutage(ctx, s.outage.lastOK, rc.Now, store.OutageSweeper)
		if err != nil {
			s.fail(ctx, "outage_record", err)
			return false
		}
		s.m.outages.WithLabelValues(store.OutageSweeper).Inc()
		s.log.Warn("redis answers again after this sweeper lost it: outage recorded",
			"outage_from", w.From, "outage_to", w.To, "outage_ms", w.To.Sub(w.From).Milliseconds())
		rc.Pending++
	}
	if rc.Pending > 0 && !s.grant(ctx) {
		return false
	}
	s.redisFailed.Store(false)
	s.outage.lastOK, s.outage.checked = rc.Now, time.Now()
	return true
}

// grant gives the waiting outage windows their failover grace.
func (s *Service) grant(ctx context.Context) bool {
	g, err := s.st.GrantOutageGrace(ctx, s.cfg.LeaseTTL(), s.cfg.FailoverGrace(), s.cfg.HeartbeatInterval())
	if err != nil {
		s.fail(ctx, "outage_grace", err)
		return false
	}
	if len(g.Windows) > 0 {
		s.m.graceWindows.Add(float64(len(g.Windows)))
		s.m.graceRearmed.Add(float64(g.Rearmed))
		s.log.Warn("failover grace granted: leases the outage covered re-armed",
			"windows", g.Windows, "leases_rearmed", g.Rearmed, "until", g.Until,
			"grace_ms", s.cfg.FailoverGrace().Milliseconds())
	}
	return true
}
