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
	// RealmsEntered lists the realms whose own quarantine this call switched
	// on (the per-realm mass_expiry rule); RealmQuarantined the runners it
	// moved to unreachable under a realm's quarantine (also in Quarantined).
	RealmsEntered    []string
	RealmQuarantined []string
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
		QuarantinedRealmsKey(),
	}
	res, err := quarantineGateScript.Run(ctx, s.rdb, keys,
		runnerKeyPrefix, LeaseKeyPrefix, p.Window.Milliseconds(), p.Percent, p.Min, limit,
		p.SilentAfter.Milliseconds(), RealmRecordPrefix, RealmLivePrefix, RealmRecentExpiriesPrefix,
		RealmQuarantinePrefix, RealmQuarantineStatePrefix).Slice()
	if err != nil {
		return SweepDecision{}, fmt.Errorf("store: sweep gate: %w", err)
	}
	if len(res) < 13 {
		return SweepDecision{}, fmt.Errorf("store: sweep gate: %w", errUnexpectedResponse)
	}
	realmQ := toStrings(res[12])
	return SweepDecision{
		RealmsEntered:    toStrings(res[11]),
		RealmQuarantined: realmQ,
		Entered:          scriptCode(res) == gateEntered,
		Now:              time.UnixMilli(toInt(res[1])).UTC(),
		Expire:           toStrings(res[2]),
		Quarantined:      append(toStrings(res[3]), realmQ...),
		Lost:             toInt(res[4]),
		Base:             toInt(res[5]),
		NextDue:          time.Duration(toInt(res[6])) * time.Millisecond,
		Rule:             toString(res[7]),
		Silent:           toInt(res[8]),
		Population:       toInt(res[9]),
		GraceDue:         toInt(res[10]) == gateGraceDue,
	}, nil
}

// ForgetExpiries removes runners from the recent-expiries record, for the
// ones whose transition found the lease alive (a heartbeat won the race), so
// that they do not count towards a correlated loss.
func (s *Store) ForgetExpiries(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, 0, len(ids)+2)
	args = append(args, runnerKeyPrefix, RealmRecentExpiriesPrefix)
	for _, id := range ids {
		args = append(args, id)
	}
	if err := forgetExpiriesScript.Run(ctx, s.rdb, []string{RecentExpiriesKey()}, args...).Err(); err != nil {
		return fmt.Errorf("store: forget expiries: %w", err)
	}
	return nil
}

// RealmQuarantineStep is what realm_quarantine_step.lua did for one realm.
type RealmQuarantineStep struct {
	Realm string
	// Ended is true when this call ended the realm's quarantine, by Reason
	// (recovered, operator, hold_expired).
	Ended  bool
	Reason string
	// Active says the realm's quarantine still holds.
	Active bool
	// Remaining is how many of its runners are still quarantined: once it
	// is over, they go through the offline transition (ExpireLeases, then
	// DropRealmQuarantined).
	Remaining int64
	Since, At time.Time
}

// realm_quarantine_step.lua's first reply element: 1 when it ended the
// quarantine; its second: 1 while it is active.
const (
	realmStepEnded  = 1
	realmStepActive = 1
)

// QuarantinedRealms lists the realms whose own quarantine is active or
// still holds runners (bounded by the number of realms).
func (s *Store) QuarantinedRealms(ctx context.Context) ([]string, error) {
	r, err := s.rdb.ZRange(ctx, QuarantinedRealmsKey(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("store: quarantined realms: %w", err)
	}
	return r, nil
}

// StepRealmQuarantine advances realm's own quarantine: drops the runners
// that came back, ends it when all did, when hold passed or at once when
// confirm is set, and forgets the realm once nothing is left. Safe on every
// replica at once: only one gets Ended.
func (s *Store) StepRealmQuarantine(ctx context.Context, realm string, hold time.Duration, confirm bool, limit int) (RealmQuarantineStep, error) {
	c := "0"
	if confirm {
		c = "1"
	}
	res, err := realmQuarantineStep.Run(ctx, s.rdb,
		[]string{RealmQuarantineStateKey(realm), RealmQuarantineKey(realm), QuarantinedRealmsKey(), StatsKey()},
		hold.Milliseconds(), c, runnerKeyPrefix, realm, limit).Slice()
	if err != nil {
		return RealmQuarantineStep{}, fmt.Errorf("store: realm %s quarantine: %w", realm, err)
	}
	if len(res) < 6 {
		return RealmQuarantineStep{}, fmt.Errorf("store: realm %s quarantine: %w", realm, errUnexpectedResponse)
	}
	return RealmQuarantineStep{
		Realm: realm, Ended: scriptCode(res) == realmStepEnded, Active: toInt(res[1]) == realmStepActive,
		Remaining: toInt(res[2]), Reason: toString(res[3]),
		Since: time.UnixMilli(toInt(res[4])).UTC(), At: time.UnixMilli(toInt(res[5])).UTC(),
	}, nil
}

// RealmQuarantinedIDs returns up to limit of realm's quarantined runners.
func (s *Store) RealmQuarantinedIDs(ctx context.Context, realm string, limit int) ([]string, error) {
	ids, err := s.rdb.ZRange(ctx, RealmQuarantineKey(realm), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("store: realm %s quarantined ids: %w", realm, err)
	}
	return ids, nil
}

// DropRealmQuarantined removes runners the release took offline (or found
// gone) from realm's quarantine zset.
func (s *Store) DropRealmQuarantined(ctx context.Context, realm string, ids []string) error {
	return s.zrem(ctx, RealmQuarantineKey(realm), ids)
}

// GetRealmQuarantineState reads one realm's own correlated-loss state.
func (s *Store) GetRealmQuarantineState(ctx context.Context, realm string) (QuarantineState, error) {
	pipe := s.rdb.Pipeline()
	h := pipe.HGetAll(ctx, RealmQuarantineStateKey(realm))
	n := pipe.ZCard(ctx, RealmQuarantineKey(realm))
	if _, err := pipe.Exec(ctx); err != nil {
		return QuarantineState{}, fmt.Errorf("store: realm %s quarantine state: %w", realm, err)
	}
	return decodeQuarantineState(h.Val(), n.Val()), nil
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
	return decodeQuarantineState(h.Val(), n.Val()), nil
}

func decodeQuarantineState(m map[string]string, quarantined int64) QuarantineState {
	st := QuarantineState{Active: m["active"] == "1", Reason: m["reason"], Rule: m["rule"], ExitReason: m["exitReason"], Quarantined: quarantined}
	st.Count, _ = strconv.ParseInt(m["count"], 10, 64)
	if ms, err := strconv.ParseInt(m["since"], 10, 64); err == nil {
		st.Since = time.UnixMilli(ms).UTC()
	}
	if ms, err := strconv.ParseInt(m["exitedAt"], 10, 64); err == nil {
		st.ExitedAt = time.UnixMilli(ms).UTC()
	}
	return st
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
