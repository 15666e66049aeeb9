package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// TestMassExpiryInOneRealmQuarantinesThatRealmOnly: red (6 runners) loses
// every lease at once while blue (14) loses one at a time. 6 of 20 is below
// the fleet-wide 50 %, 6 of 6 is above red's: red alone is quarantined (its
// runners unreachable, no offline event), the fleet-wide state stays off,
// and blue's runners keep expiring one by one with their runner.offline
// event. A red runner that heartbeats recovers; the operator's release
// ends red's quarantine and the rest go offline. A realm's own
// massExpiryPercent replaces the global one (green, 100: never).
func TestMassExpiryInOneRealmQuarantinesThatRealmOnly(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t)
	policy := store.MassExpiryPolicy{Percent: 50, Min: 3, Window: time.Minute}
	never := 100
	if err := s.CreateRealm(ctx, store.RealmWrite{Name: "green", Policies: wire.RealmPolicies{MassExpiryPercent: &never}}, "test"); err != nil {
		t.Fatal(err)
	}
	leases := map[string]store.Lease{}
	reg := func(realm string, ids []string) {
		for _, id := range ids {
			_, l, err := s.Register(ctx, store.RegisterParams{ID: id, Version: "1.0.0", Realm: realm, Capacity: 1,
				TokenHash: "h", LeaseTTL: time.Minute, ActsForAnyRunner: true})
			if err != nil {
				t.Fatal(err)
			}
			leases[id] = l
		}
	}
	red, blue, green := ids("red", 6), ids("blue", 14), ids("green", 3)
	reg("red", red)
	reg("blue", blue)
	reg("green", green)

	endLeases(t, rdb, red)
	d, err := s.SweepDue(ctx, 100, policy)
	if err != nil {
		t.Fatal(err)
	}
	if d.Entered || len(d.Expire) != 0 || !cmp.Equal(d.RealmsEntered, []string{"red"}) ||
		!cmp.Equal(sorted(d.RealmQuarantined), red) || !cmp.Equal(sorted(d.Quarantined), red) {
		t.Fatalf("red's mass expiry: %+v, want red alone quarantined", d)
	}
	if st, err := s.GetQuarantineState(ctx); err != nil || st.Active || st.Quarantined != 0 {
		t.Fatalf("fleet-wide state %+v, %v: want inactive and empty", st, err)
	}
	if st, err := s.GetRealmQuarantineState(ctx, "red"); err != nil || !st.Active || st.Quarantined != 6 || st.Rule != store.RuleMassExpiry {
		t.Fatalf("red's state %+v, %v", st, err)
	}

	// the per-realm counts (the api's realm_runners gauge) see red unreachable
	counts, err := s.RealmRunnerCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantCounts := []store.RealmRunnerCount{
		{Realm: "blue", Online: 14}, {Realm: "default"}, {Realm: "green", Online: 3}, {Realm: "red", Unreachable: 6},
	}
	if d := cmp.Diff(wantCounts, counts); d != "" {
		t.Errorf("realm runner counts (-want +got):\n%s", d)
	}

	// blue keeps expiring one by one, each with its offline transition
	for _, id := range blue[:3] {
		endLeases(t, rdb, []string{id})
		d, err := s.SweepDue(ctx, 100, policy)
		if err != nil {
			t.Fatal(err)
		}
		if d.Entered || len(d.RealmsEntered) != 0 || len(d.Quarantined) != 0 || !cmp.Equal(d.Expire, []string{id}) {
			t.Fatalf("blue's %s: %+v, want it expiring normally", id, d)
		}
		for _, r := range s.ExpireLeases(ctx, d.Expire) {
			if r.Err != nil {
				t.Fatalf("expire %s: %v", id, r.Err)
			}
		}
	}
	// green loses all three at once, but its policy (100 %) never quarantines
	endLeases(t, rdb, green)
	if d, err = s.SweepDue(ctx, 100, policy); err != nil || len(d.RealmsEntered) != 0 || !cmp.Equal(sorted(d.Expire), green) {
		t.Fatalf("green, massExpiryPercent 100: %+v %v, want every one expiring", d, err)
	}
	s.ExpireLeases(ctx, d.Expire)
	if counts, err = s.RealmRunnerCounts(ctx); err != nil {
		t.Fatal(err)
	}
	wantCounts = []store.RealmRunnerCount{
		{Realm: "blue", Online: 11, Offline: 3}, {Realm: "default"}, {Realm: "green", Offline: 3}, {Realm: "red", Unreachable: 6},
	}
	if d := cmp.Diff(wantCounts, counts); d != "" {
		t.Errorf("realm runner counts after the expiries (-want +got):\n%s", d)
	}

	events := map[string][]string{}
	msgs, err := rdb.XRange(ctx, store.OutboxKey(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		ev, err := store.DecodeEvent(store.OutboxEntry{ID: m.ID, Values: m.Values})
		if err != nil || ev.Type == wire.EventRunnerRegistered {
			continue
		}
		r, _ := jsonRealm(ev)
		events[r] = append(events[r], ev.Type)
	}
	want := map[string][]string{
		"red":   {"runner.unreachable", "runner.unreachable", "runner.unreachable", "runner.unreachable", "runner.unreachable", "runner.unreachable"},
		"blue":  {"runner.offline", "runner.offline", "runner.offline"},
		"green": {"runner.offline", "runner.offline", "runner.offline"},
	}
	if d := cmp.Diff(want, events); d != "" {
		t.Errorf("events by realm (-want +got):\n%s", d)
	}

	// one red runner comes back; the hold is long, so red stays quarantined
	if _, err := s.Heartbeat(ctx, store.HeartbeatParams{RunnerID: red[0], Epoch: leases[red[0]].Epoch, LeaseTTL: time.Minute,
		HeartbeatInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	step, err := s.StepRealmQuarantine(ctx, "red", time.Hour, false, 100)
	if err != nil || step.Ended || !step.Active || step.Remaining != 5 {
		t.Fatalf("step after one came back: %+v %v, want active with 5 left", step, err)
	}
	step, err = s.StepRealmQuarantine(ctx, "red", time.Hour, true, 100)
	if err != nil || !step.Ended || step.Reason != store.QuarantineOperator || step.Remaining != 5 {
		t.Fatalf("operator release: %+v %v", step, err)
	}
	left, err := s.RealmQuarantinedIDs(ctx, "red", 100)
	if err != nil || !cmp.Equal(sorted(left), red[1:]) {
		t.Fatalf("left %v %v, want %v", left, err, red[1:])
	}
	for _, r := range s.ExpireLeases(ctx, left) {
		if r.Err != nil {
			t.Fatalf("release %s: %v", r.RunnerID, r.Err)
		}
	}
	if err := s.DropRealmQuarantined(ctx, "red", left); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StepRealmQuarantine(ctx, "red", time.Hour, false, 100); err != nil {
		t.Fatal(err)
	}
	if rs, err := s.QuarantinedRealms(ctx); err != nil || len(rs) != 0 {
		t.Fatalf("quarantined realms after the release: %v %v", rs, err)
	}
}

func jsonRealm(ev wire.Event) (string, error) {
	var d wire.RunnerEventData
	err := json.Unmarshal(ev.Data, &d)
	return d.Runner.Realm, err
}
