package store_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// endLeases makes the leases of ids end together, 30 ms from now (Redis time).
func endLeases(t *testing.T, rdb *redis.Client, ids []string) {
	t.Helper()
	ctx := context.Background()
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	at := now.Add(30 * time.Millisecond)
	if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.PExpireAt(ctx, store.LeaseKey(id), at)
			p.ZAdd(ctx, store.LeaseDeadlinesKey(), redis.Z{Score: float64(at.UnixMilli()), Member: id})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(at) + 5*time.Millisecond)
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func TestSweepGateDecidesEachExpiryOnce(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t)
	policy := store.MassExpiryPolicy{Percent: 50, Min: 10, Window: time.Minute}
	first, second := ids("a", 6), ids("b", 6)
	for _, id := range append(append([]string{}, first...), second...) {
		register(t, s, id, time.Minute)
	}

	endLeases(t, rdb, first)
	d, err := s.SweepDue(ctx, 100, policy)
	if err != nil {
		t.Fatal(err)
	}
	if d.Entered || len(d.Quarantined) != 0 || !cmp.Equal(sorted(d.Expire), first) {
		t.Fatalf("6 of 12 below the minimum: %+v, want the 6 to expire", d)
	}

	// before the first 6 went offline, 6 more expire: 12 of 12 is a
	// correlated loss, but the 6 already decided keep their fate
	endLeases(t, rdb, second)
	d, err = s.SweepDue(ctx, 100, policy)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Entered || !cmp.Equal(sorted(d.Quarantined), second) || !cmp.Equal(sorted(d.Expire), first) {
		t.Fatalf("decision = %+v, want the 6 new quarantined and the 6 decided still expiring", d)
	}
	for _, r := range s.ExpireLeases(ctx, d.Expire) {
		if r.Err != nil {
			t.Fatalf("expire %s: %v", r.RunnerID, r.Err)
		}
	}
	qs, err := s.GetQuarantineState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !qs.Active || qs.Count != 6 || qs.Quarantined != 6 {
		t.Errorf("state = %+v, want active, 6 quarantined", qs)
	}
	if r, _ := s.GetRunner(ctx, second[0]); r.Status != wire.RunnerUnreachable {
		t.Errorf("quarantined runner is %s", r.Status)
	}

	if _, err := s.ExitQuarantine(ctx, time.Hour, false); !errors.Is(err, store.ErrNoQuarantine) {
		t.Errorf("exit while holding: %v, want ErrNoQuarantine", err)
	}
	ex, err := s.ConfirmQuarantineRelease(ctx)
	if err != nil || ex.Reason != store.QuarantineOperator || ex.Remaining != 6 {
		t.Fatalf("confirm = %+v, %v", ex, err)
	}
	if _, err := s.ConfirmQuarantineRelease(ctx); !errors.Is(err, store.ErrNoQuarantine) {
		t.Errorf("second confirm: %v, want ErrNoQuarantine", err)
	}
	for _, r := range s.ReleaseQuarantinedBatch(ctx, second) {
		if r.Err != nil {
			t.Fatalf("release %s: %v", r.RunnerID, r.Err)
		}
	}
	c, _ := s.Counts(ctx)
	if c.Offline != 12 || c.Quarantined != 0 || c.Unreachable != 0 {
		t.Errorf("counts = %+v, want 12 offline", c)
	}
}

func TestConcurrentSweepsTransitionEachLeaseOnce(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t)
	all := ids("c", 99)
	for _, id := range all {
		register(t, s, id, time.Minute)
	}
	endLeases(t, rdb, all)
	off := store.MassExpiryPolicy{Percent: 100, Min: 1, Window: time.Minute}
	var mu sync.Mutex
	done := map[string]int{}
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for {
				d, err := s.SweepDue(ctx, 10, off)
				if err != nil {
					t.Error(err)
					return
				}
				if len(d.Expire) == 0 {
					return
				}
				for _, r := range s.ExpireLeases(ctx, d.Expire) {
					if r.Err == nil {
						mu.Lock()
						done[r.RunnerID]++
						mu.Unlock()
					} else if !errors.Is(r.Err, store.ErrAlreadyOffline) {
						t.Error(r.Err)
					}
				}
			}
		})
	}
	wg.Wait()
	if len(done) != len(all) {
		t.Errorf("%d runners transitioned, want %d", len(done), len(all))
	}
	for id, n := range done {
		if n != 1 {
			t.Errorf("%s transitioned %d times", id, n)
		}
	}
	n, _ := rdb.XLen(ctx, store.OutboxKey()).Result()
	if want := int64(2 * len(all)); n != want { // one registered + one offline each
		t.Errorf("outbox holds %d events, want %d", n, want)
	}
}

func TestTaskTimeoutIsAtomicAndIdempotent(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	lease := register(t, s, "r1", time.Minute)
	due, _, _ := s.Dispatch(ctx, store.DispatchParams{RunnerID: "r1", Type: "x", Timeout: time.Millisecond})
	later, _, _ := s.Dispatch(ctx, store.DispatchParams{RunnerID: "r1", Type: "x", Timeout: time.Hour})
	if _, err := s.UpdateTask(ctx, store.TaskUpdateParams{RunnerID: "r1", TaskID: due.ID, Status: wire.TaskRunning, Epoch: lease.Epoch, Actor: store.ActorRunner}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	now, err := s.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found, err := s.DueTaskTimeouts(ctx, now, 0, 10)
	if err != nil || !cmp.Equal(found, []string{due.ID}) {
		t.Fatalf("due = %v, %v; want [%s]", found, err, due.ID)
	}
	res := s.TimeoutTasks(ctx, []string{due.ID, later.ID, "tsk_gone"}, 0)
	want := []store.TaskTimeoutResult{
		{TaskID: due.ID, RunnerID: "r1", Failed: true, WasRunning: true},
		{TaskID: later.ID, RunnerID: "r1"},
		{TaskID: "tsk_gone"},
	}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("timeouts (-want +got):\n%s", diff)
	}
	if again := s.TimeoutTasks(ctx, []string{due.ID}, 0); again[0].Failed {
		t.Error("a task timed out twice")
	}
	hb, _ := s.Heartbeat(ctx, store.HeartbeatParams{RunnerID: "r1", Epoch: lease.Epoch, LeaseTTL: time.Minute})
	if !cmp.Equal(hb.CancelTaskIDs, []string{due.ID}) {
		t.Errorf("cancelTaskIds = %v", hb.CancelTaskIDs)
	}
	// a runner reporting its result afterwards is told the task is finished
	_, err = s.UpdateTask(ctx, store.TaskUpdateParams{RunnerID: "r1", TaskID: due.ID, Status: wire.TaskSucceeded, Epoch: lease.Epoch, Actor: store.ActorRunner})
	if !errors.Is(err, store.ErrTaskTerminal) {
		t.Errorf("late result: %v, want ErrTaskTerminal", err)
	}
}
