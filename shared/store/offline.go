package store

import (
	"context"
	"fmt"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/telemetry"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// Errors written on the tasks an offline transition fails.
const (
	leaseExpiredTaskError    = "runner lease expired"
	deregisteredTaskErrorFmt = "runner deregistered: %s"
)

// Transition is the outcome of an offline transition.
type Transition struct {
	RunnerID       string
	Epoch          int64
	LeaseExpiredAt time.Time
	At             time.Time
	FailedTaskIDs  []string
	// HeartbeatTraceparent is the traceparent the runner's last lease
	// renewal stored ("" when none): the span the transition links to.
	HeartbeatTraceparent string
}

// Deregister takes a runner offline at its own request (reason
// "deregistered"), failing its unfinished tasks and recording one
// runner.offline event, which carries the traceparent of ctx's span (the
// transition's). Epoch 0 skips the epoch check.
func (s *Store) Deregister(ctx context.Context, runnerID string, epoch int64, why string) (Transition, error) {
	msg := fmt.Sprintf(deregisteredTaskErrorFmt, why)
	if why == "" {
		msg = "runner deregistered"
	}
	return s.offline(ctx, runnerID, wire.ReasonDeregistered, epoch, false, msg)
}

// ExpireLease is the sweeper's transition: it takes the runner offline with
// reason "lease_expired" only if its lease is really gone and its deadline
// really passed. ErrLeaseAlive means a heartbeat won the race;
// ErrAlreadyOffline means another sweeper (or a deregistration) got there first.
func (s *Store) ExpireLease(ctx context.Context, runnerID string) (Transition, error) {
	return s.offline(ctx, runnerID, wire.ReasonLeaseExpired, 0, true, leaseExpiredTaskError)
}

// offline.lua's reply on a transition: {0, epoch, deadline, now, failed,
// heartbeat traceparent}.
const offlineReplyLen = 6

// offline.lua's return codes (see its header).
const (
	offlineDone       = 0
	offlineNotFound   = 1
	offlineAlready    = 2
	offlineStaleEpoch = 3
	offlineLeaseAlive = 4
)

func (s *Store) offline(ctx context.Context, id, reason string, epoch int64, checkLease bool, taskErr string) (Transition, error) {
	args := s.offlineArgs(id, reason, epoch, checkLease, taskErr, telemetry.Traceparent(ctx))
	res, err := offlineScript.Run(ctx, s.rdb, offlineKeys(id), args...).Slice()
	if err != nil {
		return Transition{}, fmt.Errorf("store: offline %s (%s): %w", id, reason, err)
	}
	return decodeOffline(id, epoch, res)
}

// offlineKeys are the KEYS of offline.lua for one runner.
func offlineKeys(id string) []string {
	return []string{
		RunnerKey(id), LeaseKey(id), LeaseDeadlinesKey(),
		StatusIndexKey(string(wire.RunnerOnline)), StatusIndexKey(string(wire.RunnerUnreachable)),
		StatusIndexKey(string(wire.RunnerOffline)), RunnerActiveKey(id), RunnerPendingKey(id),
		RunnerCancelKey(id), TaskDeadlinesKey(), QuarantineKey(), OutboxKey(), StatsKey(),
		OfflineSinceKey(),
	}
}

// offlineArgs are the ARGV of offline.lua; traceparent is the transition
// span's, carried by the event.
func (s *Store) offlineArgs(id, reason string, epoch int64, checkLease bool, taskErr, traceparent string) []any {
	check := "0"
	if checkLease {
		check = "1"
	}
	return []any{id, reason, TaskKeyPrefix, epoch, check, taskErr, s.opts.TaskRetention.Milliseconds(), RealmLivePrefix, traceparent}
}

// decodeOffline turns offline.lua's reply into a Transition or a sentinel error.
func decodeOffline(id string, epoch int64, res []any) (Transition, error) {
	switch scriptCode(res) {
	case offlineDone:
	case offlineNotFound:
		return Transition{}, fmt.Errorf("store: offline %s: %w", id, ErrRunnerNotFound)
	case offlineAlready:
		return Transition{}, fmt.Errorf("store: offline %s: %w", id, ErrAlreadyOffline)
	case offlineStaleEpoch:
		return Transition{}, fmt.Errorf("store: offline %s (epoch %d, current %d): %w", id, epoch, toInt(res[1]), ErrStaleEpoch)
	case offlineLeaseAlive:
		return Transition{}, fmt.Errorf("store: offline %s: %w", id, ErrLeaseAlive)
	default:
		return Transition{}, fmt.Errorf("store: offline %s: %w", id, errUnexpectedResponse)
	}
	if len(res) < offlineReplyLen {
		return Transition{}, fmt.Errorf("store: offline %s: %w", id, errUnexpectedResponse)
	}
	return Transition{
		RunnerID:       id,
		Epoch:          toInt(res[1]),
		LeaseExpiredAt: time.UnixMilli(toInt(res[2])).UTC(),
		At:             time.UnixMilli(toInt(res[3])).UTC(),
		FailedTaskIDs:  toStrings(res[4]),

		HeartbeatTraceparent: toString(res[5]),
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

// ExpireLeases runs ExpireLease for every id in one pipeline: the sweeper's
// due leases, and the quarantined runners it releases (a runner that
// heartbeated in the meantime answers ErrLeaseAlive and stays online).
func (s *Store) ExpireLeases(ctx context.Context, ids []string) []ExpireResult {
	return s.ExpireLeasesTraced(ctx, ids, nil)
}

// ExpireLeasesTraced is ExpireLeases where the event of ids[i] carries
// traceparents[i], the traceparent of that runner's transition span (nil or
// "": none).
func (s *Store) ExpireLeasesTraced(ctx context.Context, ids, traceparents []string) []ExpireResult {
	out := make([]ExpireResult, len(ids))
	calls := make([]scriptCall, len(ids))
	for i, id := range ids {
		tp := ""
		if i < len(traceparents) {
			tp = traceparents[i]
		}
		calls[i] = scriptCall{
			keys: offlineKeys(id),
			args: s.offlineArgs(id, wire.ReasonLeaseExpired, 0, true, leaseExpiredTaskError, tp),
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
