package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// setLease places a runner's lease deadline (and its last heartbeat) at
// offsets from now, as if time had passed; a deadline in the past deletes
// the lease key, as Redis would have.
func setLease(t *testing.T, rdb *redis.Client, now time.Time, id string, deadline, lastBeat time.Duration) {
	t.Helper()
	ctx := context.Background()
	d := now.Add(deadline)
	pipe := rdb.TxPipeline()
	pipe.ZAdd(ctx, store.LeaseDeadlinesKey(), redis.Z{Score: float64(d.UnixMilli()), Member: id})
	pipe.HSet(ctx, store.RunnerKey(id), "leaseExpiresAt", d.UnixMilli(), "lastHeartbeat", now.Add(lastBeat).UnixMilli())
	if deadline <= 0 {
		pipe.Del(ctx, store.LeaseKey(id))
	} else {
		pipe.PExpireAt(ctx, store.LeaseKey(id), d)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOutageGraceRearmsTheLeasesAnOutageCovered(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t)
	const ttl, grace, keep = 3 * time.Second, 3 * time.Second, time.Second
	names := []string{"due", "edge", "renewed", "before", "late", "gone"}
	for _, id := range names {
		register(t, s, id, time.Minute)
	}
	if _, err := s.Deregister(ctx, "gone", 0, "test"); err != nil {
		t.Fatal(err)
	}
	now, err := s.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// the outage: from now-6s to now-1s; leases in [now-6s, now+2s] are covered
	from, to := now.Add(-6*time.Second), now.Add(-time.Second)
	setLease(t, rdb, now, "due", -3*time.Second, -6*time.Second)                    // fell due in the outage
	setLease(t, rdb, now, "edge", 500*time.Millisecond, -2500*time.Millisecond)     // renewed as it began, almost out
	setLease(t, rdb, now, "renewed", 1800*time.Millisecond, -1200*time.Millisecond) // another replica renewed it
	setLease(t, rdb, now, "before", -7*time.Second, -10*time.Second)                // died before the outage
	setLease(t, rdb, now, "late", 2500*time.Millisecond, -500*time.Millisecond)     // due after the covered range
	// the stale index entry of an offline runner inside the window
	if err := rdb.ZAdd(ctx, store.LeaseDeadlinesKey(), redis.Z{Score: float64(now.Add(-2 * time.Second).UnixMilli()), Member: "gone"}).Err(); err != nil {
		t.Fatal(err)
	}
	scores := func() map[string]float64 {
		out := map[string]float64{}
		for _, id := range names {
			out[id], _ = rdb.ZScore(ctx, store.LeaseDeadlinesKey(), id).Result()
		}
		return out
	}
	was := scores()

	w, err := s.RecordOutage(ctx, from, to, store.OutageBreaker)
	if err != nil {
		t.Fatal(err)
	}
	policy := store.MassExpiryPolicy{Percent: 100, Min: 1, Window: ttl}
	d, err := s.SweepDue(ctx, 100, policy)
	if err != nil {
		t.Fatal(err)
	}
	if !d.GraceDue || len(d.Expire)+len(d.Quarantined) != 0 {
		t.Fatalf("gate with a window waiting: %+v, want GraceDue and nothing decided", d)
	}

	g, err := s.GrantOutageGrace(ctx, ttl, grace, keep)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{w.ID}, g.Windows); diff != "" || g.Rearmed != 2 {
		t.Fatalf("grant: rearmed %d, windows (-want +got):\n%s", g.Rearmed, diff)
	}
	got := scores()
	for _, id := range []string{"due", "edge"} {
		if got[id] != float64(g.Until.UnixMilli()) {
			t.Errorf("%s: deadline %v, want re-armed to %v", id, got[id], g.Until.UnixMilli())
		}
		pttl, err := rdb.PTTL(ctx, store.LeaseKey(id)).Result()
		if err != nil || pttl <= grace-time.Second || pttl > grace {
			t.Errorf("%s: lease key PTTL %s (%v), want about %s", id, pttl, err, grace)
		}
		epoch, _ := rdb.Get(ctx, store.LeaseKey(id)).Result()
		if epoch != "1" {
			t.Errorf("%s: lease key holds %q, want the epoch 1", id, epoch)
		}
	}
	for _, id := range []string{"renewed", "before", "late", "gone"} {
		if got[id] != was[id] {
			t.Errorf("%s: deadline moved from %v to %v, want untouched", id, was[id], got[id])
		}
	}

	// granted once: a second replica finds nothing to do
	again, err := s.GrantOutageGrace(ctx, ttl, grace, keep)
	if err != nil || len(again.Windows) != 0 || again.Rearmed != 0 {
		t.Fatalf("second grant: %+v, %v; want nothing", again, err)
	}
	hist, err := s.Outages(ctx, 10)
	if err != nil || len(hist) != 1 || !hist[0].Granted || !strings.HasSuffix(hist[0].Grant, ":2:1") {
		t.Fatalf("history %+v, %v; want the window granted once with 2 leases", hist, err)
	}

	// the sweep goes on: the runner that died before the outage expires
	d, err = s.SweepDue(ctx, 100, policy)
	if err != nil {
		t.Fatal(err)
	}
	if d.GraceDue || !cmp.Equal(sorted(d.Expire), []string{"before"}) {
		t.Fatalf("gate after the grace: %+v, want only %q due", d, "before")
	}
}

