// Package agent is the Ratatoskr runner's control loop: it registers with the
// controller (or resumes its saved identity), heartbeats with host resources,
// takes tasks from heartbeat replies and from the long poll, runs them
// through Executors, reports their results with the lease epoch, drains on
// shutdown and applies self-updates.
//
// It is a good citizen: 409 re-registers as the same runner, 404 registers
// anew, 429/503 wait for Retry-After, network errors back off exponentially
// with full jitter. A finished task's result is persisted in the state
// directory before it is reported, and retried until the controller accepts
// it or answers that it can never be accepted.
//
// It must never read the environment (main passes a Config), never log a
// token or key, and never kill a task's process itself: executors own that.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/runner/state"
	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// Errors Run returns; main turns them into exit codes.
var (
	// ErrUpdated: the update command succeeded; exit with the update status
	// so the supervisor restarts the agent on the new version.
	ErrUpdated = errors.New("agent: updated, restart on the new version")
	// ErrStopped: stopped at once (SIGQUIT or a second SIGTERM).
	ErrStopped = errors.New("agent: stopped at once")
	// ErrUnauthorized: the controller refused the API key.
	ErrUnauthorized = errors.New("agent: the controller refused YGGDRASIL_API_KEY")
	// ErrRejected: the controller refused the registration as invalid.
	ErrRejected = errors.New("agent: the controller rejected the registration")
)

// Causes recorded on a cancelled task's context (and so in its error).
var (
	errCancelledByController = errors.New("the controller listed the task in cancelTaskIds")
	errLeaseLost             = errors.New("the runner lost its lease: the controller no longer expects this result")
	errDrainTimeout          = errors.New("the runner is shutting down and the drain timeout passed")
)

// Config is what the agent needs to know; main builds it from config.Runner.
type Config struct {
	URL      string
	APIKey   string
	Name     string
	Version  string
	Realm    string
	Endpoint string
	Labels   map[string]string
	Capacity int

	LongPollWait  time.Duration // 0: tasks come with heartbeats only
	DrainTimeout  time.Duration
	UpdateCommand string
	UpdateTimeout time.Duration
	// UpdateRetry is how long an update that failed (or did not change the
	// version) is not tried again. Default 10 minutes.
	UpdateRetry time.Duration
	BackoffBase time.Duration
	BackoffMax  time.Duration
	HTTPTimeout time.Duration
	// KillGrace bounds how long a stopped task may take to exit.
	KillGrace time.Duration
}

// Outcome is how a task ended.
type Outcome struct {
	Status wire.TaskStatus
	Result json.RawMessage
	Error  string
}

// Executor runs one task until it ends or ctx is cancelled
// (context.Cause(ctx) says why).
type Executor func(ctx context.Context, t wire.RunnerTask) Outcome

// Deps are the agent's collaborators.
type Deps struct {
	State     *state.Dir
	Executors map[string]Executor
	// Resources reads the host for the heartbeat; nil sends none.
	Resources func(context.Context) *wire.SystemResources
	Log       *slog.Logger
	// HTTPClient is optional; its Timeout should exceed LongPollWait.
	HTTPClient *http.Client
	// UpdateEnviron is the environment of the update command (no secrets).
	UpdateEnviron []string
}

// session is one registration: immutable, replaced as a whole.
type session struct {
	id       string
	token    string
	epoch    int64
	interval time.Duration
	gen      uint64
	rc       *client.Client // authenticated with token
}

type task struct {
	t      wire.RunnerTask
	cancel context.CancelCauseFunc
}

// Agent is one runner. Create it with New and call Run once.
type Agent struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	api  *client.Client // authenticated with the API key

	mu          sync.Mutex
	sess        *session
	sessChanged chan struct{} // closed when sess is replaced
	accepting   bool
	// realmDrain: the last heartbeat reply said the realm is draining (the
	// agent stopped accepting tasks for it, and accepts again when it ends).
	realmDrain bool
	// realmClosed is signalled when a reply says the realm is closed: the
	// agent then drains, deregisters and Run returns nil.
	realmClosed  chan struct{}
	tasks        map[string]*task
	recent       *idSet
	updateSent   bool
	memResults   map[string]state.Result // results the disk refused
	lastAttempt  state.UpdateAttempt
	updateFailed map[string]time.Time

	taskWG      sync.WaitGroup
	slotFree    chan struct{}
	resultsWake chan struct{}
	updateCh    chan wire.PendingUpdate
	fatal       chan error
}

