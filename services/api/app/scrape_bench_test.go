package app_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// BenchmarkMetricsScrape measures one GET /metrics over real HTTP for a
// fleet of 1,000 and 10,000 online runners, with the per-runner series
// (METRICS_PER_RUNNER=true, the scan redone on every scrape:
// METRICS_CACHE_MS=1) and without; it reports the body size and the series
// count. Run it with
//
//	cd services/api && go test -run '^$' -bench MetricsScrape -benchtime 20x ./app/
func BenchmarkMetricsScrape(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		srv, rdb := redistest.Start(b)
		st := store.New(store.Wrap(rdb), store.Options{})
		ids := make(chan int)
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range ids {
					id := fmt.Sprintf("runner-%05d", i)
					if _, _, err := st.Register(context.Background(), store.RegisterParams{
						ID: id, Name: "n-" + id, Version: "1.0.0", Capacity: 1, TokenHash: "h", LeaseTTL: time.Hour, ActsForAnyRunner: true,
					}); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		for i := 0; i < n; i++ {
			ids <- i
		}
		close(ids)
		wg.Wait()
		for _, perRunner := range []bool{false, true} {
			b.Run(fmt.Sprintf("runners=%d/per_runner=%v", n, perRunner), func(b *testing.B) {
				e := startWith(b, srv, rdb, logging.Discard(), nil, func(c *config.API) { c.MetricsPerRunner = perRunner; c.MetricsCacheMs = 1 })
				var size, series int
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					r := e.do("GET", "/metrics", "", "")
					if r.status != 200 {
						b.Fatalf("scrape: %d", r.status)
					}
					size = len(r.body)
				}
				b.StopTimer()
				r := e.do("GET", "/metrics", "", "")
				for _, line := range strings.Split(string(r.body), "\n") {
					if line != "" && line[0] != '#' {
						series++
					}
				}
				b.ReportMetric(float64(size)/1024, "KiB/scrape")
				b.ReportMetric(float64(series), "series")
			})
		}
	}
}
