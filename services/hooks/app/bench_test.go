package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/testkit"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// BenchmarkOfflineToWebhook measures the end-to-end latency of 1,000
// runners going offline together: from the outbox event (the offline
// transition) and from the lease deadline to the webhook arriving at a
// receiver, with the production defaults (HOOK_CONCURRENCY 20,
// HOOK_POLL_INTERVAL_MS 100, signing on). Beside it, in the same run, the
// baseline of 1,000 plain POSTs to the same receiver through 20 workers.
//
//	make bench-hooks   (go test -run '^$' -bench OfflineToWebhook -benchtime 1x ./app/)
func BenchmarkOfflineToWebhook(b *testing.B) {
	const n = 1000
	for i := 0; i < b.N; i++ {
		_, rdb := redistest.Start(b)
		s := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))
		var mu sync.Mutex
		got := make([]time.Duration, 0, n)       // event recorded -> received
		fromLease := make([]time.Duration, 0, n) // lease deadline -> received
		recv := newReceiver(b, func(_ int, _ http.ResponseWriter, r *http.Request) int { return http.StatusOK })
		recv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			at := time.Now()
			var ev wire.Event
			var d wire.RunnerEventData
			if json.NewDecoder(r.Body).Decode(&ev) == nil && json.Unmarshal(ev.Data, &d) == nil {
				mu.Lock()
				got = append(got, at.Sub(ev.Timestamp))
				if d.LeaseExpiredAt != nil {
					fromLease = append(fromLease, at.Sub(*d.LeaseExpiredAt))
				}
				mu.Unlock()
			}
			w.WriteHeader(http.StatusNoContent)
		})
		cfg := config.DefaultHooks()
		cfg.HookURLs = []string{recv.URL}
		cfg.HookSecret = testSecret
		cfg.HookEvents = []string{wire.EventRunnerOffline}
		start(b, cfg, rdb, options{})
		ids := registerRunners(b, s, "r", n, 200*time.Millisecond)
		time.Sleep(250 * time.Millisecond)

		b.ResetTimer()
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for j := w; j < n; j += 8 {
					if _, err := s.ExpireLease(context.Background(), ids[j]); err != nil {
						b.Error(err)
					}
				}
			}(w)
		}
		wg.Wait()
		testkit.Eventually(b, 60*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= n }, "1000 webhooks")
		b.StopTimer()

		mu.Lock()
		p := percentiles(got)
		pl := percentiles(fromLease)
		mu.Unlock()
		base := baseline(b, recv.URL, n, 20)
		b.ReportMetric(ms(p[0]), "p50-ms")
		b.ReportMetric(ms(p[1]), "p99-ms")
		fmt.Printf("\n1,000 simultaneous offline events -> webhooks (HOOK_CONCURRENCY=%d, signed):\n", cfg.HookConcurrency)
		fmt.Printf("  event recorded -> webhook received   p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms\n", ms(p[0]), ms(p[1]), ms(p[2]))
		fmt.Printf("  lease deadline -> webhook received   p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms  (includes ExpireLease calls)\n", ms(pl[0]), ms(pl[1]), ms(pl[2]))
		fmt.Printf("  baseline: 1,000 plain POSTs, 20 workers, burst start -> received  p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms\n", ms(base[0]), ms(base[1]), ms(base[2]))
	}
}

// baseline posts n bodies to url through workers goroutines, all starting
// together, and returns the p50/p99/max of burst start -> response.
func baseline(b *testing.B, url string, n, workers int) [3]time.Duration {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	body := []byte(`{"type":"runner.offline","timestamp":"2026-01-01T00:00:00Z","data":{"runner":{"id":"x"}}}`)
	lat := make([]time.Duration, n)
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	begin := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				resp, err := client.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					continue
				}
				resp.Body.Close()
				lat[i] = time.Since(begin)
			}
		}()
	}
	wg.Wait()
	return percentiles(lat)
}

func percentiles(d []time.Duration) [3]time.Duration {
	if len(d) == 0 {
		return [3]time.Duration{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return [3]time.Duration{at(0.50), at(0.99), s[len(s)-1]}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
