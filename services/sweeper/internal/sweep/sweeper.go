package sweep

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/httpmetrics"
	"github.com/yggdrasil-cp/yggdrasil/shared/keyauth"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/telemetry"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// maxBatchesPerTick bounds how long one tick may drain a backlog before it
// lets the other duties (quarantine, task timeouts) run.
const maxBatchesPerTick = 50

// minScanGap is the least time between the end of one lease scan and the
// start of the next, unless the timed tick asks: expiries that the deadline
// wake or keyspace events announce by thousands a second are then taken a
// few milliseconds' worth at a time, not with one scan each.
const minScanGap = 2 * time.Millisecond

// wakeSlack is added to the next deadline: the gate's clock is Redis' and
// counts whole milliseconds, and the result reaches us a little later still.
const wakeSlack = time.Millisecond

// trigger says what prompted a lease scan (the lease_scans_total label).
type trigger string

const (
	byTick     trigger = "tick"     // the timed tick (SWEEP_INTERVAL_MS)
	byDeadline trigger = "deadline" // the wake at the next lease deadline
	byEvent    trigger = "event"    // a keyspace event, a resubscription or an operator release
)

// Service is one sweeper replica: the loops plus the HTTP handler.
type Service struct {
	cfg    config.Sweeper
	st     *store.Store
	log    *slog.Logger
	reg    *prometheus.Registry
	http   *httpmetrics.Metrics
	m      *metrics
	policy store.MassExpiryPolicy
	// tracer records a span for each sweep that changed something (never
	// for empty ticks); the process's provider, a no-op when tracing is off.
	tracer trace.Tracer
	// adminKeys guard POST /quarantine/release.
	adminKeys keyauth.KeySet

	kick chan struct{}

	// outage is the guard's state (outage.go), used by the tick loop only;
	// redisFailed is set by fail from any loop.
	outage      outageState
	redisFailed atomic.Bool

	throttleMu sync.Mutex
	lastLogged map[string]time.Time
}

// New builds a sweeper replica over conn. It does not touch Redis until Run.
func New(cfg config.Sweeper, conn *store.Conn, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings() {
		log.Warn("INSECURE CONFIGURATION: " + w)
	}
	if cfg.MassExpiryPercent < 100 && cfg.LeaseTTL()-cfg.HeartbeatInterval() <= cfg.SilentAfter() {
		log.Warn("LEASE_TTL_MS is below 2.5 x HEARTBEAT_INTERVAL_MS: in an API outage the first leases run out "+
			"before the fleet looks silent, so those runners go offline before the quarantine starts",
			"lease_ttl_ms", cfg.LeaseTTLMs, "heartbeat_interval_ms", cfg.HeartbeatIntervalMs,
			"silent_after_ms", cfg.SilentAfter().Milliseconds())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(conn.Metrics(cfg.MetricsPrefix),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Service{
		cfg: cfg, log: log, reg: reg, http: httpmetrics.New(reg, cfg.MetricsPrefix),
		st: store.New(conn, store.OptionsFrom(cfg.Fleet)),
		m:  newMetrics(reg, cfg.MetricsPrefix),
		policy: store.MassExpiryPolicy{
			Percent: cfg.MassExpiryPercent, Min: cfg.MassExpiryMin, Window: cfg.LeaseTTL(),
			SilentAfter: cfg.SilentAfter(),
		},
		tracer:     otel.GetTracerProvider().Tracer("github.com/yggdrasil-cp/yggdrasil/services/sweeper"),
		adminKeys:  keyauth.NewKeySet(cfg.AdminAPIKeys),
		kick:       make(chan struct{}, 1),
		lastLogged: map[string]time.Time{},
	}, nil
}

// Registry is the sweeper's private metrics registry.
func (s *Service) Registry() *prometheus.Registry { return s.reg }

// Run runs the loops (index tick, keyspace subscriber) until ctx ends, then
// returns nil once they both stopped.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.tickLoop(ctx) })
	wg.Go(func() { s.subscribeLoop(ctx) })
	wg.Go(func() { s.purgeLoop(ctx) })
	wg.Wait()
	return nil
}

// requestEventScan asks the tick loop for a lease scan now (coalesced).
func (s *Service) requestEventScan() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// requestScan asks for an immediate scan: after a (re)subscription, and
// after an operator ended a quarantine.
func (s *Service) requestScan() { s.requestEventScan() }

// tickLoop is the only place leases are swept, so one replica never races
// itself. Three things prompt a lease scan: the timed tick (which also does
// everything else), the wake at the next lease deadline the gate reported,
// and keyspace events. The deadline wake is what bounds the detection lag by
// a few milliseconds instead of by the tick; the tick stays as the backstop
// (a lease added with an earlier deadline than the one the wake waits for,
// or a lost scan result), events as hints.
func (s *Service) tickLoop(ctx context.Context) {
	interval := s.cfg.SweepInterval()
	t := time.NewTicker(interval)
	defer t.Stop()
	wake := time.NewTimer(interval)
	defer wake.Stop()
	var last time.Time // when the latest lease scan ended
	schedule := func(due time.Time) {
		d := interval
		if !due.IsZero() {
			d = min(interval, time.Until(due)+wakeSlack)
		}
		d = max(d, minScanGap-time.Since(last))
		wake.Reset(d)
	}
	scanned := func(due time.Time) {
		last = time.Now()
		schedule(due)
	}

	scanned(s.tick(ctx))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			scanned(s.tick(ctx))
		case <-wake.C:
			scanned(s.sweepLeases(ctx, byDeadline))
		case <-s.kick:
			// let further events pile into one scan
			if gap := minScanGap - time.Since(last); gap > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(gap):
				}
			}
			due := s.sweepLeases(ctx, byEvent)
			s.advanceQuarantine(ctx)
			scanned(due)
		}
	}
}

