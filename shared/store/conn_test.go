package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// TestSubscribe: a subscription first says it is in place, then delivers
// what is published, and ends with an error when its connection is killed.
func TestSubscribe(t *testing.T) {
	_, rdb := redistest.Start(t)
	conn := store.Wrap(rdb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch := conn.Subscribe(ctx, "test-channel")
	next := func() store.Published {
		t.Helper()
		select {
		case p, ok := <-ch:
			if !ok {
				t.Fatal("subscription closed early")
			}
			return p
		case <-ctx.Done():
			t.Fatal("nothing received")
		}
		return store.Published{}
	}
	if p := next(); !p.Subscribed {
		t.Fatalf("first value %+v, want Subscribed", p)
	}
	if err := rdb.Publish(ctx, "test-channel", "rnr_1").Err(); err != nil {
		t.Fatal(err)
	}
	if p := next(); p.Payload != "rnr_1" || p.Err != nil {
		t.Fatalf("got %+v, want payload rnr_1", p)
	}
	if err := rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	if p := next(); p.Err == nil {
		t.Fatalf("got %+v after CLIENT KILL, want an error", p)
	}
	if _, ok := <-ch; ok {
		t.Fatal("channel still open after the error")
	}
}

// TestSubscribeEndsWithContext: cancelling closes the channel without an error.
func TestSubscribeEndsWithContext(t *testing.T) {
	_, rdb := redistest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch := store.Wrap(rdb).Subscribe(ctx, "c")
	<-ch // subscribed
	cancel()
	for p := range ch {
		if p.Err != nil {
			t.Fatalf("error after cancel: %v", p.Err)
		}
	}
}

// TestEnableExpiryEvents merges Ex into the flags already set, once.
func TestEnableExpiryEvents(t *testing.T) {
	_, rdb := redistest.Start(t, "--notify-keyspace-events", "Kg")
	conn := store.Wrap(rdb)
	ctx := context.Background()
	was, now, err := conn.EnableExpiryEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if was != "gK" || now != "gKEx" {
		t.Fatalf("was %q now %q, want gK then gKEx", was, now)
	}
	was, now, err = conn.EnableExpiryEvents(ctx)
	if err != nil || was != now {
		t.Fatalf("second call changed %q to %q (%v)", was, now, err)
	}
	if id, ok := store.ExpiredLease(store.LeaseKey("rnr_9")); !ok || id != "rnr_9" {
		t.Fatalf("ExpiredLease = %q, %v", id, ok)
	}
	if _, ok := store.ExpiredLease(store.RunnerKey("rnr_9")); ok {
		t.Fatal("a runner key is not a lease")
	}
}
