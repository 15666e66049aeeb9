package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/yggdrasil-cp/yggdrasil/services/api/app"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/telemetry"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// BenchmarkHeartbeat measures heartbeats over real HTTP against a real
// redis-server (auth on: each heartbeat is a token lookup plus the heartbeat
// script), next to the machine's ceiling measured in the same run with the
// same client concurrency: raw PING round trips, and the heartbeat script
// called straight from Go. http_heartbeat_traced is the same over a second
// replica with tracing on: every request sampled, its server span and Redis
// child spans batched to an exporter that drops them (what the SDK costs,
// without a collector's network); http_heartbeat_traced_1pct samples 1 %.
// ceiling_store_heartbeat_traceparent stores a traceparent on the runner
// (what a traced heartbeat writes), _no_traceparent an empty one. The
// variants alternate over benchRounds rounds (r0/, r1/, ...). Run it with
//
//	cd services/api && go test -run '^$' -bench Heartbeat -benchtime 2s ./app/
func BenchmarkHeartbeat(b *testing.B) {
	const runners, parallelism = 64, 16
	srv, rdb := redistest.Start(b)
	// Tracing off as app.Run has it with no endpoint: OpenTelemetry's
	// global no-op provider.
	e := startWith(b, srv, rdb, logging.Discard(), []app.Option{app.WithTracing(otel.GetTracerProvider(), otel.GetTextMapPropagator())}, authCfg)
	ctx := context.Background()
	regs := make([]wire.RegisterRunnerResponse, runners)
	for i := range regs {
		regs[i] = e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: fmt.Sprintf("bench-%03d", i)})
	}
	st := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
	reqPerSec := func(b *testing.B) {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	}

	b.Run("ceiling_redis_ping", func(b *testing.B) {
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := rdb.Ping(ctx).Err(); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reqPerSec(b)
	})
	b.Run("ceiling_store_heartbeat_evalsha", func(b *testing.B) {
		var n atomic.Int64
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				id := regs[n.Add(1)%runners].ID
				if _, err := st.Heartbeat(ctx, store.HeartbeatParams{RunnerID: id, LeaseTTL: time.Minute}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reqPerSec(b)
	})
	// The heartbeat script with and without a traceparent to store: ctx
	// carrying a span context is what a traced request's is.
	tracedCtx := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled}))
	storeHeartbeats := func(name string, hctx context.Context) {
		b.Run(name, func(b *testing.B) {
			var n atomic.Int64
			b.SetParallelism(parallelism)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := regs[n.Add(1)%runners].ID
					if _, err := st.Heartbeat(hctx, store.HeartbeatParams{RunnerID: id, LeaseTTL: time.Minute}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reqPerSec(b)
		})
	}
	// One replica per sampling ratio, each with the default sampler
	// (parentbased_traceidratio; the requests carry no traceparent, so the
	// ratio decides) and its own traced Redis client.
	tracedAt := func(ratio string) *env {
		tcfg := config.DefaultTelemetry("bench")
		tcfg.SamplerArg = ratio
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(telemetry.Sampler(tcfg)), sdktrace.WithBatcher(discardExporter{}))
		b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		traced := srv.Client()
		b.Cleanup(func() { _ = traced.Close() })
		store.Wrap(traced).Trace(tp)
		return startWith(b, srv, traced, logging.Discard(), []app.Option{app.WithTracing(tp, nil)}, authCfg)
	}
	et, et1 := tracedAt("1.0"), tracedAt("0.01")

	heartbeats := func(b *testing.B, base string) {
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}, Timeout: 10 * time.Second}
		bodies := make([][]byte, runners)
		for i, r := range regs {
			bodies[i] = []byte(mustJSON(wire.HeartbeatPayload{RunnerID: r.ID, LeaseEpoch: r.LeaseEpoch, Status: wire.RunnerIdle,
				Resources: &wire.SystemResources{CPUPercent: 10, MemoryPercent: 20}}))
		}
		var n atomic.Int64
		b.SetParallelism(parallelism)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1) % runners
				req, _ := http.NewRequest("POST", base+"/runners/heartbeat", bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+regs[i].Token)
				res, err := hc.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					b.Errorf("status %d", res.StatusCode)
					return
				}
			}
		})
		reqPerSec(b)
	}
	// The variants interleaved, round after round, so that a noisy
	// neighbour weighs on all of them alike.
	for r := range benchRounds {
		storeHeartbeats(fmt.Sprintf("r%d/store_heartbeat_no_traceparent", r), ctx)
		storeHeartbeats(fmt.Sprintf("r%d/store_heartbeat_traceparent", r), tracedCtx)
		b.Run(fmt.Sprintf("r%d/http_heartbeat", r), func(b *testing.B) { heartbeats(b, e.base) })
		b.Run(fmt.Sprintf("r%d/http_heartbeat_traced_1pct", r), func(b *testing.B) { heartbeats(b, et1.base) })
		b.Run(fmt.Sprintf("r%d/http_heartbeat_traced", r), func(b *testing.B) { heartbeats(b, et.base) })
	}
}

// benchRounds is how many times the traced and untraced variants alternate.
const benchRounds = 3

// discardExporter drops every span: the benchmark measures the SDK, not a
// collector.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }
