// Package runners is the API's application layer: registration, heartbeats,
// task dispatch and updates, long polls, version checks and admission. HTTP
// handlers call one method each; every method validates its input before
// anything reaches Redis, and leaves state changes to the store's atomic
// scripts.
//
// It must never know about HTTP: it returns store sentinels, *validate.Error
// and the errors below, which the HTTP layer maps to status codes.
package runners

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/auth"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/validate"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/telemetry"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// Scope is the instrumentation scope of the service's own spans (the
// deregistration's transition).
const Scope = "github.com/yggdrasil-cp/yggdrasil/services/api/runners"

// Errors of the application layer.
var (
	// ErrUnavailable wraps infrastructure failures (Redis not answering).
	ErrUnavailable = errors.New("state store unavailable")
	// ErrAdmissionClosed refuses a registration while the breaker is open.
	ErrAdmissionClosed = errors.New("registrations are suspended: the state store is failing")
	// ErrOperatorCancelOnly refuses an operator's task update other than a cancel.
	ErrOperatorCancelOnly = validate.Fail("status", "an operator may only set cancelled")
)

// RetryError asks the client to come back after After.
type RetryError struct {
	After time.Duration
	Err   error
}

func (e *RetryError) Error() string { return e.Err.Error() }
func (e *RetryError) Unwrap() error { return e.Err }

// Config is what the service needs from the API configuration.
type Config struct {
	LeaseTTL          time.Duration
	HeartbeatInterval time.Duration
	MaxRunners        int
	ExpectedVersion   string
	LongPollMax       time.Duration
	CountsCacheTTL    time.Duration
	// TracerProvider makes the span of a deregistration's offline
	// transition; nil is a no-op provider.
	TracerProvider trace.TracerProvider
	// RegisterRate (per second, 0 = no limit) and RegisterBurst fill each
	// realm's registration token bucket (a realm policy overrides them).
	RegisterRate  float64
	RegisterBurst int
}

// Service is the application layer over the store.
type Service struct {
	store    *store.Store
	cfg      Config
	expected *semver.Constraints
	hub      *Hub
	breaker  *Breaker
	now      func() time.Time
	log      *slog.Logger
	tracer   trace.Tracer
	closing  chan struct{}
	once     sync.Once

	countsMu  sync.Mutex
	counts    store.FleetCounts
	countsAt  time.Time
	countsOK  bool
	fullSince time.Time
}

