package client

import (
	"context"
	"fmt"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// MaxLongPoll is the longest wait WaitTask asks for in one request: under
// the api's LONG_POLL_MAX_MS default (30 s) and well under DefaultTimeout.
const MaxLongPoll = 25 * time.Second

// WaitTask waits until task of runnerID is finished (succeeded, failed or
// cancelled) and returns it; see [Client.WaitTaskStatus].
func (c *Client) WaitTask(ctx context.Context, runnerID, taskID string) (wire.RunnerTask, error) {
	return c.WaitTaskStatus(ctx, runnerID, taskID, TerminalStatuses...)
}

// WaitTaskStatus waits until task of runnerID is in one of statuses and
// returns it. It long-polls that one task (GET /runners/:id/tasks?task=...
// &status=...&wait=...), so the api answers as soon as the task changes, on
// any replica; it asks again until ctx ends (then it returns ctx's error),
// and rides out 429/502/503/504 and transport errors with backoff. An
// unknown task (or one of another runner) is a 404 *Error at once.
func (c *Client) WaitTaskStatus(ctx context.Context, runnerID, taskID string, statuses ...wire.TaskStatus) (wire.RunnerTask, error) {
	if len(statuses) == 0 {
		return wire.RunnerTask{}, fmt.Errorf("%w: WaitTaskStatus needs at least one status", ErrInvalidFilter)
	}
	q := TaskQuery{Task: taskID, Statuses: statuses, Wait: MaxLongPoll}
	if _, err := q.statuses(); err != nil {
		return wire.RunnerTask{}, err
	}
	backoff := RetryPolicy{Attempts: 1 << 30, Base: 200 * time.Millisecond, Max: 5 * time.Second}
	for {
		if dl, ok := ctx.Deadline(); ok {
			// end the last poll with the context, not after it
			q.Wait = min(MaxLongPoll, max(time.Until(dl), time.Millisecond))
		}
		l, err := Retry(ctx, backoff, func(ctx context.Context) (wire.TaskList, error) {
			return c.ListTasks(ctx, runnerID, q)
		})
		if ctx.Err() != nil {
			return wire.RunnerTask{}, fmt.Errorf("yggdrasil: wait for task %s: %w", taskID, ctx.Err())
		}
		if err != nil {
			return wire.RunnerTask{}, err
		}
		if len(l.Tasks) > 0 {
			return l.Tasks[0], nil
		}
	}
}

// CancelTask cancels a task (operator key): pending or running, it becomes
// cancelled and a running one is told to stop on the runner's next
// heartbeat. A task already finished is a 409 *Error.
func (c *Client) CancelTask(ctx context.Context, runnerID, taskID, reason string) (wire.RunnerTask, error) {
	p := wire.TaskUpdatePayload{Status: wire.TaskCancelled}
	if reason != "" {
		p.Error = reason
	}
	return c.UpdateTask(ctx, runnerID, taskID, p)
}
