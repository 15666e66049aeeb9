package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

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
	// GraceDue says an outage window waits for its failover grace: the gate
	// decided nothing; call GrantOutageGrace, then sweep again.
	GraceDue bool
}

// quarantine_gate.lua's first reply element: 1 when this call entered the
// quarantine. quarantine_exit.lua's: 1 when this call ended it.
const (
	gateEntered = 1
	exitEnded   = 1
	// gateGraceDue is the gate's last reply element when it decided nothing
	// because an outage window waits for its grace.
	gateGraceDue = 1
)

// SweepDue finds up to limit runners whose lease deadline passed (by Redis
// TIME) and whose lease key is gone, and decides their fate atomically with
// the mass-expiry policy (see quarantine_gate.lua).
// A keyspace expiry event is only a hint to call it sooner: deciding on
// everything due at once is what lets a correlated loss be seen as one.
func (s *Store) SweepDue(ctx context.Context, limit int, p MassExpiryPolicy) (SweepDecision, error) {
	keys := []string{
		LeaseDeadlinesKey(), StatusIndexKey(string(wire.RunnerOnline)), StatusIndexKey(string(wire.RunnerUnreachable)),
		QuarantineKey(), QuarantineStateKey(), RecentExpiriesKey(), OutboxKey(), StatsKey(), OutagesPendingKey(),
	}
	res, err := quarantineGateScript.Run(ctx, s.rdb, keys,
		runnerKeyPrefix, LeaseKeyPrefix, p.Window.Milliseconds(), p.Percent, p.Min, limit,
		p.SilentAfter.Milliseconds()).Slice()
	if err != nil {
		return SweepDecision{}, fmt.Errorf("store: sweep gate: %w", err)
	}
	if len(res) < 11 {
		return SweepDecision{}, fmt.Errorf("store: sweep gate: %w", errUnexpectedResponse)
	}
	return SweepDecision{
		Entered:     scriptCode(res) == gateEntered,
		Now:         time.UnixMilli(toInt(res[1])).UTC(),
		Expire:      toStrings(res[2]),
		Quarantined: toStrings(res[3]),
		Lost:        toInt(res[4]),
		Base:        toInt(res[5]),
		NextDue:     time.Duration(toInt(res[6])) * time.Millisecond,
		Rule:        toString(res[7]),
		Silent:      toInt(res[8]),
		Population:  toInt(res[9]),
		GraceDue:    toInt(res[10]) == gateGraceDue,
	}, nil
}

// ForgetExpiries removes runners from the recent-expiries record, for the
// ones whose transition found the lease alive (a heartbeat won the race), so
// that they do not count towards a correlated loss.
func (s *Store) ForgetExpiries(ctx context.Context, ids []string) error {
	return s.zrem(ctx, RecentExpiriesKey(), ids)
}

// DropQuarantined removes stale entries (runners already offline or gone)
// from the quarantine zset.
func (s *Store) DropQuarantined(ctx context.Context, ids []string) error {
	return s.zrem(ctx, QuarantineKey(), ids)
}

func (s *Store) zrem(ctx context.Context, key string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	if err := s.rdb.ZRem(ctx, key, members...).Err(); err != nil {
		return fmt.Errorf("store: zrem %s: %w", key, err)
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
	// through the offline transition (ExpireLeases).
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
	if scriptCode(res) != exitEnded {
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