// tick is one timed pass: drain the due leases, advance the quarantine,
// fail the tasks past their timeout. It returns when the next lease becomes
// due (zero when unknown).
func (s *Service) tick(ctx context.Context) time.Time {
	start := time.Now()
	defer func() { s.m.tickSeconds.Observe(time.Since(start).Seconds()) }()
	if !s.guard(ctx, true) {
		return time.Time{}
	}
	due := s.sweepLeases(ctx, byTick)
	s.advanceQuarantine(ctx)
	s.timeoutTasks(ctx)
	return due
}

// sweepLeases drains the due leases in batches and returns when the next
// lease becomes due, on the local clock (zero when the index is empty or the
// scan failed; now when a backlog is left).
func (s *Service) sweepLeases(ctx context.Context, by trigger) time.Time {
	defer s.m.scans.WithLabelValues(string(by)).Inc() // counted once done
	if !s.guard(ctx, false) {
		return time.Time{}
	}
	batch := s.cfg.SweepBatch
	for range maxBatchesPerTick {
		if ctx.Err() != nil {
			return time.Time{}
		}
		d, err := s.st.SweepDue(ctx, batch, s.policy)
		if err != nil {
			s.fail(ctx, "sweep", err)
			return time.Time{}
		}
		if d.GraceDue {
			// an outage window (recorded by anyone) waits for its grace:
			// the gate swept nothing; grant it, then sweep again
			if !s.grant(ctx) {
				return time.Time{}
			}
			continue
		}
		s.outage.lastOK = d.Now
		// the gate measured NextDue against Redis' clock; anchoring it to
		// the local clock when the answer arrives keeps hosts' skew out
		got := time.Now()
		s.apply(ctx, d, by)
		if len(d.Expire)+len(d.Quarantined) < batch && d.NextDue != 0 {
			if d.NextDue < 0 {
				return time.Time{}
			}
			return got.Add(d.NextDue)
		}
	}
	return time.Now() // backlog left: the next scan comes after minScanGap
}

