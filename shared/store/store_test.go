package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func newStore(t *testing.T) (*store.Store, *redis.Client) {
	t.Helper()
	_, rdb := redistest.Start(t)
	return store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet)), rdb
}

// register registers id as a caller holding its credential.
func register(t *testing.T, s *store.Store, id string, ttl time.Duration) store.Lease {
	t.Helper()
	_, lease, err := s.Register(context.Background(), store.RegisterParams{
		ID: id, Name: "n-" + id, Version: "1.0.0", Realm: "eu", Capacity: 2, TokenHash: "h", LeaseTTL: ttl,
		ActsForAnyRunner: true, // the runner itself: re-registering a live one is allowed
	})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
	return lease
}

func TestTaskLifecycle(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	lease := register(t, s, "r1", time.Minute)

	task, created, err := s.Dispatch(ctx, store.DispatchParams{RunnerID: "r1", Type: "shell", Payload: json.RawMessage(`{"command":"true"}`), IdempotencyKey: "k1"})
	if err != nil || !created {
		t.Fatalf("dispatch: %v created=%v", err, created)
	}
	again, created, err := s.Dispatch(ctx, store.DispatchParams{RunnerID: "r1", Type: "shell", Payload: json.RawMessage(`{ "command": "true" }`), IdempotencyKey: "k1"})
	if err != nil || created || again.ID != task.ID {
		t.Fatalf("idempotent dispatch: got %s created=%v err=%v, want %s", again.ID, created, err, task.ID)
	}
	if _, _, err := s.Dispatch(ctx, store.DispatchParams{RunnerID: "r1", Type: "shell", Payload: json.RawMessage(`{"command":"false"}`), IdempotencyKey: "k1"}); !errors.Is(err, store.ErrIdempotencyReused) {
		t.Fatalf("key reused for another payload: err = %v, want ErrIdempotencyReused", err)
	}

	hb, err := s.Heartbeat(ctx, store.HeartbeatParams{RunnerID: "r1", Epoch: lease.Epoch, LeaseTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(hb.Tasks) != 1 || hb.Tasks[0].ID != task.ID || string(hb.Tasks[0].Payload) != `{"command":"true"}` {
		t.Fatalf("heartbeat tasks = %+v", hb.Tasks)
	}

	steps := []struct {
		to      wire.TaskStatus
		epoch   int64
		wantErr error
	}{
		{wire.TaskSucceeded, lease.Epoch, store.ErrInvalidTransition},
		{wire.TaskRunning, lease.Epoch + 1, store.ErrStaleEpoch},
		{wire.TaskRunning, lease.Epoch, nil},
		{wire.TaskRunning, lease.Epoch, nil}, // a retried request is a no-op
		{wire.TaskSucceeded, lease.Epoch, nil},
		{wire.TaskFailed, lease.Epoch, store.ErrTaskTerminal},
	}
	for i, st := range steps {
		_, err := s.UpdateTask(ctx, store.TaskUpdateParams{RunnerID: "r1", TaskID: task.ID, Status: st.to, Epoch: st.epoch, Actor: store.ActorRunner, Result: json.RawMessage(`{"exitCode":0}`)})
		if !errors.Is(err, st.wantErr) && !(err == nil && st.wantErr == nil) {
			t.Fatalf("step %d (%s): err = %v, want %v", i, st.to, err, st.wantErr)
		}
	}
	got, err := s.GetTask(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != wire.TaskSucceeded || string(got.Result) != `{"exitCode":0}` || got.StartedAt == nil || got.FinishedAt == nil {
		t.Fatalf("task = %+v", got)
	}
	hb, _ = s.Heartbeat(ctx, store.HeartbeatParams{RunnerID: "r1", LeaseTTL: time.Minute})
	if len(hb.Tasks) != 0 {
		t.Fatalf("finished task still offered: %+v", hb.Tasks)
	}
}

func TestDeregisterFailsTasksAndWritesOneEvent(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t)
	lease := register(t, s, "r1", time.Minute)
	a, _, _ := s.Dispatch(ctx, store.DispatchParams{RunnerID: "r1", Type: "x"})
	b, _, _ := s.Dispatch(ctx, store.DispatchParams{RunnerID: "r1", Type: "x"})
	if _, err := s.UpdateTask(ctx, store.TaskUpdateParams{RunnerID: "r1", TaskID: b.ID, Status: wire.TaskRunning, Actor: store.ActorRunner}); err != nil {
		t.Fatal(err)
	}
	tr, err := s.Deregister(ctx, "r1", lease.Epoch, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{a.ID, b.ID}
	if a.ID > b.ID {
		want = []string{b.ID, a.ID}
	}
	if diff := cmp.Diff(want, tr.FailedTaskIDs); diff != "" {
		t.Fatalf("failed ids (-want +got):\n%s", diff)
	}
	if _, err := s.Deregister(ctx, "r1", 0, ""); !errors.Is(err, store.ErrAlreadyOffline) {
		t.Fatalf("second deregister: %v", err)
	}
	if _, err := s.Heartbeat(ctx, store.HeartbeatParams{RunnerID: "r1", LeaseTTL: time.Minute}); !errors.Is(err, store.ErrRunnerOffline) {
		t.Fatalf("heartbeat after offline: %v", err)
	}
	msgs, err := rdb.XRange(ctx, store.OutboxKey(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var offline []wire.Event
	for _, m := range msgs {
		ev, err := store.DecodeEvent(store.OutboxEntry{ID: m.ID, Values: m.Values})
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == wire.EventRunnerOffline {
			offline = append(offline, ev)
		}
	}
	if len(offline) != 1 {
		t.Fatalf("offline events = %d, want 1", len(offline))
	}
	var d wire.RunnerEventData
	if err := json.Unmarshal(offline[0].Data, &d); err != nil {
		t.Fatal(err)
	}
	if d.Reason != wire.ReasonDeregistered || d.Runner.ID != "r1" || len(d.FailedTaskIDs) != 2 || d.LeaseEpoch != lease.Epoch {
		t.Fatalf("event data = %+v", d)
	}
	c, _ := s.Counts(ctx)
	if c.Offline != 1 || c.Online != 0 || c.Leases != 0 {
		t.Fatalf("counts = %+v", c)
	}
}

func TestExpireLeaseRespectsLiveLease(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	register(t, s, "r1", 200*time.Millisecond)
	if _, err := s.ExpireLease(ctx, "r1"); !errors.Is(err, store.ErrLeaseAlive) {
		t.Fatalf("expire with live lease: %v", err)
	}
	time.Sleep(250 * time.Millisecond)
	tr, err := s.ExpireLease(ctx, "r1")
	if err != nil {
		t.Fatalf("expire after deadline: %v", err)
	}
	if tr.LeaseExpiredAt.After(tr.At) {
		t.Fatalf("lease expired at %v after transition at %v", tr.LeaseExpiredAt, tr.At)
	}
	if _, err := s.ExpireLease(ctx, "r1"); !errors.Is(err, store.ErrAlreadyOffline) {
		t.Fatalf("second expire: %v", err)
	}
}

// Heartbeats race re-registrations of the same runner: every heartbeat either
// succeeds under the epoch it carried being current, or is refused as stale;
// the final record is online with exactly one lease under the last epoch.
func TestHeartbeatsRaceReregistration(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t)
	first := register(t, s, "r1", time.Minute)
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				_, err := s.Heartbeat(ctx, store.HeartbeatParams{RunnerID: "r1", Epoch: first.Epoch, LeaseTTL: time.Minute})
				if err != nil && !errors.Is(err, store.ErrStaleEpoch) {
					errs <- err
				}
			}
		}()
	}
	var last store.Lease
	for i := 0; i < 20; i++ {
		last = register(t, s, "r1", time.Minute)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := s.Heartbeat(ctx, store.HeartbeatParams{RunnerID: "r1", Epoch: first.Epoch, LeaseTTL: time.Minute}); !errors.Is(err, store.ErrStaleEpoch) {
		t.Fatalf("old epoch heartbeat: %v", err)
	}
	r, _ := s.GetRunner(ctx, "r1")
	lease, _ := rdb.Get(ctx, store.LeaseKey("r1")).Result()
	if r.Status != wire.RunnerOnline || r.LeaseEpoch != last.Epoch || lease != fmt.Sprint(last.Epoch) {
		t.Fatalf("runner %+v lease %q, want epoch %d", r, lease, last.Epoch)
	}
}

func TestListRunnersPages(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	for i := 0; i < 25; i++ {
		register(t, s, fmt.Sprintf("r%02d", i), time.Minute)
	}
	_, _ = s.Deregister(ctx, "r03", 0, "")
	var seen []string
	cursor := ""
	for {
		page, err := s.ListRunners(ctx, store.ListRunnersParams{Status: "online", Cursor: cursor, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Runners {
			seen = append(seen, r.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(seen) != 24 {
		t.Fatalf("online runners seen = %d, want 24", len(seen))
	}
}

func TestListTasksPagesWithoutLosingTies(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	register(t, s, "r1", time.Minute)
	want := map[string]bool{}
	for i := 0; i < 57; i++ {
		task, _, err := s.Dispatch(ctx, store.DispatchParams{RunnerID: "r1", Type: "x"})
		if err != nil {
			t.Fatal(err)
		}
		want[task.ID] = true
	}
	got := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 20 {
			t.Fatal("pagination does not end")
		}
		page, err := s.ListTasks(ctx, store.ListTasksParams{RunnerID: "r1", Cursor: cursor, Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range page.Tasks {
			if got[tk.ID] {
				t.Fatalf("task %s listed twice", tk.ID)
			}
			got[tk.ID] = true
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("listed tasks (-want +got):\n%s", diff)
	}
}

func TestTrimTaskIndexDropsExpiredTasksOnly(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t)
	register(t, s, "r1", time.Minute)
	var ids []string
	for i := 0; i < 7; i++ {
		task, _, err := s.Dispatch(ctx, store.DispatchParams{RunnerID: "r1", Type: "x"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, task.ID)
	}
	if n := rdb.ZCard(ctx, store.TasksKey()).Val(); n != 7 {
		t.Fatalf("dispatch indexed %d tasks in %s, want 7", n, store.TasksKey())
	}
	for _, id := range []string{ids[0], ids[3], ids[6]} { // as the retention would
		rdb.Del(ctx, store.TaskKey(id))
	}
	next, total := int64(0), 0
	for pass := 0; pass < 10; pass++ {
		n, dropped, done, err := s.TrimTaskIndex(ctx, next, 2)
		if err != nil {
			t.Fatal(err)
		}
		total += dropped
		if next = n; done {
			break
		}
	}
	left, _ := rdb.ZRange(ctx, store.TasksKey(), 0, -1).Result()
	if total != 3 || len(left) != 4 {
		t.Errorf("trim dropped %d, left %v; want 3 dropped and the 4 live tasks", total, left)
	}
}
