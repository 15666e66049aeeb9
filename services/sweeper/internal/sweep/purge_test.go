package sweep

import (
	"context"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// RUNNER_RETENTION_MS, read as an operator sets it: an offline runner is
// deleted with its indexes once the retention passed, its tasks stay for
// TASK_RETENTION_MS, and a runner that came back in time survives. The
// purge runs every min(1 min, retention): 400 ms here.
func TestOfflineRunnersAreDeletedAfterTheRetention(t *testing.T) {
	env := map[string]string{"RUNNER_RETENTION_MS": "400"}
	for k, v := range retentionEnviron {
		env[k] = v
	}
	cfg, err := config.LoadSweeper(env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PurgeEvery() != 400*time.Millisecond {
		t.Fatalf("PurgeEvery = %s, want the 400 ms retention", cfg.PurgeEvery())
	}
	ctx := context.Background()
	_, rdb := redistest.Start(t, withEvents...)
	st := store.New(store.Wrap(rdb), store.OptionsFrom(cfg.Fleet))
	for _, id := range []string{"gone", "back", "alive", "legacy"} {
		register(t, st, id, time.Minute)
	}
	task, _, err := st.Dispatch(ctx, store.DispatchParams{RunnerID: "gone", Type: "x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"gone", "back", "legacy"} {
		if _, err := st.Deregister(ctx, id, 0, "test"); err != nil {
			t.Fatal(err)
		}
	}
	// "legacy" went offline before the offline-since index existed: the
	// sweeper's start-up backfill must find it
	rdb.ZRem(ctx, store.OfflineSinceKey(), "legacy")
	svc, _ := startSweeper(t, rdb, cfg)
	// "back" re-registers within the retention
	register(t, st, "back", time.Minute)

	testkit.Eventually(t, 10*time.Second, func() bool {
		return rdb.Exists(ctx, store.RunnerKey("gone"), store.RunnerKey("legacy")).Val() == 0
	}, "the offline runners deleted after RUNNER_RETENTION_MS")
	if val(svc.m.purged) != 2 {
		t.Errorf("runners_purged_total = %v, want 2", val(svc.m.purged))
	}
	for _, idx := range []string{store.RunnersKey(), store.StatusIndexKey(string(wire.RunnerOffline)), store.OfflineSinceKey(), store.RealmIndexKey("eu")} {
		if rdb.ZScore(ctx, idx, "gone").Err() == nil {
			t.Errorf("the deleted runner is still in %s", idx)
		}
	}
	if rdb.Exists(ctx, store.RunnerTasksKey("gone")).Val() != 0 {
		t.Errorf("the deleted runner's task index survived")
	}
	if got, err := st.GetTask(ctx, task.ID); err != nil || got.Status != wire.TaskFailed {
		t.Errorf("its task: %+v %v, want kept (failed) for TASK_RETENTION_MS", got, err)
	}
	if rdb.ZScore(ctx, store.TasksKey(), task.ID).Err() != nil {
		t.Errorf("its task left the fleet task index before it expired")
	}
	// the runner that came back, and the one that never left, survive
	testkit.Eventually(t, 5*time.Second, func() bool {
		return rdb.ZCard(ctx, store.OfflineSinceKey()).Val() == 0 && val(svc.m.purged) == 2
	}, "nothing left to purge")
	for _, id := range []string{"back", "alive"} {
		if r, err := st.GetRunner(ctx, id); err != nil || r.Status != wire.RunnerOnline {
			t.Errorf("%s: %+v %v, want online", id, r, err)
		}
	}
	if rdb.ZScore(ctx, store.RealmsKey(), "eu").Err() != nil {
		t.Errorf("the realm of the live runners was dropped")
	}

	// the rolling trim drops the index entry once the task expired
	rdb.Del(ctx, store.TaskKey(task.ID))
	testkit.Eventually(t, 5*time.Second, func() bool {
		return rdb.ZScore(ctx, store.TasksKey(), task.ID).Err() != nil
	}, "the expired task trimmed from the fleet task index")
}
