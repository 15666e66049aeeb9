package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func TestPurgeDeletesAnOfflineRunnerWithItsIndexesButNotItsTasks(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t)
	register(t, s, "p1", time.Minute)
	task, _, err := s.Dispatch(ctx, store.DispatchParams{RunnerID: "p1", Type: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRunner(ctx, "p1"); !errors.Is(err, store.ErrRunnerNotOffline) {
		t.Fatalf("DeleteRunner(online) = %v, want ErrRunnerNotOffline", err)
	}
	if _, err := s.Deregister(ctx, "p1", 0, "test"); err != nil {
		t.Fatal(err)
	}
	if sc, err := rdb.ZScore(ctx, store.OfflineSinceKey(), "p1").Result(); err != nil || sc <= 0 {
		t.Fatalf("offline.lua did not index p1 in %s: %v %v", store.OfflineSinceKey(), sc, err)
	}
	// not yet: the retention has not passed
	res, err := s.PurgeOfflineRunners(ctx, time.Hour, 10)
	if err != nil || len(res) != 0 {
		t.Fatalf("PurgeOfflineRunners(1h) = %v, %v; want nothing due", res, err)
	}
	// a retention of 5 ms: due once Redis' clock has moved on by that much
	testkit.Eventually(t, 5*time.Second, func() bool {
		res, err := s.PurgeOfflineRunners(ctx, 5*time.Millisecond, 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(res) == 1 && res[0].Err == nil
	}, "p1 purged after a 5 ms retention")
	for _, k := range []string{store.RunnerKey("p1"), store.RunnerTasksKey("p1"), store.RunnerPendingKey("p1"), store.RunnerActiveKey("p1"), store.RunnerCancelKey("p1")} {
		if rdb.Exists(ctx, k).Val() != 0 {
			t.Errorf("%s survived the purge", k)
		}
	}
	for _, idx := range []string{store.RunnersKey(), store.StatusIndexKey(string(wire.RunnerOffline)), store.OfflineSinceKey(), store.RealmIndexKey("eu")} {
		if rdb.ZScore(ctx, idx, "p1").Err() == nil {
			t.Errorf("p1 still in %s", idx)
		}
	}
	// realms are managed objects now: a realm outlives its last runner
	if rdb.ZScore(ctx, store.RealmsKey(), "eu").Err() != nil {
		t.Errorf("the realm eu went with its only runner from %s", store.RealmsKey())
	}
	got, err := s.GetTask(ctx, task.ID)
	if err != nil || got.Status != wire.TaskFailed || rdb.PTTL(ctx, store.TaskKey(task.ID)).Val() <= 0 {
		t.Errorf("the runner's task after the purge: %+v %v, want it kept (failed, with its retention TTL)", got, err)
	}
	if err := s.DeleteRunner(ctx, "p1"); !errors.Is(err, store.ErrRunnerNotFound) {
		t.Errorf("DeleteRunner(deleted) = %v, want ErrRunnerNotFound", err)
	}
}

// A runner found due for the purge and re-registered before the script runs
// survives: the script re-checks that it is offline, not the index.
func TestPurgeSparesARunnerThatReRegistered(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t)
	register(t, s, "p2", time.Minute)
	if _, err := s.Deregister(ctx, "p2", 0, "test"); err != nil {
		t.Fatal(err)
	}
	register(t, s, "p2", time.Minute)
	if rdb.ZScore(ctx, store.OfflineSinceKey(), "p2").Err() == nil {
		t.Fatalf("register.lua left p2 in %s", store.OfflineSinceKey())
	}
	// the race: the candidate list was read before the re-registration
	rdb.ZAdd(ctx, store.OfflineSinceKey(), redis.Z{Score: 1, Member: "p2"})
	res, err := s.PurgeOfflineRunners(ctx, time.Millisecond, 10)
	if err != nil || len(res) != 1 || !errors.Is(res[0].Err, store.ErrRunnerNotOffline) || !store.PurgeSkipped(res[0].Err) {
		t.Fatalf("PurgeOfflineRunners = %+v, %v; want p2 skipped as not offline", res, err)
	}
	if r, err := s.GetRunner(ctx, "p2"); err != nil || r.Status != wire.RunnerOnline {
		t.Errorf("p2 after the purge: %+v %v, want online", r, err)
	}
	if rdb.ZScore(ctx, store.OfflineSinceKey(), "p2").Err() == nil {
		t.Errorf("the stale entry of p2 was not dropped")
	}
	// offline again just now, with a stale old score: too recent, and the
	// entry is put back at the real offlineAt
	if _, err := s.Deregister(ctx, "p2", 0, "again"); err != nil {
		t.Fatal(err)
	}
	rdb.ZAdd(ctx, store.OfflineSinceKey(), redis.Z{Score: 1, Member: "p2"})
	res, _ = s.PurgeOfflineRunners(ctx, time.Hour, 10)
	if len(res) != 1 || !errors.Is(res[0].Err, store.ErrRunnerTooRecent) {
		t.Fatalf("PurgeOfflineRunners = %+v; want p2 too recent", res)
	}
	if sc := rdb.ZScore(ctx, store.OfflineSinceKey(), "p2").Val(); sc < float64(time.Now().Add(-time.Minute).UnixMilli()) {
		t.Errorf("offline-since score %v was not reset to offlineAt", sc)
	}
}

// Runners that went offline before the offline-since index existed are
// added to it with their offlineAt; online ones and those indexed already
// are left alone.
func TestBackfillOfflineSince(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t)
	for _, id := range []string{"b1", "b2", "b3", "b4"} {
		register(t, s, id, time.Minute)
	}
	for _, id := range []string{"b1", "b2", "b3"} {
		if _, err := s.Deregister(ctx, id, 0, "test"); err != nil {
			t.Fatal(err)
		}
	}
	rdb.ZRem(ctx, store.OfflineSinceKey(), "b1", "b2") // as before the index existed
	rdb.ZAdd(ctx, store.OfflineSinceKey(), redis.Z{Score: 7, Member: "b3"})
	cursor, total := "", int64(0)
	for pages := 0; ; pages++ {
		next, added, err := s.BackfillOfflineSince(ctx, cursor, 1)
		if err != nil || pages > 10 {
			t.Fatalf("BackfillOfflineSince: %v (page %d)", err, pages)
		}
		total += added
		if cursor = next; cursor == "" {
			break
		}
	}
	got, _ := rdb.ZRangeWithScores(ctx, store.OfflineSinceKey(), 0, -1).Result()
	if total != 2 || len(got) != 3 {
		t.Fatalf("added %d, index %v; want b1 and b2 added next to b3", total, got)
	}
	for _, z := range got {
		r, _ := s.GetRunner(ctx, z.Member.(string))
		want := float64(r.OfflineAt.UnixMilli())
		if z.Member == "b3" {
			want = 7 // already indexed: untouched
		}
		if z.Score != want {
			t.Errorf("%s scored %v, want %v", z.Member, z.Score, want)
		}
	}
}
