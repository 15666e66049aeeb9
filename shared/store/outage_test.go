package store_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

func TestRecordOutageWritesOneMemberPerWindowAndDropsOldOnes(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t)
	now := time.Now().Truncate(time.Millisecond)
	from, to := now.Add(-3*time.Second), now.Add(-time.Second)
	for range 2 { // the same window twice is one member
		if err := s.RecordOutage(ctx, from, to, "api"); err != nil {
			t.Fatal(err)
		}
	}
	member := "api:" + strconv.FormatInt(from.UnixMilli(), 10) + ":" + strconv.FormatInt(to.UnixMilli(), 10)
	got, err := rdb.ZRangeWithScores(ctx, store.OutagesKey(), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Member != member || int64(got[0].Score) != to.UnixMilli() {
		t.Fatalf("outages = %+v, want one %s scored %d", got, member, to.UnixMilli())
	}
	// A window that ended beyond the retention is dropped by the next write.
	old := now.Add(-store.OutageRetention - time.Hour)
	if err := rdb.ZAdd(ctx, store.OutagesKey(), redisZ(old)).Err(); err != nil {
		t.Fatal(err)
	}
	// A window recorded while it went on, then again once it ended: one member.
	for _, end := range []time.Time{now.Add(-500 * time.Millisecond), now} {
		if err := s.RecordOutage(ctx, now.Add(-time.Second), end, "overload"); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.Outages(ctx, now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Outage{{Source: "api", From: from, To: to}, {Source: "overload", From: now.Add(-time.Second), To: now}}
	if d := cmp.Diff(want, list); d != "" {
		t.Fatalf("outages (-want +got):\n%s", d)
	}
	if n, _ := rdb.ZCard(ctx, store.OutagesKey()).Result(); n != 2 {
		t.Fatalf("%d members, want the old window gone", n)
	}
	if err := s.RecordOutage(ctx, to, from, "api"); err == nil {
		t.Fatal("a window ending before it starts was accepted")
	}
	if err := s.RecordOutage(ctx, from, to, "a:b"); err == nil {
		t.Fatal("a source with ':' was accepted")
	}
}

func redisZ(end time.Time) redis.Z {
	return redis.Z{Score: float64(end.UnixMilli()), Member: "api:0:" + strconv.FormatInt(end.UnixMilli(), 10)}
}
