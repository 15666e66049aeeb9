package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// A task's status changes are published on TaskEventsChannel (a no-op and a
// refused change are not); the web console refreshes on them.
func TestTaskUpdatePublishesTaskEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, _ := newStore(t)
	lease := register(t, s, "r1", time.Minute)
	sub := s.Subscribe(ctx, store.TaskEventsChannel())
	if p := <-sub; !p.Subscribed {
		t.Fatalf("first value = %+v, want Subscribed", p)
	}
	task, _, err := s.Dispatch(ctx, store.DispatchParams{RunnerID: "r1", Type: "echo", Payload: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	update := func(to wire.TaskStatus) error {
		_, err := s.UpdateTask(ctx, store.TaskUpdateParams{RunnerID: "r1", TaskID: task.ID, Status: to, Epoch: lease.Epoch, Actor: store.ActorRunner})
		return err
	}
	for _, to := range []wire.TaskStatus{wire.TaskRunning, wire.TaskRunning, wire.TaskSucceeded} {
		if err := update(to); err != nil {
			t.Fatal(err)
		}
	}
	if err := update(wire.TaskFailed); err == nil {
		t.Fatal("a terminal task changed")
	}
	// A marker published after the updates bounds what they published.
	if err := s.Redis().Publish(ctx, store.TaskEventsChannel(), "end").Err(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for p := range sub {
		if p.Err != nil {
			t.Fatal(p.Err)
		}
		if p.Payload == "end" {
			break
		}
		got = append(got, p.Payload)
	}
	if len(got) != 2 || got[0] != "r1" || got[1] != "r1" {
		t.Fatalf("published %q, want one \"r1\" for running and one for succeeded", got)
	}
}

// TailOutbox from OutboxLastID sees only the events written after, in order,
// without a consumer group (the hooks relay's group is left alone).
func TestTailOutboxFromLastID(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	last, err := s.OutboxLastID(ctx)
	if err != nil || last != "0-0" {
		t.Fatalf("last id of a missing stream = %q, %v; want 0-0", last, err)
	}
	register(t, s, "old", time.Minute)
	if last, err = s.OutboxLastID(ctx); err != nil || last == "0-0" {
		t.Fatalf("last id = %q, %v", last, err)
	}
	got, next, err := s.TailOutbox(ctx, last, 10, 10*time.Millisecond)
	if err != nil || len(got) != 0 || next != last {
		t.Fatalf("tail with nothing new = %d entries, next %q, %v; want none, %q", len(got), next, err, last)
	}
	register(t, s, "new", time.Minute)
	if _, err := s.Deregister(ctx, "new", 0, "bye"); err != nil {
		t.Fatal(err)
	}
	got, next, err = s.TailOutbox(ctx, last, 10, time.Second)
	if err != nil || len(got) != 2 {
		t.Fatalf("tail = %d entries, %v; want 2", len(got), err)
	}
	var types []string
	for _, e := range got {
		ev, err := store.DecodeEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, ev.Type)
	}
	if types[0] != wire.EventRunnerRegistered || types[1] != wire.EventRunnerOffline {
		t.Fatalf("types = %v", types)
	}
	if next != got[1].ID {
		t.Fatalf("next = %q, want %q", next, got[1].ID)
	}
}

// A realm.* event reaches webhook consumers with the data its script wrote
// (the realm, its states, who changed it), not as an empty runner event.
func TestDecodeEventKeepsRealmEventData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, rdb := newStore(t)
	if err := s.CreateRealm(ctx, store.RealmWrite{Name: "ci"}, "global operator"); err != nil {
		t.Fatal(err)
	}
	if err := s.TransitionRealm(ctx, "ci", wire.RealmClosed, "global operator"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRealm(ctx, "ci", "global operator"); err != nil {
		t.Fatal(err)
	}
	msgs, err := rdb.XRange(ctx, store.OutboxKey(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	type realmData struct {
		Realm struct {
			Name, State, PreviousState, StateChangedBy string
			StateChangedAtMs                           int64
		}
		RunnersRemoved *int64
	}
	var got []realmData
	for _, m := range msgs {
		ev, err := store.DecodeEvent(store.OutboxEntry{ID: m.ID, Values: m.Values})
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type != "realm.closed" && ev.Type != "realm.deleted" {
			continue
		}
		var d realmData
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatalf("%s: %v", ev.Data, err)
		}
		if d.Realm.StateChangedAtMs <= 0 || d.Realm.StateChangedBy != "global operator" || d.Realm.Name != "ci" {
			t.Errorf("%s data %s: want realm ci changed by the global operator at a time", ev.Type, ev.Data)
		}
		got = append(got, d)
	}
	if len(got) != 2 || got[0].Realm.State != "closed" || got[0].Realm.PreviousState != "active" ||
		got[1].Realm.State != "deleted" || got[1].Realm.PreviousState != "closed" || got[1].RunnersRemoved == nil {
		t.Fatalf("realm events %+v: want closed (from active), then deleted (from closed) with runnersRemoved", got)
	}
}