// New checks the configuration and returns an agent.
func New(cfg Config, deps Deps) (*Agent, error) {
	if cfg.Capacity < 1 {
		return nil, fmt.Errorf("agent: capacity %d is below 1", cfg.Capacity)
	}
	if deps.State == nil {
		return nil, errors.New("agent: no state directory")
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 500 * time.Millisecond
	}
	if cfg.BackoffMax < cfg.BackoffBase {
		cfg.BackoffMax = max(30*time.Second, cfg.BackoffBase)
	}
	if cfg.UpdateRetry <= 0 {
		cfg.UpdateRetry = 10 * time.Minute
	}
	if cfg.UpdateTimeout <= 0 {
		cfg.UpdateTimeout = 10 * time.Minute
	}
	if cfg.HTTPTimeout <= 0 {
		cfg.HTTPTimeout = 30 * time.Second
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	hc := deps.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: cfg.HTTPTimeout}
	}
	deps.HTTPClient = hc
	ua := "ratatoskr/" + cfg.Version
	return &Agent{
		cfg:          cfg,
		deps:         deps,
		log:          deps.Log,
		api:          client.New(cfg.URL, cfg.APIKey, client.WithHTTPClient(hc), client.WithUserAgent(ua)),
		sessChanged:  make(chan struct{}),
		accepting:    true,
		tasks:        map[string]*task{},
		recent:       newIDSet(4096),
		memResults:   map[string]state.Result{},
		updateFailed: map[string]time.Time{},
		slotFree:     make(chan struct{}, 1),
		resultsWake:  make(chan struct{}, 1),
		updateCh:     make(chan wire.PendingUpdate, 1),
		fatal:        make(chan error, 1),
		realmClosed:  make(chan struct{}, 1),
	}, nil
}

// Run registers (or resumes), then works until one of these happens:
//   - ctx ends: drain (stop taking tasks, let running ones finish for
//     DrainTimeout, then stop them), report results, deregister; returns nil;
//   - hard ends (at any time, even while draining): kill the tasks' process
//     groups at once and return ErrStopped without deregistering;
//   - a heartbeat reply says the realm is closed ("deregister"): drain and
//     deregister as for ctx; returns nil;
//   - an update was applied: returns ErrUpdated;
//   - the API key is refused: returns ErrUnauthorized.
func (a *Agent) Run(ctx, hard context.Context) error {
	a.recoverState()
	if err := a.start(ctx, hard); err != nil {
		if hard.Err() != nil {
			return ErrStopped
		}
		if ctx.Err() != nil {
			a.log.Info("stopped before the registration completed")
			return nil
		}
		return err
	}

	work, stopWork := context.WithCancel(hard)
	var loops sync.WaitGroup
	loops.Go(func() { a.heartbeatLoop(work) })
	if a.cfg.LongPollWait > 0 {
		loops.Go(func() { a.pollLoop(work) })
	}
	loops.Go(func() { a.reportLoop(work) })
	stopLoops := func() {
		stopWork()
		loops.Wait()
	}

	for {
		select {
		case <-hard.Done():
			a.killAll()
			stopLoops()
			return ErrStopped
		case err := <-a.fatal:
			a.log.Error("giving up", "err", err)
			a.killAll()
			stopLoops()
			return err
		case <-ctx.Done():
			return a.shutdown(hard, stopLoops)
		case <-a.realmClosed:
			a.log.Info("the runner's realm is closed: draining and deregistering", "runner_id", a.session().id)
			return a.shutdown(hard, stopLoops)
		case pu := <-a.updateCh:
			err := a.update(ctx, hard, pu)
			if err == nil {
				stopLoops()
				return ErrUpdated
			}
			if ctx.Err() != nil || hard.Err() != nil {
				continue // the select above drains or stops
			}
			a.log.Error("update failed: back to work on the current version", "version", a.cfg.Version,
				"want", pu.Version, "retry_in", a.cfg.UpdateRetry, "err", err)
			a.mu.Lock()
			a.updateFailed[normVersion(pu.Version)] = time.Now()
			a.updateSent = false
			a.mu.Unlock()
			a.setAccepting(true)
		}
	}
}

// recoverState turns the tasks a previous incarnation was running into
// failed results (their processes died with it) and counts what is queued.
func (a *Agent) recoverState() {
	running, err := a.deps.State.Running()
	if err != nil {
		a.log.Error("state: some running-task records are unreadable", "err", err)
	}
	for _, r := range running {
		a.log.Warn("task was running when ratatoskr stopped: reporting it failed",
			"task_id", r.TaskID, "runner_id", r.RunnerID, "epoch", r.Epoch)
		a.queue(state.Result{
			TaskID: r.TaskID, RunnerID: r.RunnerID, Epoch: r.Epoch, Status: string(wire.TaskFailed),
			Error:      "ratatoskr restarted while the task was running; its process was lost",
			FinishedAt: time.Now().UTC(),
		})
	}
	results, err := a.deps.State.Results()
	if err != nil {
		a.log.Error("state: some queued results are unreadable", "err", err)
	}
	if len(results) > 0 {
		a.log.Info("unreported results from an earlier run will be reported", "count", len(results))
	}
	if u, ok, err := a.deps.State.LastUpdate(); err == nil && ok {
		a.lastAttempt = u
	}
}

func (a *Agent) session() *session {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sess
}

// setSession installs a new registration and wakes whoever waits for one.
func (a *Agent) setSession(s *session) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sess != nil {
		s.gen = a.sess.gen + 1
	}
	a.sess = s
	close(a.sessChanged)
	a.sessChanged = make(chan struct{})
}