// apply carries out a gate decision: the expire list goes through the
// offline transition, the quarantined ones are only counted and logged.
func (s *Service) apply(ctx context.Context, d store.SweepDecision, by trigger) {
	if len(d.Expire) == 0 && len(d.Quarantined) == 0 && !d.Entered {
		return
	}
	ctx, span := s.tracer.Start(ctx, "sweep leases", trace.WithAttributes(
		attribute.String("yggdrasil.sweep.trigger", string(by)),
		attribute.Int("yggdrasil.sweep.due", len(d.Expire)),
		attribute.Int("yggdrasil.sweep.quarantined", len(d.Quarantined)),
		attribute.Bool("yggdrasil.quarantine.entered", d.Entered),
	))
	defer span.End()
	if d.Entered {
		s.m.qEntries.Inc()
		s.m.quarantineActive.Set(1) // at once, not at the next quarantine check
		s.log.Warn("quarantine entered: correlated lease loss, runners become unreachable instead of offline",
			"rule", d.Rule, "lost", d.Lost, "online_within_window", d.Base,
			"silent", d.Silent, "lease_holders", d.Population, "silent_after_ms", s.policy.SilentAfter.Milliseconds(),
			"window_ms", s.policy.Window.Milliseconds(),
			"percent", s.policy.Percent, "min", s.policy.Min, "hold_ms", s.cfg.MassExpiryHoldMs)
	}
	for _, r := range d.RealmsEntered {
		s.log.Warn("realm quarantine entered: correlated lease loss within one realm, its runners become unreachable instead of offline",
			"realm", r, "rule", store.RuleMassExpiry, "window_ms", s.policy.Window.Milliseconds(), "hold_ms", s.cfg.MassExpiryHoldMs)
	}
	if n := len(d.Quarantined); n > 0 {
		s.m.qRunners.Add(float64(n))
		s.log.Info("runners quarantined", "count", n)
		for _, id := range d.Quarantined {
			s.log.Debug("runner unreachable", "runner_id", id)
		}
	}
	if len(d.Expire) == 0 {
		return
	}
	var alive []string
	for _, r := range s.expire(ctx, d.Expire, telemetry.TriggerLeaseExpiry) {
		switch {
		case r.Err == nil:
			s.recordTransition(r.ctx, r.Transition)
			if by != byEvent {
				s.m.indexTrans.Inc()
			} else {
				s.m.eventTrans.Inc()
			}
		case errors.Is(r.Err, store.ErrLeaseAlive):
			s.m.leaseAlive.Inc()
			alive = append(alive, r.RunnerID)
		case errors.Is(r.Err, store.ErrAlreadyOffline):
			s.m.alreadyOffline.Inc()
		case errors.Is(r.Err, store.ErrRunnerNotFound):
			s.log.Debug("expired lease of an unknown runner", "runner_id", r.RunnerID)
		default:
			s.fail(ctx, "expire", r.Err)
		}
	}
	span.SetAttributes(attribute.Int("yggdrasil.sweep.lease_alive", len(alive)))
	if err := s.st.ForgetExpiries(ctx, alive); err != nil {
		s.fail(ctx, "forget", err)
	}
}

// expired is one runner's transition result with the context of its span.
type expired struct {
	store.ExpireResult
	ctx context.Context
}

// expire takes ids through the offline transition in one pipeline, each
// under a span of its own: a child of ctx's span (the sweep's), sampled like
// any span, linked to the runner's last heartbeat, and whose traceparent the
// runner.offline event carries to the webhook. The sweep span itself stays
// small: no events, a few counts.
func (s *Service) expire(ctx context.Context, ids []string, trigger string) []expired {
	ctxs := make([]context.Context, len(ids))
	spans := make([]trace.Span, len(ids))
	tps := make([]string, len(ids))
	for i, id := range ids {
		ctxs[i], spans[i] = telemetry.StartTransition(ctx, s.tracer, id, wire.ReasonLeaseExpired, trigger)
		tps[i] = telemetry.Traceparent(ctxs[i])
	}
	res := s.st.ExpireLeasesTraced(ctx, ids, tps)
	out := make([]expired, len(res))
	for i, r := range res {
		out[i] = expired{ExpireResult: r, ctx: ctxs[i]}
		outcome := ""
		switch {
		case r.Err == nil:
		case errors.Is(r.Err, store.ErrLeaseAlive):
			outcome = telemetry.TransitionLeaseAlive
		case errors.Is(r.Err, store.ErrAlreadyOffline):
			outcome = telemetry.TransitionAlreadyOffline
		case errors.Is(r.Err, store.ErrRunnerNotFound):
			outcome = telemetry.TransitionUnknown
		default:
			outcome = telemetry.TransitionError
		}
		t := r.Transition
		telemetry.EndTransition(spans[i], outcome, telemetry.TransitionFacts{
			Epoch: t.Epoch, LeaseDeadline: t.LeaseExpiredAt, At: t.At, Heartbeat: t.HeartbeatTraceparent})
	}
	return out
}

