package app_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// The metric table of the api in docs/metrics.md is what /metrics serves:
// every served family is documented with its type and labels, and every
// documented family is served. The api runs with a registered runner that
// heartbeats (with resources and its start) and one that went offline, so
// that every per-runner and per-reason series exists.
func TestMetricsTableMatchesExposition(t *testing.T) {
	ctx := context.Background()
	e := start(t, authCfg)
	reg := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "doc-1"})
	started := time.Now().Add(-time.Minute)
	if _, err := e.client(reg.Token).Heartbeat(ctx, wire.HeartbeatPayload{RunnerID: "doc-1", StartedAt: &started,
		TasksRunning: ptr(0), Resources: &wire.SystemResources{CPUPercent: 1, MemoryPercent: 2}}); err != nil {
		t.Fatal(err)
	}
	gone := e.register(apiKey, wire.RegisterRunnerPayload{RunnerID: "doc-2"})
	if _, err := e.client(gone.Token).Offline(ctx, wire.OfflinePayload{RunnerID: "doc-2"}); err != nil {
		t.Fatal(err)
	}
	served := testkit.Exposition(t, string(e.do("GET", "/metrics", "", "").body))
	testkit.CompareMetrics(t, testkit.MetricsTable(t, filepath.Join("..", "..", "..", "docs", "metrics.md"), "api"), served)
}
