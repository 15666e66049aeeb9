package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// The sweeper's scripts (lease expiry itself is offline.lua, shared with
// deregistration). Each file's header names its KEYS, ARGV and return values.
var (
	quarantineGateScript = loadScript("quarantine_gate.lua")
	quarantineExitScript = loadScript("quarantine_exit.lua")
	taskTimeoutScript    = loadScript("task_timeout.lua")
)

// TaskTimeoutError is the error written on a task failed for running past its timeout.
const TaskTimeoutError = "timeout"

// runnerKeyPrefix is what every RunnerKey starts with; the gate script
// builds runner keys for the ids it finds in the lease index.
var runnerKeyPrefix = RunnerKey("")

// MassExpiryPolicy is the correlated-loss rule: quarantine instead of failing
// when more than Percent of the runners online within Window, and at least
// Min, lost their lease within Window (mass_expiry), or when more than
// Percent of the lease holders, and at least Min, have not renewed their
// lease for SilentAfter (fleet_silent: the loss seen before the leases run
// out). Percent 100 can never be exceeded.
type MassExpiryPolicy struct {
	Percent int
	Min     int
	// Window is one lease TTL: every renewal sets deadline = now + Window.
	Window time.Duration
	// SilentAfter is how long without a renewal makes a runner silent
	// (a multiple of the heartbeat interval, below Window); 0 turns the
	// fleet_silent rule off.
	SilentAfter time.Duration
}

// Quarantine rules: which one entered the quarantine.
const (
	RuleMassExpiry  = "mass_expiry"
	RuleFleetSilent = "fleet_silent"
)

// SweepDecision is the gate's verdict on a set of due leases.
type SweepDecision struct {
	// Now is Redis' time when the decision was taken.
	Now time.Time
	// Expire lists runners for the normal offline transition (ExpireLeases).
	Expire []string
	// Quarantined lists runners the gate moved to unreachable.
	Quarantined []string
	// Entered is true when this call switched the quarantine on, by Rule.
	Entered bool
	Rule    string
	// Lost and Base are the mass_expiry figures when they were evaluated:
	// expiries within the window, and runners online within it.
	Lost, Base int64
	// Silent and Population are the fleet_silent figures when they were
	// evaluated: runners silent for SilentAfter, out of the lease holders
	// (both counting the runners that expired within the window).
	Silent, Population int64
	// NextDue is how long after Now the earliest lease not yet due becomes
	// due (Redis' clock): 0 when more leases are due than this call took,
	// negative when no lease is held.
	NextDue time.Duration
}

// SweepDue finds up to limit runners whose lease deadline passed (by Redis
// TIME) and whose lease key is gone, and decides their fate atomically with
// the mass-expiry policy (see quarantine_gate.lua).
// A keyspace expiry event is only a hint to call it sooner: deciding on
// everything due at once is what lets a correlated loss be seen as one.
func (s *Store) SweepDue(ctx context.Context, limit int, p MassExpiryPolicy) (SweepDecision, error) {
	keys := []string{
		LeaseDeadlinesKey(), StatusIndexKey(string(wire.RunnerOnline)), StatusIndexKey(string(wire.RunnerUnreachable)),
		QuarantineKey(), QuarantineStateKey(), RecentExpiriesKey(), OutboxKey(), StatsKey(),
	}
	res, err := quarantineGateScript.Run(ctx, s.rdb, keys,
		runnerKeyPrefix, LeaseKeyPrefix, p.Window.Milliseconds(), p.Percent, p.Min, limit,
		p.SilentAfter.Milliseconds()).Slice()
	if err != nil {
		return SweepDecision{}, fmt.Errorf("store: sweep gate: %w", err)
	}
	if len(res) < 10 {
		return SweepDecision{}, fmt.Errorf("store: sweep gate: %w", errUnexpectedResponse)
	}
	return SweepDecision{
		Entered:     toInt(res[0]) == 1,
		Now:         time.UnixMilli(toInt(res[1])).UTC(),
		Expire:      toStrings(res[2]),
		Quarantined: toStrings(res[3]),
		Lost:        toInt(res[4]),
		Base:        toInt(res[5]),
		NextDue:     time.Duration(toInt(res[6])) * time.Millisecond,
		Rule:        toString(res[7]),
		Silent:      toInt(res[8]),
		Population:  toInt(res[9]),
	}, nil
}

// ExpireResult is the outcome of one offline transition in a batch: Err is
// nil (Transition is set), or wraps ErrLeaseAlive, ErrAlreadyOffline,
// ErrRunnerNotFound or a Redis error.
type ExpireResult struct {
	RunnerID   string
	Transition Transition
	Err        error
}

// ExpireLeases runs ExpireLease for every id in one pipeline.
func (s *Store) ExpireLeases(ctx context.Context, ids []string) []ExpireResult {
	return s.offlineBatch(ctx, ids)
}

// ReleaseQuarantinedBatch takes quarantined runners through the normal
// offline transition (reason "lease_expired"), in one pipeline, except those
// that heartbeated in the meantime (ErrLeaseAlive).
func (s *Store) ReleaseQuarantinedBatch(ctx context.Context, ids []string) []ExpireResult {
	return s.offlineBatch(ctx, ids)
}

func (s *Store) offlineBatch(ctx context.Context, ids []string) []ExpireResult {
	out := make([]ExpireResult, len(ids))
	calls := make([]scriptCall, len(ids))
	for i, id := range ids {
		calls[i] = scriptCall{
			keys: offlineKeys(id),
			args: s.offlineArgs(id, wire.ReasonLeaseExpired, 0, true, leaseExpiredTaskError),
		}
	}
	cmds := s.runPipelined(ctx, offlineScript, calls)
	for i, id := range ids {
		out[i] = ExpireResult{RunnerID: id}
		res, err := cmds[i].Slice()
		if err != nil {
			out[i].Err = fmt.Errorf("store: offline %s: %w", id, err)
			continue
		}
		out[i].Transition, out[i].Err = decodeOffline(id, 0, res)
	}
	return out
}

// ForgetExpiries removes runners from the recent-expiries record, for the
// ones whose transition found the lease alive (a heartbeat won the race), so
// that they do not count towards a correlated loss.
func (s *Store) ForgetExpiries(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	if err := s.rdb.ZRem(ctx, RecentExpiriesKey(), members...).Err(); err != nil {
		return fmt.Errorf("store: forget expiries: %w", err)
	}
	return nil
}

// DropQuarantined removes stale entries (runners already offline or gone)
// from the quarantine zset.
func (s *Store) DropQuarantined(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	if err := s.rdb.ZRem(ctx, QuarantineKey(), members...).Err(); err != nil {
		return fmt.Errorf("store: drop quarantined: %w", err)
	}
	return nil
}

// QuarantineState is the sweeper's correlated-loss state as stored.
type QuarantineState struct {
	Active bool
	Since  time.Time
	Reason string
	// Rule is the rule that entered the quarantine (RuleMassExpiry or
	// RuleFleetSilent).
	Rule       string
	Count      int64
	ExitedAt   time.Time
	ExitReason string
	// Quarantined is how many runners are still quarantined (unreachable and
	// waiting for a heartbeat or the release).
	Quarantined int64
}

// GetQuarantineState reads the correlated-loss state.
func (s *Store) GetQuarantineState(ctx context.Context) (QuarantineState, error) {
	pipe := s.rdb.Pipeline()
	h := pipe.HGetAll(ctx, QuarantineStateKey())
	n := pipe.ZCard(ctx, QuarantineKey())
	if _, err := pipe.Exec(ctx); err != nil {
		return QuarantineState{}, fmt.Errorf("store: quarantine state: %w", err)
	}
	m := h.Val()
	st := QuarantineState{Active: m["active"] == "1", Reason: m["reason"], Rule: m["rule"], ExitReason: m["exitReason"], Quarantined: n.Val()}
	st.Count, _ = strconv.ParseInt(m["count"], 10, 64)
	if ms, err := strconv.ParseInt(m["since"], 10, 64); err == nil {
		st.Since = time.UnixMilli(ms).UTC()
	}
	if ms, err := strconv.ParseInt(m["exitedAt"], 10, 64); err == nil {
		st.ExitedAt = time.UnixMilli(ms).UTC()
	}
	return st, nil
}