func (a *Agent) sessionWait() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sessChanged
}

func (a *Agent) newSession(id, token string, epoch, intervalMs int64) *session {
	interval := time.Duration(intervalMs) * time.Millisecond
	if interval <= 0 {
		interval = 15 * time.Second
	}
	return &session{
		id: id, token: token, epoch: epoch, interval: interval,
		rc: a.api.WithCredential(token),
	}
}

func (a *Agent) setAccepting(on bool) {
	a.mu.Lock()
	a.accepting = on
	a.mu.Unlock()
	a.signal(a.slotFree)
}

func (a *Agent) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (a *Agent) running() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.tasks)
}

func (a *Agent) activity() wire.RunnerStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case !a.accepting:
		return wire.RunnerDraining
	case len(a.tasks) > 0:
		return wire.RunnerBusy
	}
	return wire.RunnerIdle
}

// cancelAll stops every task with cause and returns how many there were.
func (a *Agent) cancelAll(cause error) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range a.tasks {
		t.cancel(cause)
	}
	return len(a.tasks)
}

// waitTasks waits until no task runs, ctx ends or limit passes (0 = no
// limit); it reports whether no task runs.
func (a *Agent) waitTasks(ctx context.Context, limit time.Duration) bool {
	done := make(chan struct{})
	go func() {
		a.taskWG.Wait()
		close(done)
	}()
	var timeout <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-done:
		return true
	case <-ctx.Done():
	case <-timeout:
	}
	return a.running() == 0
}

// killAll kills every task's process group at once and waits briefly.
func (a *Agent) killAll() {
	if n := a.cancelAll(errKill); n > 0 {
		a.log.Warn("stopping at once: killing running tasks", "count", n)
		a.waitTasks(context.Background(), 3*time.Second)
	}
}

// shutdown drains, reports and deregisters.
func (a *Agent) shutdown(hard context.Context, stopLoops func()) error {
	n := a.running()
	a.log.Info("draining: no new tasks; waiting for the running ones", "running", n, "drain_timeout", a.cfg.DrainTimeout)
	a.setAccepting(false)
	if !a.waitTasks(hard, a.cfg.DrainTimeout) {
		if hard.Err() != nil {
			a.killAll()
			stopLoops()
			return ErrStopped
		}
		a.log.Warn("drain timeout passed: stopping the tasks still running", "count", a.cancelAll(errDrainTimeout))
		if !a.waitTasks(hard, a.cfg.KillGrace+5*time.Second) && hard.Err() != nil {
			a.killAll()
			stopLoops()
			return ErrStopped
		}
	}
	if left := a.flushResults(hard, 15*time.Second); left > 0 {
		a.log.Warn("results still unreported at shutdown: kept in the state directory for the next start", "count", left)
	}
	stopLoops()
	if hard.Err() != nil {
		return ErrStopped
	}
	s := a.session()
	ctx, cancel := context.WithTimeout(hard, 10*time.Second)
	defer cancel()
	resp, err := s.rc.Offline(ctx, wire.OfflinePayload{RunnerID: s.id, Reason: "ratatoskr shutting down"})
	switch {
	case err == nil:
		a.log.Info("deregistered", "runner_id", s.id, "epoch", s.epoch, "failed_tasks", len(resp.FailedTaskIDs))
	case client.StatusOf(err) == http.StatusConflict || client.StatusOf(err) == http.StatusNotFound:
		a.log.Info("deregistration: the controller already has this runner offline", "runner_id", s.id, "err", err)
	default:
		a.log.Warn("deregistration failed: the lease will expire instead", "runner_id", s.id, "err", err)
	}
	return nil
}

// flushResults wakes the reporter and waits until nothing is queued or
// limit passes; it returns how many results are still queued.
func (a *Agent) flushResults(ctx context.Context, limit time.Duration) int {
	deadline := time.Now().Add(limit)
	for {
		n := a.queued()
		if n == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return n
		}
		a.signal(a.resultsWake)
		sleep(ctx, 50*time.Millisecond)
	}
}

func normVersion(v string) string { return strings.TrimPrefix(strings.TrimSpace(v), "v") }

func (a *Agent) executorTypes() string {
	var types []string
	for k := range a.deps.Executors {
		types = append(types, k)
	}
	slices.Sort(types)
	if len(types) == 0 {
		return "none"
	}
	return strings.Join(types, ", ")
}

// idSet is a bounded set of ids, forgetting the oldest first.
type idSet struct {
	max   int
	order []string
	set   map[string]struct{}
}

func newIDSet(n int) *idSet { return &idSet{max: n, set: map[string]struct{}{}} }

func (s *idSet) has(id string) bool { _, ok := s.set[id]; return ok }

func (s *idSet) add(id string) {
	if s.has(id) {
		return
	}
	s.set[id] = struct{}{}
	s.order = append(s.order, id)
	if len(s.order) > s.max {
		delete(s.set, s.order[0])
		s.order = s.order[1:]
	}
}
