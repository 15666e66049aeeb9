package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/yggdrasil-cp/yggdrasil/runner/executor"
	"github.com/yggdrasil-cp/yggdrasil/runner/state"
	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

var errKill = executor.ErrKill

// ShellExecutor runs `shell` tasks with s. A task stopped because the
// controller cancelled it ends cancelled; any other failure ends failed.
func ShellExecutor(s *executor.Shell) Executor {
	return func(ctx context.Context, t wire.RunnerTask) Outcome {
		res, err := s.Run(ctx, t.Payload, time.Duration(t.TimeoutMs)*time.Millisecond)
		out := Outcome{Status: wire.TaskSucceeded}
		if res != nil {
			b, mErr := json.Marshal(res)
			if mErr == nil {
				out.Result = b
			}
		}
		if err != nil {
			out.Status = wire.TaskFailed
			out.Error = err.Error()
			if errors.Is(context.Cause(ctx), errCancelledByController) {
				out.Status = wire.TaskCancelled
			}
		}
		return out
	}
}

// offer starts t if there is room and it is not known already; tasks come
// from heartbeat replies and the long poll alike, so duplicates are normal.
func (a *Agent) offer(t wire.RunnerTask) bool {
	if t.ID == "" {
		return false
	}
	a.mu.Lock()
	if !a.accepting || a.tasks[t.ID] != nil || a.recent.has(t.ID) || len(a.tasks) >= a.cfg.Capacity {
		a.mu.Unlock()
		return false
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	a.tasks[t.ID] = &task{t: t, cancel: cancel}
	a.taskWG.Add(1)
	a.mu.Unlock()
	go a.runTask(ctx, t)
	return true
}

func (a *Agent) taskDone(id string, final bool) {
	a.mu.Lock()
	if t := a.tasks[id]; t != nil {
		t.cancel(context.Canceled)
		delete(a.tasks, id)
	}
	if final {
		a.recent.add(id)
	}
	a.mu.Unlock()
	a.taskWG.Done()
	a.signal(a.slotFree)
}

func (a *Agent) runTask(ctx context.Context, t wire.RunnerTask) {
	s := a.session()
	log := a.log.With("task_id", t.ID, "type", t.Type, "runner_id", s.id, "epoch", s.epoch)
	exec, ok := a.deps.Executors[t.Type]
	if !ok {
		msg := fmt.Sprintf("unknown task type %q: this runner runs %s", t.Type, a.executorTypes())
		log.Warn("refusing task", "reason", msg)
		a.queue(state.Result{TaskID: t.ID, RunnerID: s.id, Epoch: s.epoch, Status: string(wire.TaskFailed), Error: msg, FinishedAt: time.Now().UTC()})
		a.taskDone(t.ID, true)
		return
	}
	if err := a.claim(ctx, s, t); err != nil {
		final := definitive(err)
		log.Info("task not started", "err", err, "final", final)
		// a refused claim (terminal task, stale epoch) is not retried; after a
		// new registration the task comes back as pending if it still is
		a.taskDone(t.ID, final && !errors.Is(err, errSessionChanged) && client.StatusOf(err) != http.StatusConflict)
		return
	}
	started := time.Now()
	if err := a.deps.State.MarkRunning(state.Running{TaskID: t.ID, RunnerID: s.id, Epoch: s.epoch, Type: t.Type, StartedAt: started.UTC()}); err != nil {
		log.Error("state: cannot record the running task", "err", err)
	}
	log.Info("task started")
	out := exec(ctx, t)
	log.Info("task finished", "status", out.Status, "err", out.Error, "duration", time.Since(started).Round(time.Millisecond))
	a.queue(state.Result{TaskID: t.ID, RunnerID: s.id, Epoch: s.epoch, Status: string(out.Status), Result: out.Result, Error: out.Error, FinishedAt: time.Now().UTC()})
	a.taskDone(t.ID, true)
}

// claim moves the task to running under s's epoch, retrying until the
// controller answers: a lost response must not leave a task running that
// nobody runs (running -> running is a no-op, so retrying is safe).
func (a *Agent) claim(ctx context.Context, s *session, t wire.RunnerTask) error {
	bo := newBackoff(a.cfg.BackoffBase, a.cfg.BackoffMax)
	for {
		_, err := s.rc.UpdateTask(ctx, s.id, t.ID, wire.TaskUpdatePayload{Status: wire.TaskRunning, LeaseEpoch: s.epoch})
		if err == nil || definitive(err) {
			return err
		}
		if cur := a.session(); cur.id != s.id || cur.epoch != s.epoch {
			return errSessionChanged
		}
		if !sleep(ctx, a.retryWait(err, bo, s.interval)) {
			return context.Cause(ctx)
		}
	}
}

// queue persists a result, and wakes the reporter. When the disk refuses,
// the result is kept in memory: it is still reported unless the agent dies.
func (a *Agent) queue(r state.Result) {
	r.Error = cleanText(r.Error, maxErrorLen)
	if err := a.deps.State.QueueResult(r); err != nil {
		a.log.Error("state: cannot persist a result; keeping it in memory", "task_id", r.TaskID, "err", err)
		a.mu.Lock()
		a.memResults[r.TaskID] = r
		a.mu.Unlock()
	}
	a.signal(a.resultsWake)
}

func (a *Agent) pendingResults() []state.Result {
	rs, err := a.deps.State.Results()
	if err != nil {
		a.log.Error("state: some queued results are unreadable", "err", err)
	}
	a.mu.Lock()
	for _, r := range a.memResults {
		rs = append(rs, r)
	}
	a.mu.Unlock()
	return rs
}

func (a *Agent) queued() int { return len(a.pendingResults()) }

func (a *Agent) dropResult(r state.Result) {
	if err := a.deps.State.DoneResult(r.TaskID); err != nil {
		a.log.Error("state: cannot remove a reported result", "task_id", r.TaskID, "err", err)
	}
	a.mu.Lock()
	delete(a.memResults, r.TaskID)
	a.mu.Unlock()
}

// report sends one result. done is true when the result needs no more
// attempts: accepted, or refused for good (logged, since that result is lost).
func (a *Agent) report(ctx context.Context, r state.Result) (done bool, err error) {
	s := a.session()
	log := a.log.With("task_id", r.TaskID, "runner_id", r.RunnerID, "epoch", r.Epoch, "status", r.Status)
	if r.RunnerID != s.id {
		log.Warn("result lost: its runner was forgotten by the controller and this agent registered as a new one", "new_runner_id", s.id)
		a.dropResult(r)
		return true, nil
	}
	_, err = s.rc.UpdateTask(ctx, r.RunnerID, r.TaskID, wire.TaskUpdatePayload{
		Status: wire.TaskStatus(r.Status), Result: r.Result, Error: r.Error, LeaseEpoch: r.Epoch,
	})
	st := client.StatusOf(err)
	switch {
	case err == nil:
		log.Info("result reported")
	case st == http.StatusConflict:
		// the task is terminal already (cancelled, or failed when the lease
		// expired) or its epoch is gone: the controller will never take it
		log.Warn("result refused for good: the task is already finished or its lease is gone", "err", err)
	case st == http.StatusNotFound:
		log.Warn("result refused for good: the controller no longer knows the task", "err", err)
	case (st == http.StatusRequestEntityTooLarge || st == http.StatusUnprocessableEntity) && len(r.Result) > 0:
		log.Warn("the controller refused the result body: reporting the status without it", "err", err)
		r.Error = fmt.Sprintf("%s (result dropped: the controller refused it: %v)", r.Error, err)
		r.Result = nil
		a.queue(r)
		return false, err
	case definitive(err) && st != http.StatusUnauthorized && st != http.StatusForbidden:
		log.Error("result refused for good", "err", err)
	default:
		return false, err
	}
	a.dropResult(r)
	return true, nil
}

// maxErrorLen keeps a task's error under the controller's limit (4096).
const maxErrorLen = 4000

// cleanText makes s acceptable as a task error: printable, bounded.
func cleanText(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || (!unicode.IsPrint(r) && r != ' ') {
			return ' '
		}
		return r
	}, s)
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}
