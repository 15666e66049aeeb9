package store_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// TestRedisSpans: commands are spans only under a recording span, named by
// command or script, with no arguments.
func TestRedisSpans(t *testing.T) {
	_, rdb := redistest.Start(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	store.Wrap(rdb).Trace(tp)
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "top-secret-value", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans without a parent span", n)
	}
	ctx, parent := tp.Tracer("t").Start(ctx, "parent")
	if err := rdb.Get(ctx, "k").Err(); err != nil {
		t.Fatal(err)
	}
	pipe := rdb.Pipeline()
	pipe.Get(ctx, "k")
	pipe.Get(ctx, "missing")
	_, _ = pipe.Exec(ctx)
	parent.End()
	var names []string
	for _, s := range exp.GetSpans() {
		names = append(names, s.Name)
		for _, kv := range s.Attributes {
			if v := kv.Value.Emit(); v == "k" || v == "top-secret-value" {
				t.Errorf("span %s records an argument: %s=%s", s.Name, kv.Key, v)
			}
		}
	}
	want := []string{"GET", "PIPELINE", "parent"}
	if len(names) != len(want) {
		t.Fatalf("spans %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("spans %v, want %v", names, want)
		}
	}
}