// QuarantineExit describes a quarantine that just ended.
type QuarantineExit struct {
	// Reason is recovered, operator or hold_expired.
	Reason string
	// Remaining is how many runners were still quarantined: they must now go
	// through the offline transition (ReleaseQuarantinedBatch).
	Remaining int64
	Since     time.Time
	At        time.Time
}

// Quarantine exit reasons.
const (
	QuarantineRecovered   = "recovered"
	QuarantineOperator    = "operator"
	QuarantineHoldExpired = "hold_expired"
)

// ErrNoQuarantine means there was no active quarantine to end (or it is
// still holding).
var ErrNoQuarantine = errors.New("no quarantine to end")

// ExitQuarantine ends the active quarantine when every runner came back, or
// when hold has passed since it began, or at once when confirm is true (an
// operator confirmed). Only one caller among all replicas gets the exit;
// the others get ErrNoQuarantine.
func (s *Store) ExitQuarantine(ctx context.Context, hold time.Duration, confirm bool) (QuarantineExit, error) {
	c := "0"
	if confirm {
		c = "1"
	}
	res, err := quarantineExitScript.Run(ctx, s.rdb,
		[]string{QuarantineStateKey(), QuarantineKey(), StatsKey()}, hold.Milliseconds(), c).Slice()
	if err != nil {
		return QuarantineExit{}, fmt.Errorf("store: exit quarantine: %w", err)
	}
	if toInt(res[0]) != 1 {
		return QuarantineExit{}, fmt.Errorf("store: exit quarantine: %w", ErrNoQuarantine)
	}
	if len(res) < 5 {
		return QuarantineExit{}, fmt.Errorf("store: exit quarantine: %w", errUnexpectedResponse)
	}
	return QuarantineExit{
		Reason: toString(res[1]), Remaining: toInt(res[2]),
		Since: time.UnixMilli(toInt(res[3])).UTC(), At: time.UnixMilli(toInt(res[4])).UTC(),
	}, nil
}

// ConfirmQuarantineRelease is the operator's confirmation: the active
// quarantine ends now and its remaining runners go offline on the sweeper's
// next tick. ErrNoQuarantine when none is active.
func (s *Store) ConfirmQuarantineRelease(ctx context.Context) (QuarantineExit, error) {
	return s.ExitQuarantine(ctx, 0, true)
}

// QuarantinedIDs returns up to limit quarantined runner ids, oldest first.
func (s *Store) QuarantinedIDs(ctx context.Context, limit int) ([]string, error) {
	ids, err := s.rdb.ZRange(ctx, QuarantineKey(), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("store: quarantined ids: %w", err)
	}
	return ids, nil
}

// Now returns Redis' clock, the one every deadline is measured against.
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	t, err := s.rdb.Time(ctx).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("store: time: %w", err)
	}
	return t, nil
}

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
		switch toInt(res[0]) {
		case 0:
			out[i].Failed = true
			out[i].WasRunning = toString(res[1]) == string(wire.TaskRunning)
		case 2:
			out[i].Err = fmt.Errorf("store: task timeout %s: owner changed to %q: %w", ids[i], toString(res[1]), errUnexpectedResponse)
		}
	}
	return out
}

// scriptCall is one invocation of a script in a pipeline.
type scriptCall struct {
	keys []string
	args []any
}

// runPipelined sends every call as EVALSHA in one pipeline. When Redis lost
// its script cache (a restart), it loads the script and sends the calls that
// failed with NOSCRIPT again: every script run this way is idempotent.
func (s *Store) runPipelined(ctx context.Context, script *redis.Script, calls []scriptCall) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(calls))
	if len(calls) == 0 {
		return cmds
	}
	send := func(which []int) {
		pipe := s.rdb.Pipeline()
		for _, i := range which {
			cmds[i] = script.EvalSha(ctx, pipe, calls[i].keys, calls[i].args...)
		}
		_, _ = pipe.Exec(ctx) // per-command errors are read by the caller
	}
	all := make([]int, len(calls))
	for i := range all {
		all[i] = i
	}
	send(all)
	var retry []int
	for i, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		if err := script.Load(ctx, s.rdb).Err(); err == nil {
			send(retry)
		}
	}
	return cmds
}