// New returns a Service. now is the clock (time.Now in production). cfg is
// used as given (its values come from config.API); New applies no defaults.
func New(st *store.Store, cfg Config, hub *Hub, breaker *Breaker, now func() time.Time, log *slog.Logger) (*Service, error) {
	if cfg.LeaseTTL <= 0 || cfg.HeartbeatInterval <= 0 || cfg.CountsCacheTTL <= 0 {
		return nil, fmt.Errorf("runners: lease TTL %s, heartbeat interval %s and counts cache TTL %s must be positive",
			cfg.LeaseTTL, cfg.HeartbeatInterval, cfg.CountsCacheTTL)
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	s := &Service{store: st, cfg: cfg, hub: hub, breaker: breaker, now: now, log: log, closing: make(chan struct{}),
		tracer: tp.Tracer(Scope)}
	if cfg.ExpectedVersion != "" {
		c, err := expectedConstraint(cfg.ExpectedVersion)
		if err != nil {
			return nil, err
		}
		s.expected = c
	}
	return s, nil
}

// Close wakes every long poll so that a shutdown does not wait for them.
func (s *Service) Close() { s.once.Do(func() { close(s.closing) }) }

// Breaker returns the admission breaker.
func (s *Service) Breaker() *Breaker { return s.breaker }

// observe feeds the breaker and wraps infrastructure failures in
// ErrUnavailable so that the HTTP layer never shows a Redis error.
func (s *Service) observe(err error) error {
	if err == nil {
		s.breaker.Record(true)
		return nil
	}
	if store.IsDomain(err) {
		s.breaker.Record(true)
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	s.breaker.Record(false)
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Register registers a runner, or brings it back under a new epoch. claim is
// what the caller proves about the named runner's credential: a live
// runner's id is refused (store.ErrRunnerLive) to a caller proving nothing.
//
// caller decides the realm: a realm-scoped key registers into its own realm
// only (a body naming another realm, or the id of another realm's runner, is
// ErrRealmNotFound / ErrRunnerNotFound, as if they did not exist); a global
// key into any realm, which is created on the fly when unknown.
func (s *Service) Register(ctx context.Context, p wire.RegisterRunnerPayload, claim auth.Claim, caller auth.Principal) (wire.RegisterRunnerResponse, error) {
	if err := validate.Register(&p); err != nil {
		return wire.RegisterRunnerResponse{}, err
	}
	if p.Realm == "" {
		p.Realm = wire.DefaultRealm
		if caller.Scoped() {
			p.Realm = caller.Realm
		}
	}
	if !caller.Sees(p.Realm) {
		return wire.RegisterRunnerResponse{}, fmt.Errorf("runners: register into another realm: %w", store.ErrRealmNotFound)
	}
	if after, ok := s.breaker.Allow(); !ok {
		return wire.RegisterRunnerResponse{}, &RetryError{After: after, Err: ErrAdmissionClosed}
	}
	id := p.RunnerID
	if id == "" {
		id = store.NewID("rnr_")
	}
	token, hash, err := auth.NewToken(id)
	if err != nil {
		return wire.RegisterRunnerResponse{}, err
	}
	info, lease, err := s.store.Register(ctx, store.RegisterParams{
		ID: id, Name: p.Name, Version: p.Version, Realm: p.Realm, Endpoint: p.Endpoint,
		Labels: p.Labels, Capacity: p.Capacity, TokenHash: hash, LeaseTTL: s.cfg.LeaseTTL,
		MaxRunners: s.cfg.MaxRunners, ActsForAnyRunner: claim.AnyRunner, CallerTokenHash: claim.TokenHash,
		RealmScoped: caller.Scoped(), RealmMustExist: caller.Scoped(),
		RegisterRate: s.cfg.RegisterRate, RegisterBurst: s.cfg.RegisterBurst, HeartbeatInterval: s.cfg.HeartbeatInterval,
	})
	if err = s.observe(err); err != nil {
		var rate *store.RateError
		switch {
		case errors.Is(err, store.ErrFleetFull), errors.Is(err, store.ErrRealmFull):
			return wire.RegisterRunnerResponse{}, &RetryError{After: s.retryFull(), Err: err}
		case errors.As(err, &rate):
			return wire.RegisterRunnerResponse{}, &RetryError{After: jitter(rate.After), Err: err}
		}
		return wire.RegisterRunnerResponse{}, err
	}
	return wire.RegisterRunnerResponse{
		RunnerInfo: info, Token: token, LeaseTTLMs: lease.TTL.Milliseconds(),
		HeartbeatIntervalMs: lease.HeartbeatInterval.Milliseconds(),
		LeaseExpiresAt:      lease.ExpiresAt, LeaseEpoch: lease.Epoch,
	}, nil
}

// retryFull is when a full fleet is worth asking again: a lease may have run out.
func (s *Service) retryFull() time.Duration {
	if s.cfg.HeartbeatInterval < time.Second {
		return time.Second
	}
	return s.cfg.HeartbeatInterval
}

// Heartbeat renews a lease. claim is what the caller proved: a runner
// token's hash is compared with the runner's in the heartbeat's own script
// call (store.ErrBadCredential when it is not the runner's); AnyRunner
// skips the comparison.
func (s *Service) Heartbeat(ctx context.Context, p wire.HeartbeatPayload, claim auth.Claim) (wire.HeartbeatResponse, error) {
	if err := validate.Heartbeat(&p); err != nil {
		return wire.HeartbeatResponse{}, err
	}
	var started time.Time
	if p.StartedAt != nil {
		if err := validate.StartedAt("startedAt", *p.StartedAt, s.now()); err != nil {
			return wire.HeartbeatResponse{}, err
		}
		started = *p.StartedAt
	}
	res, err := s.store.Heartbeat(ctx, store.HeartbeatParams{
		RunnerID: p.RunnerID, Epoch: p.LeaseEpoch, LeaseTTL: s.cfg.LeaseTTL, HeartbeatInterval: s.cfg.HeartbeatInterval, Activity: p.Status,
		Resources: p.Resources, TasksRunning: p.TasksRunning, Version: p.Version, StartedAt: started,
		TokenHash: claim.TokenHash,
	})
	if err = s.observe(err); err != nil {
		return wire.HeartbeatResponse{}, err
	}
	out := wire.HeartbeatResponse{
		LeaseExpiresAt: res.Lease.ExpiresAt, LeaseEpoch: res.Lease.Epoch,
		HeartbeatIntervalMs: res.Lease.HeartbeatInterval.Milliseconds(), PendingUpdate: res.PendingUpdate,
		Tasks: res.Tasks, CancelTaskIDs: res.CancelTaskIDs,
		Drain:      res.RealmState == wire.RealmDraining,
		Deregister: res.RealmState == wire.RealmClosed,
	}
	if out.Drain || out.Deregister {
		// a draining or closed realm's runners take no new tasks
		out.Tasks = nil
	}
	if out.Tasks == nil {
		out.Tasks = []wire.RunnerTask{}
	}
	if out.CancelTaskIDs == nil {
		out.CancelTaskIDs = []string{}
	}
	return out, nil
}

// UpdateEndpoint changes a runner's endpoint and returns the runner.
func (s *Service) UpdateEndpoint(ctx context.Context, p wire.UpdateRunnerPayload) (wire.RunnerInfo, error) {
	if err := validate.Update(&p); err != nil {
		return wire.RunnerInfo{}, err
	}
	if err := s.observe(s.store.UpdateEndpoint(ctx, p.RunnerID, p.Endpoint)); err != nil {
		return wire.RunnerInfo{}, err
	}
	return s.GetRunner(ctx, p.RunnerID)
}

// Offline deregisters a runner. Repeating it is harmless: an already
// offline runner answers with no failed tasks.
func (s *Service) Offline(ctx context.Context, p wire.OfflinePayload) (wire.OfflineResponse, error) {
	if err := validate.Offline(&p); err != nil {
		return wire.OfflineResponse{}, err
	}
	tr, err := s.deregister(ctx, p)
	err = s.observe(err)
	switch {
	case errors.Is(err, store.ErrAlreadyOffline):
		return wire.OfflineResponse{RunnerID: p.RunnerID, Status: string(wire.RunnerOffline), FailedTaskIDs: []string{}}, nil
	case err != nil:
		return wire.OfflineResponse{}, err
	}
	failed := tr.FailedTaskIDs
	if failed == nil {
		failed = []string{}
	}
	return wire.OfflineResponse{RunnerID: p.RunnerID, Status: string(wire.RunnerOffline), FailedTaskIDs: failed}, nil
}

// deregister is the offline transition under a span of its own, a child of
// the request's, linked to the runner's last heartbeat: the runner.offline
// event carries its traceparent to the webhook.
func (s *Service) deregister(ctx context.Context, p wire.OfflinePayload) (store.Transition, error) {
	ctx, span := telemetry.StartTransition(ctx, s.tracer, p.RunnerID, wire.ReasonDeregistered, telemetry.TriggerDeregistration)
	tr, err := s.store.Deregister(ctx, p.RunnerID, 0, p.Reason)
	outcome := ""
	switch {
	case err == nil:
		s.log.InfoContext(ctx, "runner offline", "runner_id", p.RunnerID, "epoch", tr.Epoch,
			"reason", wire.ReasonDeregistered, "failed_tasks", len(tr.FailedTaskIDs))
	case errors.Is(err, store.ErrAlreadyOffline):
		outcome = telemetry.TransitionAlreadyOffline
	case errors.Is(err, store.ErrRunnerNotFound):
		outcome = telemetry.TransitionUnknown
	default:
		outcome = telemetry.TransitionError
	}
	telemetry.EndTransition(span, outcome, telemetry.TransitionFacts{
		Epoch: tr.Epoch, LeaseDeadline: tr.LeaseExpiredAt, At: tr.At, Heartbeat: tr.HeartbeatTraceparent})
	return tr, err
}

// TokenHash returns a runner's stored token hash, for authentication.
func (s *Service) TokenHash(ctx context.Context, id string) (string, error) {
	h, err := s.store.TokenHash(ctx, id)
	return h, s.observe(err)
}

// GetRunner reads one runner.
func (s *Service) GetRunner(ctx context.Context, id string) (wire.RunnerInfo, error) {
	if err := validate.CheckID("id", id); err != nil {
		return wire.RunnerInfo{}, err
	}
	r, err := s.store.GetRunner(ctx, id)
	return r, s.observe(err)
}

// RunnerQuery filters a runner listing.
type RunnerQuery struct {
	Status, Realm, Cursor, Limit string
}

// ListRunners returns one page of runners.
func (s *Service) ListRunners(ctx context.Context, q RunnerQuery) (wire.RunnerList, error) {
	if err := validate.RunnerStatusFilter(q.Status); err != nil {
		return wire.RunnerList{}, err
	}
	if q.Realm != "" && !validate.RealmName(q.Realm) {
		return wire.RunnerList{}, validate.Fail("realm", "is not a realm")
	}
	if q.Cursor != "" && !validate.ID(q.Cursor) {
		return wire.RunnerList{}, validate.Fail("cursor", "is not a cursor")
	}
	limit, err := validate.Limit(q.Limit, store.MaxListLimit)
	if err != nil {
		return wire.RunnerList{}, err
	}
	l, err := s.store.ListRunners(ctx, store.ListRunnersParams{Status: q.Status, Realm: q.Realm, Cursor: q.Cursor, Limit: limit})
	return l, s.observe(err)
}

// TaskQuery filters a runner's task listing; raw query values. Status is
// one status or several, comma-separated; Task narrows the listing to that
// one task (so a long poll waits for that task to reach one of the
// statuses); Wait is the raw `wait` value.
type TaskQuery struct {
	RunnerID, Status, Task, Cursor, Limit, Wait string
}

// ListTasks lists a runner's tasks. With a wait and nothing matching, it
// holds the request until a dispatch or a task status change for that
// runner (on any replica) or the wait ends, re-reading the store each time
// it is woken and once at the end.
func (s *Service) ListTasks(ctx context.Context, q TaskQuery) (wire.TaskList, error) {
	if err := validate.CheckID("id", q.RunnerID); err != nil {
		return wire.TaskList{}, err
	}
	statuses, err := validate.TaskStatusList(q.Status)
	if err != nil {
		return wire.TaskList{}, err
	}
	if q.Task != "" {
		if err := validate.CheckID("task", q.Task); err != nil {
			return wire.TaskList{}, err
		}
	}
	if err := validate.TaskCursor(q.Cursor); err != nil {
		return wire.TaskList{}, err
	}
	limit, err := validate.Limit(q.Limit, store.MaxListLimit)
	if err != nil {
		return wire.TaskList{}, err
	}
	wait, err := validate.Wait(q.Wait, s.cfg.LongPollMax)
	if err != nil {
		return wire.TaskList{}, err
	}
	p := store.ListTasksParams{RunnerID: q.RunnerID, Statuses: statuses, Cursor: q.Cursor, Limit: limit}
	list := func() (wire.TaskList, error) {
		l, err := s.store.ListTasks(ctx, p)
		return l, s.observe(err)
	}
	if q.Task != "" {
		list = func() (wire.TaskList, error) { return s.oneTask(ctx, q.RunnerID, q.Task, statuses) }
	}
	if wait <= 0 {
		return s.listKnown(ctx, q.RunnerID, list)
	}
	// Register before the first read, so that a dispatch landing between the
	// read and the wait still wakes us.
	w, err := s.hub.Wait(q.RunnerID)
	if err != nil {
		return wire.TaskList{}, &RetryError{After: time.Second, Err: err}
	}
	defer w.Cancel()
	l, err := s.listKnown(ctx, q.RunnerID, list)
	if err != nil || len(l.Tasks) > 0 {
		return l, err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-w.C:
			if l, err = list(); err != nil || len(l.Tasks) > 0 {
				return l, err
			}
		case <-timer.C:
			return list()
		case <-s.closing:
			return list()
		case <-ctx.Done():
			return l, nil
		}
	}
}

// oneTask is the listing of one task: the task when it is in one of
// statuses (any when none), else empty; an unknown task, or one of another
// runner, is ErrTaskNotFound.
func (s *Service) oneTask(ctx context.Context, runnerID, taskID string, statuses []wire.TaskStatus) (wire.TaskList, error) {
	t, err := s.GetTask(ctx, runnerID, taskID)
	if err != nil {
		return wire.TaskList{}, err
	}
	if len(statuses) > 0 && !slices.Contains(statuses, t.Status) {
		return wire.TaskList{Tasks: []wire.RunnerTask{}}, nil
	}
	return wire.TaskList{Tasks: []wire.RunnerTask{t}}, nil
}

// listKnown lists, and turns an empty listing of an unknown runner into
// ErrRunnerNotFound (one extra read, only when the page is empty).
func (s *Service) listKnown(ctx context.Context, id string, list func() (wire.TaskList, error)) (wire.TaskList, error) {
	l, err := list()
	if err != nil || len(l.Tasks) > 0 || l.NextCursor != "" {
		return l, err
	}
	if _, err := s.store.GetRunner(ctx, id); err != nil {
		return wire.TaskList{}, s.observe(err)
	}
	return l, nil
}

// DeleteRunner deletes an offline runner at once with its indexes (its
// tasks keep their own retention). An online or unreachable runner is
// store.ErrRunnerNotOffline.
func (s *Service) DeleteRunner(ctx context.Context, id string) error {
	if err := validate.CheckID("id", id); err != nil {
		return err
	}
	return s.observe(s.store.DeleteRunner(ctx, id))
}

// GetTask reads one task of a runner. A task of another runner is
// ErrTaskNotFound, like an unknown one: the path names the runner, and a
// runner's credential must learn nothing about other runners' tasks.
func (s *Service) GetTask(ctx context.Context, runnerID, taskID string) (wire.RunnerTask, error) {
	if err := validate.CheckID("id", runnerID); err != nil {
		return wire.RunnerTask{}, err
	}
	if err := validate.CheckID("tid", taskID); err != nil {
		return wire.RunnerTask{}, err
	}
	t, err := s.store.GetTask(ctx, taskID)
	if err = s.observe(err); err != nil {
		return wire.RunnerTask{}, err
	}
	if t.RunnerID != runnerID {
		return wire.RunnerTask{}, fmt.Errorf("runners: task %s belongs to another runner: %w", taskID, store.ErrTaskNotFound)
	}
	return t, nil
}

// AllTasksQuery filters the fleet's task listing (GET /tasks); raw query values.
type AllTasksQuery struct {
	Status, Runner, Type, Cursor, Limit string
	// Realm (already checked) keeps one realm's tasks.
	Realm string
}

// ListAllTasks returns one page of the fleet's tasks, newest first.
func (s *Service) ListAllTasks(ctx context.Context, q AllTasksQuery) (wire.TaskList, error) {
	if err := validate.TaskStatusFilter(q.Status); err != nil {
		return wire.TaskList{}, err
	}
	if q.Runner != "" && !validate.ID(q.Runner) {
		return wire.TaskList{}, validate.Fail("runner", "is not a runner id")
	}
	if err := validate.TaskTypeFilter(q.Type); err != nil {
		return wire.TaskList{}, err
	}
	if err := validate.TaskCursor(q.Cursor); err != nil {
		return wire.TaskList{}, err
	}
	limit, err := validate.Limit(q.Limit, store.MaxListLimit)
	if err != nil {
		return wire.TaskList{}, err
	}
	l, err := s.store.ListAllTasks(ctx, store.ListAllTasksParams{
		Status: wire.TaskStatus(q.Status), RunnerID: q.Runner, Type: q.Type, Realm: q.Realm, Cursor: q.Cursor, Limit: limit,
	})
	return l, s.observe(err)
}

// Dispatch creates a task; created is false when idemKey returned an earlier one.
func (s *Service) Dispatch(ctx context.Context, runnerID string, p wire.DispatchTaskPayload, idemKey string) (wire.RunnerTask, bool, error) {
	if err := validate.CheckID("id", runnerID); err != nil {
		return wire.RunnerTask{}, false, err
	}
	if err := validate.Dispatch(&p); err != nil {
		return wire.RunnerTask{}, false, err
	}
	if err := validate.IdempotencyKey(idemKey); err != nil {
		return wire.RunnerTask{}, false, err
	}
	t, created, err := s.store.Dispatch(ctx, store.DispatchParams{
		RunnerID: runnerID, Type: p.Type, Payload: p.Payload,
		Timeout: time.Duration(p.TimeoutMs) * time.Millisecond, IdempotencyKey: idemKey,
	})
	return t, created, s.observe(err)
}

// TaskUpdate is one task status change. Actor is store.ActorRunner or store.ActorOperator.
type TaskUpdate struct {
	RunnerID string
	TaskID   string
	Actor    string
	Payload  wire.TaskUpdatePayload
}

// UpdateTask applies a state-machine step.
func (s *Service) UpdateTask(ctx context.Context, u TaskUpdate) (wire.RunnerTask, error) {
	if err := validate.CheckID("id", u.RunnerID); err != nil {
		return wire.RunnerTask{}, err
	}
	if err := validate.CheckID("tid", u.TaskID); err != nil {
		return wire.RunnerTask{}, err
	}
	if err := validate.TaskUpdate(&u.Payload); err != nil {
		return wire.RunnerTask{}, err
	}
	if u.Actor == store.ActorOperator && u.Payload.Status != wire.TaskCancelled {
		return wire.RunnerTask{}, ErrOperatorCancelOnly
	}
	t, err := s.store.UpdateTask(ctx, store.TaskUpdateParams{
		RunnerID: u.RunnerID, TaskID: u.TaskID, Status: u.Payload.Status, Result: u.Payload.Result,
		Error: u.Payload.Error, Epoch: u.Payload.LeaseEpoch, Actor: u.Actor,
	})
	return t, s.observe(err)
}

// UpdateTaskByID is UpdateTask for a caller that knows only the task id:
// the task's runner is looked up and handed to authorize, which says as
// which actor the caller may act on it (or refuses).
func (s *Service) UpdateTaskByID(ctx context.Context, taskID string, p wire.TaskUpdatePayload, authorize func(runnerID string) (actor string, err error)) (wire.RunnerTask, error) {
	if err := validate.CheckID("tid", taskID); err != nil {
		return wire.RunnerTask{}, err
	}
	if err := validate.TaskUpdate(&p); err != nil {
		return wire.RunnerTask{}, err
	}
	t, err := s.store.GetTask(ctx, taskID)
	if err = s.observe(err); err != nil {
		return wire.RunnerTask{}, err
	}
	actor, err := authorize(t.RunnerID)
	if err != nil {
		return wire.RunnerTask{}, err
	}
	return s.UpdateTask(ctx, TaskUpdate{RunnerID: t.RunnerID, TaskID: taskID, Actor: actor, Payload: p})
}

// RequestUpdate stores a PendingUpdate for a runner and returns the runner.
func (s *Service) RequestUpdate(ctx context.Context, runnerID string, p wire.RequestUpdatePayload) (wire.RunnerInfo, error) {
	if err := validate.CheckID("id", runnerID); err != nil {
		return wire.RunnerInfo{}, err
	}
	if err := validate.RequestUpdate(&p); err != nil {
		return wire.RunnerInfo{}, err
	}
	u := wire.PendingUpdate{Version: p.Version, Command: p.Command, RequestedAt: s.now().UTC().Truncate(time.Millisecond)}
	if err := s.observe(s.store.RequestUpdate(ctx, runnerID, u)); err != nil {
		return wire.RunnerInfo{}, err
	}
	return s.GetRunner(ctx, runnerID)
}

// expectedConstraint reads EXPECTED_RUNNER_VERSION: a bare version means
// "at least this version", anything else is a semver constraint.
func expectedConstraint(expected string) (*semver.Constraints, error) {
	if v, err := semver.NewVersion(expected); err == nil {
		return semver.NewConstraint(">= " + v.String())
	}
	c, err := semver.NewConstraint(expected)
	if err != nil {
		return nil, fmt.Errorf("runners: EXPECTED_RUNNER_VERSION %q: %w", expected, err)
	}
	return c, nil
}

// VersionCheck says whether version complies with the expected version.
func (s *Service) VersionCheck(version string) (wire.VersionCheckResponse, error) {
	if version == "" || len(version) > validate.MaxVersionLen {
		return wire.VersionCheckResponse{}, validate.Fail("version", "must be a semantic version")
	}
	v, err := semver.NewVersion(version)
	if err != nil {
		return wire.VersionCheckResponse{}, validate.Fail("version", "must be a semantic version")
	}
	out := wire.VersionCheckResponse{Version: version, Expected: s.cfg.ExpectedVersion, Compliant: true}
	if s.expected != nil {
		out.Compliant = s.expected.Check(v)
		out.UpdateRequired = !out.Compliant
	}
	return out, nil
}

// ErrBreakerOpen is Ready's answer while the breaker is open: the probe,
// not the readiness check, finds out when Redis answers again.
var ErrBreakerOpen = errors.New("runners: the admission breaker is open")

// Ready checks that Redis answers within timeout. While the breaker is open
// it answers at once: the probe PINGs Redis every probe interval already.
func (s *Service) Ready(ctx context.Context, timeout time.Duration) error {
	if s.breaker.Open() {
		return ErrBreakerOpen
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return s.observe(s.store.Ping(ctx))
}

// Probe PINGs Redis when the breaker is open, waiting at most timeout, and
// closes the breaker when Redis answers.
func (s *Service) Probe(ctx context.Context, timeout time.Duration) {
	if !s.breaker.StartProbe() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := s.store.Ping(ctx)
	s.breaker.Record(err == nil)
	if err != nil {
		// Every 250 ms while Redis is down: debug, not a warning flood.
		s.log.Debug("admission breaker probe failed", "err", err)
	}
}

// RunProbe probes every interval while the breaker is open, until ctx
// ends. Each PING waits at most one interval, so a Redis that hangs instead
// of refusing never holds up the next probe.
func (s *Service) RunProbe(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.Probe(ctx, every)
		}
	}
}

// fleetCounts returns store.Counts, cached for CountsCacheTTL.
func (s *Service) fleetCounts(ctx context.Context) (store.FleetCounts, bool) {
	s.countsMu.Lock()
	defer s.countsMu.Unlock()
	now := s.now()
	if s.countsOK && now.Sub(s.countsAt) < s.cfg.CountsCacheTTL {
		return s.counts, true
	}
	c, err := s.store.Counts(ctx)
	if s.observe(err) != nil {
		s.countsOK = false
		return store.FleetCounts{}, false
	}
	s.counts, s.countsAt, s.countsOK = c, now, true
	return c, true
}

// Admission reports whether registrations are admitted and why not.
func (s *Service) Admission(ctx context.Context) wire.AdmissionState {
	b := s.breaker.Snapshot()
	if b.State != StateClosed {
		return wire.AdmissionState{Admitting: false, State: b.State, Reason: "redis_unavailable", Since: b.Since}
	}
	if s.cfg.MaxRunners > 0 {
		if c, ok := s.fleetCounts(ctx); ok {
			full := c.Online+c.Unreachable >= int64(s.cfg.MaxRunners)
			s.countsMu.Lock()
			if !full {
				s.fullSince = time.Time{}
			} else if s.fullSince.IsZero() {
				s.fullSince = s.now().UTC()
			}
			since := s.fullSince
			s.countsMu.Unlock()
			if full {
				return wire.AdmissionState{Admitting: false, State: StateFull, Reason: "max_runners", Since: since}
			}
		}
	}
	q, err := s.store.GetQuarantineState(ctx)
	if s.observe(err) == nil && q.Active {
		st := wire.AdmissionState{Admitting: true, State: StateQuarantine, Reason: q.Reason, Since: b.Since}
		if !q.Since.IsZero() {
			st.Since = q.Since
		}
		if st.Reason == "" {
			st.Reason = "correlated_loss"
		}
		return st
	}
	return wire.AdmissionState{Admitting: true, State: StateClosed, Since: b.Since}
}

// QuarantineView is the sweeper's correlated-loss state as the console
// shows it: the stored state and the first quarantined runner ids.
type QuarantineView struct {
	State store.QuarantineState
	IDs   []string
}

// Quarantine reads the correlated-loss state and up to limit quarantined
// runner ids (the sweeper writes them; releasing is the sweeper's too).
func (s *Service) Quarantine(ctx context.Context, limit int) (QuarantineView, error) {
	st, err := s.store.GetQuarantineState(ctx)
	if err = s.observe(err); err != nil {
		return QuarantineView{}, err
	}
	ids, err := s.store.QuarantinedIDs(ctx, limit)
	if err = s.observe(err); err != nil {
		return QuarantineView{}, err
	}
	return QuarantineView{State: st, IDs: ids}, nil
}

// RecentTasks returns up to limit of the newest tasks of the first runners
// runners (in id order), newest first: the store indexes tasks per runner
// only, so this is one read per runner and meant for the console's
// overview, not for a fleet-wide query.
func (s *Service) RecentTasks(ctx context.Context, runners, perRunner, limit int) ([]wire.RunnerTask, error) {
	l, err := s.store.ListRunners(ctx, store.ListRunnersParams{Limit: runners})
	if err = s.observe(err); err != nil {
		return nil, err
	}
	var out []wire.RunnerTask
	for _, r := range l.Runners {
		tl, err := s.store.ListTasks(ctx, store.ListTasksParams{RunnerID: r.ID, Limit: perRunner})
		if err = s.observe(err); err != nil {
			return nil, err
		}
		out = append(out, tl.Tasks...)
	}
	slices.SortStableFunc(out, func(a, b wire.RunnerTask) int { return b.CreatedAt.Compare(a.CreatedAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
