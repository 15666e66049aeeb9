package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// dispatch.lua's return codes.
const (
	dispatchCreated     = 0
	dispatchNotFound    = 1
	dispatchNotOnline   = 2
	dispatchDraining    = 3
	dispatchRealmClosed = 7
	dispatchExisting    = 5
	dispatchReused      = 6
)

// task_update.lua's return codes.
const (
	taskUpdateDone       = 0
	taskUpdateNotFound   = 1
	taskUpdateStaleEpoch = 3
	taskUpdateTerminal   = 4
	taskUpdateIllegal    = 5
)

// task_timeout.lua's return codes (1, 3 and 4 need nothing from the caller).
const (
	taskTimeoutFailed     = 0
	taskTimeoutWrongOwner = 2
)

// DispatchParams describes a task to dispatch. IdempotencyKey, when set, makes
// a retried dispatch return the task the first one created.
type DispatchParams struct {
	RunnerID       string
	Type           string
	Payload        json.RawMessage
	Timeout        time.Duration
	IdempotencyKey string
}

// Dispatch creates a pending task. created is false when the idempotency key
// returned an existing task. A runner that is unknown, offline, unreachable
// or draining takes none: ErrRunnerNotFound, ErrRunnerOffline,
// ErrRunnerUnreachable, ErrRunnerDraining.
func (s *Store) Dispatch(ctx context.Context, p DispatchParams) (task wire.RunnerTask, created bool, err error) {
	tid := NewID("tsk_")
	useIdem := "0"
	if p.IdempotencyKey != "" {
		useIdem = "1"
	}
	keys := []string{
		RunnerKey(p.RunnerID), TaskKey(tid), RunnerTasksKey(p.RunnerID), RunnerPendingKey(p.RunnerID),
		RunnerActiveKey(p.RunnerID), TaskDeadlinesKey(), IdempotencyKey(p.RunnerID, p.IdempotencyKey), StatsKey(),
		TasksKey(),
	}
	res, err := dispatchScript.Run(ctx, s.rdb, keys,
		tid, p.RunnerID, p.Type, string(p.Payload), p.Timeout.Milliseconds(), useIdem,
		s.opts.IdempotencyTTL.Milliseconds(), DispatchChannel(), fingerprint(p), RealmRecordPrefix,
	).Slice()
	if err != nil {
		return wire.RunnerTask{}, false, fmt.Errorf("store: dispatch to %s: %w", p.RunnerID, err)
	}
	switch scriptCode(res) {
	case dispatchCreated:
		created := time.UnixMilli(toInt(res[2])).UTC()
		return wire.RunnerTask{
			ID: tid, RunnerID: p.RunnerID, Type: p.Type, Payload: p.Payload, Status: wire.TaskPending,
			TimeoutMs: p.Timeout.Milliseconds(), CreatedAt: created,
		}, true, nil
	case dispatchExisting:
		t, err := s.GetTask(ctx, toString(res[1]))
		return t, false, err
	case dispatchReused:
		return wire.RunnerTask{}, false, fmt.Errorf("store: dispatch to %s (key made task %s): %w", p.RunnerID, toString(res[1]), ErrIdempotencyReused)
	case dispatchNotFound:
		return wire.RunnerTask{}, false, fmt.Errorf("store: dispatch to %s: %w", p.RunnerID, ErrRunnerNotFound)
	case dispatchDraining:
		return wire.RunnerTask{}, false, fmt.Errorf("store: dispatch to %s: %w", p.RunnerID, ErrRunnerDraining)
	case dispatchRealmClosed:
		return wire.RunnerTask{}, false, fmt.Errorf("store: dispatch to %s: %w", p.RunnerID, realmStateErr(toString(res[1])))
	case dispatchNotOnline:
		if toString(res[1]) == string(wire.RunnerUnreachable) {
			return wire.RunnerTask{}, false, fmt.Errorf("store: dispatch to %s: %w", p.RunnerID, ErrRunnerUnreachable)
		}
		return wire.RunnerTask{}, false, fmt.Errorf("store: dispatch to %s: %w", p.RunnerID, ErrRunnerOffline)
	}
	return wire.RunnerTask{}, false, fmt.Errorf("store: dispatch to %s: %w", p.RunnerID, errUnexpectedResponse)
}

