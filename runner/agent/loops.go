package agent

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// processStarted is when this process started (package initialisation, as
// close to it as the agent gets): every heartbeat reports it, so that the
// controller's yggdrasil_runner_uptime_seconds is the agent's uptime, reset
// by a restart or a self-update, and not the host's.
var processStarted = time.Now().UTC().Truncate(time.Millisecond)

func (a *Agent) heartbeat(ctx context.Context, s *session) (wire.HeartbeatResponse, error) {
	n := a.running()
	p := wire.HeartbeatPayload{
		RunnerID:     s.id,
		LeaseEpoch:   s.epoch,
		Status:       a.activity(),
		TasksRunning: &n,
		Version:      a.cfg.Version,
		StartedAt:    &processStarted,
	}
	if a.deps.Resources != nil {
		p.Resources = a.deps.Resources(ctx)
	}
	return s.rc.Heartbeat(ctx, p)
}

// heartbeatLoop renews the lease at the interval the controller asked for,
// with jitter, and reacts to its refusals.
func (a *Agent) heartbeatLoop(ctx context.Context) {
	bo := newBackoff(a.cfg.BackoffBase, a.cfg.BackoffMax)
	wait := jitter(a.session().interval)
	for {
		if !sleep(ctx, wait) {
			return
		}
		s := a.session()
		resp, err := a.heartbeat(ctx, s)
		if err == nil {
			if bo.attempt > 0 {
				a.log.Info("heartbeat: the controller answers again", "runner_id", s.id, "failed_attempts", bo.attempt)
			}
			bo.reset()
			s = a.handleReply(s, resp)
			wait = jitter(s.interval)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		switch st := client.StatusOf(err); st {
		case http.StatusNotFound:
			a.reestablish(ctx, s, true, err)
			bo.reset()
			wait = jitter(a.session().interval)
		case http.StatusConflict, http.StatusUnauthorized, http.StatusForbidden:
			a.reestablish(ctx, s, false, err)
			bo.reset()
			wait = jitter(a.session().interval)
		default:
			// While the lease is at stake, retries stay within one interval.
			wait = a.retryWait(err, bo, s.interval)
			a.log.Warn("heartbeat failed; retrying", "runner_id", s.id, "epoch", s.epoch, "attempt", bo.attempt,
				"in", wait.Round(time.Millisecond), "err", err)
		}
	}
}

// handleReply applies a heartbeat reply: interval, the realm's drain and
// deregister, tasks, cancellations and a pending update. It returns the
// session as updated.
func (a *Agent) handleReply(s *session, resp wire.HeartbeatResponse) *session {
	a.mu.Lock()
	if a.sess == s && resp.HeartbeatIntervalMs > 0 {
		if iv := time.Duration(resp.HeartbeatIntervalMs) * time.Millisecond; iv != s.interval {
			cp := *s
			cp.interval = iv
			a.sess = &cp
			s = &cp
		}
	}
	was := a.realmDrain
	a.realmDrain = resp.Drain
	a.mu.Unlock()

	// a draining realm: finish the running tasks, take no more
	switch {
	case resp.Drain && !was:
		a.log.Info("the runner's realm is draining: finishing the running tasks, taking no new ones", "runner_id", s.id)
		a.setAccepting(false)
	case !resp.Drain && was:
		a.log.Info("the runner's realm is active again: taking tasks", "runner_id", s.id)
		a.setAccepting(true)
	}
	if resp.Deregister {
		select {
		case a.realmClosed <- struct{}{}:
		default:
		}
	}

	for _, t := range resp.Tasks {
		a.offer(t)
	}
	for _, id := range resp.CancelTaskIDs {
		a.cancelTask(s, id)
	}
	if pu := resp.PendingUpdate; pu != nil {
		a.considerUpdate(*pu)
	}
	return s
}

// cancelTask stops a running task the controller no longer wants. A task
// this agent does not know is acknowledged as failed, so the controller
// stops listing it.
func (a *Agent) cancelTask(s *session, id string) {
	a.mu.Lock()
	t := a.tasks[id]
	seen := a.recent.has(id)
	if t == nil && !seen {
		a.recent.add(id)
	}
	a.mu.Unlock()
	switch {
	case t != nil:
		a.log.Info("controller cancelled the task: stopping it", "task_id", id, "runner_id", s.id)
		t.cancel(errCancelledByController)
	case !seen:
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), a.cfg.HTTPTimeout)
			defer cancel()
			_, err := s.rc.UpdateTask(ctx, s.id, id, wire.TaskUpdatePayload{
				Status: wire.TaskFailed, Error: "cancel requested, but the task is not running on this runner", LeaseEpoch: s.epoch,
			})
			a.log.Info("cancel for a task this runner does not run: acknowledged", "task_id", id, "runner_id", s.id, "answer", errText(err))
		}()
	}
}

// pollLoop long-polls for pending tasks while there is a free slot. It
// complements the heartbeat: a task starts as soon as it is dispatched
// instead of at the next heartbeat.
func (a *Agent) pollLoop(ctx context.Context) {
	bo := newBackoff(a.cfg.BackoffBase, a.cfg.BackoffMax)
	for ctx.Err() == nil {
		a.mu.Lock()
		free := a.cfg.Capacity - len(a.tasks)
		accepting := a.accepting
		a.mu.Unlock()
		if !accepting || free <= 0 {
			select {
			case <-ctx.Done():
				return
			case <-a.slotFree:
			}
			continue
		}
		s := a.session()
		list, err := s.rc.ListTasks(ctx, s.id, client.TaskQuery{Status: wire.TaskPending, Wait: a.cfg.LongPollWait})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait := a.retryWait(err, bo, 0)
			a.log.Debug("long poll failed; retrying", "runner_id", s.id, "in", wait.Round(time.Millisecond), "err", err)
			if definitive(err) {
				// the heartbeat loop repairs the registration; wait for it
				select {
				case <-a.sessionWait():
				case <-time.After(wait):
				case <-ctx.Done():
					return
				}
				continue
			}
			sleep(ctx, wait)
			continue
		}
		bo.reset()
		tasks := list.Tasks
		// newest first on the wire; start the oldest first
		slices.Reverse(tasks)
		started := 0
		for _, t := range tasks {
			if t.Status == wire.TaskPending && a.offer(t) {
				started++
			}
		}
		if len(tasks) > 0 && started == 0 {
			// only tasks already being started, or no room: don't spin
			sleep(ctx, min(time.Second, s.interval))
		}
	}
}

// reportLoop reports queued results until each is accepted or refused for good.
func (a *Agent) reportLoop(ctx context.Context) {
	bo := newBackoff(a.cfg.BackoffBase, a.cfg.BackoffMax)
	wait := time.Duration(0)
	for {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-a.resultsWake:
			case <-t.C:
			}
			t.Stop()
		}
		wait = 30 * time.Second
		for _, r := range a.pendingResults() {
			done, err := a.report(ctx, r)
			if ctx.Err() != nil {
				return
			}
			if !done {
				wait = a.retryWait(err, bo, 0)
				a.log.Warn("reporting a result failed; will retry", "task_id", r.TaskID, "runner_id", r.RunnerID,
					"epoch", r.Epoch, "attempt", bo.attempt, "in", wait.Round(time.Millisecond), "err", err)
				break
			}
			bo.reset()
		}
	}
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}
