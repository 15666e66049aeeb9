package sweep

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// A sweep that takes a runner offline is one span with its Redis commands as
// children; empty ticks make no span at all.
func TestSweepThatTransitionsIsTraced(t *testing.T) {
	_, rdb := redistest.Start(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	store.Wrap(rdb).Trace(tp)

	svc, err := New(testConfig(), store.Wrap(rdb), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	svc.tracer = tp.Tracer("test")
	testkit.Serve(t, svc.Run)

	time.Sleep(100 * time.Millisecond) // several empty ticks
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("empty ticks made %d spans", n)
	}
	register(t, store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet)), "traced", 100*time.Millisecond)
	testkit.Eventually(t, 3*time.Second, func() bool { return count(t, rdb, wire.RunnerOffline) == 1 }, "runner offline")
	testkit.Eventually(t, time.Second, func() bool {
		for _, s := range exp.GetSpans() {
			if s.Name == "sweep leases" {
				return true
			}
		}
		return false
	}, "sweep span")
	var sweep tracetest.SpanStub
	children := 0
	spans := exp.GetSpans()
	for _, s := range spans {
		if s.Name == "sweep leases" {
			sweep = s
		}
	}
	for _, s := range spans {
		if s.Parent.SpanID() == sweep.SpanContext.SpanID() {
			children++
		}
	}
	attrs := map[string]any{}
	for _, a := range sweep.Attributes {
		attrs[string(a.Key)] = a.Value.AsInterface()
	}
	if attrs["yggdrasil.sweep.due"] != int64(1) || children == 0 {
		t.Fatalf("sweep span attributes %v, %d Redis children", attrs, children)
	}
}