// fingerprint identifies what a dispatch asks for, so that an
// Idempotency-Key reused for a different request is refused instead of
// silently answered with another task. JSON is compacted first: the same
// payload with other white space is the same request.
func fingerprint(p DispatchParams) string {
	var payload bytes.Buffer
	if json.Compact(&payload, p.Payload) != nil {
		payload.Reset()
		payload.Write(p.Payload)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00", p.Type, p.Timeout.Milliseconds())
	h.Write(payload.Bytes())
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// GetTask reads one task.
func (s *Store) GetTask(ctx context.Context, id string) (wire.RunnerTask, error) {
	m, err := s.rdb.HGetAll(ctx, TaskKey(id)).Result()
	if err != nil {
		return wire.RunnerTask{}, fmt.Errorf("store: get task %s: %w", id, err)
	}
	if len(m) == 0 {
		return wire.RunnerTask{}, fmt.Errorf("store: get task %s: %w", id, ErrTaskNotFound)
	}
	return decodeTask(m), nil
}

// ListTasksParams filters and pages a runner's tasks, newest first. Cursor is
// the opaque NextCursor of the previous page.
type ListTasksParams struct {
	RunnerID string
	Status   wire.TaskStatus
	// Statuses, when set, keeps the tasks in any of these statuses (Status,
	// when set too, is one more).
	Statuses []wire.TaskStatus
	Cursor   string
	Limit    int
}

func (p ListTasksParams) keeps(st wire.TaskStatus) bool {
	if p.Status == "" && len(p.Statuses) == 0 {
		return true
	}
	return st == p.Status || slices.Contains(p.Statuses, st)
}

// pendingOnly tells whether only pending tasks are kept: the pending index
// then holds the whole answer.
func (p ListTasksParams) pendingOnly() bool {
	if p.Status != "" && p.Status != wire.TaskPending {
		return false
	}
	for _, st := range p.Statuses {
		if st != wire.TaskPending {
			return false
		}
	}
	return p.Status == wire.TaskPending || len(p.Statuses) > 0
}

// ListTasks lists a runner's tasks. Pending tasks come from the pending index;
// other filters page the runner's task index and filter the page.
func (s *Store) ListTasks(ctx context.Context, p ListTasksParams) (wire.TaskList, error) {
	index := RunnerTasksKey(p.RunnerID)
	if p.pendingOnly() {
		index = RunnerPendingKey(p.RunnerID)
	}
	l, err := s.listTaskIndex(ctx, index, p.Cursor, p.Limit, func(t wire.RunnerTask) bool {
		return p.keeps(t.Status)
	})
	if err != nil {
		return wire.TaskList{}, fmt.Errorf("store: list tasks of %s: %w", p.RunnerID, err)
	}
	return l, nil
}

// ListAllTasksParams filters and pages the fleet's tasks, newest first. Each
// filter is optional; Cursor is the opaque NextCursor of the previous page.
type ListAllTasksParams struct {
	Status   wire.TaskStatus
	RunnerID string
	// Realm keeps the tasks of that realm's runners ("" = every realm).
	Realm  string
	Type   string
	Cursor string
	Limit  int
}

// ListAllTasks lists the tasks of every runner (GET /tasks). With a runner
// it pages that runner's index (its pending index for status pending), else
// the fleet's task index; status and type filter the page, so a page may
// hold fewer than Limit tasks while NextCursor is still set. A deleted
// runner's tasks (kept for their own retention) are listed without the
// runner filter only: its index went with it.
func (s *Store) ListAllTasks(ctx context.Context, p ListAllTasksParams) (wire.TaskList, error) {
	index := TasksKey()
	if p.RunnerID != "" {
		index = RunnerTasksKey(p.RunnerID)
		if p.Status == wire.TaskPending {
			index = RunnerPendingKey(p.RunnerID)
		}
	}
	l, err := s.listTaskIndex(ctx, index, p.Cursor, p.Limit, func(t wire.RunnerTask) bool {
		return (p.Status == "" || t.Status == p.Status) && (p.Type == "" || t.Type == p.Type) &&
			(p.RunnerID == "" || t.RunnerID == p.RunnerID) && (p.Realm == "" || TaskRealm(t) == p.Realm)
	})
	if err != nil {
		return wire.TaskList{}, fmt.Errorf("store: list all tasks: %w", err)
	}
	return l, nil
}

// listTaskIndex pages a task index (ZSET scored by creation ms) newest first
// and keeps the tasks keep accepts. Entries whose task expired are dropped.
func (s *Store) listTaskIndex(ctx context.Context, index, cursor string, limit int, keep func(wire.RunnerTask) bool) (wire.TaskList, error) {
	limit = clampLimit(limit)
	// The cursor is "<score>:<last task id>": tasks created in the same
	// millisecond share a score, so the page resumes after the last id seen
	// among them instead of skipping them.
	max, offset := "+inf", int64(0)
	if score, last, ok := strings.Cut(cursor, ":"); ok {
		if _, err := strconv.ParseInt(score, 10, 64); err == nil {
			max = score
			ties, err := s.rdb.ZRevRangeByScore(ctx, index, &redis.ZRangeBy{Min: score, Max: score}).Result()
			if err != nil {
				return wire.TaskList{}, err
			}
			for _, m := range ties {
				if m >= last {
					offset++
				}
			}
		}
	}
	zs, err := s.rdb.ZRevRangeByScoreWithScores(ctx, index, &redis.ZRangeBy{Min: "-inf", Max: max, Offset: offset, Count: int64(limit) + 1}).Result()
	if err != nil {
		return wire.TaskList{}, err
	}
	out := wire.TaskList{Tasks: []wire.RunnerTask{}}
	if len(zs) > limit {
		zs = zs[:limit]
		last := zs[limit-1]
		out.NextCursor = strconv.FormatInt(int64(last.Score), 10) + ":" + last.Member.(string)
	}
	if len(zs) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(zs))
	for i, z := range zs {
		cmds[i] = pipe.HGetAll(ctx, TaskKey(z.Member.(string)))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return wire.TaskList{}, err
	}
	var gone []any
	for i, c := range cmds {
		m := c.Val()
		if len(m) == 0 {
			gone = append(gone, zs[i].Member)
			continue
		}
		if t := decodeTask(m); keep(t) {
			out.Tasks = append(out.Tasks, t)
		}
	}
	if len(gone) > 0 {
		// Finished tasks expire after the retention; drop their index entries.
		s.rdb.ZRem(ctx, index, gone...)
	}
	return out, nil
}

// TrimTaskIndex walks the fleet's task index from rank after (0 is the
// oldest task), at most batch entries, and drops those whose task expired.
// It returns the rank the next call resumes at, and done once the end was
// reached (next is then 0, so repeated calls cycle through the index; a
// window whose entries all expired also resumes at its own rank, which is
// why the end is a flag and not next == 0). The rank (not the score) is the
// cursor because tasks created in the same millisecond share a score; new
// tasks are added at the end, so ranks before the cursor only shift by the
// entries this walk drops, which next accounts for. Each entry is a unique
// task id that nothing re-adds, so the ZREM needs no script.
func (s *Store) TrimTaskIndex(ctx context.Context, after int64, batch int) (next int64, dropped int, done bool, err error) {
	ids, err := s.rdb.ZRange(ctx, TasksKey(), after, after+int64(batch)-1).Result()
	if err != nil {
		return after, 0, false, fmt.Errorf("store: trim task index: %w", err)
	}
	if len(ids) == 0 {
		return 0, 0, true, nil
	}
	pipe := s.rdb.Pipeline()
	exists := make([]*redis.IntCmd, len(ids))
	for i, id := range ids {
		exists[i] = pipe.Exists(ctx, TaskKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return after, 0, false, fmt.Errorf("store: trim task index: %w", err)
	}
	var gone []any
	for i, c := range exists {
		if c.Val() == 0 {
			gone = append(gone, ids[i])
		}
	}
	if len(gone) > 0 {
		if err := s.rdb.ZRem(ctx, TasksKey(), gone...).Err(); err != nil {
			return after, 0, false, fmt.Errorf("store: trim task index: %w", err)
		}
	}
	if len(ids) < batch {
		return 0, len(gone), true, nil
	}
	return after + int64(len(ids)-len(gone)), len(gone), false, nil
}

// TaskUpdateParams moves a task. Actor is "runner" or "operator"; a runner's
// Epoch is checked against its current lease epoch (0 skips the check).
type TaskUpdateParams struct {
	RunnerID string
	TaskID   string
	Status   wire.TaskStatus
	Result   json.RawMessage
	Error    string
	Epoch    int64
	Actor    string
}

// Actors of a task update.
const (
	ActorRunner   = "runner"
	ActorOperator = "operator"
)

// UpdateTask applies a state-machine step to a task.
func (s *Store) UpdateTask(ctx context.Context, p TaskUpdateParams) (wire.RunnerTask, error) {
	keys := []string{
		TaskKey(p.TaskID), RunnerKey(p.RunnerID), RunnerPendingKey(p.RunnerID), RunnerActiveKey(p.RunnerID),
		RunnerCancelKey(p.RunnerID), TaskDeadlinesKey(), StatsKey(),
	}
	res, err := taskUpdateScript.Run(ctx, s.rdb, keys,
		p.TaskID, p.RunnerID, string(p.Status), string(p.Result), p.Error, p.Epoch, p.Actor,
		s.opts.TaskRetention.Milliseconds(), TaskEventsChannel(),
	).Slice()
	if err != nil {
		return wire.RunnerTask{}, fmt.Errorf("store: update task %s: %w", p.TaskID, err)
	}
	switch scriptCode(res) {
	case taskUpdateDone:
		return decodeTask(pairsToMap(toStrings(res[1]))), nil
	case taskUpdateNotFound:
		return wire.RunnerTask{}, fmt.Errorf("store: update task %s: %w", p.TaskID, ErrTaskNotFound)
	case taskUpdateStaleEpoch:
		return wire.RunnerTask{}, fmt.Errorf("store: update task %s (epoch %d, current %d): %w", p.TaskID, p.Epoch, toInt(res[1]), ErrStaleEpoch)
	case taskUpdateTerminal:
		return wire.RunnerTask{}, fmt.Errorf("store: update task %s (is %s): %w", p.TaskID, toString(res[1]), ErrTaskTerminal)
	case taskUpdateIllegal:
		return wire.RunnerTask{}, fmt.Errorf("store: update task %s (%s to %s): %w", p.TaskID, toString(res[1]), p.Status, ErrInvalidTransition)
	}
	return wire.RunnerTask{}, fmt.Errorf("store: update task %s: %w", p.TaskID, errUnexpectedResponse)
}

// TaskTimeoutError is the error written on a task failed for running past its timeout.
const TaskTimeoutError = "timeout"

// DueTaskTimeouts returns up to limit task ids whose deadline plus grace is
// before now (Redis time).
func (s *Store) DueTaskTimeouts(ctx context.Context, now time.Time, grace time.Duration, limit int) ([]string, error) {
	max := strconv.FormatInt(now.Add(-grace).UnixMilli(), 10)
	ids, err := s.rdb.ZRangeByScore(ctx, TaskDeadlinesKey(), &redis.ZRangeBy{Min: "-inf", Max: max, Count: int64(limit)}).Result()
	if err != nil {
		return nil, fmt.Errorf("store: due task timeouts: %w", err)
	}
	return ids, nil
}

// TaskTimeoutResult is the outcome of one task timeout: Failed is true when
// this call failed the task (WasRunning tells whether the runner was asked
// to stop it).
type TaskTimeoutResult struct {
	TaskID     string
	RunnerID   string
	Failed     bool
	WasRunning bool
	Err        error
}

// TimeoutTasks fails each task that is still pending or running and whose
// deadline plus grace passed (task_timeout.lua), with error "timeout"; a
// running task is added to its runner's cancel list so that the next
// heartbeat reply asks the runner to stop it. Idempotent.
func (s *Store) TimeoutTasks(ctx context.Context, ids []string, grace time.Duration) []TaskTimeoutResult {
	out := make([]TaskTimeoutResult, len(ids))
	if len(ids) == 0 {
		return out
	}
	pipe := s.rdb.Pipeline()
	owners := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		owners[i] = pipe.HGet(ctx, TaskKey(id), "runnerId")
	}
	_, _ = pipe.Exec(ctx) // per-command errors are read below

	var calls []scriptCall
	var idx []int
	for i, id := range ids {
		out[i].TaskID = id
		rid, err := owners[i].Result()
		if errors.Is(err, redis.Nil) {
			rid = "" // gone: the script drops the index entry
		} else if err != nil {
			out[i].Err = fmt.Errorf("store: task timeout %s: %w", id, err)
			continue
		}
		out[i].RunnerID = rid
		calls = append(calls, scriptCall{
			keys: []string{
				TaskKey(id), RunnerPendingKey(rid), RunnerActiveKey(rid), RunnerCancelKey(rid),
				TaskDeadlinesKey(), StatsKey(),
			},
			args: []any{id, rid, grace.Milliseconds(), s.opts.TaskRetention.Milliseconds(), TaskTimeoutError},
		})
		idx = append(idx, i)
	}
	cmds := s.runPipelined(ctx, taskTimeoutScript, calls)
	for j, c := range cmds {
		i := idx[j]
		res, err := c.Slice()
		if err != nil {
			out[i].Err = fmt.Errorf("store: task timeout %s: %w", ids[i], err)
			continue
		}
		switch scriptCode(res) {
		case taskTimeoutFailed:
			out[i].Failed = true
			out[i].WasRunning = toString(res[1]) == string(wire.TaskRunning)
		case taskTimeoutWrongOwner:
			out[i].Err = fmt.Errorf("store: task timeout %s: owner changed to %q: %w", ids[i], toString(res[1]), errUnexpectedResponse)
		}
	}
	return out
}
