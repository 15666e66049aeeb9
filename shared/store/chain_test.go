package store_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/telemetry"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

func spanCtx(trace0, span0 byte) context.Context {
	return trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{trace0, 1}, SpanID: trace.SpanID{span0, 2}, TraceFlags: trace.FlagsSampled}))
}

// TestTraceChainThroughTheStore: the heartbeat stores its traceparent on the
// runner; the offline transition answers it (the span to link to) and its
// runner.offline event carries the transition's own traceparent; the
// registration's event carries the registering request's.
func TestTraceChainThroughTheStore(t *testing.T) {
	s, rdb := newStore(t)
	regCtx, hbCtx, trCtx := spanCtx(0xa, 1), spanCtx(0xb, 2), spanCtx(0xc, 3)
	if _, _, err := s.Register(regCtx, store.RegisterParams{ID: "r1", Name: "r1", LeaseTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Heartbeat(hbCtx, store.HeartbeatParams{RunnerID: "r1", LeaseTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if got, _ := rdb.HGet(ctx, store.RunnerKey("r1"), "heartbeatTraceparent").Result(); got != telemetry.Traceparent(hbCtx) {
		t.Fatalf("heartbeatTraceparent %q, want %q", got, telemetry.Traceparent(hbCtx))
	}
	tr, err := s.Deregister(trCtx, "r1", 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	if tr.HeartbeatTraceparent != telemetry.Traceparent(hbCtx) {
		t.Errorf("transition answered heartbeat %q, want %q", tr.HeartbeatTraceparent, telemetry.Traceparent(hbCtx))
	}
	msgs, err := rdb.XRange(ctx, store.OutboxKey(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		wire.EventRunnerRegistered: telemetry.Traceparent(regCtx), wire.EventRunnerOffline: telemetry.Traceparent(trCtx),
	}
	if len(msgs) != len(want) {
		t.Fatalf("%d outbox entries, want %d", len(msgs), len(want))
	}
	for _, m := range msgs {
		ev, err := store.DecodeEvent(store.OutboxEntry{ID: m.ID, Values: m.Values})
		if err != nil {
			t.Fatal(err)
		}
		if ev.Traceparent != want[ev.Type] || ev.Traceparent == "" {
			t.Errorf("%s event traceparent %q, want %q", ev.Type, ev.Traceparent, want[ev.Type])
		}
	}
}
