package sweep

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// retentionEnviron is testConfig's tuning, read the way an operator sets it,
// plus TASK_RETENTION_MS: the tasks the sweeper fails must keep the
// retention the API's finished tasks keep, not the store's own.
var retentionEnviron = map[string]string{
	"SWEEP_INTERVAL_MS": "20", "LEASE_TTL_MS": "300", "HEARTBEAT_INTERVAL_MS": "100",
	"MASS_EXPIRY_PERCENT": "100", "TASK_TIMEOUT_GRACE_MS": "0", "TASK_RETENTION_MS": "60000",
}

const wantRetention = 60 * time.Second

// assertRetained fails unless every task in ids is failed and expires
// within TASK_RETENTION_MS.
func assertRetained(t *testing.T, st *store.Store, rdb *redis.Client, ids ...string) {
	t.Helper()
	ctx := context.Background()
	for _, id := range ids {
		task, err := st.GetTask(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if task.Status != wire.TaskFailed {
			t.Errorf("task %s is %s, want failed", id, task.Status)
		}
		ttl, err := rdb.PTTL(ctx, store.TaskKey(id)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 || ttl > wantRetention {
			t.Errorf("task %s PTTL = %s, want within (0, %s] (TASK_RETENTION_MS=60000)", id, ttl, wantRetention)
		}
	}
}

func TestTasksFailedBySweeperKeepTaskRetention(t *testing.T) {
	cfg, err := config.LoadSweeper(retentionEnviron)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("lease expiry", func(t *testing.T) {
		ctx := context.Background()
		_, rdb := redistest.Start(t, withEvents...)
		st := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
		lease := register(t, st, "dead", 300*time.Millisecond)
		pending, _, err := st.Dispatch(ctx, store.DispatchParams{RunnerID: "dead", Type: "shell"})
		if err != nil {
			t.Fatal(err)
		}
		running, _, err := st.Dispatch(ctx, store.DispatchParams{RunnerID: "dead", Type: "shell"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.UpdateTask(ctx, store.TaskUpdateParams{RunnerID: "dead", TaskID: running.ID, Status: wire.TaskRunning, Epoch: lease.Epoch, Actor: store.ActorRunner}); err != nil {
			t.Fatal(err)
		}
		startSweeper(t, rdb, cfg)
		testkit.Eventually(t, 3*time.Second, func() bool {
			r, err := st.GetRunner(ctx, "dead")
			return err == nil && r.Status == wire.RunnerOffline
		}, "runner offline")
		assertRetained(t, st, rdb, pending.ID, running.ID)
	})

	t.Run("task timeout", func(t *testing.T) {
		ctx := context.Background()
		_, rdb := redistest.Start(t, withEvents...)
		st := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
		lease := register(t, st, "r1", time.Minute)
		pending, _, err := st.Dispatch(ctx, store.DispatchParams{RunnerID: "r1", Type: "shell", Timeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		running, _, err := st.Dispatch(ctx, store.DispatchParams{RunnerID: "r1", Type: "shell", Timeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.UpdateTask(ctx, store.TaskUpdateParams{RunnerID: "r1", TaskID: running.ID, Status: wire.TaskRunning, Epoch: lease.Epoch, Actor: store.ActorRunner}); err != nil {
			t.Fatal(err)
		}
		startSweeper(t, rdb, cfg)
		testkit.Eventually(t, 3*time.Second, func() bool {
			a, _ := st.GetTask(ctx, pending.ID)
			b, _ := st.GetTask(ctx, running.ID)
			return a.Status == wire.TaskFailed && b.Status == wire.TaskFailed
		}, "both tasks timed out")
		assertRetained(t, st, rdb, pending.ID, running.ID)
	})
}
