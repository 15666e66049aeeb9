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

	"github.com/yggdrasil-cp/yggdrasil/services/api/app"
	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// BenchmarkHeartbeat measures heartbeats over real HTTP against a real
// redis-server (auth on: each heartbeat is a token lookup plus the heartbeat
// script), next to the machine's ceiling measured in the same run with the
// same client concurrency: raw PING round trips, and the heartbeat script
// called straight from Go. http_heartbeat_traced is the same over a second
// replica with tracing on: every request sampled, its server span and Redis
// child spans batched to an exporter that drops them (what the SDK costs,
// without a collector's network). Run it with
//
//	cd services/api && go test -run '^$' -bench Heartbeat -benchtime 3s ./app/
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
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	traced := srv.Client()
	b.Cleanup(func() { _ = traced.Close() })
	store.Wrap(traced).Trace(tp)
	et := startWith(b, srv, traced, logging.Discard(), []app.Option{app.WithTracing(tp, nil)}, authCfg)

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
	b.Run("http_heartbeat", func(b *testing.B) { heartbeats(b, e.base) })
	b.Run("http_heartbeat_traced", func(b *testing.B) { heartbeats(b, et.base) })
}

// discardExporter drops every span: the benchmark measures the SDK, not a
// collector.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }
