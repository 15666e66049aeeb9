package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func TestExpiredRunnerGoesOfflineAndItsTasksFail(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.Start(t, withEvents...)
	st := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	lease := register(t, st, "dead", 300*time.Millisecond)
	alive := register(t, st, "alive", 300*time.Millisecond)
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

	stopHB := heartbeatLoop(t, st, "alive", alive.Epoch, 300*time.Millisecond, 80*time.Millisecond)
	defer stopHB()
	svc, _ := startSweeper(t, rdb, testConfig())

	testkit.Eventually(t, 3*time.Second, func() bool {
		r, err := st.GetRunner(ctx, "dead")
		return err == nil && r.Status == wire.RunnerOffline
	}, "dead runner offline")
	r, _ := st.GetRunner(ctx, "dead")
	if r.OfflineReason != wire.ReasonLeaseExpired {
		t.Errorf("offline reason = %q, want %q", r.OfflineReason, wire.ReasonLeaseExpired)
	}
	for _, id := range []string{pending.ID, running.ID} {
		task, err := st.GetTask(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if task.Status != wire.TaskFailed || task.Error != "runner lease expired" {
			t.Errorf("task %s = %s %q, want failed \"runner lease expired\"", id, task.Status, task.Error)
		}
	}
	if a, _ := st.GetRunner(ctx, "alive"); a.Status != wire.RunnerOnline {
		t.Errorf("heartbeating runner is %s, want online", a.Status)
	}
	if diff := cmp.Diff(map[string]int{"dead": 1}, outboxEvents(t, rdb, wire.EventRunnerOffline)); diff != "" {
		t.Errorf("runner.offline events (-want +got):\n%s", diff)
	}
	// metrics are recorded just after the transition is visible in Redis
	testkit.Eventually(t, time.Second, func() bool {
		return val(svc.m.transitions) == 1 && histCount(t, svc) == 1
	}, "transitions_total 1 and one detection lag observation")
}

func TestMergesKeyspaceFlagsAndUsesEvents(t *testing.T) {
	ctx := context.Background()
	// Kg must survive: CONFIG SET merges, never clobbers
	_, rdb := redistest.Start(t, "--notify-keyspace-events", "Kg")
	st := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	cfg := testConfig()
	cfg.SweepIntervalMs = 60000 // only events (and the first scan) drive it
	svc, _ := startSweeper(t, rdb, cfg)
	testkit.Eventually(t, 2*time.Second, func() bool { return val(svc.m.keyspaceEvents) == 1 }, "keyspace events enabled")
	flags, err := rdb.ConfigGet(ctx, "notify-keyspace-events").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"K", "g", "E", "x"} {
		if !strings.Contains(flags["notify-keyspace-events"], f) {
			t.Errorf("notify-keyspace-events = %q, lacks %q", flags["notify-keyspace-events"], f)
		}
	}
	// the scan that follows the subscription must be over before r1
	// exists, or it would learn r1's deadline and wake for it by itself
	testkit.Eventually(t, 2*time.Second, func() bool { return val(svc.m.scans.WithLabelValues(string(byEvent))) >= 1 }, "subscribed and scanned")
	register(t, st, "r1", 100*time.Millisecond)
	testkit.Eventually(t, 3*time.Second, func() bool {
		r, err := st.GetRunner(ctx, "r1")
		return err == nil && r.Status == wire.RunnerOffline
	}, "r1 offline through its expiry event")
	testkit.Eventually(t, time.Second, func() bool { return val(svc.m.eventTrans) == 1 }, "the event-prompted transition counted")
	if val(svc.m.eventsReceived) < 1 || val(svc.m.eventTrans) != 1 || val(svc.m.indexTrans) != 0 {
		t.Errorf("events_received=%v event_transitions=%v index_transitions=%v, want >=1, 1, 0",
			val(svc.m.eventsReceived), val(svc.m.eventTrans), val(svc.m.indexTrans))
	}
}

func TestWorksFromTheIndexWhenConfigIsRefused(t *testing.T) {
	ctx := context.Background()
	// a managed Redis: CONFIG is disabled and no events are configured
	_, rdb := redistest.Start(t, "--rename-command", "CONFIG", "")
	st := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	svc, _ := startSweeper(t, rdb, testConfig())
	register(t, st, "r1", 100*time.Millisecond)
	testkit.Eventually(t, 3*time.Second, func() bool {
		r, err := st.GetRunner(ctx, "r1")
		return err == nil && r.Status == wire.RunnerOffline
	}, "r1 offline")
	testkit.Eventually(t, time.Second, func() bool { return val(svc.m.indexTrans) == 1 }, "the index transition counted")
	if val(svc.m.keyspaceEvents) != 0 || val(svc.m.eventsReceived) != 0 || val(svc.m.indexTrans) != 1 {
		t.Errorf("keyspace_events_enabled=%v events_received=%v index_transitions=%v, want 0, 0, 1",
			val(svc.m.keyspaceEvents), val(svc.m.eventsReceived), val(svc.m.indexTrans))
	}
}

