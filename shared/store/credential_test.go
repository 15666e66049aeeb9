package store_test

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// register.lua refuses a live runner's id to a caller that holds none of
// its credentials, in the same step that would re-register it: the token
// hash is compared with the one stored at that moment, so a token the
// runner replaced in the meantime proves nothing.
func TestRegisterLiveRunnerNeedsItsCredential(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t)
	reg := func(id, newHash string, anyRunner bool, callerHash string) error {
		_, _, err := s.Register(ctx, store.RegisterParams{
			ID: id, Name: "n", Version: "1.0.0", TokenHash: newHash, LeaseTTL: time.Minute,
			ActsForAnyRunner: anyRunner, CallerTokenHash: callerHash,
		})
		return err
	}
	if err := reg("r", "h1", false, ""); err != nil {
		t.Fatalf("an unknown id, no credential: %v", err)
	}
	before := snapshot(t, rdb)
	for name, c := range map[string]struct {
		anyRunner bool
		hash      string
	}{"no credential": {}, "another token": {hash: "h0"}} {
		if err := reg("r", "hx", c.anyRunner, c.hash); !errors.Is(err, store.ErrRunnerLive) || !store.IsDomain(err) {
			t.Fatalf("live runner, %s: %v, want ErrRunnerLive", name, err)
		}
	}
	if after := snapshot(t, rdb); after != before {
		t.Fatalf("a refused registration changed the state:\nbefore %s\nafter  %s", before, after)
	}
	if err := reg("r", "h2", false, "h1"); err != nil {
		t.Fatalf("live runner, its own token: %v", err)
	}
	if err := reg("r", "h3", false, "h1"); !errors.Is(err, store.ErrRunnerLive) {
		t.Fatalf("live runner, its replaced token: %v, want ErrRunnerLive", err)
	}
	if err := reg("r", "h3", true, ""); err != nil {
		t.Fatalf("live runner, a key that acts for any runner: %v", err)
	}

	// unreachable is live too
	register(t, s, "q", time.Minute)
	endLeases(t, rdb, []string{"q"})
	if d, err := s.SweepDue(ctx, 10, store.MassExpiryPolicy{Percent: 1, Min: 1, Window: time.Minute}); err != nil || len(d.Quarantined) != 1 {
		t.Fatalf("quarantine q: %+v %v", d, err)
	}
	if info, err := s.GetRunner(ctx, "q"); err != nil || info.Status != wire.RunnerUnreachable {
		t.Fatalf("q = %+v %v", info, err)
	}
	if err := reg("q", "hq", false, ""); !errors.Is(err, store.ErrRunnerLive) {
		t.Fatalf("unreachable runner, no credential: %v, want ErrRunnerLive", err)
	}

	// an offline runner is anyone's to register
	if _, err := s.Deregister(ctx, "r", 0, "test"); err != nil {
		t.Fatal(err)
	}
	if err := reg("r", "h4", false, ""); err != nil {
		t.Fatalf("offline runner, no credential: %v", err)
	}
}

// dispatch.lua refuses a runner whose last heartbeat reported draining, and
// takes it back when it reports otherwise or registers again.
func TestDispatchRefusesDrainingRunner(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	register(t, s, "d", time.Minute)
	dispatch := func() error {
		_, _, err := s.Dispatch(ctx, store.DispatchParams{RunnerID: "d", Type: "shell"})
		return err
	}
	beat := func(activity wire.RunnerStatus) {
		if _, err := s.Heartbeat(ctx, store.HeartbeatParams{RunnerID: "d", LeaseTTL: time.Minute, Activity: activity}); err != nil {
			t.Fatal(err)
		}
	}
	beat(wire.RunnerDraining)
	if err := dispatch(); !errors.Is(err, store.ErrRunnerDraining) || !store.IsDomain(err) {
		t.Fatalf("draining: %v, want ErrRunnerDraining", err)
	}
	beat("") // no activity reported: still draining
	if err := dispatch(); !errors.Is(err, store.ErrRunnerDraining) {
		t.Fatalf("draining, then a heartbeat without activity: %v", err)
	}
	beat(wire.RunnerIdle)
	if err := dispatch(); err != nil {
		t.Fatalf("idle again: %v", err)
	}
	beat(wire.RunnerDraining)
	register(t, s, "d", time.Minute)
	if err := dispatch(); err != nil {
		t.Fatalf("registered again: %v", err)
	}
	if _, err := s.Deregister(ctx, "d", 0, "test"); err != nil {
		t.Fatal(err)
	}
	if err := dispatch(); !errors.Is(err, store.ErrRunnerOffline) {
		t.Fatalf("offline: %v, want ErrRunnerOffline", err)
	}
}

// snapshot dumps every key with its value, to prove that a refused call
// changed nothing.
func snapshot(t *testing.T, rdb *redis.Client) string {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v, err := rdb.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(k + "=" + v + "\n")
	}
	return b.String()
}