// recordTransition counts and logs a transition; ctx carries its span, so
// the log line has its trace_id and span_id.
func (s *Service) recordTransition(ctx context.Context, t store.Transition) {
	s.m.transitions.WithLabelValues(wire.ReasonLeaseExpired).Inc()
	lag := t.At.Sub(t.LeaseExpiredAt)
	if lag < 0 {
		lag = 0
	}
	s.m.lag.Observe(lag.Seconds())
	s.log.InfoContext(ctx, "runner offline", "runner_id", t.RunnerID, "epoch", t.Epoch, "reason", wire.ReasonLeaseExpired,
		"lag_ms", lag.Milliseconds(), "failed_tasks", len(t.FailedTaskIDs))
}

// advanceQuarantine ends an active quarantine when it is over (everyone came
// back, hold passed, operator confirmed) and takes the runners still
// quarantined after it ended through the offline transition. Both steps are
// safe on every replica at once.
func (s *Service) advanceQuarantine(ctx context.Context) {
	s.advanceRealmQuarantines(ctx)
	st, err := s.st.GetQuarantineState(ctx)
	if err != nil {
		s.fail(ctx, "quarantine", err)
		return
	}
	if st.Active {
		ex, err := s.st.ExitQuarantine(ctx, s.cfg.MassExpiryHold(), false)
		switch {
		case err == nil:
			s.exited(ex)
			st.Active = false
		case errors.Is(err, store.ErrNoQuarantine):
		default:
			s.fail(ctx, "quarantine", err)
		}
	}
	s.setQuarantineGauges(st)
	if st.Active || st.Quarantined == 0 {
		return
	}
	ids, err := s.st.QuarantinedIDs(ctx, s.cfg.SweepBatch)
	if err != nil {
		s.fail(ctx, "release", err)
		return
	}
	if len(ids) == 0 {
		return
	}
	ctx, span := s.tracer.Start(ctx, "release quarantined", trace.WithAttributes(
		attribute.Int("yggdrasil.sweep.due", len(ids))))
	defer span.End()
	var stale []string
	for _, r := range s.expire(ctx, ids, telemetry.TriggerQuarantineRelease) {
		switch {
		case r.Err == nil:
			s.recordTransition(r.ctx, r.Transition)
		case errors.Is(r.Err, store.ErrLeaseAlive):
			s.m.leaseAlive.Inc()
		case errors.Is(r.Err, store.ErrAlreadyOffline), errors.Is(r.Err, store.ErrRunnerNotFound):
			stale = append(stale, r.RunnerID)
		default:
			s.fail(ctx, "release", r.Err)
		}
	}
	if err := s.st.DropQuarantined(ctx, stale); err != nil {
		s.fail(ctx, "release", err)
	}
}