// invariantScript checks, atomically, that no offline runner holds a lease
// key and that every runner holding one is online. Test-only.
var invariantScript = redis.NewScript(`
local bad = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local status = redis.call('HGET', ARGV[1] .. id, 'status')
  local leased = redis.call('EXISTS', ARGV[2] .. id) == 1
  if (status == 'offline' and leased) or (leased and status ~= 'online') then
    bad[#bad + 1] = id .. ':' .. tostring(status)
  end
end
return bad`)

func TestHeartbeatAtTheDeadlineNeverYieldsAnOfflineRunnerWithALiveLease(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.Start(t, withEvents...)
	st := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	const n = 40
	const ttl = 150 * time.Millisecond
	ids := runnerIDs("hb", n)
	cfg := testConfig()
	cfg.SweepIntervalMs = 10
	svc, stopSweeper := startSweeper(t, rdb, cfg)

	var won, lost atomic.Int64
	hctx, stop := context.WithTimeout(ctx, 2500*time.Millisecond)
	defer stop()
	var wg sync.WaitGroup
	for _, id := range ids {
		lease := register(t, st, id, ttl)
		wg.Go(func() {
			for hctx.Err() == nil {
				// land between 15 ms before and 10 ms after the deadline
				at := lease.ExpiresAt.Add(time.Duration(rand.IntN(25)-15) * time.Millisecond)
				select {
				case <-hctx.Done():
					return
				case <-time.After(time.Until(at)):
				}
				res, err := st.Heartbeat(ctx, store.HeartbeatParams{RunnerID: id, Epoch: lease.Epoch, LeaseTTL: ttl})
				switch {
				case err == nil:
					won.Add(1)
					lease = res.Lease
				case errors.Is(err, store.ErrRunnerOffline):
					lost.Add(1)
					lease = register(t, st, id, ttl)
				default:
					t.Errorf("heartbeat %s: %v", id, err)
					return
				}
			}
		})
	}
	args := append([]any{store.RunnerKey(""), store.LeaseKeyPrefix}, toAny(ids)...)
	checks := 0
	for hctx.Err() == nil {
		bad, err := invariantScript.Run(ctx, rdb, nil, args...).StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		if len(bad) > 0 {
			t.Fatalf("invariant broken: %v", bad)
		}
		checks++
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	t.Logf("%d invariant checks; heartbeats won %d, lost to the sweeper %d; lease_alive (sweeper lost) %v",
		checks, won.Load(), lost.Load(), val(svc.m.leaseAlive))
	if lost.Load() == 0 || won.Load() == 0 {
		t.Errorf("the race was not exercised: won %d lost %d", won.Load(), lost.Load())
	}
	// The runners stopped heartbeating, so the sweeper goes on expiring
	// their leases: stop it before comparing two reads of what it writes.
	stopSweeper()
	stats, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stats["transitions:"+wire.ReasonLeaseExpired], int64(total(outboxEvents(t, rdb, wire.EventRunnerOffline))); got != want {
		t.Errorf("transitions %d != runner.offline events %d", got, want)
	}
}

func TestTwoSweepersRacingOn1000ExpiriesTransitionEachOnce(t *testing.T) {
	ctx := context.Background()
	srv, rdb := redistest.Start(t, withEvents...)
	st := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	const n = 1000
	ids := runnerIDs("race", n)
	registerAll(t, st, ids, func(int) time.Duration { return 400 * time.Millisecond })

	rdbA, rdbB := srv.Client(), srv.Client()
	defer rdbA.Close()
	defer rdbB.Close()
	a, stopA := startSweeper(t, rdbA, testConfig())
	b, stopB := startSweeper(t, rdbB, testConfig())
	testkit.Eventually(t, 15*time.Second, func() bool { return count(t, rdb, wire.RunnerOffline) == n }, "1000 runners offline")
	stopA()
	stopB()

	events := outboxEvents(t, rdb, wire.EventRunnerOffline)
	if len(events) != n || total(events) != n {
		t.Errorf("runner.offline events: %d runners, %d events, want %d and %d", len(events), total(events), n, n)
	}
	stats, _ := st.Stats(ctx)
	if got := stats["transitions:"+wire.ReasonLeaseExpired]; got != n {
		t.Errorf("stored transitions = %d, want %d", got, n)
	}
	ta, tb := val(a.m.transitions), val(b.m.transitions)
	if ta+tb != n {
		t.Errorf("sweeper transitions %v + %v != %d", ta, tb, n)
	}
	t.Logf("sweeper A %v transitions, B %v; already offline (lost races) A %v B %v", ta, tb, val(a.m.alreadyOffline), val(b.m.alreadyOffline))
}

func TestSweeperKilledWhileLeasesExpireCatchesUpOnRestart(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.Start(t, withEvents...)
	st := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	const n = 300
	ids := runnerIDs("restart", n)
	registerAll(t, st, ids, func(i int) time.Duration { return 100*time.Millisecond + time.Duration(i)*1200*time.Millisecond/n })

	_, stop := startSweeper(t, rdb, testConfig())
	testkit.Eventually(t, 5*time.Second, func() bool { return count(t, rdb, wire.RunnerOffline) >= 20 }, "some runners offline")
	stop() // killed mid-way
	before := count(t, rdb, wire.RunnerOffline)
	testkit.Eventually(t, 5*time.Second, func() bool {
		keys := make([]string, n)
		for i, id := range ids {
			keys[i] = store.LeaseKey(id)
		}
		left, err := rdb.Exists(ctx, keys...).Result()
		return err == nil && left == 0
	}, "every lease expired")
	if before >= n {
		t.Fatalf("the sweeper finished before it was killed (%d offline)", before)
	}
	_, _ = startSweeper(t, rdb, testConfig())
	testkit.Eventually(t, 5*time.Second, func() bool { return count(t, rdb, wire.RunnerOffline) == n }, "all runners offline after restart")
	events := outboxEvents(t, rdb, wire.EventRunnerOffline)
	if len(events) != n || total(events) != n {
		t.Errorf("runner.offline events: %d runners, %d events, want %d each once", len(events), total(events), n)
	}
	t.Logf("%d offline when killed, %d caught up on restart", before, n-before)
}

func TestPubSubConnectionKilledLosesNothing(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.Start(t, withEvents...)
	st := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	cfg := testConfig()
	cfg.SweepIntervalMs = 60000 // no timed tick: only events, resubscription scans and the deadline wakes they schedule
	svc, _ := startSweeper(t, rdb, cfg)
	testkit.Eventually(t, 2*time.Second, func() bool { return val(svc.m.subscriptions) == 1 }, "subscribed")

	first := runnerIDs("first", 20)
	registerAll(t, st, first, func(int) time.Duration { return 150 * time.Millisecond })
	testkit.Eventually(t, 3*time.Second, func() bool { return count(t, rdb, wire.RunnerOffline) == 20 }, "first batch offline through events")
	// the last events of the first batch may still prompt a scan; once the
	// sweeper is quiet, nothing it knows of is due before the tick, so only
	// the resubscription scan can learn about the second batch
	quiet(t, svc, 50*time.Millisecond)

	killed, err := rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Result()
	if err != nil || killed != 1 {
		t.Fatalf("CLIENT KILL TYPE pubsub: %d killed, %v", killed, err)
	}
	// these expire while the subscriber is away: their events are lost
	second := runnerIDs("second", 20)
	registerAll(t, st, second, func(int) time.Duration { return 20 * time.Millisecond })
	testkit.Eventually(t, 5*time.Second, func() bool { return count(t, rdb, wire.RunnerOffline) == 40 }, "second batch offline after the resubscription scan")
	if got := val(svc.m.subscriptions); got < 2 {
		t.Errorf("subscriptions = %v, want a resubscription before the second batch was found", got)
	}
	if events := outboxEvents(t, rdb, wire.EventRunnerOffline); len(events) != 40 || total(events) != 40 {
		t.Errorf("runner.offline events: %d runners, %d events, want 40 each once", len(events), total(events))
	}
}

func TestMassExpiryQuarantinesThenRecoversAndReleasesTheRestAfterTheHold(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.Start(t, withEvents...)
	st := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	cfg := testConfig()
	cfg.MassExpiryPercent, cfg.MassExpiryMin, cfg.MassExpiryHoldMs = 50, 10, 1500
	const ttl = 300 * time.Millisecond

	healthy := runnerIDs("healthy", 4)
	for _, id := range healthy {
		l := register(t, st, id, ttl)
		defer heartbeatLoop(t, st, id, l.Epoch, ttl, 80*time.Millisecond)()
	}
	lost := runnerIDs("lost", 20)
	epochs := map[string]int64{}
	for _, id := range lost {
		epochs[id] = register(t, st, id, time.Minute).Epoch
	}
	kept, _, err := st.Dispatch(ctx, store.DispatchParams{RunnerID: lost[0], Type: "shell"})
	if err != nil {
		t.Fatal(err)
	}
	dropped, _, err := st.Dispatch(ctx, store.DispatchParams{RunnerID: lost[19], Type: "shell"})
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := startSweeper(t, rdb, cfg)

	outage(t, rdb, lost) // every lost lease ends at the same instant
	testkit.Eventually(t, 3*time.Second, func() bool { return count(t, rdb, wire.RunnerUnreachable) == 20 }, "20 runners unreachable")
	qs, err := st.GetQuarantineState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !qs.Active || qs.Count != 20 || qs.Quarantined != 20 {
		t.Fatalf("quarantine state = %+v, want active with 20", qs)
	}
	if n := count(t, rdb, wire.RunnerOffline); n != 0 {
		t.Fatalf("%d runners offline during the quarantine", n)
	}
	if ev := outboxEvents(t, rdb, wire.EventRunnerOffline); len(ev) != 0 {
		t.Fatalf("runner.offline events during the quarantine: %v", ev)
	}
	if ev := outboxEvents(t, rdb, wire.EventRunnerUnreachable); len(ev) != 20 {
		t.Errorf("runner.unreachable events for %d runners, want 20", len(ev))
	}
	// the metrics follow the Redis state once the gate's answer is applied
	testkit.Eventually(t, time.Second, func() bool {
		return val(svc.m.qEntries) == 1 && val(svc.m.quarantineActive) == 1
	}, "quarantine metrics")

	// 12 come back with a heartbeat, under the same epoch, no re-registration
	for _, id := range lost[:12] {
		defer heartbeatLoop(t, st, id, epochs[id], ttl, 80*time.Millisecond)()
	}
	testkit.Eventually(t, 2*time.Second, func() bool { return count(t, rdb, wire.RunnerOnline) == 16 }, "12 runners back online")
	if task, _ := st.GetTask(ctx, kept.ID); task.Status != wire.TaskPending {
		t.Errorf("task of a recovered runner is %s, want pending (kept)", task.Status)
	}

	// the hold expires: the other 8 take the normal offline transition
	testkit.Eventually(t, 4*time.Second, func() bool { return count(t, rdb, wire.RunnerOffline) == 8 }, "8 runners offline after the hold")
	want := map[string]int{}
	for _, id := range lost[12:] {
		want[id] = 1
	}
	if diff := cmp.Diff(want, outboxEvents(t, rdb, wire.EventRunnerOffline)); diff != "" {
		t.Errorf("runner.offline events (-want +got):\n%s", diff)
	}
	if task, _ := st.GetTask(ctx, dropped.ID); task.Status != wire.TaskFailed {
		t.Errorf("task of a released runner is %s, want failed", task.Status)
	}
	testkit.Eventually(t, time.Second, func() bool {
		qs, _ = st.GetQuarantineState(ctx)
		return !qs.Active && qs.Quarantined == 0 && val(svc.m.quarantineActive) == 0
	}, "quarantine ended")
	if qs.ExitReason != store.QuarantineHoldExpired || val(svc.m.qExits.WithLabelValues(store.QuarantineHoldExpired)) != 1 {
		t.Errorf("exit reason %q, exits{hold_expired}=%v", qs.ExitReason, val(svc.m.qExits.WithLabelValues(store.QuarantineHoldExpired)))
	}
	if n := count(t, rdb, wire.RunnerOnline); n != 16 {
		t.Errorf("%d online, want 16", n)
	}
}

func TestQuarantineEndsWhenEveryoneRecoversOrAnOperatorConfirms(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.Start(t, withEvents...)
	st := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	cfg := testConfig()
	cfg.MassExpiryPercent, cfg.MassExpiryMin, cfg.MassExpiryHoldMs = 50, 10, 600000
	cfg.AdminAPIKeys = []string{"operator-key-0123456789"}
	svc, _ := startSweeper(t, rdb, cfg)
	hs := httpServer(t, svc)

	ids := runnerIDs("q", 12)
	epochs := map[string]int64{}
	for _, id := range ids {
		epochs[id] = register(t, st, id, time.Minute).Epoch
	}

	t.Run("recovered", func(t *testing.T) {
		outage(t, rdb, ids)
		testkit.Eventually(t, 3*time.Second, func() bool { return count(t, rdb, wire.RunnerUnreachable) == 12 }, "quarantined")
		for _, id := range ids {
			if _, err := st.Heartbeat(ctx, store.HeartbeatParams{RunnerID: id, Epoch: epochs[id], LeaseTTL: time.Minute}); err != nil {
				t.Fatal(err)
			}
		}
		testkit.Eventually(t, 2*time.Second, func() bool {
			qs, _ := st.GetQuarantineState(ctx)
			return !qs.Active && qs.ExitReason == store.QuarantineRecovered
		}, "quarantine ended")
		if count(t, rdb, wire.RunnerOnline) != 12 || len(outboxEvents(t, rdb, wire.EventRunnerRecovered)) != 12 {
			t.Errorf("want 12 online runners and 12 runner.recovered events")
		}
	})

	t.Run("operator", func(t *testing.T) {
		_ = rdb.Del(ctx, store.RecentExpiriesKey())
		outage(t, rdb, ids)
		testkit.Eventually(t, 3*time.Second, func() bool { return count(t, rdb, wire.RunnerUnreachable) == 12 }, "quarantined again")
		var state quarantineView
		if code := doJSON(t, hs, "GET", "/quarantine", "", &state); code != 200 || !state.Active || state.Quarantined != 12 {
			t.Fatalf("GET /quarantine = %d %+v", code, state)
		}
		if code := doJSON(t, hs, "POST", "/quarantine/release", "", nil); code != http.StatusUnauthorized {
			t.Errorf("release without a key = %d, want 401", code)
		}
		if code := doJSON(t, hs, "POST", "/quarantine/release", "operator-key-0123456789", nil); code != 200 {
			t.Fatalf("release = %d, want 200", code)
		}
		testkit.Eventually(t, 2*time.Second, func() bool { return count(t, rdb, wire.RunnerOffline) == 12 }, "released runners offline")
		if code := doJSON(t, hs, "POST", "/quarantine/release", "operator-key-0123456789", nil); code != http.StatusConflict {
			t.Errorf("second release = %d, want 409", code)
		}
		if got := val(svc.m.qExits.WithLabelValues(store.QuarantineOperator)); got != 1 {
			t.Errorf("exits{operator} = %v, want 1", got)
		}
		if ev := outboxEvents(t, rdb, wire.EventRunnerOffline); len(ev) != 12 || total(ev) != 12 {
			t.Errorf("runner.offline events = %v, want 12 once each", ev)
		}
	})
}

func TestTaskTimeoutFailsOnceAndTheNextHeartbeatCancelsIt(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.Start(t, withEvents...)
	st := store.New(store.Wrap(rdb), store.OptionsFrom(testConfig().Fleet)) // the heartbeat lists cancels for CancelRetention
	lease := register(t, st, "r1", time.Minute)
	cfg := testConfig()
	cfg.TaskTimeoutGraceMs = 50
	svc, _ := startSweeper(t, rdb, cfg)

	slowPending, _, _ := st.Dispatch(ctx, store.DispatchParams{RunnerID: "r1", Type: "shell", Timeout: 100 * time.Millisecond})
	slowRunning, _, _ := st.Dispatch(ctx, store.DispatchParams{RunnerID: "r1", Type: "shell", Timeout: 100 * time.Millisecond})
	fast, _, _ := st.Dispatch(ctx, store.DispatchParams{RunnerID: "r1", Type: "shell", Timeout: 100 * time.Millisecond})
	for _, id := range []string{slowRunning.ID, fast.ID} {
		if _, err := st.UpdateTask(ctx, store.TaskUpdateParams{RunnerID: "r1", TaskID: id, Status: wire.TaskRunning, Epoch: lease.Epoch, Actor: store.ActorRunner}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.UpdateTask(ctx, store.TaskUpdateParams{RunnerID: "r1", TaskID: fast.ID, Status: wire.TaskSucceeded, Epoch: lease.Epoch, Actor: store.ActorRunner}); err != nil {
		t.Fatal(err)
	}

	testkit.Eventually(t, 3*time.Second, func() bool {
		a, _ := st.GetTask(ctx, slowPending.ID)
		b, _ := st.GetTask(ctx, slowRunning.ID)
		return a.Status == wire.TaskFailed && b.Status == wire.TaskFailed
	}, "both slow tasks failed")
	for _, id := range []string{slowPending.ID, slowRunning.ID} {
		if task, _ := st.GetTask(ctx, id); task.Error != store.TaskTimeoutError {
			t.Errorf("task %s error = %q, want %q", id, task.Error, store.TaskTimeoutError)
		}
	}
	if task, _ := st.GetTask(ctx, fast.ID); task.Status != wire.TaskSucceeded {
		t.Errorf("finished task is %s, want succeeded", task.Status)
	}
	// once: a second pass (another replica) changes nothing
	for _, r := range st.TimeoutTasks(ctx, []string{slowPending.ID, slowRunning.ID}, 0) {
		if r.Failed || r.Err != nil {
			t.Errorf("second timeout of %s: failed=%v err=%v", r.TaskID, r.Failed, r.Err)
		}
	}
	stats, _ := st.Stats(ctx)
	if stats["tasks_completed:failed"] != 2 {
		t.Errorf("tasks_completed:failed = %d, want 2", stats["tasks_completed:failed"])
	}
	testkit.Eventually(t, time.Second, func() bool {
		return val(svc.m.taskTimeouts.WithLabelValues("pending")) == 1 && val(svc.m.taskTimeouts.WithLabelValues("running")) == 1
	}, "both timeouts counted")
	if p, r := val(svc.m.taskTimeouts.WithLabelValues("pending")), val(svc.m.taskTimeouts.WithLabelValues("running")); p != 1 || r != 1 {
		t.Errorf("task_timeouts pending=%v running=%v, want 1 and 1", p, r)
	}
	hb, err := st.Heartbeat(ctx, store.HeartbeatParams{RunnerID: "r1", Epoch: lease.Epoch, LeaseTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{slowRunning.ID}, hb.CancelTaskIDs); diff != "" {
		t.Errorf("cancelTaskIds (-want +got):\n%s", diff)
	}
	if len(hb.Tasks) != 0 {
		t.Errorf("heartbeat still hands out %d tasks", len(hb.Tasks))
	}
	if r, _ := st.GetRunner(ctx, "r1"); r.Status != wire.RunnerOnline {
		t.Errorf("runner is %s, want online", r.Status)
	}
}

func TestServeAnswersAndShutsDownWithoutLeaks(t *testing.T) {
	_, rdb := redistest.Start(t, withEvents...)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	svc, err := New(testConfig(), store.Wrap(rdb), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := testkit.Serve(t, func(ctx context.Context) error { return svc.Serve(ctx, ln) })
	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for path, want := range map[string]string{
		"/health":  `"ok"`,
		"/ready":   `"ready"`,
		"/metrics": "yggdrasil_detection_lag_seconds_bucket",
	} {
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
	stop()
	client.CloseIdleConnections()
}

func TestConfigValidation(t *testing.T) {
	cfg := testConfig()
	cfg.SweepBatch = 0
	cfg.MassExpiryPercent = 101
	cfg.HeartbeatIntervalMs = cfg.LeaseTTLMs
	_, err := New(cfg, nil, logging.Discard())
	for _, v := range []string{"SWEEP_BATCH", "MASS_EXPIRY_PERCENT", "HEARTBEAT_INTERVAL_MS"} {
		if err == nil || !strings.Contains(err.Error(), v) {
			t.Errorf("New with a bad config: %v, want %s reported", err, v)
		}
	}
}

// quiet waits until the sweeper ran no lease scan for d.
func quiet(t *testing.T, svc *Service, d time.Duration) {
	t.Helper()
	scans := func() float64 {
		return val(svc.m.scans.WithLabelValues(string(byTick))) + val(svc.m.scans.WithLabelValues(string(byDeadline))) +
			val(svc.m.scans.WithLabelValues(string(byEvent)))
	}
	last, since := scans(), time.Now()
	testkit.Eventually(t, 2*time.Second, func() bool {
		if n := scans(); n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) >= d
	}, "the sweeper quiet")
}

// outage makes every given lease end at the same instant, about 100 ms from
// now: what an API outage or a network partition looks like to Redis.
func outage(t *testing.T, rdb *redis.Client, ids []string) {
	t.Helper()
	ctx := context.Background()
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	at := now.Add(100 * time.Millisecond).UnixMilli()
	_, err = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.PExpireAt(ctx, store.LeaseKey(id), time.UnixMilli(at))
			p.ZAdd(ctx, store.LeaseDeadlinesKey(), redis.Z{Score: float64(at), Member: id})
			p.HSet(ctx, store.RunnerKey(id), "leaseExpiresAt", at)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// heartbeatLoop heartbeats a runner every interval until the returned stop is called.
func heartbeatLoop(t *testing.T, st *store.Store, id string, epoch int64, ttl, every time.Duration) func() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			if _, err := st.Heartbeat(ctx, store.HeartbeatParams{RunnerID: id, Epoch: epoch, LeaseTTL: ttl}); err != nil && ctx.Err() == nil {
				t.Errorf("heartbeat %s: %v", id, err)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// registerAll registers ids from a few goroutines, each with ttl(i).
func registerAll(t *testing.T, st *store.Store, ids []string, ttl func(i int) time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	const workers = 8
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(ids); i += workers {
				register(t, st, ids[i], ttl(i))
			}
		})
	}
	wg.Wait()
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func histCount(t *testing.T, svc *Service) uint64 {
	t.Helper()
	mfs, err := svc.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasSuffix(mf.GetName(), "detection_lag_seconds") {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

type testHTTP struct {
	base   string
	client *http.Client
}

func httpServer(t *testing.T, svc *Service) testHTTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	tr := &http.Transport{}
	t.Cleanup(func() { _ = srv.Close(); tr.CloseIdleConnections() })
	return testHTTP{base: "http://" + ln.Addr().String(), client: &http.Client{Timeout: 2 * time.Second, Transport: tr}}
}

func doJSON(t *testing.T, h testHTTP, method, path, key string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, h.base+path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// fleet heartbeats runners at one interval with their phases spread evenly
// over it, the way a real fleet renews; stop ends every loop at once.
type fleet struct {
	stops []func()
}

func startFleet(t *testing.T, st *store.Store, ids []string, epochs map[string]int64, ttl, every time.Duration) *fleet {
	t.Helper()
	f := &fleet{}
	for i, id := range ids {
		phase := time.Duration(i) * every / time.Duration(len(ids))
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(phase):
			}
			stop := heartbeatLoop(t, st, id, epochs[id], ttl, every)
			<-ctx.Done()
			stop()
		})
		f.stops = append(f.stops, func() { cancel(); wg.Wait() })
	}
	t.Cleanup(f.stop)
	return f
}

func (f *fleet) stop() {
	for _, s := range f.stops {
		s()
	}
	f.stops = nil
}

// An API outage (or a partition between the runners and the controller):
// every heartbeat stops at once, and the leases then run out spread over one
// heartbeat interval. The fleet_silent rule sees the silence when the first
// lease runs out, so not one runner is failed; two replicas agree.
func TestAPIOutageQuarantinesBeforeAnyRunnerGoesOffline(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.Start(t, withEvents...)
	st := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	cfg := testConfig()
	cfg.LeaseTTLMs, cfg.HeartbeatIntervalMs = 1200, 400
	cfg.MassExpiryPercent, cfg.MassExpiryMin, cfg.MassExpiryHoldMs = 50, 10, 600000
	ttl, every := cfg.LeaseTTL(), cfg.HeartbeatInterval()

	ids := runnerIDs("fleet", 40)
	epochs := map[string]int64{}
	for _, id := range ids {
		epochs[id] = register(t, st, id, ttl).Epoch
	}
	task, _, err := st.Dispatch(ctx, store.DispatchParams{RunnerID: ids[0], Type: "shell"})
	if err != nil {
		t.Fatal(err)
	}
	one, _ := startSweeper(t, rdb, cfg)
	two, _ := startSweeper(t, rdb, cfg)
	f := startFleet(t, st, ids, epochs, ttl, every)
	time.Sleep(2 * every) // a healthy fleet for two intervals: nobody goes anywhere
	if n := count(t, rdb, wire.RunnerOnline); n != 40 {
		t.Fatalf("%d online in the healthy fleet, want 40", n)
	}

	f.stop() // the outage
	testkit.Eventually(t, 3*ttl, func() bool { return count(t, rdb, wire.RunnerUnreachable) == 40 }, "40 runners unreachable")
	if n := count(t, rdb, wire.RunnerOffline); n != 0 {
		t.Fatalf("%d runners offline in an API outage, want 0", n)
	}
	if ev := outboxEvents(t, rdb, wire.EventRunnerOffline); len(ev) != 0 {
		t.Fatalf("runner.offline events in an API outage: %v", ev)
	}
	if ev := outboxEvents(t, rdb, wire.EventRunnerUnreachable); len(ev) != 40 || total(ev) != 40 {
		t.Errorf("runner.unreachable events: %d runners, %d events; want 40 once each", len(ev), total(ev))
	}
	qs, err := st.GetQuarantineState(ctx)
	if err != nil || !qs.Active || qs.Rule != store.RuleFleetSilent || qs.Quarantined != 40 {
		t.Fatalf("quarantine = %+v, %v; want active by fleet_silent with 40", qs, err)
	}
	if n := val(one.m.qEntries) + val(two.m.qEntries); n != 1 {
		t.Errorf("quarantine entered %v times across the replicas, want 1", n)
	}

	// the API is back: everyone heartbeats again, under the same epoch
	startFleet(t, st, ids, epochs, ttl, every)
	testkit.Eventually(t, 3*time.Second, func() bool {
		qs, _ := st.GetQuarantineState(ctx)
		return !qs.Active && qs.ExitReason == store.QuarantineRecovered
	}, "quarantine ended, recovered")
	if n := count(t, rdb, wire.RunnerOnline); n != 40 {
		t.Errorf("%d online after the outage, want 40", n)
	}
	if ev := outboxEvents(t, rdb, wire.EventRunnerRecovered); len(ev) != 40 {
		t.Errorf("runner.recovered events for %d runners, want 40", len(ev))
	}
	for _, id := range ids {
		if r, err := st.GetRunner(ctx, id); err != nil || r.LeaseEpoch != epochs[id] {
			t.Fatalf("runner %s after recovery: epoch %d (%v), want %d", id, r.LeaseEpoch, err, epochs[id])
		}
	}
	if tk, _ := st.GetTask(ctx, task.ID); tk.Status != wire.TaskPending {
		t.Errorf("task of a recovered runner is %s, want pending (kept)", tk.Status)
	}
	if ev := outboxEvents(t, rdb, wire.EventRunnerOffline); len(ev) != 0 {
		t.Errorf("runner.offline events: %v, want none", ev)
	}
}

// Individual and partial losses in a heartbeating fleet are not an outage:
// one runner dying, then 30 % at once, go offline promptly; a fleet smaller
// than MASS_EXPIRY_MIN never quarantines, even when it all goes.
func TestGenuineLossesGoOfflineWithoutQuarantine(t *testing.T) {
	cfg := testConfig()
	cfg.LeaseTTLMs, cfg.HeartbeatIntervalMs = 900, 300 // the rest may be up to 150 ms late without looking silent
	cfg.MassExpiryPercent, cfg.MassExpiryMin = 50, 10
	ttl, every := cfg.LeaseTTL(), cfg.HeartbeatInterval()

	for _, tc := range []struct {
		name        string
		size        int
		losses      []int // runners that stop, in successive waves
		wantOffline int
	}{
		{"one, then 30 percent of 40", 40, []int{1, 12}, 13},
		{"all of a fleet below the minimum", 8, []int{8}, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			_, rdb := redistest.Start(t, withEvents...)
			st := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
			ids := runnerIDs("r", tc.size)
			epochs := map[string]int64{}
			for _, id := range ids {
				epochs[id] = register(t, st, id, ttl).Epoch
			}
			svc, _ := startSweeper(t, rdb, cfg)
			fleets := map[string]*fleet{}
			for _, id := range ids {
				fleets[id] = startFleet(t, st, []string{id}, epochs, ttl, every)
			}
			time.Sleep(every)
			gone := 0
			for _, n := range tc.losses {
				stopped := time.Now()
				for _, id := range ids[gone : gone+n] {
					fleets[id].stop()
				}
				gone += n
				testkit.Eventually(t, ttl+time.Second, func() bool { return count(t, rdb, wire.RunnerOffline) == int64(gone) }, "the stopped runners offline")
				if took := time.Since(stopped); took > ttl+500*time.Millisecond {
					t.Errorf("%d runners took %s to go offline (TTL %s)", n, took, ttl)
				}
			}
			qs, err := st.GetQuarantineState(ctx)
			if err != nil || qs.Active || val(svc.m.qEntries) != 0 {
				t.Fatalf("quarantine = %+v, %v, entries %v; want none", qs, err, val(svc.m.qEntries))
			}
			if n := count(t, rdb, wire.RunnerUnreachable); n != 0 {
				t.Errorf("%d unreachable, want 0", n)
			}
			if ev := outboxEvents(t, rdb, wire.EventRunnerOffline); len(ev) != tc.wantOffline || total(ev) != tc.wantOffline {
				t.Errorf("runner.offline events for %d runners (%d events), want %d", len(ev), total(ev), tc.wantOffline)
			}
			if n := count(t, rdb, wire.RunnerOnline); n != int64(tc.size-tc.wantOffline) {
				t.Errorf("%d online, want %d", n, tc.size-tc.wantOffline)
			}
		})
	}
}

// Without keyspace events and with the timed tick a minute away, only the
// wake at the next lease deadline can find an expiry: it does, within
// milliseconds, each of three staggered deadlines in turn.
func TestWakesAtTheNextLeaseDeadline(t *testing.T) {
	_, rdb := redistest.Start(t, "--rename-command", "CONFIG", "")
	st := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	cfg := testConfig()
	cfg.SweepIntervalMs = 60000 // the longest tick allowed
	ids := runnerIDs("w", 3)
	for i, id := range ids {
		register(t, st, id, time.Duration(200+100*i)*time.Millisecond)
	}
	svc, _ := startSweeper(t, rdb, cfg)
	testkit.Eventually(t, 3*time.Second, func() bool { return count(t, rdb, wire.RunnerOffline) == 3 }, "3 runners offline")
	if val(svc.m.eventsReceived) != 0 || val(svc.m.scans.WithLabelValues(string(byTick))) != 1 {
		t.Errorf("events=%v tick scans=%v, want 0 and only the first", val(svc.m.eventsReceived), val(svc.m.scans.WithLabelValues(string(byTick))))
	}
	// a scan is counted when it returns, just after its transitions are
	// visible in Redis: wait for the count rather than race it
	testkit.Eventually(t, time.Second, func() bool {
		return val(svc.m.scans.WithLabelValues(string(byDeadline))) >= 3
	}, "a deadline scan per deadline")
	if got := val(svc.m.scans.WithLabelValues(string(byDeadline))); got > 20 {
		t.Errorf("deadline scans = %v, want one or a few per deadline", got)
	}
	lags := offlineLagsMs(t, rdb)
	for id, lag := range lags {
		t.Logf("%s: detection lag %d ms", id, lag)
	}
	if len(lags) != 3 {
		t.Errorf("runner.offline events for %d runners, want 3", len(lags))
	}
}

// offlineLagsMs reads transition time minus lease deadline (Redis ms) from
// the runner.offline events, by runner id.
func offlineLagsMs(t *testing.T, rdb *redis.Client) map[string]int64 {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), store.OutboxKey(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, m := range msgs {
		if m.Values["type"] != wire.EventRunnerOffline {
			continue
		}
		var d struct {
			Runner           struct{ ID string }
			LeaseExpiredAtMs int64 `json:"leaseExpiredAtMs"`
		}
		if err := json.Unmarshal([]byte(m.Values["data"].(string)), &d); err != nil {
			t.Fatal(err)
		}
		ts, err := strconv.ParseInt(m.Values["ts"].(string), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		out[d.Runner.ID] = ts - d.LeaseExpiredAtMs
	}
	return out
}
