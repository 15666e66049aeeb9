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
	for _, r := range s.ExpireLeases(ctx, second) {
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

// silence makes the runners look as if their last renewal was ago before
// now (Redis time), without ending their leases: only the deadline index
// moves, to where that renewal would have put it.
func silence(t *testing.T, rdb *redis.Client, ids []string, window, ago time.Duration) {
	t.Helper()
	ctx := context.Background()
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	at := float64(now.Add(window - ago).UnixMilli())
	for _, id := range ids {
		if err := rdb.ZAdd(ctx, store.LeaseDeadlinesKey(), redis.Z{Score: at, Member: id}).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSweepGateSeesASilentFleetBeforeItsLeasesRunOut(t *testing.T) {
	const window, silentAfter = time.Minute, 1500 * time.Millisecond
	on := store.MassExpiryPolicy{Percent: 50, Min: 10, Window: window, SilentAfter: silentAfter}
	off := on
	off.SilentAfter = 0
	for _, tc := range []struct {
		name         string
		fleet        int // runners, the one whose lease ran out included
		silent       int // others not renewed for 2 s, leases still alive
		policy       store.MassExpiryPolicy
		wantEntered  bool
		wantSilentOf [2]int64 // silent, population when evaluated
	}{
		{"api outage: every runner silent, one lease out", 20, 19, on, true, [2]int64{20, 20}},
		{"one runner dies in a healthy fleet", 20, 0, on, false, [2]int64{1, 20}},
		{"30 percent silent", 20, 5, on, false, [2]int64{6, 20}},
		{"a fleet below the minimum", 8, 7, on, false, [2]int64{8, 8}},
		{"rule off", 20, 19, off, false, [2]int64{0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, rdb := newStore(t)
			all := ids("s", tc.fleet)
			for _, id := range all {
				register(t, s, id, window)
			}
			silence(t, rdb, all[1:1+tc.silent], window, 2*time.Second)
			endLeases(t, rdb, all[:1])

			// two replicas deciding at the same moment agree
			var wg sync.WaitGroup
			var got [2]store.SweepDecision
			for i := range got {
				wg.Go(func() {
					d, err := s.SweepDue(ctx, 100, tc.policy)
					if err != nil {
						t.Error(err)
					}
					got[i] = d
				})
			}
			wg.Wait()
			first, second := got[0], got[1]
			if second.Entered || (!first.Entered && second.Silent != 0) {
				first, second = second, first
			}
			if tc.wantEntered {
				if !first.Entered || first.Rule != store.RuleFleetSilent || !cmp.Equal(first.Quarantined, all[:1]) || len(first.Expire) != 0 {
					t.Fatalf("decision = %+v, want fleet_silent entered, %v quarantined", first, all[:1])
				}
				if second.Entered || len(second.Expire)+len(second.Quarantined) != 0 {
					t.Errorf("the other replica decided %+v, want nothing left", second)
				}
				qs, err := s.GetQuarantineState(ctx)
				if err != nil || !qs.Active || qs.Rule != store.RuleFleetSilent || qs.Quarantined != 1 {
					t.Errorf("state = %+v, %v; want active fleet_silent with 1", qs, err)
				}
			} else {
				for _, d := range got {
					if d.Entered || len(d.Quarantined) != 0 || !cmp.Equal(d.Expire, all[:1]) {
						t.Fatalf("decision = %+v, want %v to expire", d, all[:1])
					}
				}
			}
			if f := [2]int64{first.Silent, first.Population}; f != tc.wantSilentOf {
				t.Errorf("silent, population = %v, want %v", f, tc.wantSilentOf)
			}
		})
	}
}

func TestSweepGateReportsTheNextDeadline(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t)
	off := store.MassExpiryPolicy{Percent: 100, Min: 1, Window: time.Minute}
	d, err := s.SweepDue(ctx, 10, off)
	if err != nil || d.NextDue >= 0 {
		t.Fatalf("empty index: NextDue = %v, %v; want negative", d.NextDue, err)
	}
	register(t, s, "soon", 800*time.Millisecond)
	register(t, s, "later", time.Minute)
	d, err = s.SweepDue(ctx, 10, off)
	if err != nil || d.NextDue <= 0 || d.NextDue > 801*time.Millisecond {
		t.Fatalf("NextDue = %v, %v; want (0, 801ms]", d.NextDue, err)
	}
	all := ids("due", 5)
	for _, id := range all {
		register(t, s, id, time.Minute)
	}
	endLeases(t, rdb, all)
	if d, err = s.SweepDue(ctx, 3, off); err != nil || d.NextDue != 0 || len(d.Expire) != 3 {
		t.Fatalf("backlog: NextDue = %v, %d expire, %v; want 0 and 3", d.NextDue, len(d.Expire), err)
	}
}
