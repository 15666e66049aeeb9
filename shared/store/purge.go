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

// runner_purge.lua's return codes (see its header).
const (
	purgeDone      = 0
	purgeNotFound  = 1
	purgeNotOff    = 2
	purgeTooRecent = 3
)

// purgeKeys are the KEYS of runner_purge.lua for one runner.
func purgeKeys(id string) []string {
	return []string{
		RunnerKey(id), RunnersKey(),
		StatusIndexKey(string(wire.RunnerOnline)), StatusIndexKey(string(wire.RunnerUnreachable)),
		StatusIndexKey(string(wire.RunnerOffline)), OfflineSinceKey(),
		RunnerTasksKey(id), RunnerPendingKey(id), RunnerActiveKey(id), RunnerCancelKey(id),
		LeaseKey(id), LeaseDeadlinesKey(), QuarantineKey(), RealmsKey(),
	}
}

// DeleteRunner deletes an offline runner at once (DELETE /runners/:id) with
// its indexes; its tasks keep their own retention. ErrRunnerNotFound,
// ErrRunnerNotOffline (online or unreachable) change nothing.
func (s *Store) DeleteRunner(ctx context.Context, id string) error {
	return s.purge(ctx, id, 0)
}

func (s *Store) purge(ctx context.Context, id string, retention time.Duration) error {
	res, err := runnerPurgeScript.Run(ctx, s.rdb, purgeKeys(id), id, retention.Milliseconds(), RealmIndexPrefix).Slice()
	if err != nil {
		return fmt.Errorf("store: purge runner %s: %w", id, err)
	}
	return decodePurge(id, res)
}

func decodePurge(id string, res []any) error {
	switch scriptCode(res) {
	case purgeDone:
		return nil
	case purgeNotFound:
		return fmt.Errorf("store: purge runner %s: %w", id, ErrRunnerNotFound)
	case purgeNotOff:
		return fmt.Errorf("store: purge runner %s (is %s): %w", id, toString(res[1]), ErrRunnerNotOffline)
	case purgeTooRecent:
		return fmt.Errorf("store: purge runner %s (offline since %d ms): %w", id, toInt(res[1]), ErrRunnerTooRecent)
	}
	return fmt.Errorf("store: purge runner %s: %w", id, errUnexpectedResponse)
}

// PurgeResult is the outcome of one runner in PurgeOfflineRunners: Err is
// nil when it was deleted.
type PurgeResult struct {
	RunnerID string
	Err      error
}

// PurgeOfflineRunners deletes up to batch runners that went offline more
// than retention ago (Redis time), oldest first, each with runner_purge.lua,
// which re-checks the runner (a runner that re-registered survives). The
// candidates come from the offline-since index.
func (s *Store) PurgeOfflineRunners(ctx context.Context, retention time.Duration, batch int) ([]PurgeResult, error) {
	now, err := s.rdb.Time(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("store: purge offline runners: %w", err)
	}
	max := strconv.FormatInt(now.Add(-retention).UnixMilli(), 10)
	ids, err := s.rdb.ZRangeByScore(ctx, OfflineSinceKey(), &redis.ZRangeBy{Min: "-inf", Max: max, Count: int64(batch)}).Result()
	if err != nil {
		return nil, fmt.Errorf("store: purge offline runners: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	calls := make([]scriptCall, len(ids))
	for i, id := range ids {
		calls[i] = scriptCall{keys: purgeKeys(id), args: []any{id, retention.Milliseconds(), RealmIndexPrefix}}
	}
	cmds := s.runPipelined(ctx, runnerPurgeScript, calls)
	out := make([]PurgeResult, len(ids))
	for i, id := range ids {
		out[i].RunnerID = id
		res, err := cmds[i].Slice()
		if err != nil {
			out[i].Err = fmt.Errorf("store: purge runner %s: %w", id, err)
			continue
		}
		out[i].Err = decodePurge(id, res)
	}
	return out, nil
}

// PurgeSkipped reports whether a PurgeResult error means "nothing to delete any
// more" (gone already, re-registered, or offline again since) rather than a
// failure.
func PurgeSkipped(err error) bool {
	return errors.Is(err, ErrRunnerNotFound) || errors.Is(err, ErrRunnerNotOffline) || errors.Is(err, ErrRunnerTooRecent)
}

// BackfillOfflineSince adds the offline runners missing from the
// offline-since index (they went offline before it existed) with their
// offlineAt, one page of the offline status index per call from cursor
// (offline_since_backfill.lua). It returns the next cursor, "" at the end.
func (s *Store) BackfillOfflineSince(ctx context.Context, cursor string, page int) (next string, added int64, err error) {
	res, err := backfillScript.Run(ctx, s.rdb, []string{StatusIndexKey(string(wire.RunnerOffline)), OfflineSinceKey()},
		cursor, page, runnerKeyPrefix).Slice()
	if err != nil {
		return cursor, 0, fmt.Errorf("store: backfill offline-since: %w", err)
	}
	if len(res) < 2 {
		return cursor, 0, fmt.Errorf("store: backfill offline-since: %w", errUnexpectedResponse)
	}
	return toString(res[0]), toInt(res[1]), nil
}
