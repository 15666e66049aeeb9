package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/runner/state"
	"github.com/yggdrasil-cp/yggdrasil/shared/client"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// start resumes the saved identity or registers. Resuming heartbeats under
// the saved token and epoch: when the lease is still alive the runner keeps
// its epoch, so results queued by the previous process can still be
// reported. Only when the controller says no does it register again.
func (a *Agent) start(ctx, hard context.Context) error {
	// registration may be interrupted by a drain request too
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-hard.Done():
			cancel()
		case <-ctx.Done():
		}
	}()

	id, ok, err := a.deps.State.Identity()
	if err != nil {
		a.log.Error("state: identity unreadable: registering as a new runner", "err", err)
		ok = false
	}
	if ok && id.URL != a.cfg.URL {
		a.log.Warn("saved identity belongs to another controller: registering as a new runner",
			"runner_id", id.RunnerID, "saved_url", id.URL, "url", a.cfg.URL)
		ok = false
	}
	if !ok {
		_, err := a.register(ctx, "")
		return err
	}

	s := a.newSession(id.RunnerID, id.Token, id.Epoch, 0)
	bo := newBackoff(a.cfg.BackoffBase, a.cfg.BackoffMax)
	for {
		resp, err := a.heartbeat(ctx, s)
		if err == nil {
			s = a.newSession(s.id, s.token, resp.LeaseEpoch, resp.HeartbeatIntervalMs)
			a.setSession(s)
			a.log.Info("resumed as the same runner under the same lease", "runner_id", s.id, "epoch", s.epoch,
				"heartbeat_interval", s.interval)
			a.handleReply(s, resp)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch st := client.StatusOf(err); st {
		case http.StatusNotFound:
			a.log.Warn("the controller does not know the saved runner: registering as a new runner", "runner_id", s.id)
			if err := a.deps.State.ClearIdentity(); err != nil {
				a.log.Error("state: cannot clear identity", "err", err)
			}
			_, err := a.register(ctx, "")
			return err
		case http.StatusConflict, http.StatusUnauthorized, http.StatusForbidden:
			a.log.Info("saved lease is gone: registering again as the same runner", "runner_id", s.id, "epoch", s.epoch, "status", st)
			_, err := a.register(ctx, s.id)
			return err
		}
		wait := a.retryWait(err, bo, 0)
		a.log.Warn("cannot reach the controller to resume; retrying", "runner_id", s.id, "in", wait.Round(time.Millisecond), "err", err)
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// register registers with id ("" for a new runner) until it succeeds, the
// controller refuses for good, or ctx ends.
func (a *Agent) register(ctx context.Context, id string) (*session, error) {
	bo := newBackoff(a.cfg.BackoffBase, a.cfg.BackoffMax)
	for {
		resp, err := a.api.Register(ctx, wire.RegisterRunnerPayload{
			RunnerID: id, Name: a.cfg.Name, Version: a.cfg.Version, Realm: a.cfg.Realm,
			Endpoint: a.cfg.Endpoint, Labels: a.cfg.Labels, Capacity: a.cfg.Capacity,
		})
		if err == nil {
			s := a.newSession(resp.ID, resp.Token, resp.LeaseEpoch, resp.HeartbeatIntervalMs)
			if err := a.deps.State.SaveIdentity(state.Identity{RunnerID: s.id, Token: s.token, Epoch: s.epoch, URL: a.cfg.URL}); err != nil {
				// The runner works; only a restart would come back as a new runner.
				a.log.Error("state: cannot save identity", "err", err)
			}
			a.setSession(s)
			a.log.Info("registered", "runner_id", s.id, "epoch", s.epoch, "same_runner", id != "" && id == s.id,
				"heartbeat_interval", s.interval, "lease_ttl_ms", resp.LeaseTTLMs, "version", a.cfg.Version)
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		st := client.StatusOf(err)
		switch {
		case st == http.StatusUnauthorized || st == http.StatusForbidden:
			return nil, fmt.Errorf("%w: %w", ErrUnauthorized, err)
		case id != "" && (st == http.StatusNotFound || st == http.StatusUnprocessableEntity || st == http.StatusBadRequest):
			a.log.Warn("the controller refused the saved runner id: registering as a new runner", "runner_id", id, "err", err)
			id = ""
			if err := a.deps.State.ClearIdentity(); err != nil {
				a.log.Error("state: cannot clear identity", "err", err)
			}
			continue
		case st == http.StatusBadRequest || st == http.StatusUnprocessableEntity || st == http.StatusRequestEntityTooLarge:
			return nil, fmt.Errorf("%w: %w", ErrRejected, err)
		}
		wait := a.retryWait(err, bo, 0)
		a.log.Warn("registration failed; retrying", "in", wait.Round(time.Millisecond), "err", err)
		if !sleep(ctx, wait) {
			return nil, ctx.Err()
		}
	}
}

// reestablish registers again after the controller refused a heartbeat.
// The running tasks belonged to the lost lease: the controller has failed
// them already and will refuse their results, so they are stopped.
func (a *Agent) reestablish(ctx context.Context, old *session, fresh bool, why error) {
	if n := a.cancelAll(errLeaseLost); n > 0 {
		a.log.Warn("lease lost: stopping the tasks of the old lease", "count", n, "runner_id", old.id, "epoch", old.epoch)
	}
	id := old.id
	if fresh {
		a.log.Warn("the controller does not know this runner: registering as a new runner", "runner_id", old.id, "err", why)
		id = ""
		if err := a.deps.State.ClearIdentity(); err != nil {
			a.log.Error("state: cannot clear identity", "err", err)
		}
	} else {
		a.log.Warn("lease refused: registering again as the same runner", "runner_id", old.id, "epoch", old.epoch, "err", why)
	}
	if _, err := a.register(ctx, id); err != nil && ctx.Err() == nil {
		select {
		case a.fatal <- err:
		default:
		}
	}
}

// retryWait is how long to wait after a failed call: Retry-After on 429
// and 503 when the controller sent one, else the next backoff (bounded by
// limit when > 0).
func (a *Agent) retryWait(err error, bo *backoff, limit time.Duration) time.Duration {
	st := client.StatusOf(err)
	if st == http.StatusTooManyRequests || st == http.StatusServiceUnavailable {
		if ra := client.RetryAfterOf(err); ra > 0 {
			bo.attempt++
			return ra
		}
	}
	return bo.within(limit)
}

// definitive reports whether err is an answer that a retry cannot change.
func definitive(err error) bool {
	st := client.StatusOf(err)
	return st >= 400 && st < 500 && st != http.StatusTooManyRequests && st != http.StatusRequestTimeout
}

var errSessionChanged = errors.New("the runner registered again meanwhile")
