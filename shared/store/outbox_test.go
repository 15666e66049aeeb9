package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

func TestOutboxReaderReadAckClaimTrim(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t)
	a := store.NewOutboxReader(store.Wrap(rdb), "hooks", "a")
	b := store.NewOutboxReader(store.Wrap(rdb), "hooks", "b")
	for _, r := range []*store.OutboxReader{a, b} {
		if err := r.EnsureGroup(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"r1", "r2", "r3"} {
		register(t, s, id, time.Minute) // one runner.registered event each
	}
	if _, err := s.Deregister(ctx, "r1", 0, "bye"); err != nil {
		t.Fatal(err)
	}

	got, err := a.Read(ctx, 2, 100*time.Millisecond)
	if err != nil || len(got) != 2 {
		t.Fatalf("read: %d entries, %v", len(got), err)
	}
	st, err := a.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Length != 4 || st.Pending != 2 || st.Lag != 2 {
		t.Fatalf("stats = %+v, want length 4, pending 2, lag 2", st)
	}
	// Nothing acknowledged: trimming keeps everything.
	if n, err := a.Trim(ctx); err != nil || n != 0 {
		t.Fatalf("trim with pending: %d, %v", n, err)
	}
	if err := a.Ack(ctx, got[0].ID); err != nil {
		t.Fatal(err)
	}
	if n, err := a.Trim(ctx); err != nil || n != 1 {
		t.Fatalf("trim after one ack: %d, %v; want 1", n, err)
	}

	// b claims what a left pending once it has been idle long enough.
	if c, err := b.Claim(ctx, time.Hour, 10); err != nil || len(c) != 0 {
		t.Fatalf("claim before idle: %d, %v", len(c), err)
	}
	time.Sleep(20 * time.Millisecond)
	c, err := b.Claim(ctx, 10*time.Millisecond, 10)
	if err != nil || len(c) != 1 || c[0].ID != got[1].ID {
		t.Fatalf("claim: %+v, %v; want %s", c, err, got[1].ID)
	}
	if own, err := b.ReadOwnPending(ctx, 10); err != nil || len(own) != 1 {
		t.Fatalf("own pending: %d, %v", len(own), err)
	}
	rest, err := b.Read(ctx, 10, 100*time.Millisecond)
	if err != nil || len(rest) != 2 {
		t.Fatalf("read rest: %d, %v", len(rest), err)
	}
	ev, err := store.DecodeEvent(rest[1])
	if err != nil || ev.Type != "runner.offline" {
		t.Fatalf("last entry: %+v, %v", ev, err)
	}
	if err := b.Ack(ctx, c[0].ID, rest[0].ID, rest[1].ID); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Trim(ctx); err != nil || n != 3 {
		t.Fatalf("trim all: %d, %v; want 3", n, err)
	}
	st, err = b.Stats(ctx)
	if err != nil || st.Length != 0 || st.Pending != 0 || st.OldestUndelivered != 0 {
		t.Fatalf("stats after trim = %+v, %v", st, err)
	}
	// An entry written after the trim is not read yet, so it is kept.
	register(t, s, "r4", time.Minute)
	if n, err := b.Trim(ctx); err != nil || n != 0 {
		t.Fatalf("trim unread: %d, %v", n, err)
	}
	if n, err := b.PruneConsumers(ctx, 0); err != nil || n != 1 {
		t.Fatalf("prune consumers: %d, %v; want a removed", n, err)
	}
}
