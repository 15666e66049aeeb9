//go:build bench

package sweep

// The detection-lag benchmark: `make bench-sweeper`. It is behind the bench
// build tag so that neither `go test ./...` nor `make bench` pays its minutes.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/logging"
	"github.com/yggdrasil-cp/yggdrasil/shared/redistest"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// spread is the window the lease deadlines are spread over.
const spread = 15 * time.Second

// BenchmarkDetectionLag registers N runners whose leases end spread over
// 15 s, lets them all expire with a default-configured sweeper running
// (SWEEP_INTERVAL_MS=100, woken at each next lease deadline at most every
// minScanGap, mass-expiry protection off: this measures
// individual expiries), and reports the detection lag (transition time minus
// lease deadline, from the runner.offline events) beside the lag of the
// keyspace expiry events, as seen by a plain subscriber in the same run.
// The events-only variant runs no sweeper: there the events come from Redis'
// active expiry cycle alone. With a sweeper running, its index scans touch
// due lease keys, which makes Redis expire them (and publish the event) at
// once, so the events of that variant are not independent of the sweeper.
func BenchmarkDetectionLag(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		for _, withSweeper := range []bool{false, true} {
			mode := "events-only"
			if withSweeper {
				mode = "sweeper"
			}
			b.Run(fmt.Sprintf("leases=%d/%s", n, mode), func(b *testing.B) {
				for range b.N {
					runLag(b, n, withSweeper)
				}
			})
		}
	}
}

func runLag(b *testing.B, n int, withSweeper bool) {
	ctx := context.Background()
	srv, err := redistest.StartServer(b.TempDir(), "--notify-keyspace-events", "Ex")
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	rdb := srv.Client()
	defer rdb.Close()
	st := store.New(store.Wrap(rdb), store.OptionsFrom(config.DefaultAPI().Fleet))

	// a plain subscriber: arrival time of each lease's expiry event
	arrivals := make(map[string]time.Time, n)
	var amu sync.Mutex
	var got atomic.Int64
	sub := srv.Client()
	defer sub.Close()
	ps := sub.Subscribe(ctx, "__keyevent@0__:expired")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		b.Fatal(err)
	}
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		for m := range ps.Channel(redis.WithChannelSize(n)) {
			now := time.Now()
			if id, ok := strings.CutPrefix(m.Payload, store.LeaseKeyPrefix); ok {
				amu.Lock()
				arrivals[id] = now
				amu.Unlock()
				got.Add(1)
			}
		}
	}()

	// register: deadline i is start + i*spread/n, whatever the time the
	// registration itself takes
	lead := 3*time.Second + time.Duration(n)*250*time.Microsecond
	start := time.Now().Add(lead)
	deadlines := make([]time.Time, n)
	var late atomic.Int64
	setup := time.Now()
	var wg sync.WaitGroup
	const workers = 16
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				target := start.Add(time.Duration(i) * spread / time.Duration(n))
				ttl := time.Until(target)
				if ttl < 10*time.Millisecond {
					late.Add(1)
					ttl = 10 * time.Millisecond
				}
				_, lease, err := st.Register(ctx, store.RegisterParams{
					ID: fmt.Sprintf("bench-%06d", i), Name: "bench", Version: "1.0.0", TokenHash: "h", LeaseTTL: ttl,
				})
				if err != nil {
					b.Error(err)
					return
				}
				deadlines[i] = lease.ExpiresAt
			}
		})
	}
	wg.Wait()
	if late.Load() > 0 {
		b.Fatalf("%d registrations came after their deadline: raise the lead", late.Load())
	}
	b.Logf("registered %d runners in %s; first deadline in %s", n, time.Since(setup).Round(time.Millisecond), time.Until(start).Round(time.Millisecond))

	cfg := config.DefaultSweeper()
	cfg.MassExpiryPercent = 100
	svc, err := New(cfg, store.Wrap(rdb), logging.Discard())
	if err != nil {
		b.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	var swg sync.WaitGroup
	if withSweeper {
		swg.Go(func() { _ = svc.Run(sctx) })
	}

	b.ResetTimer()
	end := start.Add(spread)
	if withSweeper {
		waitUntil(end.Add(30*time.Second), func() bool {
			c, err := st.Counts(ctx)
			return err == nil && c.Offline == int64(n)
		})
	}
	waitUntil(end.Add(20*time.Second), func() bool { return got.Load() >= int64(n) })
	b.StopTimer()
	stop()
	swg.Wait()
	_ = ps.Close()
	<-subDone
	var load string
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(l))[:3], " ")
	}

	var sweeper []time.Duration
	if withSweeper {
		sweeper = offlineLags(b, rdb)
		if len(sweeper) != n {
			b.Errorf("%d runner.offline events, want %d", len(sweeper), n)
		}
	}
	var events []time.Duration
	amu.Lock()
	for i, dl := range deadlines {
		if at, ok := arrivals[fmt.Sprintf("bench-%06d", i)]; ok {
			events = append(events, at.Sub(dl))
		}
	}
	amu.Unlock()
	if withSweeper {
		scans := func(by trigger) float64 { return val(svc.m.scans.WithLabelValues(string(by))) }
		fmt.Printf("leases=%-6d sweeper running:  sweeper lag %s | events %s | index transitions %.0f, event-prompted %.0f | scans tick %.0f, deadline %.0f, event %.0f | load %s\n",
			n, summary(sweeper), summary(events), val(svc.m.indexTrans), val(svc.m.eventTrans),
			scans(byTick), scans(byDeadline), scans(byEvent), load)
	} else {
		fmt.Printf("leases=%-6d no sweeper:        keyspace events alone %s (%d of %d arrived) | load %s\n",
			n, summary(events), len(events), n, load)
	}
	if len(sweeper) > 0 {
		b.ReportMetric(float64(pct(sweeper, 0.99).Milliseconds()), "p99-ms")
	}
}

// offlineLags reads the outbox: transition time (ts) minus lease deadline of
// every runner.offline event, both in Redis milliseconds.
func offlineLags(b *testing.B, rdb *redis.Client) []time.Duration {
	ctx := context.Background()
	var out []time.Duration
	cursor := "-"
	for {
		msgs, err := rdb.XRangeN(ctx, store.OutboxKey(), cursor, "+", 5000).Result()
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range msgs {
			if m.Values["type"] != wire.EventRunnerOffline {
				continue
			}
			var d struct {
				LeaseExpiredAtMs int64 `json:"leaseExpiredAtMs"`
			}
			if err := json.Unmarshal([]byte(m.Values["data"].(string)), &d); err != nil {
				b.Fatal(err)
			}
			var ts int64
			fmt.Sscan(m.Values["ts"].(string), &ts)
			out = append(out, time.Duration(ts-d.LeaseExpiredAtMs)*time.Millisecond)
		}
		if len(msgs) < 5000 {
			return out
		}
		cursor = "(" + msgs[len(msgs)-1].ID
	}
}

func waitUntil(deadline time.Time, cond func() bool) {
	for !cond() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
}

func pct(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func summary(d []time.Duration) string {
	if len(d) == 0 {
		return "no samples"
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond)) }
	return fmt.Sprintf("p50 %s p99 %s max %s", ms(pct(d, 0.5)), ms(pct(d, 0.99)), ms(pct(d, 1)))
}
