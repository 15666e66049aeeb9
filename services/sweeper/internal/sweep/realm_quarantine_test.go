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

// TestOneRealmLosingItsNetworkIsQuarantinedAlone: realm cut (10 runners)
// loses every lease at once while realm steady (10, heartbeating) loses one
// runner after another. 10 of 20 is not above the fleet-wide 50 %, 10 of 10
// is above cut's: cut alone goes unreachable (no runner.offline), the
// fleet-wide quarantine stays off, and each of steady's lost runners goes
// offline with its event while cut is held. After the hold, cut's runners
// still away are released offline and cut leaves the quarantined realms.
func TestOneRealmLosingItsNetworkIsQuarantinedAlone(t *testing.T) {
	ctx := context.Background()
	_, rdb := redistest.Start(t, withEvents...)
	st := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	cfg := testConfig()
	cfg.MassExpiryPercent, cfg.MassExpiryMin, cfg.MassExpiryHoldMs = 50, 5, 1500
	const ttl = 300 * time.Millisecond
	reg := func(realm, id string, ttl time.Duration) store.Lease {
		_, l, err := st.Register(ctx, store.RegisterParams{ID: id, Version: "1.0.0", Realm: realm, Capacity: 1,
			TokenHash: "h", LeaseTTL: ttl, ActsForAnyRunner: true})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	cut, steady := runnerIDs("cut", 10), runnerIDs("steady", 10)
	for _, id := range cut {
		reg("cut", id, time.Minute)
	}
	stops := map[string]func(){}
	for _, id := range steady {
		l := reg("steady", id, ttl)
		stops[id] = heartbeatLoop(t, st, id, l.Epoch, ttl, 80*time.Millisecond)
		defer stops[id]()
	}
	startSweeper(t, rdb, cfg)

	outage(t, rdb, cut)
	testkit.Eventually(t, 3*time.Second, func() bool { return count(t, rdb, wire.RunnerUnreachable) == 10 }, "cut unreachable")
	if qs, err := st.GetQuarantineState(ctx); err != nil || qs.Active || qs.Quarantined != 0 {
		t.Fatalf("fleet-wide quarantine %+v %v: want off", qs, err)
	}
	if qs, err := st.GetRealmQuarantineState(ctx, "cut"); err != nil || !qs.Active || qs.Quarantined != 10 {
		t.Fatalf("cut's quarantine %+v %v: want active with 10", qs, err)
	}

	// steady's runners stop one at a time: each goes offline on its own
	for i, id := range steady[:3] {
		stops[id]()
		testkit.Eventually(t, 2*time.Second, func() bool { return count(t, rdb, wire.RunnerOffline) == int64(i+1) },
			"steady runner %s offline", id)
	}
	off := outboxEvents(t, rdb, wire.EventRunnerOffline)
	if len(off) != 3 || off[steady[0]] != 1 || off[steady[1]] != 1 || off[steady[2]] != 1 {
		t.Fatalf("runner.offline events %v, want steady's three only", off)
	}
	if n := count(t, rdb, wire.RunnerUnreachable); n != 10 {
		t.Fatalf("%d unreachable while steady expired, want cut's 10", n)
	}

	// the hold passes: cut's runners go offline, and cut is no longer held
	testkit.Eventually(t, 4*time.Second, func() bool { return count(t, rdb, wire.RunnerOffline) == 13 }, "cut released offline")
	testkit.Eventually(t, time.Second, func() bool {
		rs, err := st.QuarantinedRealms(ctx)
		return err == nil && len(rs) == 0
	}, "cut left the quarantined realms")
	if qs, _ := st.GetRealmQuarantineState(ctx, "cut"); qs.Active || qs.ExitReason != store.QuarantineHoldExpired {
		t.Errorf("cut's state after the hold %+v", qs)
	}
}