func TestRecordOutageRefusesWhatIsNoWindow(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	now := time.Now()
	for name, tc := range map[string]struct {
		from, to time.Time
		source   string
	}{
		"to before from": {now, now.Add(-time.Second), store.OutageBreaker},
		"no source":      {now.Add(-time.Second), now, ""},
		"no start":       {time.UnixMilli(0), now, store.OutageOverload},
		"long source":    {now.Add(-time.Second), now, strings.Repeat("x", 65)},
	} {
		if _, err := s.RecordOutage(ctx, tc.from, tc.to, tc.source); err == nil || store.IsDomain(err) {
			t.Errorf("%s: err %v, want a refusal that is no domain answer", name, err)
		}
	}
	w, err := s.RecordOutage(ctx, now.Add(-time.Second), time.Time{}, store.OutageOverload)
	if err != nil {
		t.Fatal(err)
	}
	if w.To.Before(w.From) || !strings.HasPrefix(w.ID, store.OutageOverload+":") {
		t.Fatalf("window %+v: want an overload window ending now", w)
	}
	// the same window recorded twice is one window
	if _, err := s.RecordOutage(ctx, w.From, w.To, store.OutageOverload); err != nil {
		t.Fatal(err)
	}
	if hist, _ := s.Outages(ctx, 10); len(hist) != 1 {
		t.Fatalf("history %+v, want one window", hist)
	}
}

func TestCheckRestartRecordsARestartOnce(t *testing.T) {
	ctx := context.Background()
	aof := []string{"--appendonly", "yes"}
	srv, rdb := redistest.Start(t, aof...)
	s := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultSweeper().Fleet))
	first, err := s.CheckRestart(ctx)
	if err != nil || first.Restarted {
		t.Fatalf("first check: %+v, %v; want no restart", first, err)
	}
	if rc, err := s.CheckRestart(ctx); err != nil || rc.Restarted || rc.Pending != 0 {
		t.Fatalf("second check: %+v, %v; want no restart", rc, err)
	}
	srv.Stop()
	if err := srv.Restart(aof...); err != nil {
		t.Fatal(err)
	}
	// two sweepers check at once: one of them records the restart
	var wg sync.WaitGroup
	results := make([]store.RestartCheck, 2)
	errs := make([]error, 2)
	for i := range results {
		other := store.New(store.Wrap(srv.Client()), store.OptionsFrom(config.DefaultSweeper().Fleet))
		t.Cleanup(func() { _ = other.Close() })
		wg.Go(func() { results[i], errs[i] = other.CheckRestart(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if results[0].Restarted == results[1].Restarted {
		t.Fatalf("checks after the restart: %+v; want exactly one to find it", results)
	}
	rc := results[0]
	if !rc.Restarted {
		rc = results[1]
	}
	if rc.Window.From.Before(first.Now) || rc.Window.To.Before(rc.Window.From) || rc.Pending != 1 ||
		!strings.HasPrefix(rc.Window.ID, store.OutageRestart+":") {
		t.Fatalf("restart window %+v (first check at %s), want one pending window from the last check to now", rc, first.Now)
	}
}