// advanceRealmQuarantines does for every realm in its own quarantine what
// advanceQuarantine does fleet-wide: ends it when it is over (its runners
// back, or MASS_EXPIRY_HOLD_MS passed) and then takes the runners still
// quarantined through the offline transition. The list is bounded by the
// number of realms, which operators create.
func (s *Service) advanceRealmQuarantines(ctx context.Context) {
	realms, err := s.st.QuarantinedRealms(ctx)
	if err != nil {
		s.fail(ctx, "quarantine", err)
		return
	}
	for _, realm := range realms {
		step, err := s.st.StepRealmQuarantine(ctx, realm, s.cfg.MassExpiryHold(), false, s.cfg.SweepBatch)
		if err != nil {
			s.fail(ctx, "quarantine", err)
			return
		}
		if step.Ended {
			s.m.qExits.WithLabelValues(step.Reason).Inc()
			s.log.Warn("realm quarantine ended", "realm", realm, "reason", step.Reason, "still_quarantined", step.Remaining,
				"duration_ms", step.At.Sub(step.Since).Milliseconds())
		}
		if step.Active || step.Remaining == 0 {
			continue
		}
		ids, err := s.st.RealmQuarantinedIDs(ctx, realm, s.cfg.SweepBatch)
		if err != nil {
			s.fail(ctx, "release", err)
			return
		}
		rctx, span := s.tracer.Start(ctx, "release quarantined", trace.WithAttributes(
			attribute.Int("yggdrasil.sweep.due", len(ids)), attribute.String("yggdrasil.realm", realm)))
		var done []string
		for _, r := range s.expire(rctx, ids, telemetry.TriggerQuarantineRelease) {
			switch {
			case r.Err == nil:
				s.recordTransition(r.ctx, r.Transition)
				done = append(done, r.RunnerID)
			case errors.Is(r.Err, store.ErrLeaseAlive):
				s.m.leaseAlive.Inc() // it came back: the next step drops it
			case errors.Is(r.Err, store.ErrAlreadyOffline), errors.Is(r.Err, store.ErrRunnerNotFound):
				done = append(done, r.RunnerID)
			default:
				s.fail(rctx, "release", r.Err)
			}
		}
		if err := s.st.DropRealmQuarantined(rctx, realm, done); err != nil {
			s.fail(rctx, "release", err)
		}
		span.End()
	}
}

func (s *Service) exited(ex store.QuarantineExit) {
	s.m.qExits.WithLabelValues(ex.Reason).Inc()
	s.log.Warn("quarantine ended", "reason", ex.Reason, "still_quarantined", ex.Remaining,
		"duration_ms", ex.At.Sub(ex.Since).Milliseconds())
}

func (s *Service) setQuarantineGauges(st store.QuarantineState) {
	if st.Active {
		s.m.quarantineActive.Set(1)
	} else {
		s.m.quarantineActive.Set(0)
	}
	s.m.quarantined.Set(float64(st.Quarantined))
}

func (s *Service) timeoutTasks(ctx context.Context) {
	now, err := s.st.Now(ctx)
	if err != nil {
		s.fail(ctx, "task_timeout", err)
		return
	}
	ids, err := s.st.DueTaskTimeouts(ctx, now, s.cfg.TaskTimeoutGrace(), s.cfg.SweepBatch)
	if err != nil || len(ids) == 0 {
		if err != nil {
			s.fail(ctx, "task_timeout", err)
		}
		return
	}
	for _, r := range s.st.TimeoutTasks(ctx, ids, s.cfg.TaskTimeoutGrace()) {
		switch {
		case r.Err != nil:
			s.fail(ctx, "task_timeout", r.Err)
		case r.Failed:
			was := string(wire.TaskPending)
			if r.WasRunning {
				was = string(wire.TaskRunning)
			}
			s.m.taskTimeouts.WithLabelValues(was).Inc()
			s.log.Info("task timed out", "task_id", r.TaskID, "runner_id", r.RunnerID, "was", was)
		}
	}
}

// fail counts an error and logs it at most every few seconds per operation:
// with Redis down the tick would otherwise log ten times a second.
func (s *Service) fail(ctx context.Context, op string, err error) {
	if ctx.Err() != nil {
		return // shutting down: the error is the cancellation
	}
	s.m.errors.WithLabelValues(op).Inc()
	if !store.IsDomain(err) {
		s.redisFailed.Store(true) // the guard records the outage once Redis answers
	}
	s.throttleMu.Lock()
	last := s.lastLogged[op]
	now := time.Now()
	logIt := now.Sub(last) >= 5*time.Second
	if logIt {
		s.lastLogged[op] = now
	}
	s.throttleMu.Unlock()
	if logIt {
		s.log.Error("sweeper error", "op", op, "err", err)
	}
}
