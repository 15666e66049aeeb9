package sweep

import (
	"context"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// purgeLoop deletes the runners offline for longer than RUNNER_RETENTION_MS
// and trims the fleet task index, every PurgeEvery, so that neither the
// runner indexes nor the task index grow without bound. It runs beside the
// tick loop (a purge never delays a lease scan); several sweepers may purge
// side by side: runner_purge.lua re-checks each runner, so the second finds
// it gone.
func (s *Service) purgeLoop(ctx context.Context) {
	s.backfillOfflineSince(ctx)
	t := time.NewTicker(s.cfg.PurgeEvery())
	defer t.Stop()
	var trimAt int64 // rank where the task index trim resumes
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.purgeRunners(ctx)
			trimAt = s.trimTaskIndex(ctx, trimAt)
		}
	}
}

// backfillOfflineSince indexes, once at start, the offline runners that went
// offline before the offline-since index existed, so that the retention
// reaches them too. A failure is logged and left for the next start.
func (s *Service) backfillOfflineSince(ctx context.Context) {
	cursor, total := "", int64(0)
	for {
		next, added, err := s.st.BackfillOfflineSince(ctx, cursor, s.cfg.SweepBatch)
		if err != nil {
			s.fail(ctx, "backfill_offline_since", err)
			return
		}
		total += added
		if cursor = next; cursor == "" {
			break
		}
	}
	if total > 0 {
		s.log.Info("offline runners indexed for the retention purge", "count", total)
	}
}

// purgeRunners deletes due runners in batches of SWEEP_BATCH, at most
// maxBatchesPerTick batches per pass (the rest wait for the next pass).
func (s *Service) purgeRunners(ctx context.Context) {
	for range maxBatchesPerTick {
		res, err := s.st.PurgeOfflineRunners(ctx, s.cfg.RunnerRetention(), s.cfg.SweepBatch)
		if err != nil {
			s.fail(ctx, "purge", err)
			return
		}
		for _, r := range res {
			switch {
			case r.Err == nil:
				s.m.purged.Inc()
				s.log.Info("runner deleted after the retention", "runner_id", r.RunnerID,
					"retention_ms", s.cfg.RunnerRetentionMs)
			case store.PurgeSkipped(r.Err):
				// re-registered, offline again since, or gone: nothing to do
			default:
				s.fail(ctx, "purge", r.Err)
			}
		}
		if len(res) < s.cfg.SweepBatch {
			return
		}
	}
}

// trimTaskIndex runs one batch of the rolling task index trim from rank at
// and returns where the next pass resumes.
func (s *Service) trimTaskIndex(ctx context.Context, at int64) int64 {
	next, dropped, _, err := s.st.TrimTaskIndex(ctx, at, s.cfg.SweepBatch)
	if err != nil {
		s.fail(ctx, "trim_task_index", err)
		return at
	}
	s.m.taskIndexTrimmed.Add(float64(dropped))
	return next
}
